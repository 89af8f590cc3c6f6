"""Test harness: every ``async def`` test runs once under asyncio and once under trio.

pytest-asyncio (strict mode) runs the ``[asyncio]`` copy, pytest-trio the ``[trio]`` copy; ``-k trio`` or
``-k asyncio`` selects one backend. A test that needs to know which one it is on asks for the ``backend``
fixture. Sync tests are left alone (``backend`` is ``None`` for them).
"""

from __future__ import annotations

import inspect
import os

import pytest
from soak import SOAK, SOAK_ENV

pytest_plugins = [
    "servers",  # throwaway PostgreSQL / Redis servers (tests/servers.py)
    "temp_dirs",  # the temp_root fixture: tempfile pointed at a per-test folder (tests/temp_dirs.py)
]

BACKENDS = ("asyncio", "trio")
_MARKS = {"asyncio": pytest.mark.asyncio, "trio": pytest.mark.trio}


def _selected_backends() -> tuple[str, ...]:
    chosen = os.environ.get("COMPAT_TEST_BACKENDS")
    if not chosen:
        return BACKENDS
    names = tuple(name.strip() for name in chosen.split(",") if name.strip())
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise pytest.UsageError(f"COMPAT_TEST_BACKENDS has unknown backend(s) {unknown}; use {BACKENDS}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not inspect.iscoroutinefunction(metafunc.function):
        return
    if metafunc.definition.get_closest_marker("asyncio") or metafunc.definition.get_closest_marker("trio"):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: don't mark async tests by hand; the harness runs them on both backends"
        )
    metafunc.parametrize(
        "backend",
        [pytest.param(name, marks=_MARKS[name], id=name) for name in _selected_backends()],
    )


DOOR_MODULES = frozenset(
    {
        "test_benchmarks",
        "test_cli",
        "test_cli_resume_into",
        "test_cli_secrets",
        "test_cli_servers",
        "test_cli_terminal",
        "test_end_to_end",
        "test_exactly_once_import",
        "test_load",
        "test_mirror_trust",
        "test_read_only_stores",
        "test_real_corpus",
        "test_s3",
        "test_s3_adversarial",
        "test_sdk_e2e",
        "test_sqlite_readonly",
    }
)
"""The door and load suites: the CLI driven as a subprocess against real files and servers (secrets in every
URL form, terminal escapes, read-only stores, resume --into, mirror restarts and kills), the load suite, the S3
server, the SDK end to end. Marked ``doors``: noxfile.py runs them on the oldest CPython (3.11) on both backends;
the other CPythons run everything else (``-m "not doors"``), to keep the test command within its time budget."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    doors = pytest.mark.doors
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in DOOR_MODULES:
            item.add_marker(doors)
    if SOAK:
        return
    skip = pytest.mark.skip(reason=f"long-running variant: run it with `nox -s soak` ({SOAK_ENV}=1)")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> str | None:
    """The async library this test runs under (``"asyncio"`` / ``"trio"``), or None for a sync test."""
    return getattr(request, "param", None)
