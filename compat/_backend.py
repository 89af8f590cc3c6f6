"""Which async library is running: the one question every other part of ``compat`` asks.

The answer comes from what the libraries themselves publish, cheapest first:

1. ``sniffio.thread_local.name``: ``trio.run`` sets it to ``"trio"`` for the whole run (one attribute read);
2. ``sniffio.current_async_library_cvar``: ``anyio.run`` sets it for either backend;
3. a running asyncio loop in this thread (``asyncio._get_running_loop()``, which unlike ``sniffio`` also answers
   inside plain loop callbacks).

Anything else (no loop at all, a worker thread, curio, ...) is an :class:`UnsupportedBackendError`, and so is a
trio older than :data:`OLDEST_TRIO` (releases before 0.23 publish only the context variable, so compat cannot see
them cheaply; the error names the version found).
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from types import ModuleType
from typing import Literal

import sniffio

Backend = Literal["asyncio", "trio"]

_thread_local = sniffio.thread_local
_library_cvar = sniffio.current_async_library_cvar
_get_running_loop = asyncio._get_running_loop  # public-in-all-but-name; returns None instead of raising
_trio: ModuleType | None = None

OLDEST_TRIO = (0, 23)
"""The oldest trio release compat supports (``nox -s tests_trio_oldest`` runs compat's tests on it)."""


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


def _trio_version(trio: ModuleType) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", trio.__version__)[:2])


def _old_trio(trio: ModuleType) -> UnsupportedBackendError:
    oldest = ".".join(map(str, OLDEST_TRIO))
    return UnsupportedBackendError(
        f"compat needs trio >= {oldest}, but trio {trio.__version__} is running "
        f"(trio before {oldest} does not set sniffio.thread_local, which compat reads to detect it); "
        f"upgrade trio: pip install 'trio>={oldest}'"
    )


def _trio_running_without_thread_local() -> UnsupportedBackendError | None:
    """The error for an old trio running in this thread (it set only the context variable), else None."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:  # no trio run in this thread: the context variable leaked here (anyio's to_thread)
        return None
    return _old_trio(trio)


def no_loop_error() -> UnsupportedBackendError:
    """What to raise where the asyncio path found no running loop: the real cause, as current_backend() says."""
    try:
        current_backend()
    except UnsupportedBackendError as exc:
        return exc
    return _unsupported(None)  # pragma: no cover - a loop is running after all


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
            # thread started with copy_context()); trio.run itself sets thread_local.name since trio 0.23.
            raise (name == "trio" and _trio_running_without_thread_local()) or _unsupported(None)
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
        module = sys.modules.get("trio") or importlib.import_module("trio")  # imported while trio.run is active
        if _trio_version(module) < OLDEST_TRIO:
            raise _old_trio(module)
        _trio = module
    return _trio


def anyio_if_imported() -> ModuleType | None:
    """anyio, if the application already imported it; ``compat`` itself never imports anyio."""
    return sys.modules.get("anyio")
