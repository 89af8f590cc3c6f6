"""The SDK's ``session_import`` module: :func:`session_store.importing.import_session_to_store` in the SDK's order.

Same positional and keyword arguments as the SDK's, and the SDK's order and batching (main transcript first,
every transcript in batches of ``batch_size``), each batch written through
:func:`session_store.exactly_once.append_once`, so re-importing stores nothing twice. It returns an
:class:`~session_store.importing.ImportResult` (the SDK returns None) and SPEC §4 decision 7 applies (a corrupt
line is a ``ValueError`` naming file and line).
"""

from __future__ import annotations

import os

from session_store.batcher import MAX_PENDING_ENTRIES
from session_store.importing import ImportResult
from session_store.importing import import_session_to_store as _import_session_to_store
from session_store.types import SessionStore

__all__ = ["import_session_to_store"]


async def import_session_to_store(
    session_id: str,
    store: SessionStore,
    *,
    directory: str | os.PathLike[str] | None = None,
    include_subagents: bool = True,
    batch_size: int = MAX_PENDING_ENTRIES,
    skip_invalid_lines: bool = False,
    projects_dir: str | os.PathLike[str] | None = None,
) -> ImportResult:
    """:func:`session_store.importing.import_session_to_store` with ``sdk_order=True``."""
    return await _import_session_to_store(
        session_id,
        store,
        directory=directory,
        include_subagents=include_subagents,
        batch_size=batch_size,
        skip_invalid_lines=skip_invalid_lines,
        projects_dir=projects_dir,
        sdk_order=True,
    )
