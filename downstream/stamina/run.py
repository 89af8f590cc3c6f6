"""stamina's own test suite, original and with its async sleep on ``compat``, in one run.

``python downstream/stamina/run.py [--work DIR] [pytest args...]`` (what ``nox -s downstream_stamina`` runs): the
steps of :mod:`downstream.sdist_suite` for stamina :data:`VERSION`. In the copy, ``stamina/_core.py``'s dispatch
code (the ``try: from sniffio import current_async_library`` block and ``async def _smart_sleep``, found by
name in its syntax tree, so nothing of stamina's text is kept here) is cut out and replaced by one import of
``downstream/stamina/_smart_sleep.py``, copied in as ``stamina/_smart_sleep.py``. Each tree is pip-installed into
a folder of its own, because ``tests/conftest.py`` and ``tests/test_packaging.py`` read stamina's installed
metadata. stamina's suite already runs every async test on asyncio and trio (anyio's pytest plugin, parametrized
by its conftest's ``anyio_backend`` fixture when trio is installed).
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from downstream.sdist_suite import Library, main

VERSION = "26.1.0"
REPLACEMENT = Path(__file__).resolve().parent / "_smart_sleep.py"


def _dispatch_lines(tree: ast.Module) -> list[tuple[int, int]]:
    """Line spans (1-based, inclusive) of the sniffio import block and of ``_smart_sleep`` in ``_core.py``."""
    spans = []
    for node in tree.body:
        imports_sniffio = isinstance(node, ast.Try) and any(
            isinstance(inner, ast.ImportFrom) and inner.module == "sniffio" for inner in node.body
        )
        if imports_sniffio or (isinstance(node, ast.AsyncFunctionDef) and node.name == "_smart_sleep"):
            assert node.end_lineno is not None
            spans.append((node.lineno, node.end_lineno))
    return spans


def replace_smart_sleep(package: Path) -> None:
    """Cut stamina's sniffio dispatch out of ``_core.py`` and import ``_smart_sleep`` from our module instead."""
    core = package / "_core.py"
    source = core.read_text()
    spans = _dispatch_lines(ast.parse(source))
    if len(spans) != 2:
        raise RuntimeError(f"{core}: expected a sniffio import block and _smart_sleep, found {len(spans)} of them")
    lines = source.splitlines(keepends=True)
    for start, end in reversed(spans):
        lines[start - 1 : end] = []
    first = spans[0][0] - 1
    lines.insert(first, "from ._smart_sleep import _smart_sleep  # compat-backed (downstream/stamina)\n")
    patched = "".join(lines)
    if "sniffio" in patched or "import trio" in patched or "import asyncio" in patched:
        raise RuntimeError(f"{core}: asyncio/trio dispatch is left after the replacement")
    target = package / REPLACEMENT.name
    if target.exists():
        raise FileExistsError(f"{package.name} already has {target.name}: pick another name for the replacement")
    core.write_text(patched)
    shutil.copyfile(REPLACEMENT, target)


STAMINA = Library(
    project="stamina",
    version=VERSION,
    package_dir="src/stamina",
    replace=replace_smart_sleep,
    probe=(
        "import stamina._core as core, stamina._vendored_compat as compat; "
        "assert core._smart_sleep is compat.sleep, core._smart_sleep; print(core.__file__)"
    ),
    install=True,
    build_modules=("hatchling", "hatch_vcs", "hatch_fancy_pypi_readme"),  # its build-system requires
)

if __name__ == "__main__":
    sys.exit(main(STAMINA))
