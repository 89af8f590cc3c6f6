"""A pytest plugin that runs the Claude Agent SDK's own session-store tests on ``session_store.sdk``.

Loaded with ``-p downstream.sdk.plugin`` in the SDK's unpacked sdist (``nox -s downstream_sdk``). Before
anything imports ``claude_agent_sdk``, it puts a finder at the front of ``sys.meta_path`` that answers for the
SDK's session-store modules:

- **Replaced** modules resolve to this project's module of the same name under ``session_store.sdk``: the
  object in ``sys.modules`` *is* ours, so a test that patches a name in it patches what our code reads.
- **Overlaid** modules mix session-store and other code in the SDK (``types``: option and message types;
  ``sessions`` and ``session_mutations``: the disk readers and disk mutations, which this project does not
  have). The SDK's module is executed, then every session-store name that ``session_store.sdk`` offers for it
  replaces the SDK's, so the SDK's own callers (its root ``__init__``, its client, its disk readers calling
  the chain builder) use ours too. ``types.MirrorErrorMessage`` stays the SDK's: it is the message the SDK's
  parser builds, a subclass of the SDK's ``SystemMessage``.

Why not ``session_store.sdk.install()``: install() rebinds names and leaves the SDK's module objects in place,
which is what an application needs, but the SDK's tests patch private names of those modules
(``session_resume._get_projects_dir``, ``_read_keychain_credentials``, ``anyio.sleep`` in the batcher module,
...), and such a patch only reaches this project's code when the module object *is* ours. Measured on 0.2.190
with a plugin that only calls install() at configure time: 543 passed and 15 failed, every failure a test
patching or reading such a private name; this redirect gives 542 passed and 16 expected failures, each listed
with its reason.

At configure time the plugin imports ``claude_agent_sdk`` and fails the run unless every mapped module and
name resolves to ``session_store`` / ``compat`` code. It applies ``expected_failures.toml`` (beside this
file) as ``xfail(strict=True)``: an expected failure that passes fails the run, and so does an entry that
matches no test of a collected test file. At the end it prints one line with the passed / expected-failure /
failed counts.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SDK = "claude_agent_sdk"

REPLACED_MODULES = {
    f"{SDK}._internal.session_store": "session_store.sdk.session_store",
    f"{SDK}._internal.session_store_validation": "session_store.sdk.session_store_validation",
    f"{SDK}._internal.session_summary": "session_store.sdk.session_summary",
    f"{SDK}._internal.session_resume": "session_store.sdk.session_resume",
    f"{SDK}._internal.session_import": "session_store.sdk.session_import",
    f"{SDK}._internal.transcript_mirror_batcher": "session_store.sdk.transcript_mirror_batcher",
    f"{SDK}._internal._task_compat": "session_store.sdk._task_compat",
    f"{SDK}.testing": "session_store.sdk.testing",
}
"""SDK module -> the module of ours that stands in for it, whole."""

OVERLAID_MODULES = {
    f"{SDK}.types": "session_store.sdk.types",
    f"{SDK}._internal.sessions": "session_store.sdk.sessions",
    f"{SDK}._internal.session_mutations": "session_store.sdk.session_mutations",
}
"""SDK module -> the module of ours whose ``__all__`` names replace the SDK's after the SDK's module ran."""

KEPT_SDK_NAMES = {f"{SDK}.types": frozenset({"MirrorErrorMessage"})}
"""Names of an overlaid module that stay the SDK's (see the module docstring)."""

EXPECTED_FAILURES_FILE = Path(__file__).with_name("expected_failures.toml")


def _overlay_names(sdk_name: str) -> list[str]:
    ours = importlib.import_module(OVERLAID_MODULES[sdk_name])
    kept = KEPT_SDK_NAMES.get(sdk_name, frozenset())
    return [name for name in ours.__all__ if name not in kept]


class _OurModule(importlib.abc.Loader):
    """Loads an SDK module name as one of our modules, the very object (its own ``__spec__`` restored)."""

    def __init__(self, ours: str) -> None:
        self.ours = ours
        self._spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.ours)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # the import system set the SDK's; ours stays importable as itself


class _OverlaidModule(importlib.abc.Loader):
    """Runs the SDK's module, then replaces its session-store names with ours."""

    def __init__(self, sdk_loader: importlib.abc.Loader, sdk_name: str) -> None:
        self.sdk_loader = sdk_loader
        self.sdk_name = sdk_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.sdk_loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.sdk_loader.exec_module(module)
        ours = importlib.import_module(OVERLAID_MODULES[self.sdk_name])
        for name in _overlay_names(self.sdk_name):
            setattr(module, name, getattr(ours, name))


class SessionStoreFinder(importlib.abc.MetaPathFinder):
    """Answers for the SDK's session-store module names; every other import is left to the usual finders."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in REPLACED_MODULES:
            return importlib.machinery.ModuleSpec(fullname, _OurModule(REPLACED_MODULES[fullname]))
        if fullname in OVERLAID_MODULES:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return None
            spec.loader = _OverlaidModule(spec.loader, fullname)
            return spec
        return None


def install_finder() -> None:
    """Put the finder first on ``sys.meta_path``; it must be there before ``claude_agent_sdk`` is imported."""
    already = [name for name in (*REPLACED_MODULES, *OVERLAID_MODULES) if name in sys.modules]
    if already:
        raise pytest.UsageError(
            f"claude_agent_sdk was imported before downstream.sdk.plugin could map it ({already[0]}); "
            "load the plugin with -p downstream.sdk.plugin and nothing that imports the SDK earlier"
        )
    if not any(isinstance(finder, SessionStoreFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, SessionStoreFinder())


def _is_ours(value: object) -> bool:
    module = getattr(value, "__module__", None) or getattr(type(value), "__module__", "")
    return isinstance(module, str) and module.split(".")[0] in ("session_store", "compat")


def verify_mapping() -> list[str]:
    """Import the SDK and list every mapped module or name that does not resolve to this project's code."""
    problems: list[str] = []
    importlib.import_module(SDK)
    for sdk_name, ours in REPLACED_MODULES.items():
        module = importlib.import_module(sdk_name)
        if module is not sys.modules[ours]:
            problems.append(f"{sdk_name} is {module.__name__}, not {ours}")
    for sdk_name, ours_name in OVERLAID_MODULES.items():
        module, ours = importlib.import_module(sdk_name), importlib.import_module(ours_name)
        for name in _overlay_names(sdk_name):
            if getattr(module, name) is not getattr(ours, name):
                problems.append(f"{sdk_name}.{name} is not {ours_name}.{name}")
    root = sys.modules[SDK]
    for name in (
        "InMemorySessionStore",
        "SDKSessionInfo",
        "SessionStore",
        "fold_session_summary",
        "import_session_to_store",
        "list_sessions_from_store",
        "get_session_messages_from_store",
        "fork_session_via_store",
        "project_key_for_directory",
    ):
        if not _is_ours(getattr(root, name)):
            problems.append(f"{SDK}.{name} comes from {getattr(root, name).__module__}")
    return problems


# --- expected failures ------------------------------------------------------------------------------------


def load_expected_failures(path: Path = EXPECTED_FAILURES_FILE) -> dict[str, str]:
    """``{node id: reason}``. A node id without ``[...]`` covers every parametrization of that test."""
    with path.open("rb") as file:
        table = tomllib.load(file)
    expected = table.get("expected_failures", {})
    bad = [node for node, reason in expected.items() if not isinstance(reason, str) or not reason.strip()]
    if bad:
        raise pytest.UsageError(f"{path}: every expected failure needs a non-empty reason string: {bad}")
    return dict(expected)


def _reason_for(nodeid: str, expected: dict[str, str]) -> tuple[str, str] | None:
    if nodeid in expected:
        return nodeid, expected[nodeid]
    base = nodeid.split("[", 1)[0]
    if base in expected:
        return base, expected[base]
    return None


@dataclass
class Outcomes:
    """Per-test outcomes of the run, for the closing line."""

    passed: int = 0
    expected_failures: int = 0
    failed: int = 0
    skipped: int = 0


OUTCOMES = Outcomes()


def pytest_configure(config: pytest.Config) -> None:
    problems = verify_mapping()
    if problems:
        raise pytest.UsageError(
            "the SDK's session-store names do not all resolve to session_store.*:\n  " + "\n  ".join(problems)
        )
    config.stash[_EXPECTED] = load_expected_failures()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = config.stash[_EXPECTED]
    used: set[str] = set()
    for item in items:
        found = _reason_for(item.nodeid, expected)
        if found is None:
            continue
        used.add(found[0])
        item.add_marker(pytest.mark.xfail(strict=True, reason=found[1]))
    if config.getoption("deselect", None) or config.getoption("keyword", None):
        return  # a partial run: unmatched entries are expected
    collected_files = {item.nodeid.split("::", 1)[0] for item in items}
    stale = sorted(node for node in set(expected) - used if node.split("::", 1)[0] in collected_files)
    if stale:
        raise pytest.UsageError(f"{EXPECTED_FAILURES_FILE.name} names tests that were not collected: {stale}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each test once: by its call phase, or by a setup phase that did not pass, plus teardown errors."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.skipped and hasattr(report, "wasxfail"):
            OUTCOMES.expected_failures += 1
        elif report.passed:
            OUTCOMES.passed += 1
        elif report.skipped:
            OUTCOMES.skipped += 1
        else:
            OUTCOMES.failed += 1
    elif report.when == "teardown" and report.failed:
        OUTCOMES.failed += 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(
        "downstream_sdk (claude-agent-sdk's session-store tests on session_store.sdk): "
        f"{OUTCOMES.passed} passed, {OUTCOMES.expected_failures} expected failures (xfail strict), "
        f"{OUTCOMES.failed} failed, {OUTCOMES.skipped} skipped"
    )


_EXPECTED = pytest.StashKey[dict[str, str]]()

install_finder()
