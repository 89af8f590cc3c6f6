"""The async face shared by the adapters whose drivers block: ``ThreadedSessionStore``.

sqlite3, psycopg's sync pool and redis-py's sync client all block the calling thread. Their adapters implement
six ``_..._blocking`` methods; this base class validates the key (SPEC §4 decision 2: ``subpath == ""`` raises
``ValueError``, ``append(key, [])`` does nothing), then runs the blocking method in a worker thread with
``compat.run_sync`` under a ``compat.CapacityLimiter`` sized to the driver's connections. That is how one
adapter works under asyncio and trio alike (psycopg's and redis-py's async APIs are asyncio-only). A cancelled
or timed-out caller returns at once (``abandon_on_cancel=True``): the driver call in flight runs to its end in
its thread, where a transaction commits or rolls back whole, and keeps its limiter slot until then. So
``fail_after`` around a store call (the batcher's ``send_timeout``, resume's ``load_timeout_ms``) really bounds
it, even against a server that stopped answering; like any timed-out write, it may still land afterwards.

It also holds the append rules all three adapters share (SPEC §4 decision 8, reference §1.7): entries are
idempotent by ``uuid`` per key (a ``str`` uuid the key already holds, or one seen earlier in the same batch, is
dropped; entries without a uuid are always kept), only the entries actually stored are folded into the summary,
and the summary's ``mtime`` is one storage clock, forced strictly increasing per session.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import compat

from ..exactly_once import check_occurrences, entry_uuid
from ..keys import validate_project_key, validate_session_key
from ..summary import fold_session_summary
from ..types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from ..validation import check_entry_list, encode_entry

__all__ = [
    "MissingDriverError",
    "ThreadedSessionStore",
    "decode_entry",
    "encode_entry",
    "entry_uuid",
    "fold_stamped_summary",
    "next_mtime",
    "require_driver",
    "unique_in_batch",
]

T = TypeVar("T")


class MissingDriverError(ImportError):
    """An adapter's optional driver is not installed; the message names the pip extra that brings it."""


def require_driver(module: str, *, store: str, extra: str) -> None:
    """Import ``module`` or raise :class:`MissingDriverError` naming the extra that installs it."""
    try:
        __import__(module)
    except ImportError as error:
        raise MissingDriverError(
            f"{store} needs the {module!r} package, which is not installed: pip install 'session-store-compat[{extra}]'"
        ) from error


# -- append rules --------------------------------------------------------------------------------------------


def unique_in_batch(entries: Iterable[SessionStoreEntry]) -> list[SessionStoreEntry]:
    """``entries`` without repeats of a uuid seen earlier in the same batch (the first occurrence wins)."""
    seen: set[str] = set()
    unique: list[SessionStoreEntry] = []
    for entry in entries:
        uuid = entry_uuid(entry)
        if uuid is not None:
            if uuid in seen:
                continue
            seen.add(uuid)
        unique.append(entry)
    return unique


def decode_entry(text: str | bytes) -> SessionStoreEntry:
    """The entry stored as ``text`` by :func:`encode_entry`."""
    entry: SessionStoreEntry = json.loads(text)
    return entry


def next_mtime(now_ms: int, previous_ms: int) -> int:
    """The mtime to stamp: the storage clock's ``now_ms``, but always after the session's previous mtime."""
    return max(now_ms, previous_ms + 1)


def fold_stamped_summary(
    key: SessionKey, previous: SessionSummaryEntry | None, stored: Sequence[SessionStoreEntry], now_ms: int
) -> SessionSummaryEntry:
    """Fold the entries just stored into the session's summary and stamp it with the storage time."""
    summary = fold_session_summary(previous, key, stored)
    summary["mtime"] = next_mtime(now_ms, previous["mtime"] if previous is not None else 0)
    return summary


# -- the async face ------------------------------------------------------------------------------------------


class ThreadedSessionStore(SessionStore):
    """A ``SessionStore`` whose blocking ``_..._blocking`` methods run in worker threads.

    Subclasses implement the seven blocking methods (``_append_once_blocking`` included) (``subpath`` is None for the main transcript and never
    ``""``) and ``_close_blocking``. ``close()`` is idempotent; a closed store raises ``RuntimeError``.
    Use ``async with store:`` to close it on exit.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (
            cls._append_once_blocking is ThreadedSessionStore._append_once_blocking
            and cls._write_blocking is ThreadedSessionStore._write_blocking
            and "append_once" not in vars(cls)
        ):
            # no blocking half: append_once is absent (store_implements says so), not a NotImplementedError
            cls.append_once = SessionStore.append_once  # type: ignore[method-assign]  # the protocol's "absent" default

    def __init__(self, *, max_threads: int) -> None:
        self._limiter = compat.CapacityLimiter(max_threads)
        self._closed = False

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; open a new store to keep using it")
        return await compat.run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=True)

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Store ``entries`` after what ``key`` holds, skipping uuids it already has; fold main appends."""
        validate_session_key(key)
        if not check_entry_list(entries):
            return
        await self._call(self._append_blocking, key, key.get("subpath"), list(entries))

    async def append_once(
        self, key: SessionKey, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        """Store each entry unless ``key`` holds it already (uuid, or content and occurrence); how many were new.

        See ``SessionStore.append_once`` and :mod:`session_store.exactly_once`; atomic like ``append``.
        """
        validate_session_key(key)
        check_occurrences(check_entry_list(entries), occurrences)
        if not entries:
            return 0
        return await self._call(self._append_once_blocking, key, key.get("subpath"), list(entries), list(occurrences))

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """The key's entries in append order, or None when nothing was ever stored under it."""
        validate_session_key(key)
        return await self._call(self._load_blocking, key["project_key"], key["session_id"], key.get("subpath"))

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """The project's main transcripts with the mtime (epoch ms) of their last stored append."""
        validate_project_key(project_key)
        return await self._call(self._list_sessions_blocking, project_key)

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """The project's summary sidecars, folded inside ``append``; ``mtime`` matches ``list_sessions``."""
        validate_project_key(project_key)
        return await self._call(self._list_session_summaries_blocking, project_key)

    async def delete(self, key: SessionKey) -> None:
        """Delete ``key``; without a subpath, also every subkey and the summary of the session (cascade)."""
        validate_session_key(key)
        await self._call(self._delete_blocking, key["project_key"], key["session_id"], key.get("subpath"))

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """Every subpath stored under the session (never the main transcript)."""
        validate_session_key(cast(SessionKey, key))
        return await self._call(self._list_subkeys_blocking, key["project_key"], key["session_id"])

    async def list_projects(self) -> list[str]:
        """Every project key holding at least one main transcript (retention; see :mod:`session_store.retention`)."""
        return await self._call(self._list_projects_blocking)

    async def prune_project(
        self, project_key: str, *, before_ms: int, dry_run: bool = False
    ) -> list[SessionStoreListEntry]:
        """Delete the project's sessions whose mtime is before ``before_ms`` (an index range), each one only if
        no append landed since it was found; the deleted rows (``dry_run``: the rows found, nothing deleted)."""
        validate_project_key(project_key)
        if isinstance(before_ms, bool) or not isinstance(before_ms, int):
            raise TypeError(f"before_ms must be an int (epoch milliseconds), got {before_ms!r}")
        found = await self._call(self._prune_candidates_blocking, project_key, before_ms)
        if dry_run:
            return [{"session_id": session_id, "mtime": mtime} for session_id, mtime in found]
        pruned: list[SessionStoreListEntry] = []
        for session_id, mtime in found:
            deleted = await self._call(self._prune_one_blocking, project_key, session_id, mtime, before_ms)
            if deleted is not None:
                pruned.append({"session_id": session_id, "mtime": deleted})
        if pruned:
            await self._call(self._after_prune_blocking, project_key)
        return pruned

    async def close(self) -> None:
        """Release the driver's connections. Idempotent; later calls on the store raise ``RuntimeError``.

        Waits for a call in flight in a worker thread when the driver allows only one at a time (SQLite).
        """
        if self._closed:
            return
        self._closed = True
        await compat.run_sync(self._close_blocking, limiter=self._limiter)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- implemented by each adapter; run in a worker thread --

    def _append_blocking(self, key: SessionKey, subpath: str | None, entries: list[SessionStoreEntry]) -> None:
        self._write_blocking(key, subpath, entries, None)

    def _append_once_blocking(
        self, key: SessionKey, subpath: str | None, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        return self._write_blocking(key, subpath, entries, occurrences)

    def _write_blocking(
        self,
        key: SessionKey,
        subpath: str | None,
        entries: list[SessionStoreEntry],
        occurrences: list[int | None] | None,
    ) -> int:
        """The one write path of ``append`` (``occurrences`` None) and ``append_once``; how many were stored."""
        raise NotImplementedError

    def _load_blocking(self, project_key: str, session_id: str, subpath: str | None) -> list[SessionStoreEntry] | None:
        raise NotImplementedError

    def _list_sessions_blocking(self, project_key: str) -> list[SessionStoreListEntry]:
        raise NotImplementedError

    def _list_session_summaries_blocking(self, project_key: str) -> list[SessionSummaryEntry]:
        raise NotImplementedError

    def _delete_blocking(self, project_key: str, session_id: str, subpath: str | None) -> None:
        raise NotImplementedError

    def _list_subkeys_blocking(self, project_key: str, session_id: str) -> list[str]:
        raise NotImplementedError

    def _list_projects_blocking(self) -> list[str]:
        raise NotImplementedError

    def _prune_candidates_blocking(self, project_key: str, before_ms: int) -> list[tuple[str, int]]:
        """The (session id, mtime) of the project's sessions whose mtime is before ``before_ms``: an index range."""
        raise NotImplementedError

    def _after_prune_blocking(self, project_key: str) -> None:
        """Tidy the project once ``prune_project`` deleted sessions from it (nothing to do by default)."""

    def _prune_one_blocking(self, project_key: str, session_id: str, seen_mtime: int, before_ms: int) -> int | None:
        """Delete the session whole if its mtime is still before ``before_ms`` (atomically against appends);
        its mtime when deleted, None when it was kept (appended to, or gone, since it was found)."""
        raise NotImplementedError

    def _close_blocking(self) -> None:
        raise NotImplementedError
