"""The store-backed half of the SDK's ``sessions`` module, and the shared helpers its tests name.

The readers are this project's (:mod:`session_store.reading`): SPEC §4 decision 6 (non-UUID ids ignored,
``file_size = None``, one fold for both listing paths) and decision 9 (parallel tool results recovered on
main and subagent chains) apply. The private names are aliases of :mod:`session_store.keys` and
:mod:`session_store.transcript` functions; ``_sanitize_path`` and ``_simple_hash`` iterate UTF-16 code units
like the Claude CLI (decision 1), where the SDK iterates code points. The SDK's disk readers (``list_sessions``,
``get_session_messages`` on ``~/.claude/projects``, ...) have no counterpart here.
"""

from __future__ import annotations

from session_store.keys import (
    MAX_SANITIZED_LENGTH,
    canonicalize_path,
    project_key_for_directory,
    sanitize_path,
    simple_hash,
    validate_uuid,
)
from session_store.reading import (
    STORE_LIST_LOAD_CONCURRENCY,
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from session_store.transcript import (
    build_conversation_chain,
    build_subagent_chain,
    entries_to_jsonl,
    extract_first_prompt_from_head,
    extract_json_string_field,
    extract_last_json_string_field,
    filter_transcript_entries,
    jsonl_to_lite,
    mtime_from_jsonl_tail,
    parse_session_info_from_lite,
)

from .session_resume import _get_projects_dir

__all__ = [
    "MAX_SANITIZED_LENGTH",
    "_STORE_LIST_LOAD_CONCURRENCY",
    "_build_conversation_chain",
    "_build_subagent_chain",
    "_canonicalize_path",
    "_entries_to_jsonl",
    "_extract_first_prompt_from_head",
    "_extract_json_string_field",
    "_extract_last_json_string_field",
    "_filter_transcript_entries",
    "_get_projects_dir",
    "_jsonl_to_lite",
    "_mtime_from_jsonl_tail",
    "_parse_session_info_from_lite",
    "_sanitize_path",
    "_simple_hash",
    "_validate_uuid",
    "get_session_info_from_store",
    "get_session_messages_from_store",
    "get_subagent_messages_from_store",
    "list_sessions_from_store",
    "list_subagents_from_store",
    "project_key_for_directory",
]

_STORE_LIST_LOAD_CONCURRENCY = STORE_LIST_LOAD_CONCURRENCY
_build_conversation_chain = build_conversation_chain
_build_subagent_chain = build_subagent_chain
_canonicalize_path = canonicalize_path
_entries_to_jsonl = entries_to_jsonl
_extract_first_prompt_from_head = extract_first_prompt_from_head
_extract_json_string_field = extract_json_string_field
_extract_last_json_string_field = extract_last_json_string_field
_filter_transcript_entries = filter_transcript_entries
_jsonl_to_lite = jsonl_to_lite
_mtime_from_jsonl_tail = mtime_from_jsonl_tail
_parse_session_info_from_lite = parse_session_info_from_lite
_sanitize_path = sanitize_path
_simple_hash = simple_hash
_validate_uuid = validate_uuid
