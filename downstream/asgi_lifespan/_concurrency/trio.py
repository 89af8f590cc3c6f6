"""The name asgi-lifespan gave its trio backend; now :class:`~.base.ConcurrencyBackend` on ``compat``."""

from __future__ import annotations

from .base import ConcurrencyBackend


class TrioBackend(ConcurrencyBackend):
    """Returned by ``detect_concurrency_backend()`` under trio; behaves exactly like the asyncio one."""

    __slots__ = ()
