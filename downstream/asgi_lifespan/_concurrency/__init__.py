"""asgi-lifespan's ``_concurrency`` package, on ``compat``: see :mod:`.base` for what each piece is now.

``detect_concurrency_backend()`` asks ``compat`` (no sniffio import of our own) and returns the backend class
named after the running library; both classes are the same :class:`~.base.ConcurrencyBackend`. They exist because
asgi-lifespan's test helpers (``tests/concurrency.py``) pick their asyncio or trio sleep by dispatching on them.
"""

from __future__ import annotations

from .._vendored_compat import current_backend
from .asyncio import AsyncioBackend
from .base import ConcurrencyBackend
from .trio import TrioBackend

_BACKEND_CLASSES: dict[str, type[ConcurrencyBackend]] = {"asyncio": AsyncioBackend, "trio": TrioBackend}


def detect_concurrency_backend() -> ConcurrencyBackend:
    """The backend for the running library; ``compat.UnsupportedBackendError`` (a ``RuntimeError``) otherwise."""
    return _BACKEND_CLASSES[current_backend()]()


__all__ = ["ConcurrencyBackend", "detect_concurrency_backend"]
