"""The SDK's ``session_store`` module: the in-memory store and the key helpers, as this project's.

``InMemorySessionStore`` follows SPEC §4 decisions 2 and 8 (it rejects ``subpath == ""``, an empty append
creates nothing, and it deduplicates by ``uuid``); ``project_key_for_directory`` follows decision 1.
"""

from __future__ import annotations

from session_store.keys import file_path_to_session_key, project_key_for_directory
from session_store.memory import InMemorySessionStore

__all__ = ["InMemorySessionStore", "file_path_to_session_key", "project_key_for_directory"]
