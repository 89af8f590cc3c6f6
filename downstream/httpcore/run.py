"""httpcore's own test suite, original and on a compat-backed synchronization layer, in one run.

``python downstream/httpcore/run.py [--work DIR] [pytest args...]`` (what ``nox -s downstream_httpcore`` runs): the
steps of :mod:`downstream.sdist_suite` for httpcore :data:`HTTPCORE_VERSION`. In the copy, ``compat`` is vendored
as ``httpcore/_vendored_compat`` and ``httpcore/_synchronization.py`` is replaced by
``downstream/httpcore/_synchronization.py`` (written on ``compat`` only). Both trees are imported from the sdist's
top folder. httpcore's own pytest configuration runs every ``@pytest.mark.anyio`` test once per installed backend
(asyncio and trio, through anyio's pytest plugin) and its ``@pytest.mark.trio`` tests through pytest-trio.

:data:`HTTPCORE` is reused by ``benchmarks/downstream_bench.py``. Needs the packages of
``downstream/httpcore/requirements.txt`` in the running interpreter.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from downstream.sdist_suite import Library, main

HTTPCORE_VERSION = "1.0.9"
SYNCHRONIZATION = Path(__file__).resolve().parent / "_synchronization.py"


def replace_synchronization(package: Path) -> None:
    """Put our ``_synchronization.py`` in place of httpcore's."""
    if not (package / "_synchronization.py").is_file():
        raise FileNotFoundError(
            f"{package} has no _synchronization.py to replace: is this httpcore {HTTPCORE_VERSION}?"
        )
    shutil.copyfile(SYNCHRONIZATION, package / "_synchronization.py")


HTTPCORE = Library(
    project="httpcore",
    version=HTTPCORE_VERSION,
    package_dir="httpcore",
    replace=replace_synchronization,
    probe=(
        "import httpcore._synchronization as s, httpcore._vendored_compat as c; "
        "assert issubclass(s.AsyncLock, c.Lock), s.__file__; print(s.__file__)"
    ),
    pytest_args=("-q",),
)

if __name__ == "__main__":
    sys.exit(main(HTTPCORE))
