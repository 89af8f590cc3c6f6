"""The name asgi-lifespan gave its asyncio backend; now :class:`~.base.ConcurrencyBackend` on ``compat``."""

from __future__ import annotations

from .base import ConcurrencyBackend


class AsyncioBackend(ConcurrencyBackend):
    """Returned by ``detect_concurrency_backend()`` under asyncio; behaves exactly like the trio one."""

    __slots__ = ()
