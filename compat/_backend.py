"""Which async library is running: the one question every other part of ``compat`` asks.

The answer comes from what the libraries themselves publish, cheapest first:

1. ``sniffio.thread_local.name``: ``trio.run`` sets it to ``"trio"`` for the whole run (one attribute read);
2. ``sniffio.current_async_library_cvar``: ``anyio.run`` sets it for either backend;
3. a running asyncio loop in this thread (``asyncio._get_running_loop()``, which unlike ``sniffio`` also answers
   inside plain loop callbacks).

Anything else (no loop at all, a worker thread, curio, ...) is an :class:`UnsupportedBackendError`.
"""

from __future__ import annotations

import asyncio
import sys
from types import ModuleType
from typing import Literal

import sniffio

Backend = Literal["asyncio", "trio"]

_thread_local = sniffio.thread_local
_library_cvar = sniffio.current_async_library_cvar
_get_running_loop = asyncio._get_running_loop  # public-in-all-but-name; returns None instead of raising
_trio: ModuleType | None = None


class UnsupportedBackendError(RuntimeError):
    """Raised when ``compat`` is used where neither asyncio nor trio is running in the current thread."""


def _unsupported(found: str | None) -> UnsupportedBackendError:
    if found is None:
        return UnsupportedBackendError(
            "compat needs a running asyncio or trio event loop in this thread, but none is running; "
            "call it from async code run by asyncio.run(), trio.run() or anyio.run()"
        )
    return UnsupportedBackendError(
        f"compat supports asyncio and trio, but the running async library is {found!r}; "
        "run this code under asyncio or trio instead"
    )


def current_backend() -> Backend:
    """Return ``"asyncio"`` or ``"trio"``: the library running the current task.

    Raises :class:`UnsupportedBackendError` (naming what was found) outside any event loop, in a worker thread,
    or under another library.
    """
    name = _thread_local.name
    if name is None:
        name = _library_cvar.get()
        if name is None:
            if _get_running_loop() is None:
                raise _unsupported(None)
            return "asyncio"
        if name == "trio" or (name == "asyncio" and _get_running_loop() is None):
            # anyio's context variable leaked into a thread that runs no loop (asyncio.to_thread under anyio, a
            # thread started with copy_context()); trio.run itself always sets thread_local.name.
            raise _unsupported(None)
    if name == "trio":
        return "trio"
    if name == "asyncio":
        return "asyncio"
    raise _unsupported(name)


def is_trio() -> bool:
    """Fast backend test for hot paths: True under trio, False otherwise (asyncio is then assumed).

    Costs one attribute read; ``trio.run`` sets ``sniffio.thread_local.name`` for its whole run (also under
    ``anyio.run``). Misreports only unsupported libraries, whose own error then surfaces when the asyncio call
    runs without a loop.
    """
    return _thread_local.name == "trio"


def trio_module() -> ModuleType:
    """The ``trio`` module, imported only once trio is known to be running."""
    global _trio
    if _trio is None:
        _trio = sys.modules.get("trio")
        if _trio is None:  # pragma: no cover - trio is always imported while trio.run is active
            import trio

            _trio = trio
    return _trio


def anyio_if_imported() -> ModuleType | None:
    """anyio, if the application already imported it; ``compat`` itself never imports anyio."""
    return sys.modules.get("anyio")
