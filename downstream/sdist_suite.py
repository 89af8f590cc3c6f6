"""A library's own test suite, run on its published code and on a copy whose dispatch layer is ours, in one run.

Shared by ``downstream/asgi_lifespan/run.py`` and ``downstream/stamina/run.py`` (``nox -s downstream_<name>``);
each describes its library with a :class:`Library` and calls :func:`main`, which:

1. downloads the pinned sdist with ``pip download`` into a work folder (default: one in the system temp dir, never
   the repository; reused when already there);
2. unpacks it twice: ``original/`` as published, and ``compat/`` where this repository's ``compat`` is vendored as
   ``<package>/_vendored_compat`` (a name the library does not use: ``asgi_lifespan`` has a ``_compat.py`` of its
   own, which ``<package>/_compat`` would shadow; the copy is refused if the name is taken) and the library's
   dispatch code is replaced by ours (:attr:`Library.replace`);
3. makes each tree importable: on the path as it is (``src/``), or, for a library whose suite reads its own
   installed metadata, ``pip install --no-deps --target`` into a folder of its own (without build isolation and
   index when :attr:`Library.build_modules` are importable, as the session installs them: nothing is then
   fetched per tree);
4. checks that the copy imports our code, runs the suite in each tree (its own pytest configuration, plus
   :attr:`Library.pytest_args`), reads every test's outcome from a JUnit XML report, prints the counts per backend
   and exits non-zero if any outcome differs between the trees, if a tree has failures, or if no test ran.

Nothing of the library is ever written into the repository. Needs the library's test requirements in the running
interpreter (``downstream/<name>/requirements.txt``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENDORED_COMPAT = "_vendored_compat"

Outcomes = dict[str, str]  # test id -> "passed" | "failed" | "error" | "skipped" | "xfailed"


@dataclasses.dataclass(frozen=True)
class Library:
    """What :func:`main` needs to know about one downstream library."""

    project: str  # the name on the package index, e.g. "asgi-lifespan"
    version: str  # pinned
    package_dir: str  # the import package inside the sdist tree, e.g. "src/asgi_lifespan"
    replace: Callable[[Path], None]  # puts our dispatch code into the copy's package folder (given as argument)
    probe: str  # Python code that fails unless the copy runs our code on the vendored compat
    install: bool = False  # True: pip-install each tree (its suite reads the installed metadata); False: path
    build_modules: tuple[str, ...] = ()  # its build backend's modules: when importable, build without isolation
    pytest_args: tuple[str, ...] = ()  # added to the library's own pytest configuration

    def default_work(self) -> Path:
        return Path(tempfile.gettempdir()) / f"session-store-downstream-{self.project}-{self.version}"


def fetch_sdist(library: Library, work: Path) -> Path:
    """The library's sdist in ``work/sdist`` (downloaded from the package index unless already there)."""
    dest = work / "sdist"
    names = {library.project, library.project.replace("-", "_")}  # old and normalized sdist file names

    def found() -> list[Path]:
        return sorted(path for name in names for path in dest.glob(f"{name}-{library.version}.tar.gz"))

    if not found():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"{library.project}=={library.version}", "--dest", str(dest)],
            check=True,
        )  # fmt: skip
    (sdist,) = found()
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


def vendor_compat(package: Path) -> Path:
    """Copy ``compat`` into ``package/_vendored_compat`` (refused if the library has that name); returns it."""
    target = package / VENDORED_COMPAT
    if target.exists() or target.with_suffix(".py").exists():
        raise FileExistsError(f"{package.name} already has a {VENDORED_COMPAT!r}: vendor compat under another name")
    shutil.copytree(REPO / "compat", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def make_copy(library: Library, sdist: Path, dest: Path) -> Path:
    """The sdist unpacked at ``dest`` with compat vendored and the library's dispatch code replaced by ours."""
    tree = unpack(sdist, dest)
    package = tree / library.package_dir
    vendor_compat(package)
    library.replace(package)
    return tree


def import_root(library: Library, tree: Path, work: Path) -> Path:
    """The folder to put on ``sys.path`` to import ``tree``'s package (installed first if the library needs it)."""
    if not library.install:
        return tree / Path(library.package_dir).parent
    site = work / f"{tree.name}-site"
    shutil.rmtree(site, ignore_errors=True)
    local_build = library.build_modules and all(importlib.util.find_spec(name) for name in library.build_modules)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target", str(site),
         *(["--no-build-isolation", "--no-index"] if local_build else []), str(tree)],
        check=True,
    )  # fmt: skip
    return site


def backend_of(test_id: str) -> str:
    """``asyncio`` / ``trio`` for a test whose first parameter id names the backend, else ``sync``."""
    params = test_id.rpartition("[")[2].removesuffix("]") if test_id.endswith("]") else ""
    first = params.split("-")[0]
    return first if first in ("asyncio", "trio") else "sync"


def read_junit(report: Path) -> Outcomes:
    outcomes: Outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                if child.get("type") == "pytest.xfail":
                    outcome = "xfailed"
        if test_id in outcomes and outcomes[test_id] == "passed" and outcome == "error":
            test_id += "::teardown"  # a teardown error is reported as a second testcase element
        outcomes[test_id] = outcome
    return outcomes


def run_suite(library: Library, tree: Path, root: Path, report: Path, pytest_args: list[str]) -> Outcomes:
    """Run the library's tests in ``tree`` with ``root`` first on the path, and read each outcome."""
    env = {**_environ(), "PYTHONPATH": str(root)}
    report.unlink(missing_ok=True)  # never read a previous run's report
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", *library.pytest_args,
         *pytest_args],
        cwd=tree,
        env=env,
        check=False,  # the outcomes are compared below; a crash shows up as a missing report
    )  # fmt: skip
    if not report.is_file():
        raise RuntimeError(f"pytest wrote no report in {tree}: it crashed before running the tests (see above)")
    return read_junit(report)


def _environ() -> dict[str, str]:
    """This process's environment without ``PYTHONPATH`` (each run sets its own)."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def counts(outcomes: Outcomes) -> dict[str, collections.Counter[str]]:
    by_backend: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for test_id, outcome in outcomes.items():
        by_backend[backend_of(test_id)][outcome] += 1
        by_backend["all"][outcome] += 1
    return by_backend


def format_counts(name: str, outcomes: Outcomes) -> str:
    lines = [f"{name}:"]
    for backend, counter in sorted(counts(outcomes).items(), key=lambda item: item[0] == "all"):
        shown = ", ".join(f"{counter[key]} {key}" for key in ("passed", "xfailed", "failed", "error", "skipped")
                          if counter[key])  # fmt: skip
        lines.append(f"  {backend:8} {shown}")
    return "\n".join(lines)


def check_replacement_is_used(library: Library, root: Path) -> None:
    """Fail unless importing the copy (from ``root``) loads our code on the vendored compat."""
    subprocess.run([sys.executable, "-c", library.probe], cwd=root, env={**_environ(), "PYTHONPATH": str(root)},
                   check=True)  # fmt: skip


def compare(original: Outcomes, copy: Outcomes) -> list[str]:
    """One line per test whose outcome differs between the trees (absent on one side included)."""
    return sorted(
        f"{test_id}: original {original.get(test_id, 'absent')}, compat {copy.get(test_id, 'absent')}"
        for test_id in original.keys() | copy.keys()
        if original.get(test_id) != copy.get(test_id)
    )


def main(library: Library, argv: list[str] | None = None) -> int:
    title = f"{library.project} {library.version}"
    parser = argparse.ArgumentParser(description=f"{title}'s own test suite, original and on compat, in one run")
    parser.add_argument("--work", type=Path, default=library.default_work(), help="download/unpack folder")
    args, pytest_args = parser.parse_known_args(argv)
    work: Path = args.work.resolve()
    if work == REPO or REPO in work.parents:
        parser.error(f"--work {work} is inside the repository; {library.project} must never land in it")
    sdist = fetch_sdist(library, work)
    trees = {"original": unpack(sdist, work / "original"), "compat": make_copy(library, sdist, work / "compat")}
    roots = {name: import_root(library, tree, work) for name, tree in trees.items()}
    check_replacement_is_used(library, roots["compat"])
    results = {}
    for name, tree in trees.items():
        print(f"=== {title} test suite: {name} ({tree}) ===", flush=True)
        results[name] = run_suite(library, tree, roots[name], work / f"{name}.xml", pytest_args)
    print(f"\n=== {title}: outcomes per backend ===")
    print(format_counts("original dispatch code", results["original"]))
    print(format_counts("compat dispatch code", results["compat"]))
    differ = compare(results["original"], results["compat"])
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
