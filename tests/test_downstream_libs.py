"""The downstream replacements for asgi-lifespan and stamina, and their harness, without the libraries' sdists.

``nox -s downstream_asgi_lifespan`` / ``downstream_stamina`` run the libraries' own suites (they download the
sdists). Here the code written in this repository is checked on its own: each replacement is put into a throwaway
package next to a vendored ``compat`` (as the sessions do, ``<package>/_vendored_compat``) and run on both
backends; the harness (``downstream/sdist_suite.py``, the stamina source cut) runs on files made here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import compat
from downstream import sdist_suite
from downstream.asgi_lifespan import run as asgi_lifespan_run
from downstream.stamina import run as stamina_run

PACKAGE = "downstream_replacements_probe"


@pytest.fixture(scope="module")
def probe_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A package holding a vendored compat, asgi-lifespan's ``_concurrency`` and stamina's ``_smart_sleep``."""
    root = tmp_path_factory.mktemp("replacements")
    package = root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    sdist_suite.vendor_compat(package)
    shutil.copytree(
        asgi_lifespan_run.REPLACEMENT, package / "_concurrency", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copyfile(stamina_run.REPLACEMENT, package / stamina_run.REPLACEMENT.name)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def concurrency(probe_package: ModuleType) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}._concurrency")


# asgi-lifespan: _concurrency on compat


async def test_asgi_lifespan_backend_is_named_after_the_running_library(concurrency: ModuleType, backend: str) -> None:
    detected = concurrency.detect_concurrency_backend()
    expected = {"asyncio": "AsyncioBackend", "trio": "TrioBackend"}[backend]
    assert type(detected).__name__ == expected
    assert isinstance(detected, concurrency.ConcurrencyBackend)


async def test_asgi_lifespan_queue_holds_its_capacity_in_order_and_event_wakes(concurrency: ModuleType) -> None:
    backend = concurrency.detect_concurrency_backend()
    queue = backend.create_queue(capacity=2)
    with compat.fail_after(5):  # two puts fit without a getter
        await queue.put({"type": "lifespan.startup"})
        await queue.put({"type": "lifespan.shutdown"})
    with compat.move_on_after(0.05) as scope:  # a third one waits for room
        await queue.put({"type": "third"})
    assert scope.cancelled_caught
    assert [await queue.get(), await queue.get()] == [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    event = backend.create_event()
    event.set()
    with compat.fail_after(5):
        await event.wait()


async def test_asgi_lifespan_run_and_fail_after_raises_timeout_error(concurrency: ModuleType) -> None:
    backend = concurrency.detect_concurrency_backend()
    finished: list[str] = []

    async def slow() -> None:
        await compat.sleep(10)

    async def quick() -> None:
        await compat.sleep(0)
        finished.append("quick")

    with pytest.raises(TimeoutError):
        await backend.run_and_fail_after(0.01, slow)
    await backend.run_and_fail_after(None, quick)
    assert finished == ["quick"]


async def test_asgi_lifespan_background_cancels_an_app_still_running_at_exit(concurrency: ModuleType) -> None:
    backend = concurrency.detect_concurrency_backend()
    started, cleaned_up = compat.Event(), []

    async def app() -> None:
        started.set()
        try:
            await compat.sleep(3600)
        finally:
            cleaned_up.append("app")

    with compat.fail_after(5):
        async with backend.run_in_background(app):
            await started.wait()
    assert cleaned_up == ["app"]


async def test_asgi_lifespan_background_cancels_an_app_that_has_not_started_yet(concurrency: ModuleType) -> None:
    backend = concurrency.detect_concurrency_backend()
    reached: list[str] = []

    async def app() -> None:
        await compat.sleep(3600)
        reached.append("after the sleep")

    with compat.fail_after(5):
        async with backend.run_in_background(app):
            pass  # no checkpoint: the app has not run yet
    assert reached == []


async def test_asgi_lifespan_background_raises_the_app_error_itself(concurrency: ModuleType) -> None:
    backend = concurrency.detect_concurrency_backend()

    async def app() -> None:
        await compat.checkpoint()
        raise ValueError("app failed")

    with compat.fail_after(5), pytest.raises(ValueError, match="app failed"):
        async with backend.run_in_background(app):
            await compat.sleep(3600)  # cancelled by the app's failure: that cancellation is not the block's error


async def test_asgi_lifespan_background_lets_the_block_error_through_unchanged(concurrency: ModuleType) -> None:
    backend = concurrency.detect_concurrency_backend()
    started = compat.Event()
    block_error = KeyError("block failed")

    async def app() -> None:
        started.set()
        await compat.sleep(3600)

    with compat.fail_after(5), pytest.raises(KeyError) as raised:
        async with backend.run_in_background(app):
            await started.wait()
            raise block_error
    assert raised.value is block_error


async def test_asgi_lifespan_block_and_app_failing_keep_each_backend_shape(
    concurrency: ModuleType, backend: str
) -> None:
    """asgi-lifespan 2.1.0's asyncio backend raised the app's error, its trio backend a group of both."""
    concurrency_backend = concurrency.detect_concurrency_backend()
    started = compat.Event()

    async def app() -> None:  # like a Starlette app whose shutdown handler fails when the lifespan is cancelled
        started.set()
        try:
            await compat.sleep(3600)
        finally:
            raise RuntimeError("shutdown handler failed")  # replaces the cancellation, on purpose

    with compat.fail_after(5), pytest.raises(BaseException) as raised:
        async with concurrency_backend.run_in_background(app):
            await started.wait()
            raise KeyError("block failed")
    if backend == "trio":
        assert isinstance(raised.value, ExceptionGroup)
        assert sorted(type(error).__name__ for error in raised.value.exceptions) == ["KeyError", "RuntimeError"]
    else:
        assert type(raised.value) is RuntimeError
        assert isinstance(raised.value.__context__, KeyError)


# stamina: _smart_sleep on compat


async def test_stamina_smart_sleep_is_the_vendored_compat_sleep(probe_package: ModuleType) -> None:
    smart_sleep = importlib.import_module(f"{PACKAGE}._smart_sleep")._smart_sleep
    vendored = importlib.import_module(f"{PACKAGE}._vendored_compat")
    assert smart_sleep is vendored.sleep
    start = vendored.current_time()
    await smart_sleep(0.01)
    assert vendored.current_time() - start >= 0.01
    with pytest.raises(ValueError, match="-1"):
        await smart_sleep(-1)


CORE_BEFORE = '''\
"""A module shaped like stamina's _core.py, written here."""
import contextlib

try:
    from sniffio import current_async_library
except ImportError:
    def current_async_library() -> str:
        return "asyncio"


async def _smart_sleep(delay: float) -> None:
    if current_async_library() == "trio":
        import trio
        await trio.sleep(delay)
    else:
        import asyncio
        await asyncio.sleep(delay)


def retrying() -> object:
    return _smart_sleep
'''


def test_stamina_cut_replaces_the_sniffio_dispatch_with_one_import(tmp_path: Path) -> None:
    package = tmp_path / "stamina"
    package.mkdir()
    (package / "_core.py").write_text(CORE_BEFORE)
    stamina_run.replace_smart_sleep(package)
    core = (package / "_core.py").read_text()
    assert "sniffio" not in core and "async def _smart_sleep" not in core
    assert "from ._smart_sleep import _smart_sleep" in core
    assert "import contextlib" in core and "def retrying()" in core  # the rest of the module is untouched
    assert (package / "_smart_sleep.py").read_text() == stamina_run.REPLACEMENT.read_text()


def test_stamina_cut_refuses_a_core_without_the_dispatch(tmp_path: Path) -> None:
    package = tmp_path / "stamina"
    package.mkdir()
    (package / "_core.py").write_text(
        "import asyncio\n\n\nasync def _smart_sleep(delay):\n    await asyncio.sleep(delay)\n"
    )
    with pytest.raises(RuntimeError, match="expected a sniffio import block and _smart_sleep, found 1"):
        stamina_run.replace_smart_sleep(package)
    assert not (package / "_smart_sleep.py").exists()


# the harness


def test_vendor_compat_refuses_a_name_the_library_uses(tmp_path: Path) -> None:
    (tmp_path / f"{sdist_suite.VENDORED_COMPAT}.py").write_text("")
    with pytest.raises(FileExistsError, match="vendor compat under another name"):
        sdist_suite.vendor_compat(tmp_path)


def test_asgi_lifespan_cut_refuses_a_concurrency_folder_of_another_shape(tmp_path: Path) -> None:
    (tmp_path / "_concurrency").mkdir()
    (tmp_path / "_concurrency" / "__init__.py").write_text("")
    with pytest.raises(RuntimeError, match="is this asgi-lifespan"):
        asgi_lifespan_run.replace_concurrency(tmp_path)
    assert (tmp_path / "_concurrency" / "__init__.py").read_text() == ""


SUITE = """\
import pytest

@pytest.mark.parametrize("lib", ["asyncio", "trio"])
@pytest.mark.parametrize("n", [1, 2])
def test_params(lib, n):
    assert n == 1

@pytest.mark.xfail(reason="known")
def test_known():
    raise AssertionError

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"""


def test_outcomes_are_read_from_a_real_report_counted_per_backend_and_compared(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
        cwd=tmp_path, capture_output=True, check=False,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # a plain suite: no plugin needed, faster
    )  # fmt: skip
    outcomes = sdist_suite.read_junit(report)
    assert outcomes == {
        "test_suite::test_params[1-asyncio]": "passed",
        "test_suite::test_params[1-trio]": "passed",
        "test_suite::test_params[2-asyncio]": "failed",
        "test_suite::test_params[2-trio]": "failed",
        "test_suite::test_known": "xfailed",
        "test_suite::test_skipped": "skipped",
    }
    assert sdist_suite.backend_of("t::test_ok[trio-1-None]") == "trio"
    assert sdist_suite.backend_of("t::test_ok[asyncio]") == "asyncio"
    assert sdist_suite.backend_of("t::test_params[1-trio]") == "sync"  # only the first parameter names it
    changed: dict[str, Any] = {**outcomes, "test_suite::test_known": "passed"}
    del changed["test_suite::test_skipped"]
    assert sdist_suite.compare(outcomes, changed) == [
        "test_suite::test_known: original xfailed, compat passed",
        "test_suite::test_skipped: original skipped, compat absent",
    ]
    assert "all      2 passed, 1 xfailed, 2 failed, 1 skipped" in sdist_suite.format_counts("x", outcomes)


def test_harness_refuses_a_work_folder_inside_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    inside = sdist_suite.REPO / "build" / "downstream"
    with pytest.raises(SystemExit):
        sdist_suite.main(stamina_run.STAMINA, ["--work", str(inside)])
    assert "is inside the repository" in capsys.readouterr().err
    assert not inside.exists()


LIBS_BENCH_SMOKE = """\
from benchmarks import downstream_libs_bench as bench
tables, results, versions, notes = bench.run(quick=True, backends=("asyncio", "trio"))
for backend, rows in results.items():
    for row in rows:
        assert row["original_us"] > 0 and row["compat_us"] > 0 and row["compat_over_original"] > 0, row
        print(backend, row["library"], row["operation"], sep="|")
print("notes", notes)
"""


def test_libraries_benchmark_runs_both_copies_on_both_backends() -> None:
    """A smoke run of the asgi-lifespan and stamina rows of ``python -m benchmarks downstream`` (downloads their
    sdists into the temp dir; stamina's rows only where tenacity is installed)."""
    pytest.importorskip("pip", reason="the benchmark downloads the sdists with pip, which this venv (uv's) lacks")
    completed = subprocess.run(
        [sys.executable, "-c", LIBS_BENCH_SMOKE], cwd=sdist_suite.REPO, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = {line for line in completed.stdout.splitlines() if line.count("|") == 2}
    for backend in ("asyncio", "trio"):
        assert f"{backend}|asgi-lifespan|startup + shutdown" in rows
        assert f"{backend}|asgi-lifespan|startup + shutdown, 20 concurrent" in rows
    has_tenacity = importlib.util.find_spec("tenacity") is not None
    assert any("|stamina|" in row for row in rows) == has_tenacity


def test_a_suite_that_crashes_is_never_read_from_a_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # a plain suite: no plugin needed, faster
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "pytest.ini").write_text("[pytest]\n")
    (tree / "conftest.py").write_text("raise ImportError('the suite cannot even load its conftest')\n")
    report = tmp_path / "compat.xml"
    report.write_text('<testsuites><testsuite><testcase classname="t" name="test_old"/></testsuite></testsuites>')
    library = sdist_suite.Library(project="x", version="1", package_dir="x", replace=lambda package: None, probe="")
    with pytest.raises(RuntimeError, match="pytest wrote no report"):
        sdist_suite.run_suite(library, tree, tree, report, ["-q"])
