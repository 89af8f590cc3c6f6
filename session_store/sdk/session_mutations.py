"""The store-backed half of the SDK's ``session_mutations`` module: this project's :mod:`session_store.mutations`.

``_sanitize_unicode`` and ``_iso_now`` are the helpers the SDK's tests name. The SDK's disk mutations
(``rename_session`` and friends on local files) have no counterpart here.
"""

from __future__ import annotations

from session_store.mutations import (
    delete_session_via_store,
    fork_session_via_store,
    iso_now,
    rename_session_via_store,
    sanitize_unicode,
    tag_session_via_store,
)
from session_store.types import ForkSessionResult

__all__ = [
    "ForkSessionResult",
    "_iso_now",
    "_sanitize_unicode",
    "delete_session_via_store",
    "fork_session_via_store",
    "rename_session_via_store",
    "tag_session_via_store",
]

_iso_now = iso_now
_sanitize_unicode = sanitize_unicode
