"""tests/processes.py: children get default signal handling and are killed with their group when a test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import processes
import pytest

TIMEOUT_SECONDS = 60
REPORT_SIGINT = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"


@contextlib.contextmanager
def sigint_ignored_here() -> Iterator[None]:
    """This test process ignores SIGINT, as a background job of a non-interactive shell does."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_plain_child_inherits_an_ignored_sigint() -> None:
    """The hazard itself (so the next test can fail): an ignored SIGINT survives fork and exec."""
    with sigint_ignored_here():
        result = subprocess.run(
            [sys.executable, "-c", REPORT_SIGINT], capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=True
        )
    assert result.stdout.strip() == "True"


def test_a_child_started_here_gets_the_default_sigint_even_when_this_process_ignores_it() -> None:
    with sigint_ignored_here():
        result = processes.run([sys.executable, "-c", REPORT_SIGINT], text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_every_reset_signal_is_at_its_default_action_in_the_child() -> None:
    code = (
        "import signal, sys\n"
        "names = sys.argv[1].split(',')\n"
        "print(','.join(n for n in names if signal.getsignal(getattr(signal, n)) is signal.SIG_IGN))\n"
    )
    # a Python child ignores SIGPIPE and SIGXFSZ itself at startup, whatever it inherited
    ignored = [name for name in processes.RESET_SIGNALS if name not in {"SIGPIPE", "SIGXFSZ"}]
    previous = {name: signal.signal(getattr(signal, name), signal.SIG_IGN) for name in ignored}
    try:
        result = processes.run([sys.executable, "-c", code, ",".join(ignored)], text=True, timeout=TIMEOUT_SECONDS)
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_sigint_stops_a_child_started_while_sigint_is_ignored() -> None:
    sleeper = [sys.executable, "-c", "import sys, time; print('up', flush=True); time.sleep(60)"]
    with sigint_ignored_here(), processes.started(sleeper, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stdout.readline() == "up\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT_SECONDS) == -signal.SIGINT  # KeyboardInterrupt, not the sleep


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:  # a zombie awaiting its new parent's reaping
            if stat.read().rpartition(")")[2].split()[0] == "Z":
                return True
        time.sleep(0.05)
    return False


def test_a_timed_out_child_is_killed_with_its_grandchildren() -> None:
    parent = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        processes.run([sys.executable, "-c", parent], text=True, timeout=2)
    grandchild = int(str(raised.value.output).split()[0])
    assert _gone(grandchild)


def test_leaving_the_block_kills_the_child() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with processes.started(sleeper) as process:
        pid = process.pid
    assert process.returncode == -signal.SIGKILL
    assert _gone(pid)


def test_an_empty_command_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="empty command"):
        processes.with_default_signals([])
