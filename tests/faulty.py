"""``FaultyStore``: a real store (in memory, SQLite, ...) that misbehaves on purpose, for the faulty-store suite.

Every fault is chosen per method and is deterministic: ``fail_fraction`` of the calls (drawn from a
``random.Random(seed)``) raise :class:`InjectedFailure`; the first ``hang_calls[method]`` calls hang forever
before reaching the store (a caller's timeout has to cut them); ``raises[method]`` is raised by every call (a
``BaseException`` subclass such as ``KeyboardInterrupt`` too), before the store is reached, or after it when
``raise_after_landing`` is set; ``returns[method]`` replaces what the store returned (a value of the wrong type). The first ``skip_calls[method]``
calls of a method pass through untouched.
Only the methods the wrapped store implements exist on the wrapper, so capability probing sees the same store.

``calls`` records ``(method, outcome)`` per call: ``"ok"``, ``"failed"``, ``"hung"``, ``"raised"``,
``"replaced"`` or ``"skipped"``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import compat
from session_store.types import SessionStore, store_implements

STORE_METHODS = ("append", "load", "list_sessions", "list_session_summaries", "delete", "list_subkeys")


class InjectedFailure(ConnectionError):
    """The error a :class:`FaultyStore` raises for a call drawn to fail (an ``Exception``: retryable)."""


class FaultyStore:
    """Wraps ``inner`` and injects the faults described in the module docstring."""

    def __init__(
        self,
        inner: SessionStore,
        *,
        seed: int = 0,
        fail_fraction: float = 0.0,
        fail_methods: tuple[str, ...] = STORE_METHODS,
        hang_calls: Mapping[str, int] | None = None,
        raises: Mapping[str, Callable[[], BaseException]] | None = None,
        raise_after_landing: bool = False,
        returns: Mapping[str, object] | None = None,
        skip_calls: Mapping[str, int] | None = None,
    ) -> None:
        if not 0.0 <= fail_fraction <= 1.0:
            raise ValueError(f"fail_fraction must be within [0, 1], got {fail_fraction!r}")
        self.inner = inner
        self.fail_fraction = fail_fraction
        self.fail_methods = fail_methods
        self.hang_calls = dict(hang_calls or {})
        self.raises = dict(raises or {})
        self.raise_after_landing = raise_after_landing
        self.returns = dict(returns or {})
        self.skip_calls = dict(skip_calls or {})
        self.calls: list[tuple[str, str]] = []
        self._random = random.Random(seed)
        for name in STORE_METHODS:
            if store_implements(inner, name):
                setattr(self, name, self._faulty(name))

    def outcomes(self, method: str) -> list[str]:
        """The outcome of each call of ``method``, in call order."""
        return [outcome for name, outcome in self.calls if name == method]

    def _faulty(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def call(*args: Any) -> Any:
            if self.skip_calls.get(name, 0) > 0:
                self.skip_calls[name] -= 1
                self.calls.append((name, "skipped"))
                return await method(*args)
            if self.hang_calls.get(name, 0) > 0:
                self.hang_calls[name] -= 1
                self.calls.append((name, "hung"))
                await compat.sleep(math.inf)
            if name in self.fail_methods and self.fail_fraction and self._random.random() < self.fail_fraction:
                self.calls.append((name, "failed"))
                raise InjectedFailure(f"injected failure of {name}() (call {len(self.calls)})")
            make_error = self.raises.get(name)
            if make_error is not None and not self.raise_after_landing:
                self.calls.append((name, "raised"))
                raise make_error()
            result = await method(*args)
            if make_error is not None:
                self.calls.append((name, "raised"))
                raise make_error()
            if name in self.returns:
                self.calls.append((name, "replaced"))
                return self.returns[name]
            self.calls.append((name, "ok"))
            return result

        call.__name__ = name
        return call
