"""``compact``: merge the part objects of stored sessions (object stores such as S3 keep one part per append)."""

from __future__ import annotations

from typing import Any

from ..types import SessionStore
from .output import Report, redact_url
from .running import CliError
from .scope import Scope, require_session

__all__ = ["compact_command"]


async def compact_command(store: SessionStore, scope: Scope, session_id: str | None) -> Report:
    """Compact one session, or every session of the project; report how many parts were merged away."""
    compact: Any = getattr(store, "compact", None)
    if not callable(compact):
        raise CliError(
            f"the store at {redact_url(scope.store_url)} keeps no parts to compact: only object stores "
            "(s3://) do; nothing to do"
        )
    if session_id is not None:
        await require_session(store, session_id, scope)
        session_ids = [session_id]
    else:
        session_ids = [row["session_id"] for row in await store.list_sessions(scope.project_key)]
    removed = 0
    for each in session_ids:
        removed += await compact(scope.project_key, each)
    what = f"session {session_id}" if session_id is not None else f"{len(session_ids)} session(s) of {scope.describe()}"
    return Report(
        {"sessions": session_ids, "parts_removed": removed},
        f"compacted {what}: {removed} part object(s) merged or removed",
    )
