"""Import hygiene: what compat and session_store may import, and that compat can be vendored as-is."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKEND_MODULES = {"asyncio", "trio", "anyio"}


def _imported_top_level_names(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_session_store_imports_no_backend_directly() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "session_store").rglob("*.py"))
        for line, name in _imported_top_level_names(path)
        if name in BACKEND_MODULES
    ]
    assert offenders == [], "session_store must reach asyncio/trio only through compat:\n" + "\n".join(offenders)


def test_compat_never_imports_anyio_and_imports_trio_only_lazily() -> None:
    offenders = []
    for path in sorted((ROOT / "compat").glob("*.py")):
        offenders += [f"{path.name}:{line} anyio" for line, name in _imported_top_level_names(path) if name == "anyio"]
        module_level = ast.parse(path.read_text(encoding="utf-8")).body
        offenders += [
            f"{path.name}:{node.lineno} trio at module level"
            for node in module_level
            if (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "trio" for alias in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "trio")
        ]
    assert offenders == []


def test_import_compat_under_asyncio_leaves_trio_and_anyio_unimported() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        import compat

        async def main():
            lock, limiter = compat.Lock(), compat.CapacityLimiter(2)
            async with lock, limiter:
                with compat.fail_after(1):
                    await compat.sleep(0)
            await compat.shield(compat.sleep, 0)
            async with compat.Semaphore(1, max_value=1):
                with compat.shielded(), compat.move_on_after(None):
                    await compat.sleep(0)
            await compat.spawn_detached(compat.sleep(0)).wait()
            await compat.run_sync(int)
            async with compat.create_task_group() as tg:
                tg.start_soon(compat.sleep, 0)

        asyncio.run(main())
        print(sorted(name for name in ("trio", "anyio") if name in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_vendored_copy_works_unchanged(tmp_path: Path, runner: str) -> None:
    package = tmp_path / "otherpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copytree(ROOT / "compat", package / "_compat", ignore=shutil.ignore_patterns("__pycache__"))
    run = "asyncio.run(main())" if runner == "asyncio" else "trio.run(main)"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import trio
        from otherpkg import _compat

        async def main():
            lock, slots = _compat.Lock(), _compat.Semaphore(1, max_value=1)
            async with lock, slots:
                with _compat.move_on_after(0.001) as scope:
                    with _compat.shielded():
                        await _compat.sleep(0.002)
                    await _compat.sleep(1)
            print(_compat.current_backend(), scope.cancelled_caught, "compat" in sys.modules)

        {run}
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == [runner, "True", "False"]
