"""Child processes for tests: default signal handling whatever shell started the run, and none left behind.

A non-interactive shell starts a background job (``(bash scripts/test.sh &)``) with SIGINT and SIGQUIT
ignored, and an ignored signal stays ignored across fork and exec. A child a test starts with plain
``subprocess`` then inherits an ignored SIGINT, and a test that sends it Ctrl-C waits for its timeout while the
child keeps running. Every child started here instead:

- gets the default action for the signals a test may send or a shell may have ignored (:data:`RESET_SIGNALS`):
  the command is run through a tiny exec wrapper (``python -I -S -c ...``) that resets them and then
  ``execvp``\\ s the command, so the child keeps its pid and nothing runs between fork and exec in the test
  process (no ``preexec_fn``, which is unsafe with threads);
- runs in its own process group, which is killed (SIGKILL) when the test is done with it, on every path: after a
  timeout, an assertion error or a normal return (:func:`started`, :func:`run`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["RESET_SIGNALS", "kill_group", "run", "started", "with_default_signals"]

RESET_SIGNALS = ("SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGXFSZ", "SIGTSTP")
"""Signals set to ``SIG_DFL`` in every child (SIGPIPE and SIGXFSZ as ``subprocess``'s ``restore_signals`` does)."""

_RESET_THEN_EXEC = (
    "import os, signal, sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    signal.signal(getattr(signal, name), signal.SIG_DFL)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def with_default_signals(command: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``command`` wrapped so it starts with :data:`RESET_SIGNALS` at their default action."""
    if not command:
        raise ValueError("an empty command cannot be started; pass the program and its arguments")
    return [sys.executable, "-I", "-S", "-c", _RESET_THEN_EXEC, ",".join(RESET_SIGNALS), *map(os.fspath, command)]


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL ``process`` and everything in its process group, then reap it (a no-op once all are gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()  # in case it left its group; a no-op on a process already reaped
    process.wait()


@contextlib.contextmanager
def started(command: Sequence[str | os.PathLike[str]], **popen_options: Any) -> Iterator[subprocess.Popen[Any]]:
    """Start ``command`` (default signals, own process group); kill its group when the block ends, however."""
    process: subprocess.Popen[Any] = subprocess.Popen(with_default_signals(command), process_group=0, **popen_options)
    with process:  # then closes its pipes
        try:
            yield process
        finally:
            kill_group(process)


def run(
    command: Sequence[str | os.PathLike[str]], *, timeout: float, **popen_options: Any
) -> subprocess.CompletedProcess[Any]:
    """Like ``subprocess.run(command, timeout=timeout, ...)``, output captured unless redirected elsewhere.

    On a timeout the whole process group is killed before :class:`subprocess.TimeoutExpired` (carrying what
    was read so far) is raised, so no grandchild outlives the test either.
    """
    popen_options.setdefault("stdout", subprocess.PIPE)
    popen_options.setdefault("stderr", subprocess.PIPE)
    with started(command, **popen_options) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            out, err = process.communicate()
            raise subprocess.TimeoutExpired(process.args, timeout, output=out, stderr=err) from None
        return subprocess.CompletedProcess(list(map(os.fspath, command)), process.returncode, out, err)
