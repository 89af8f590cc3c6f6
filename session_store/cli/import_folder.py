"""``import [FOLDER]``: every ``<project>/<session>.jsonl`` of a Claude projects folder into the store.

A single project folder works too; subagent transcripts come along. A progress bar is drawn on stderr when it
is a terminal. A session that fails is reported and the others still import (exit status 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import compat

from ..importing import import_session_to_store
from ..keys import validate_uuid
from ..types import SessionStore
from .output import Console, ProgressBar, Report
from .running import EXIT_FAILURE, CliError
from .scope import require_session_id

__all__ = ["find_transcripts", "import_command"]


def _main_transcripts(project_dir: Path) -> list[Path]:
    return [
        path
        for path in project_dir.glob("*.jsonl")
        if validate_uuid(path.stem) is not None and path.is_file() and path.stat().st_size > 0
    ]


def find_transcripts(folder: Path) -> list[Path]:
    """The main transcripts of a projects folder (or of one project folder), least recently modified first.

    Importing in that order makes the store's modification times, and so ``list``, follow the files' order.
    """
    if not folder.is_dir():
        raise CliError(
            f"{folder} is not a directory; pass a Claude projects folder (like ~/.claude/projects) "
            "or set CLAUDE_CONFIG_DIR"
        )
    found = _main_transcripts(folder) or [
        path for child in folder.iterdir() if child.is_dir() for path in _main_transcripts(child)
    ]
    return sorted(found, key=lambda path: (path.stat().st_mtime_ns, path))


async def import_command(
    store: SessionStore,
    folder: Path,
    console: Console,
    *,
    session_ids: Sequence[str] = (),
    include_subagents: bool = True,
    skip_invalid_lines: bool = False,
    batch_size: int = 500,
) -> Report:
    for session_id in session_ids:
        require_session_id(session_id)
    transcripts = await compat.run_sync(find_transcripts, folder)
    if session_ids:
        missing = sorted(set(session_ids) - {path.stem for path in transcripts})
        if missing:
            raise CliError(f"no transcript for session(s) {', '.join(missing)} under {folder}")
        transcripts = [path for path in transcripts if path.stem in session_ids]
    progress = ProgressBar(len(transcripts), "importing", console.err)
    rows: list[dict[str, Any]] = []
    for done, path in enumerate(transcripts):
        progress.update(done, path.stem[:8])
        row: dict[str, Any] = {"session_id": path.stem, "project_key": path.parent.name}
        try:
            result = await import_session_to_store(
                path.stem,
                store,
                projects_dir=path.parent.parent,
                include_subagents=include_subagents,
                batch_size=batch_size,
                skip_invalid_lines=skip_invalid_lines,
            )
        except (OSError, ValueError) as exc:
            row["error"] = str(exc)
        else:
            row |= {
                "project_key": result.project_key,
                "transcripts": result.transcripts,
                "entries": result.entries,
                "skipped_lines": [str(line) for line in result.skipped_lines],
            }
        rows.append(row)
    progress.update(len(transcripts))
    progress.finish()
    return _import_report(folder, rows)


def _import_report(folder: Path, rows: list[dict[str, Any]]) -> Report:
    failed = [row for row in rows if "error" in row]
    imported = [row for row in rows if "error" not in row]
    subagents = sum(row["transcripts"] - 1 for row in imported)
    projects = len({row["project_key"] for row in imported})
    lines = [
        f"imported {len(imported)} session(s) with {subagents} subagent transcript(s) "
        f"from {projects} project(s) under {folder}"
    ]
    lines += [f"skipped {skipped}" for row in imported for skipped in row["skipped_lines"]]
    lines += [f"failed {row['session_id']}: {row['error']}" for row in failed]
    if failed:
        lines.append("rerun with --skip-invalid-lines to import the valid lines of corrupt transcripts")
    data = {"folder": str(folder), "sessions": rows, "imported": len(imported), "failed": len(failed)}
    return Report(data, "\n".join(lines), EXIT_FAILURE if failed else 0)
