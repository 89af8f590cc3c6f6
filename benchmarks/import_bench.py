"""How ``session-store import`` scales with the number of project folders (issue 14 item 10).

Two layouts of the same number of one-file sessions (``SESSIONS``; ``--quick``: 200):

- **one project**: every session in one project folder;
- **one project each**: every session in its own project folder.

Each is imported with the command line's own code (:func:`session_store.cli.import_folder.import_command`) into
a fresh SQLite file, on each backend; the figure is the wall time of the whole import (finding the files
included). Before the fix, each session re-scanned every project folder, so the second layout cost
O(sessions x projects). Target: the second layout takes less than :data:`MAX_RATIO` times the first.

Output: a printed table and ``benchmarks/results/import.{json,md}``.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from session_store.adapters import SQLiteSessionStore
from session_store.cli.import_folder import import_command
from session_store.cli.output import Console

from ._data import new_id
from ._report import Table, run_meta, write_results
from .adapters_bench import close, run_on

SUITE = "import"
SESSIONS = 10_000
QUICK_SESSIONS = 200
MAX_RATIO = 2.0
LAYOUTS = ("one project", "one project each")


def _write_sessions(projects: Path, count: int, one_project_each: bool) -> None:
    for number in range(count):
        session_id = new_id()
        folder = projects / (f"-p{number}" if one_project_each else "-p")
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            {"type": "user", "uuid": new_id(), "sessionId": session_id, "message": {"role": "user", "content": "hi"}},
            {"type": "custom-title", "customTitle": f"session {number}", "sessionId": session_id},
        ]
        (folder / f"{session_id}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


async def _import(projects: Path, database: Path) -> tuple[float, int]:
    store = SQLiteSessionStore(database)
    try:
        started = time.perf_counter()
        report = await import_command(store, projects, Console(json_mode=True, err=io.StringIO()))
        elapsed = time.perf_counter() - started
    finally:
        await close(store)
    return elapsed, int(report.data["imported"])


def main(quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    started = time.perf_counter()
    count = QUICK_SESSIONS if quick else SESSIONS
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="session-store-import-bench-"))
    try:
        for layout in LAYOUTS:
            projects = work / layout.replace(" ", "-")
            _write_sessions(projects, count, one_project_each=layout == "one project each")
            for backend in backends:
                database = work / f"{layout.replace(' ', '-')}-{backend}.db"
                seconds, imported = run_on(backend, _import, projects, database)
                rows.append({"layout": layout, "backend": backend, "sessions": imported, "seconds": seconds})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = {
        backend: next(r["seconds"] for r in rows if r["backend"] == backend and r["layout"] == LAYOUTS[1])
        / next(r["seconds"] for r in rows if r["backend"] == backend and r["layout"] == LAYOUTS[0])
        for backend in backends
    }
    table = Table(
        f"import of {count} one-file sessions into SQLite (wall time)",
        ["layout", "backend", "sessions", "seconds", "sessions/s"],
        [
            [r["layout"], r["backend"], r["sessions"], f"{r['seconds']:.2f}", round(r["sessions"] / r["seconds"])]
            for r in rows
        ],
        kinds=["", "", "", "", ""],
    )
    write_results(
        SUITE,
        meta=run_meta(started, quick, sessions=count),
        data={"rows": rows, "ratios": ratios},
        tables=[table],
        targets=[
            {
                "target": f"{backend}: {count} one-session projects within {MAX_RATIO}x of {count} sessions in one",
                "value": ratio,
                "status": "PASS" if ratio < MAX_RATIO else "MISS",
            }
            for backend, ratio in ratios.items()
        ],
        out_dir=out_dir,
    )
    return 0
