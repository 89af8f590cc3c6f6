"""asgi-lifespan's own test suite, original and with its ``_concurrency`` package on ``compat``, in one run.

``python downstream/asgi_lifespan/run.py [--work DIR] [pytest args...]`` (what ``nox -s downstream_asgi_lifespan``
runs): the steps of :mod:`downstream.sdist_suite` for asgi-lifespan :data:`VERSION`. In the copy, the folder
``src/asgi_lifespan/_concurrency/`` (sniffio detection, an asyncio and a trio backend) is replaced by
``downstream/asgi_lifespan/_concurrency/`` (written on ``compat`` only: ``Event``, ``Queue``, ``fail_after``,
``create_task_group`` with ``cancel()``). Both trees are imported from ``src/`` (the suite needs no installed
metadata). The suite already runs every test on asyncio and trio (its conftest's ``concurrency`` fixture, through
pytest-asyncio and pytest-trio). Its ``addopts`` ask for coverage of ``src`` and ``tests`` with a 90 % floor
(pytest-cov): ``-o addopts=-rxXs`` keeps its report flags and drops that, since the floor would measure our
replacement, not the library.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from downstream.sdist_suite import Library, main

VERSION = "2.1.0"
REPLACEMENT = Path(__file__).resolve().parent / "_concurrency"


def replace_concurrency(package: Path) -> None:
    """Put our ``_concurrency`` package in place of asgi-lifespan's (same module names, nothing of theirs left)."""
    theirs = package / "_concurrency"
    ours = sorted(path.name for path in REPLACEMENT.glob("*.py"))
    if sorted(path.name for path in theirs.glob("*.py")) != ours:
        raise RuntimeError(f"{theirs} does not hold exactly {ours}: is this asgi-lifespan {VERSION}?")
    shutil.rmtree(theirs)
    shutil.copytree(REPLACEMENT, theirs, ignore=shutil.ignore_patterns("__pycache__"))


ASGI_LIFESPAN = Library(
    project="asgi-lifespan",
    version=VERSION,
    package_dir="src/asgi_lifespan",
    replace=replace_concurrency,
    probe=(
        "import asgi_lifespan._concurrency.base as base, asgi_lifespan._vendored_compat as compat; "
        "assert base.BaseQueue is compat.Queue, base.__file__; print(base.__file__)"
    ),
    pytest_args=("-o", "addopts=-rxXs"),
)

if __name__ == "__main__":
    sys.exit(main(ASGI_LIFESPAN))
