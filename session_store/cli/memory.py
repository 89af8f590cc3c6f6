"""``memory-sync --from DIR``: bring the project memory a resumed session wrote back into the user's config dir.

``session-store resume SESSION --into DIR --with-memory`` gives the resumed CLI a copy of the project's auto memory
(``projects/<project_key>/memory/``); what the session writes there stays in ``DIR``. This command copies it back
into the user's config dir (``--to``, default ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``) with the rules of
:func:`session_store.skills_memory.sync_memory`: new files are copied, files the session changed replace the
user's when those are still as they were seeded, and a file changed on both sides is a conflict that is never
overwritten silently: left as it is (exit status 1, the file named), or with ``--backup`` the user's version is kept
as ``NAME.bak-<UTC time>`` and the session's takes its place. No store is opened.

:func:`carry_skills_and_memory` is the seed hook behind ``resume --with-skills --with-memory``.
"""

from __future__ import annotations

import os
import unicodedata
from functools import partial
from pathlib import Path

import compat

from ..keys import claude_config_dir, project_key_for_directory
from ..resume import SeedConfigDir
from ..skills_memory import memory_dir, seed_skills_and_memory, sync_memory
from .output import PROG, Console, Report
from .running import EXIT_FAILURE, EXIT_USAGE, CliError

__all__ = ["carry_skills_and_memory", "memory_sync_command"]


def carry_skills_and_memory(
    project_key: str, *, skills: bool, memory: bool, console: Console | None = None
) -> SeedConfigDir | None:
    """The ``seed_config_dir`` of ``resume --into DIR --with-skills --with-memory``: copies the user's skills
    and the project's memory (from ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``) into the resume's temp dir, so
    they are placed in ``DIR`` with the transcript (and ``.session-store-seed.json``, which ``memory-sync`` reads);
    what is not carried (a link, a FIFO, an unreadable file) is a warning on ``console``. None when neither is
    asked for."""
    if not (skills or memory):
        return None
    source = claude_config_dir()

    async def seed(config_dir: Path) -> None:
        report = await compat.run_sync(
            partial(seed_skills_and_memory, source, config_dir, project_key, skills=skills, memory=memory)
        )
        for line in report.skipped:
            (console or Console()).warn(f"not carried into --into: {_visible(line)}")

    return seed


def _visible(text: str) -> str:
    """``text`` with control and format characters shown as escapes, so a file name cannot drive the terminal."""
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in ("Cc", "Cf") else char
        for char in text
    )


def memory_sync_command(source: Path, target: Path | None, directory: str | None, *, backup: bool = False) -> Report:
    """Bring ``source``'s memory of the project of ``directory`` (default: the cwd) into ``target``."""
    if not str(source):
        raise CliError(f"--from '' names no folder; pass the --into folder of '{PROG} resume'", EXIT_USAGE)
    if not source.is_dir():
        raise CliError(
            f"--from {_visible(str(source))!s} is not a folder; pass the --into folder of '{PROG} resume ... "
            "--with-memory'"
        )
    destination = target if target is not None else claude_config_dir()
    if os.path.realpath(source) == os.path.realpath(destination):
        raise CliError(f"--from and --to are the same folder ({_visible(str(source))}); nothing to bring back")
    project_key = project_key_for_directory(directory)
    report = sync_memory(source, destination, project_key, on_conflict="backup" if backup else "refuse")
    data = {
        "project_key": project_key,
        "from": str(memory_dir(source, project_key)),
        "to": str(memory_dir(destination, project_key)),
        **report.as_dict(),
    }
    lines = [
        f"memory of project {project_key}: {_visible(data['from'])} -> {_visible(data['to'])}",
        *(f"  copied    {_visible(name)}" for name in report.copied),
        *(f"  updated   {_visible(name)}" for name in report.updated),
    ]
    refused = [name for name in report.conflicts if not backup]
    if backup:
        lines += [
            f"  conflict  {_visible(name)} (changed on both sides: yours kept as {_visible(kept)})"
            for name, kept in zip(report.conflicts, report.backups, strict=False)
        ]
    lines += [f"  conflict  {_visible(name)} (changed on both sides: left as it is)" for name in refused]
    lines += [f"  skipped   {_visible(line)}" for line in report.skipped]
    lines.append(f"  unchanged {len(report.unchanged)}")
    status = EXIT_FAILURE if refused or report.skipped else 0
    if refused:
        lines.append(
            f"{len(refused)} file(s) changed both in the session and in {_visible(str(destination))}: not "
            "overwritten; rerun with --backup to take the session's version and keep yours as NAME.bak-<time>"
        )
    elif not (report.copied or report.updated or report.conflicts):
        lines.append("nothing to bring back")
    return Report(data, "\n".join(lines), status)
