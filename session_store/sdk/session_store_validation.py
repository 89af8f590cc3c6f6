"""The SDK's ``session_store_validation`` module: capability probing and the options check before spawn.

``_store_implements`` is :func:`session_store.types.store_implements` (reference §2.1).
:func:`validate_session_store_options` is reference §2.2, reading the options by attribute.
"""

from __future__ import annotations

from session_store.types import store_implements

__all__ = ["_store_implements", "validate_session_store_options"]

_store_implements = store_implements


def validate_session_store_options(options: object) -> None:
    """Reject option combinations a session store cannot serve (reference §2.2); no store: always fine.

    ``options`` is read by attribute (``session_store``, ``resume``, ``continue_conversation``,
    ``enable_file_checkpointing``), so the SDK's ``ClaudeAgentOptions`` or any object with those names works.
    Raises ``ValueError`` for ``continue_conversation`` (without ``resume``) with a store that does not
    implement ``list_sessions()``, and for ``enable_file_checkpointing`` with a store.
    """
    store = getattr(options, "session_store", None)
    if store is None:
        return
    resume = getattr(options, "resume", None)
    if (
        getattr(options, "continue_conversation", False)
        and resume is None
        and not store_implements(store, "list_sessions")
    ):
        raise ValueError(
            "continue_conversation with session_store requires the store to implement list_sessions(); "
            "implement it, or pass resume=<session id> instead"
        )
    if getattr(options, "enable_file_checkpointing", False):
        raise ValueError(
            "session_store cannot be combined with enable_file_checkpointing (checkpoints are local-disk only "
            "and would diverge from the mirrored transcript); set enable_file_checkpointing=False"
        )
