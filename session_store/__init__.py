"""session_store: the session-transcript store subsystem of the Claude Agent SDK, on asyncio and trio alike.

Every concurrency primitive comes from :mod:`compat`; no module here imports asyncio, trio or anyio. The parts, by
the reference's section titles: ``types`` (protocol and records), ``keys`` (project keys), ``summary`` (summary
folding), ``memory`` (``InMemorySessionStore``), ``batcher`` (the transcript mirror write path), ``resume``
(materializing a stored session for resume), ``reading`` / ``transcript`` (store-backed listing and reading),
``mutations`` (rename, tag, delete, fork), ``importing`` (local transcripts into a store), ``conformance`` (the
adapter test suite), ``adapters`` (SQLite, PostgreSQL, Redis and ``open_store``), ``watching`` (following a
projects folder into a mirror batcher) and the command line: the ``cli`` package.
"""

from .adapters import open_store
from .batcher import (
    MAX_PENDING_BYTES,
    MAX_PENDING_ENTRIES,
    MIRROR_APPEND_BACKOFF_S,
    MIRROR_APPEND_MAX_ATTEMPTS,
    SEND_TIMEOUT_SECONDS,
    MirrorErrorCallback,
    TranscriptMirrorBatcher,
    build_mirror_batcher,
)
from .conformance import ConformanceError, run_session_store_conformance
from .importing import ImportResult, SkippedLine, import_session_to_store
from .keys import file_path_to_session_key, project_key_for_directory
from .memory import InMemorySessionStore
from .mutations import (
    delete_session_via_store,
    fork_session_via_store,
    rename_session_via_store,
    tag_session_via_store,
)
from .reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from .resume import MaterializedResume, materialize_resume_session
from .retention import PrunedSession, prune_sessions
from .summary import fold_session_summary, summary_entry_to_session_info
from .types import (
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
    store_implements,
)

__all__ = [
    "MAX_PENDING_BYTES",
    "MAX_PENDING_ENTRIES",
    "MIRROR_APPEND_BACKOFF_S",
    "MIRROR_APPEND_MAX_ATTEMPTS",
    "SEND_TIMEOUT_SECONDS",
    "ConformanceError",
    "ForkSessionResult",
    "ImportResult",
    "InMemorySessionStore",
    "MaterializedResume",
    "MirrorError",
    "MirrorErrorCallback",
    "PrunedSession",
    "SessionInfo",
    "SessionKey",
    "SessionListSubkeysKey",
    "SessionMessage",
    "SessionStore",
    "SessionStoreEntry",
    "SessionStoreFlushMode",
    "SessionStoreListEntry",
    "SessionSummaryEntry",
    "SkippedLine",
    "TranscriptMirrorBatcher",
    "build_mirror_batcher",
    "delete_session_via_store",
    "file_path_to_session_key",
    "fold_session_summary",
    "fork_session_via_store",
    "get_session_info_from_store",
    "get_session_messages_from_store",
    "get_subagent_messages_from_store",
    "import_session_to_store",
    "list_sessions_from_store",
    "list_subagents_from_store",
    "materialize_resume_session",
    "open_store",
    "project_key_for_directory",
    "prune_sessions",
    "rename_session_via_store",
    "run_session_store_conformance",
    "store_implements",
    "summary_entry_to_session_info",
    "tag_session_via_store",
]
