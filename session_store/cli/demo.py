"""``session-store demo``: the command line's tour on the sample transcripts shipped with the package (SPEC §6).

:func:`install_samples` copies the sample project of ``session_store/samples/projects`` (written by
scripts/make_samples.py) into a projects folder, dated as the Claude CLI would have left it.
:func:`demo_command` does that in a temporary folder and then, on each backend asked for, runs the commands a
user would try first (import, list, show, subagents, resume) against a temporary SQLite store, printing each
one as the command line it stands for.

The demo calls the command modules of :mod:`session_store.cli` (never its dispatch), so the import graph of the
package has no circle.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ..keys import project_key_for_directory
from ..types import SessionStore
from .browse import list_command, show_command, subagents_command
from .import_folder import import_command
from .output import PROG, Console, Report
from .resume_into import resume_command
from .running import CliError, run_on_backend
from .scope import Scope, sqlite_url, with_store

__all__ = ["SAMPLE_PROJECT_KEY", "demo_command", "install_samples"]

SAMPLE_PROJECT_KEY = "-home-demo-weather-app"
"""Folder name of the sample project in ``session_store/samples/projects`` (see scripts/make_samples.py)."""


def _copy_traversable(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for child in source.iterdir():
        if child.is_dir():
            _copy_traversable(child, target / child.name)
        else:
            (target / child.name).write_bytes(child.read_bytes())


def install_samples(projects_dir: Path, workspace: Path) -> str:
    """Copy the shipped sample project into ``projects_dir`` under the key of ``workspace``; return the key."""
    project_key = project_key_for_directory(workspace)
    sample_project = files("session_store").joinpath("samples", "projects", SAMPLE_PROJECT_KEY)
    if not sample_project.is_dir():
        raise CliError(f"the sample transcripts are missing from the installed package ({sample_project})")
    _copy_traversable(sample_project, projects_dir / project_key)
    for transcript in (projects_dir / project_key).glob("*.jsonl"):
        _date_by_last_entry(transcript)
    return project_key


def _date_by_last_entry(transcript: Path) -> None:
    """Give a copied transcript the modification time of its last timestamped entry, as the CLI would have."""
    stamps = [entry.get("timestamp") for entry in map(json.loads, transcript.read_text("utf-8").splitlines())]
    last = max(stamp for stamp in stamps if isinstance(stamp, str))
    seconds = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    os.utime(transcript, (seconds, seconds))


async def _demo_on_backend(
    backend: str, store_url: str, projects_dir: Path, workspace: Path, resume_dir: Path, console: Console
) -> dict[str, Any]:
    scope = Scope(store_url, str(workspace))
    global_options = f"--backend {backend} --store {shlex.quote(store_url)}"

    def step(arguments: str, report: Report) -> Any:
        console.say(f"\n$ {PROG} {global_options} {arguments}\n{report.text}")
        return report.data

    async def steps(store: SessionStore) -> dict[str, Any]:
        outcome: dict[str, Any] = {"backend": backend, "store": store_url}
        report = await import_command(store, projects_dir, console)
        if report.status:
            raise CliError(f"demo: importing the samples failed on {backend}: {report.text}")
        outcome["import"] = step(f"import {shlex.quote(str(projects_dir))}", report)
        directory = f"--directory {shlex.quote(str(workspace))}"
        outcome["list"] = step(f"list {directory}", await list_command(store, scope))
        if not outcome["list"]:
            raise CliError(f"demo: no session listed after importing the samples on {backend}")
        oldest = outcome["list"][-1]["session_id"]  # in the samples, the one with tool calls and a subagent
        outcome["show"] = step(f"show {oldest} {directory}", await show_command(store, scope, oldest))
        subagents = await subagents_command(store, scope, oldest)
        outcome["subagents"] = step(f"subagents {oldest} {directory}", subagents)
        resumed = await resume_command(store, scope, oldest, resume_dir)
        outcome["resume"] = step(f"resume {oldest} --into {shlex.quote(str(resume_dir))} {directory}", resumed)
        return outcome

    return await with_store(store_url, steps)


def demo_command(backends: Sequence[str], console: Console, keep: bool = False) -> Report:
    """Run the demo once per backend in a fresh temporary folder; remove the folder afterwards unless ``keep``."""
    workdir = Path(tempfile.mkdtemp(prefix="session-store-demo-"))
    try:
        workspace = workdir / "weather-app"
        workspace.mkdir()
        projects_dir = workdir / "claude" / "projects"
        project_key = install_samples(projects_dir, workspace)
        console.say(f"sample transcripts copied to {projects_dir / project_key}")
        runs = []
        for backend in backends:
            console.say(f"\n=== {backend} ===")
            store_url = sqlite_url(workdir / f"sessions-{backend}.db")
            resume_dir = workdir / f"resumed-{backend}"
            on_backend = partial(_demo_on_backend, backend, store_url, projects_dir, workspace, resume_dir, console)
            runs.append(run_on_backend(backend, on_backend))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = f"demo finished on {' and '.join(backends)}" + (f"; files kept in {workdir}" if keep else "")
    return Report({"workdir": str(workdir), "kept": keep, "runs": runs}, summary)
