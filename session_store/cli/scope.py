"""Which store and project a command works on: store URLs, opening a store, and checking a session exists.

A command opens the store of ``--store URL`` (else ``$SESSION_STORE_URL``, else the embedded SQLite file
``~/.local/share/session-store/sessions.db``) with :func:`with_store`, and works on the project of
``--directory`` (a :class:`Scope`). The commands that change a session first check it exists
(:func:`require_session`), so a typo never creates a ghost session.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..adapters import open_store
from ..adapters.sqlite import default_database_path
from ..keys import project_key_for_directory, validate_uuid
from ..types import SessionKey, SessionStore
from .output import PROG, redact_url
from .running import CliError

__all__ = [
    "STORE_URL_ENV",
    "Scope",
    "as_json",
    "default_store_url",
    "require_session",
    "require_session_id",
    "session_not_found",
    "sqlite_url",
    "with_store",
]

STORE_URL_ENV = "SESSION_STORE_URL"

T = TypeVar("T")


def sqlite_url(path: Path) -> str:
    """The store URL of an SQLite file: ``sqlite:///`` followed by the absolute path (so four slashes)."""
    return "sqlite:///" + str(path.absolute())


def default_store_url() -> str:
    """``$SESSION_STORE_URL``, else the embedded SQLite file (``~/.local/share/session-store/sessions.db``)."""
    return os.environ.get(STORE_URL_ENV) or sqlite_url(default_database_path())


async def with_store(
    url: str, command: Callable[[SessionStore], Coroutine[Any, Any, T]], *, read_only: bool = False
) -> T:
    """Open the store at ``url``, run ``command(store)`` and close the store (if it has a ``close``).

    ``read_only``: a command that only reads opens a SQLite file read-only (see ``open_store``).
    """
    store = open_store(url, read_only=read_only)
    try:
        return await command(store)
    finally:
        closing = getattr(store, "close", None)
        outcome = closing() if callable(closing) else None
        if inspect.isawaitable(outcome):
            await outcome


@dataclass(frozen=True)
class Scope:
    """Which store and project a command works on (for messages and keys)."""

    store_url: str
    directory: str | None

    @property
    def project_key(self) -> str:
        return project_key_for_directory(self.directory)

    def describe(self) -> str:
        where = self.directory if self.directory is not None else os.getcwd()
        return f"project {where} (key {self.project_key}) in {redact_url(self.store_url)}"


def require_session_id(session_id: str, what: str = "session id") -> str:
    if validate_uuid(session_id) is None:
        raise CliError(f"{what} {session_id!r} is not a UUID (like 123e4567-e89b-12d3-a456-426614174000)")
    return session_id


def session_not_found(session_id: str, scope: Scope) -> CliError:
    return CliError(
        f"session {session_id} not found for {scope.describe()}; "
        f"'{PROG} list' shows the stored sessions (use --directory for another project)"
    )


async def require_session(store: SessionStore, session_id: str, scope: Scope) -> None:
    """Raise ``CliError`` unless ``session_id`` is a UUID whose main transcript the store holds."""
    require_session_id(session_id)
    key: SessionKey = {"project_key": scope.project_key, "session_id": session_id}
    if not await store.load(key):
        raise session_not_found(session_id, scope)


def as_json(value: Any) -> Any:
    """A dataclass instance as a dict (for ``--json``); anything else as it is."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
