"""The SDK's ``transcript_mirror_batcher`` module: this project's batcher (:mod:`session_store.batcher`).

Same dataclass fields and constants. SPEC §4 decisions 4 and 5 apply: a timed-out append is reported with a
message (never ``""``), and a frame outside ``projects_dir`` reaches ``on_error(None, message)``.
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

__all__ = [
    "MAX_PENDING_BYTES",
    "MAX_PENDING_ENTRIES",
    "MIRROR_APPEND_BACKOFF_S",
    "MIRROR_APPEND_MAX_ATTEMPTS",
    "SEND_TIMEOUT_SECONDS",
    "TranscriptMirrorBatcher",
]
