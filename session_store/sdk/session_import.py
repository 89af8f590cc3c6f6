"""The SDK's ``session_import`` module: :func:`session_store.importing.import_session_to_store`.

Same positional and keyword arguments as the SDK's; it returns an :class:`~session_store.importing.ImportResult`
(the SDK returns None) and SPEC §4 decision 7 applies (a corrupt line is a ``ValueError`` naming file and line).
"""

from __future__ import annotations

from session_store.importing import import_session_to_store

__all__ = ["import_session_to_store"]
