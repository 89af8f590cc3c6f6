"""httpcore's own test suite, original and on a compat-backed synchronization layer, in one run.

``python downstream/httpcore/run.py [--work DIR] [pytest args...]`` (what ``nox -s downstream_httpcore`` runs):

1. downloads httpcore's sdist (pinned :data:`HTTPCORE_VERSION`) with ``pip download`` into ``DIR`` (default: a
   folder in the system temp dir, never the repository; the sdist is reused when already there);
2. unpacks it twice: ``original/`` as published, and ``compat/`` where this repository's ``compat`` package is
   vendored as ``httpcore/_compat`` and ``httpcore/_synchronization.py`` is replaced by
   ``downstream/httpcore/_synchronization.py`` (written on ``compat`` only);
3. runs httpcore's suite in each tree (its own pytest config; the anyio pytest plugin runs every
   ``@pytest.mark.anyio`` test once per installed backend, asyncio and trio), reading the outcome of every test
   from a JUnit XML report;
4. prints the counts per backend for both trees and exits non-zero if any test's outcome differs, if a tree has
   failures, or if the compat tree did not import the replacement module.

The helpers (:func:`fetch_sdist`, :func:`unpack`, :func:`vendor_compat`) are reused by ``benchmarks/downstream_bench.py``.
Needs the packages of ``downstream/httpcore/requirements.txt`` in the running interpreter.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HTTPCORE_VERSION = "1.0.9"
REPO = Path(__file__).resolve().parents[2]
SYNCHRONIZATION = Path(__file__).resolve().parent / "_synchronization.py"
DEFAULT_WORK = Path(tempfile.gettempdir()) / f"session-store-downstream-httpcore-{HTTPCORE_VERSION}"

Outcomes = dict[str, str]  # test id -> "passed" | "failed" | "error" | "skipped"


def fetch_sdist(work: Path, version: str = HTTPCORE_VERSION) -> Path:
    """The httpcore sdist in ``work/sdist`` (downloaded from the package index unless already there)."""
    dest = work / "sdist"
    found = sorted(dest.glob(f"httpcore-{version}.tar.gz"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"httpcore=={version}", "--dest", str(dest)],
        check=True,
    )  # fmt: skip
    (sdist,) = dest.glob(f"httpcore-{version}.tar.gz")
    return sdist


def unpack(sdist: Path, dest: Path) -> Path:
    """A fresh copy of the sdist's tree at ``dest`` (replacing what was there); returns ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    staging = dest.with_name(dest.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(staging, filter="data")
    (top,) = staging.iterdir()
    top.rename(dest)
    staging.rmdir()
    return dest


def vendor_compat(tree: Path) -> None:
    """Copy ``compat`` into ``tree/httpcore/_compat`` and put our ``_synchronization.py`` in place of httpcore's."""
    package = tree / "httpcore"
    if not (package / "_synchronization.py").is_file():
        raise FileNotFoundError(f"{package} has no _synchronization.py to replace: is {tree} an httpcore sdist tree?")
    shutil.copytree(REPO / "compat", package / "_compat", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(SYNCHRONIZATION, package / "_synchronization.py")


def _backend_of(test_id: str) -> str:
    """``asyncio`` / ``trio`` for a test run by the anyio plugin (id ends ``[asyncio]``/``[trio]``), else ``sync``."""
    params = test_id.rpartition("[")[2] if test_id.endswith("]") else ""
    for backend in ("asyncio", "trio"):
        if params.split("-")[0] == backend or params.startswith(backend):
            return backend
    return "sync"


def read_junit(report: Path) -> Outcomes:
    outcomes: Outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
        if test_id in outcomes and outcomes[test_id] == "passed" and outcome == "error":
            test_id += "::teardown"  # a teardown error is reported as a second testcase element
        outcomes[test_id] = outcome
    return outcomes


def run_suite(tree: Path, report: Path, pytest_args: list[str]) -> Outcomes:
    """Run httpcore's tests in ``tree`` (its own config; ``tree`` first on the path) and read each outcome."""
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *pytest_args],
        cwd=tree,
        check=False,  # the outcomes are compared below; a crash shows up as a missing report
    )
    if not report.is_file():
        raise RuntimeError(f"pytest wrote no report in {tree}: it crashed before running the tests (see above)")
    return read_junit(report)


def counts(outcomes: Outcomes) -> dict[str, collections.Counter[str]]:
    by_backend: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for test_id, outcome in outcomes.items():
        by_backend[_backend_of(test_id)][outcome] += 1
        by_backend["all"][outcome] += 1
    return by_backend


def format_counts(name: str, outcomes: Outcomes) -> str:
    lines = [f"{name}:"]
    for backend, counter in sorted(counts(outcomes).items(), key=lambda item: item[0] == "all"):
        shown = ", ".join(f"{counter[key]} {key}" for key in ("passed", "failed", "error", "skipped") if counter[key])
        lines.append(f"  {backend:8} {shown}")
    return "\n".join(lines)


def check_replacement_is_used(tree: Path) -> None:
    """Fail unless ``import httpcore`` in ``tree`` loads our module on the vendored compat."""
    probe = (
        "import httpcore._synchronization as s, httpcore._compat as c; "
        "assert issubclass(s.AsyncLock, c.Lock), s.__file__; print(s.__file__)"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=tree, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"download/unpack folder ({DEFAULT_WORK})")
    args, pytest_args = parser.parse_known_args(argv)
    work: Path = args.work.resolve()
    if work == REPO or REPO in work.parents:
        parser.error(f"--work {work} is inside the repository; httpcore must never land in it")
    sdist = fetch_sdist(work)
    original = unpack(sdist, work / "original")
    patched = unpack(sdist, work / "compat")
    vendor_compat(patched)
    check_replacement_is_used(patched)
    results = {}
    for name, tree in (("original", original), ("compat", patched)):
        print(f"=== httpcore {HTTPCORE_VERSION} test suite: {name} ({tree}) ===", flush=True)
        results[name] = run_suite(tree, work / f"{name}.xml", pytest_args)
    print(f"\n=== httpcore {HTTPCORE_VERSION}: outcomes per backend ===")
    print(format_counts("original _synchronization.py", results["original"]))
    print(format_counts("compat _synchronization.py", results["compat"]))
    differ = sorted(
        f"{test_id}: original {results['original'].get(test_id, 'absent')}, compat {results['compat'].get(test_id, 'absent')}"
        for test_id in results["original"].keys() | results["compat"].keys()
        if results["original"].get(test_id) != results["compat"].get(test_id)
    )
    failing = sorted(f"{name}: {test_id} {outcome}" for name, outcomes in results.items()
                     for test_id, outcome in outcomes.items() if outcome in ("failed", "error"))  # fmt: skip
    if differ:
        print(f"\nFAIL: {len(differ)} test(s) end differently with compat:\n  " + "\n  ".join(differ))
    if failing:
        print(f"\nFAIL: {len(failing)} failing test(s):\n  " + "\n  ".join(failing))
    if not results["original"]:
        print("\nFAIL: no test ran")
        return 1
    if differ or failing:
        return 1
    print(f"\nOK: all {len(results['compat'])} tests end the same with compat as with the original")
    return 0


if __name__ == "__main__":
    sys.exit(main())
