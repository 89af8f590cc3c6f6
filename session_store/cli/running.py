"""Errors and exit statuses of the command line, and running a command on an event loop of a chosen library.

:class:`CliError` is an error the command line shows as one line on stderr, with the exit status to use.
:func:`run_on_backend` is the one place of ``session_store`` that chooses an event loop: it imports asyncio or
trio *by name* through importlib (no module of the package imports a backend) and starts the command under
it; everything the command does goes through ``compat``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

__all__ = [
    "BACKENDS",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "AsyncCommand",
    "CliError",
    "run_on_backend",
]

BACKENDS = ("asyncio", "trio")
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
AsyncCommand = Callable[[], Coroutine[Any, Any, T]]


class CliError(Exception):
    """An error to show as one line on stderr, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


_START: dict[str, Callable[[ModuleType, AsyncCommand[Any]], Any]] = {
    "asyncio": lambda library, command: library.run(command()),  # asyncio.run takes a coroutine
    "trio": lambda library, command: library.run(command),  # trio.run takes the async function itself
}


def run_on_backend(backend: str, command: AsyncCommand[T]) -> T:
    """Run ``await command()`` in a fresh event loop of ``backend`` (``"asyncio"`` or ``"trio"``)."""
    if backend not in _START:
        raise CliError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}", EXIT_USAGE)
    try:
        library = importlib.import_module(backend)
    except ImportError as exc:
        raise CliError(
            f"backend {backend!r} is not installed ({exc}); install it with "
            f"pip install 'session-store-compat[{backend}]' or pick --backend asyncio"
        ) from exc
    result: T = _START[backend](library, command)
    return result
