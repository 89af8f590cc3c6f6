"""The oldest trio compat supports: older releases fail with UnsupportedBackendError naming trio and its version.

trio before 0.23 sets only sniffio's context variable, never ``sniffio.thread_local.name``. These tests make the
running (current) trio look like such a release; ``nox -s tests_trio_oldest`` runs every compat test on the oldest
supported release itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sniffio
import trio

import compat
import compat._backend as backend_module

ROOT = Path(__file__).resolve().parent.parent
OLDEST = ".".join(map(str, backend_module.OLDEST_TRIO))


@pytest.fixture
def old_trio_version(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(trio, "__version__", "0.22.2")
    monkeypatch.setattr(backend_module, "_trio", None)  # forget the module checked earlier
    yield


def _as_old_trio(fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` inside trio.run as trio < 0.23 would: only sniffio's context variable says "trio"."""

    async def main() -> BaseException | None:
        sniffio.thread_local.name = None
        try:
            result = fn()
            if hasattr(result, "__await__"):
                await result
        except compat.UnsupportedBackendError as exc:
            return exc
        finally:
            sniffio.thread_local.name = "trio"
        return None

    token = sniffio.current_async_library_cvar.set("trio")
    try:
        return trio.run(main)  # type: ignore[no-any-return]
    finally:
        sniffio.current_async_library_cvar.reset(token)


async def _noop() -> None:
    pass


CALLS: dict[str, Callable[[], Any]] = {
    "current_backend": compat.current_backend,
    "Lock": lambda: compat.Lock().acquire(),
    "Event": lambda: compat.Event().wait(),
    "Queue": lambda: compat.Queue(1).put(1),
    "Condition": lambda: compat.Condition().acquire(),
    "spawn_detached": lambda: compat.spawn_detached(_noop()),
    "fail_after": lambda: compat.fail_after(1).__enter__(),
    "move_on_at": lambda: compat.move_on_at(0).__enter__(),
    "shielded": lambda: compat.shielded().__enter__(),
    "current_time": compat.current_time,
    "create_task_group": lambda: compat.create_task_group().__aenter__(),
    "shield": lambda: compat.shield(trio.sleep, 0),
    "run_sync": lambda: compat.run_sync(int),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_trio_without_thread_local_is_named_with_its_version(old_trio_version: None, call: Callable[[], Any]) -> None:
    error = _as_old_trio(call)
    assert error is not None, "no UnsupportedBackendError under a trio older than compat supports"
    message = str(error)
    assert "trio 0.22.2 is running" in message
    assert f"trio >= {OLDEST}" in message
    assert "none is running" not in message


def test_a_trio_older_than_supported_fails_on_the_trio_path_too(old_trio_version: None) -> None:
    async def main() -> None:
        with pytest.raises(compat.UnsupportedBackendError, match=r"trio 0\.22\.2 is running"):
            await compat.sleep(0)

    trio.run(main)


def test_a_leaked_trio_context_variable_in_a_thread_still_says_no_loop() -> None:
    errors: list[BaseException] = []

    def in_thread() -> None:
        sniffio.current_async_library_cvar.set("trio")  # as anyio's to_thread leaks it under trio
        try:
            compat.current_backend()
        except compat.UnsupportedBackendError as exc:
            errors.append(exc)

    async def main() -> None:
        await trio.to_thread.run_sync(in_thread)

    trio.run(main)
    assert len(errors) == 1
    assert "none is running" in str(errors[0])


def test_the_running_trio_is_supported() -> None:
    assert backend_module._trio_version(trio) >= backend_module.OLDEST_TRIO


def test_the_oldest_trio_session_pins_the_declared_version() -> None:
    noxfile = (ROOT / "noxfile.py").read_text("utf-8")
    pinned = re.search(r'^TRIO_OLDEST = "(\d+)\.(\d+)\.\d+"', noxfile, re.MULTILINE)
    assert pinned is not None, "noxfile.py must pin TRIO_OLDEST"
    assert (int(pinned[1]), int(pinned[2])) == backend_module.OLDEST_TRIO
    assert '"tests_trio_oldest"' in noxfile.split("nox.options.sessions", 1)[1].split("]", 1)[0]


def test_thread_local_is_what_trio_sets() -> None:
    seen: list[str | None] = []

    async def main() -> None:
        seen.append(sniffio.thread_local.name)

    trio.run(main)
    assert seen == ["trio"]  # what compat reads; the fixture above takes it away to look like trio < 0.23
