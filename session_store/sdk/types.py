"""The SDK's session-store type names (``claude_agent_sdk.types``), as this project's types.

Everything here is an alias of a :mod:`session_store.types` class, except :class:`MirrorErrorMessage`, which
adds the SDK's system-message fields to this project's :class:`~session_store.types.MirrorError`. The SDK's
``SDKSessionInfo`` is :class:`~session_store.types.SessionInfo` (same fields, same order); SPEC §4 decision 6
still holds: store-backed rows have ``file_size = None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from session_store.types import (
    ForkSessionResult,
    MirrorError,
    SessionInfo,
    SessionKey,
    SessionListSubkeysKey,
    SessionMessage,
    SessionStore,
    SessionStoreEntry,
    SessionStoreFlushMode,
    SessionStoreListEntry,
    SessionSummaryEntry,
)

__all__ = [
    "MIRROR_ERROR_SUBTYPE",
    "ForkSessionResult",
    "MirrorErrorMessage",
    "SDKSessionInfo",
    "SessionKey",
    "SessionListSubkeysKey",
    "SessionMessage",
    "SessionStore",
    "SessionStoreEntry",
    "SessionStoreFlushMode",
    "SessionStoreListEntry",
    "SessionSummaryEntry",
]

SDKSessionInfo = SessionInfo
"""The SDK's name for one listed session."""

MIRROR_ERROR_SUBTYPE = "mirror_error"
"""The ``subtype`` of the system message that reports a dropped mirror batch."""


@dataclass(init=False)
class MirrorErrorMessage(MirrorError):
    """A mirror batch given up, as the SDK's system message: ``subtype``, ``data``, ``key`` and ``error``.

    Constructed with the SDK's argument order, ``MirrorErrorMessage(subtype, data, key=None, error="")``; it
    is a :class:`~session_store.types.MirrorError`, so code written against this project reads ``key`` and
    ``error`` the same way. :meth:`from_mirror_error` turns one ``on_error(key, message)`` report into it.
    """

    subtype: str
    data: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        subtype: str = MIRROR_ERROR_SUBTYPE,
        data: dict[str, Any] | None = None,
        key: SessionKey | None = None,
        error: str = "",
    ) -> None:
        super().__init__(key=key, error=error)
        self.subtype = subtype
        self.data = {} if data is None else data

    @classmethod
    def from_mirror_error(cls, report: MirrorError) -> MirrorErrorMessage:
        """The system message for one report; ``data`` carries ``key``, ``error`` and ``session_id``."""
        session_id = report.key["session_id"] if report.key is not None else ""
        data: dict[str, Any] = {"key": report.key, "error": report.error, "session_id": session_id}
        return cls(MIRROR_ERROR_SUBTYPE, data, report.key, report.error)
