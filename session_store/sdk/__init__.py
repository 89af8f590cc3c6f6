"""``session_store.sdk``: the Claude Agent SDK's session-store module surface, on this project's store.

For SDK code (or code written against the SDK's internals) that wants this port in place of
``claude_agent_sdk._internal``'s session-store modules. It adapts and never changes the strict API of
:mod:`session_store`:

- the SDK's call shapes: ``materialize_resume_session(options, ...)`` and ``build_mirror_batcher(store,
  materialized, env, on_error, flush_mode)``, with options read by attribute (``ClaudeAgentOptions`` or any
  object with its option names; the SDK is not imported), and ``apply_materialized_options``;
- the SDK's credential and settings seeding as the default ``seed_config_dir`` of that layer
  (:func:`seed_claude_config_dir`, files 0o600 in a 0o700 dir);
- ``validate_session_store_options``, ``MirrorErrorMessage``, and the SDK names of this project's classes and
  functions: ``SDKSessionInfo`` (:class:`session_store.SessionInfo`), ``summary_entry_to_sdk_info``
  (:func:`session_store.summary_entry_to_session_info`), ``_store_implements``, ``_with_timeout``,
  ``_rmtree_with_retry``, ...

One submodule per SDK module it stands in for, under the SDK's module name: ``types``,
``session_store``, ``session_store_validation``, ``session_summary``, ``session_resume``,
``transcript_mirror_batcher``, ``sessions``, ``session_mutations``, ``session_import``, ``_task_compat`` and
``testing`` (the conformance harness with the SDK's contracts, ``profile="sdk"``). Each holds what the SDK's
module of that name offers for the session store, so a maintainer can map module for module;
``downstream/sdk/plugin.py`` does exactly that to run the SDK's own tests on this package.

:func:`install` (``installer`` module) points an installed SDK's own session-store path at these modules in
the running process (``uninstall()``, ``installed()``; ``SESSION_STORE_SDK_INSTALL=1`` does it without code).

The SPEC §4 decisions stay in force (they are the reasons this project differs from the SDK): UTF-16 project
keys (1), ``subpath == ""`` rejected and empty appends creating nothing (2), ``load_timeout_ms <= 0`` timing
out at once (3), timeout messages never empty (4), unmapped mirror frames reported (5), listing rules (6),
import errors (7), uuid dedupe (8), parallel tool results recovered on every chain (9).
"""

from __future__ import annotations

from session_store.batcher import (
    MAX_PENDING_BYTES,
    MAX_PENDING_ENTRIES,
    MIRROR_APPEND_BACKOFF_S,
    MIRROR_APPEND_MAX_ATTEMPTS,
    SEND_TIMEOUT_SECONDS,
    TranscriptMirrorBatcher,
)
from session_store.importing import import_session_to_store
from session_store.keys import file_path_to_session_key, project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.mutations import (
    delete_session_via_store,
    fork_session_via_store,
    rename_session_via_store,
    tag_session_via_store,
)
from session_store.reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from session_store.resume import MaterializedResume
from session_store.summary import fold_session_summary

from ._task_compat import TaskHandle, spawn_detached
from .installer import TESTED_SDK_VERSIONS, UnsupportedSDKVersionError, install, installed, uninstall
from .session_resume import (
    CLAUDE_CONFIG_SEED,
    _get_projects_dir,
    _rmtree_with_retry,
    _with_timeout,
    _write_jsonl,
    apply_materialized_options,
    build_mirror_batcher,
    materialize_resume_session,
    seed_claude_config_dir,
)
from .session_store_validation import _store_implements, validate_session_store_options
from .session_summary import summary_entry_to_sdk_info
from .testing import run_session_store_conformance
from .types import (
    ForkSessionResult,
    MirrorErrorMessage,
    SDKSessionInfo,
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
    "CLAUDE_CONFIG_SEED",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_ENTRIES",
    "MIRROR_APPEND_BACKOFF_S",
    "MIRROR_APPEND_MAX_ATTEMPTS",
    "SEND_TIMEOUT_SECONDS",
    "TESTED_SDK_VERSIONS",
    "ForkSessionResult",
    "InMemorySessionStore",
    "MaterializedResume",
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
    "TaskHandle",
    "TranscriptMirrorBatcher",
    "UnsupportedSDKVersionError",
    "_get_projects_dir",
    "_rmtree_with_retry",
    "_store_implements",
    "_with_timeout",
    "_write_jsonl",
    "apply_materialized_options",
    "build_mirror_batcher",
    "delete_session_via_store",
    "file_path_to_session_key",
    "fold_session_summary",
    "fork_session_via_store",
    "get_session_info_from_store",
    "get_session_messages_from_store",
    "get_subagent_messages_from_store",
    "import_session_to_store",
    "install",
    "installed",
    "list_sessions_from_store",
    "list_subagents_from_store",
    "materialize_resume_session",
    "project_key_for_directory",
    "rename_session_via_store",
    "run_session_store_conformance",
    "seed_claude_config_dir",
    "spawn_detached",
    "summary_entry_to_sdk_info",
    "tag_session_via_store",
    "uninstall",
    "validate_session_store_options",
]
