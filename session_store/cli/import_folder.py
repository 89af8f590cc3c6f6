"""``import [FOLDER]``: every ``<project>/<session>.jsonl`` of a Claude projects folder into the store.

A single project folder works too; subagent transcripts come along. Each transcript is found once, by its path,
and imported by that path (:func:`session_store.importing.import_transcript_file`), so the same session id in
two project folders is two sessions, and the work is linear in the number of files. Every line is written
exactly once (``append_once``): re-running the import, or running two at once, stores only what is missing,
and the summary counts what was stored. A progress bar is drawn on stderr when it is a terminal. A session that
fails is reported and the others still import (exit status 1); finding no transcript at all is an error too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import compat

from ..importing import EXPECTED_LAYOUT, InvalidLineError, import_transcript_file
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

    Each file is listed once, by its path. Importing in that order makes the store's modification times, and so
    ``list``, follow the files' order. Raises :class:`CliError` when ``folder`` is not a directory or holds no
    transcript, naming the folder and the layout looked for.
    """
    if not folder.is_dir():
        raise CliError(
            f"{folder} is not a directory; pass a Claude projects folder (like ~/.claude/projects) "
            "or set CLAUDE_CONFIG_DIR"
        )
    found = _main_transcripts(folder) or [
        path for child in sorted(folder.iterdir()) if child.is_dir() for path in _main_transcripts(child)
    ]
    if not found:
        raise CliError(
            f"no transcripts found under {folder}: expected {EXPECTED_LAYOUT} (pass a Claude projects folder "
            "like ~/.claude/projects, or one <project> folder of it)"
        )
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
        row: dict[str, Any] = {"session_id": path.stem, "project_key": path.parent.name, "path": str(path)}
        try:
            result = await import_transcript_file(
                path,
                store,
                projects_dir=path.parent.parent,
                include_subagents=include_subagents,
                batch_size=batch_size,
                skip_invalid_lines=skip_invalid_lines,
            )
        except (OSError, ValueError, TypeError) as exc:
            row["error"] = str(exc)
            row["invalid_line"] = isinstance(exc, InvalidLineError)
        else:
            row |= {
                "project_key": result.project_key,
                "transcripts": result.transcripts,
                "entries": result.entries,
                "stored": result.stored,
                "skipped_lines": [str(line) for line in result.skipped_lines],
            }
        rows.append(row)
    progress.update(len(transcripts))
    progress.finish()
    return _import_report(folder, rows)


def _import_report(folder: Path, rows: list[dict[str, Any]]) -> Report:
    """The summary: only what was stored counts as imported; sessions the store already held are named apart."""
    failed = [row for row in rows if "error" in row]
    imported = [row for row in rows if "error" not in row and row["stored"] > 0]
    unchanged = [row for row in rows if "error" not in row and row["stored"] == 0]
    subagents = sum(row["transcripts"] - 1 for row in imported)
    projects = len({row["project_key"] for row in imported})
    stored = sum(row["stored"] for row in imported)
    lines = [
        f"imported {len(imported)} session(s) with {subagents} subagent transcript(s) "
        f"from {projects} project(s) under {folder}: {stored} new line(s) stored"
    ]
    if unchanged:
        lines.append(f"{len(unchanged)} session(s) already in the store: nothing new to store")
    lines += [f"skipped {skipped}" for row in rows if "error" not in row for skipped in row["skipped_lines"]]
    lines += [f"failed {row['path']}: {row['error']}" for row in failed]
    if any(row["invalid_line"] for row in failed):
        lines.append("rerun with --skip-invalid-lines to import the valid lines of corrupt transcripts")
    data = {
        "folder": str(folder),
        "sessions": rows,
        "imported": len(imported),
        "unchanged": len(unchanged),
        "stored": stored,
        "failed": len(failed),
    }
    return Report(data, "\n".join(lines), EXIT_FAILURE if failed else 0)
