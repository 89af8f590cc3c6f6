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
                tg.start_soon(compat.sleep, 5)
                tg.cancel()
            queue, cond = compat.Queue(1), compat.Condition()
            await queue.put(1)
            await queue.get()
            async with cond:
                cond.notify()
            with compat.fail_at(compat.current_time() + 1) as scope:
                await compat.sleep_until(0)
                scope.cancel()
            await compat.spawn_detached(compat.sleep(1)).aclose()

        asyncio.run(main())
        print(sorted(name for name in ("trio", "anyio") if name in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["_compat", "_concurrency"])  # any name works; only the folder is copied
@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_vendored_copy_works_unchanged(tmp_path: Path, runner: str, name: str) -> None:
    package = tmp_path / "otherpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copytree(ROOT / "compat", package / name, ignore=shutil.ignore_patterns("__pycache__"))
    run = "asyncio.run(main())" if runner == "asyncio" else "trio.run(main)"
    script = textwrap.dedent(
        f"""
        import asyncio, math, sys
        import trio
        from otherpkg import {name} as vendored

        async def serve(queue, *, task_status):
            task_status.started("ready")
            async for item in queue:
                await queue_out.put(item * 2)

        async def main():
            global queue_out
            lock, slots = vendored.Lock(), vendored.Semaphore(1, max_value=1)
            async with lock, slots:
                with vendored.move_on_after(0.001) as scope:
                    with vendored.shielded():
                        await vendored.sleep(0.002)
                    await vendored.sleep(1)
            queue_in, queue_out = vendored.Queue(1), vendored.Queue(math.inf)
            cond = vendored.Condition()
            async with vendored.create_task_group() as tg:
                assert isinstance(tg, vendored.TaskGroup)
                assert await tg.start(serve, queue_in) == "ready"
                await queue_in.put(21)
                assert await queue_out.get() == 42
                async with cond:
                    cond.notify_all()
                tg.cancel()
            with vendored.move_on_at(vendored.current_time() + 0.001) as at:
                await vendored.sleep_until(math.inf)
            handle = vendored.spawn_detached(vendored.sleep(5))
            await handle.aclose()
            print(vendored.current_backend(), scope.cancelled_caught, at.cancelled_caught, handle.result(),
                  "compat" in sys.modules)

        {run}
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split() == [runner, "True", "True", "None", "False"]
