"""``resume SESSION --into DIR``: materialize a stored session and copy the config folder where the user wants it.

``CLAUDE_CONFIG_DIR=DIR claude --resume SESSION`` then continues the session.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import compat

from ..resume import DEFAULT_LOAD_TIMEOUT_MS, materialize_resume_session
from ..types import SessionStore
from .output import Report
from .scope import Scope, require_session_id, session_not_found

__all__ = ["resume_command"]


def _copy_into(source: Path, target: Path) -> list[str]:
    """Copy the tree ``source`` into ``target`` (merging); the copied files, relative, sorted."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    return sorted(path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file())


async def resume_command(
    store: SessionStore,
    scope: Scope,
    session_id: str,
    into: Path,
    load_timeout_ms: float = DEFAULT_LOAD_TIMEOUT_MS,
) -> Report:
    require_session_id(session_id)
    materialized = await materialize_resume_session(
        store, resume=session_id, cwd=scope.directory, load_timeout_ms=load_timeout_ms
    )
    if materialized is None:
        raise session_not_found(session_id, scope)
    try:
        copied = await compat.run_sync(_copy_into, materialized.config_dir, into)
    finally:
        await materialized.cleanup()
    project_dir = scope.directory if scope.directory is not None else os.getcwd()
    hint = (
        f"cd {shlex.quote(project_dir)} && CLAUDE_CONFIG_DIR={shlex.quote(str(into))} "
        f"claude --resume {materialized.resume_session_id}"
    )
    text = "\n".join(
        [f"materialized session {materialized.resume_session_id} into {into}:"]
        + [f"  {name}" for name in copied]
        + ["continue it with:", f"  {hint}"]
    )
    data = {
        "session_id": materialized.resume_session_id,
        "project_key": scope.project_key,
        "into": str(into),
        "files": copied,
    }
    return Report(data, text)
