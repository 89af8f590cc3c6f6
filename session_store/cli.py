"""The ``session-store`` command line: import, browse, resume and mirror Claude Code sessions in a store (SPEC §6).

Installed as ``session-store`` and runnable as ``python -m session_store``. Every command except ``demo`` opens
the store named by ``--store URL`` (else ``$SESSION_STORE_URL``, else the embedded SQLite file
``~/.local/share/session-store/sessions.db``; see ``session_store.adapters.sqlite``) through
:func:`session_store.adapters.open_store`, runs on the async library chosen by ``--backend`` and prints a
table for people or, with ``--json``, one JSON document on stdout for scripts.

Commands (the functions they call):

- ``import [FOLDER]``: every ``<project>/<session>.jsonl`` of a Claude projects folder (default
  ``$CLAUDE_CONFIG_DIR/projects`` or ``~/.claude/projects``; a single project folder works too), with its
  subagents, via ``import_session_to_store`` (reference §11). A progress bar is drawn on stderr when it is a
  terminal. A session that fails is reported and the others still import.
- ``list``, ``show``, ``subagents``: the store-backed readers (reference §9) for the project of ``--directory``
  (default: the current directory, whose project key is what the Claude CLI uses).
- ``resume SESSION --into DIR``: ``materialize_resume_session`` (reference §7), then the materialized config
  dir is copied into DIR, so ``CLAUDE_CONFIG_DIR=DIR claude --resume SESSION`` continues it.
- ``rename``, ``tag``, ``fork``, ``delete``: the store-backed mutations (reference §10). Unlike the library
  functions, the commands first check that the session exists, so a typo never creates a ghost session.
- ``mirror [FOLDER]``: a :class:`~session_store.watching.TranscriptFolderWatcher` follows a projects folder and
  feeds each new complete JSONL line (and each new or changed subagent ``.meta.json`` sidecar, as an
  ``agent_metadata`` entry) to a ``TranscriptMirrorBatcher`` (reference §6). Stops on Ctrl-C, after ``--once``
  poll or after ``--duration``.
- ``demo``: :mod:`session_store.demo` copies the sample transcripts shipped in ``session_store/samples`` into a
  temporary projects folder and runs import, list, show and resume against a temporary SQLite store on asyncio
  and on trio.

This module parses the arguments, runs the commands and turns their errors into one line; what gets printed is
shaped in :mod:`session_store.cli_output`. It is the one module of ``session_store`` that chooses an event loop:
:func:`run_on_backend` imports asyncio or trio *by name* through importlib (no module here imports a backend)
and starts the command under it; everything below goes through ``compat``. Errors print one line,
``session-store: error: ...``, on stderr and exit 1 (2 for a usage error, 130 on Ctrl-C); never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import compat

from .adapters import open_store
from .adapters.sqlite import default_database_path
from .batcher import build_mirror_batcher
from .cli_output import PROG, Console, ProgressBar, Report, format_table, format_time, one_line, redact_url
from .importing import import_session_to_store
from .keys import default_projects_dir, project_key_for_directory, validate_uuid
from .mutations import (
    delete_session_via_store,
    fork_session_via_store,
    rename_session_via_store,
    tag_session_via_store,
)
from .reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from .resume import DEFAULT_LOAD_TIMEOUT_MS, materialize_resume_session
from .types import SessionKey, SessionMessage, SessionStore, store_implements
from .watching import POLL_INTERVAL_SECONDS, TranscriptFolderWatcher, TranscriptFrame

__all__ = ["BACKENDS", "CliError", "default_store_url", "main", "run_on_backend"]

BACKENDS = ("asyncio", "trio")
STORE_URL_ENV = "SESSION_STORE_URL"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
AsyncCommand = Callable[[], Coroutine[Any, Any, T]]


class CliError(Exception):
    """An error to show as one line on stderr, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


# --- running under a backend --------------------------------------------------------------------------------

_START: dict[str, Callable[[ModuleType, AsyncCommand[Any]], Any]] = {
    "asyncio": lambda library, command: library.run(command()),  # asyncio.run takes a coroutine
    "trio": lambda library, command: library.run(command),  # trio.run takes the async function itself
}


def run_on_backend(backend: str, command: AsyncCommand[T]) -> T:
    """Run ``await command()`` in a fresh event loop of ``backend`` (``"asyncio"`` or ``"trio"``)."""
    if backend not in _START:
        raise CliError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}", EXIT_USAGE)
    try:
        library = importlib.import_module(backend)
    except ImportError as exc:
        raise CliError(
            f"backend {backend!r} is not installed ({exc}); install it with "
            f"pip install 'session-store-compat[{backend}]' or pick --backend asyncio"
        ) from exc
    result: T = _START[backend](library, command)
    return result


# --- stores and sessions ------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    """The store URL of an SQLite file: ``sqlite:///`` followed by the absolute path (so four slashes)."""
    return "sqlite:///" + str(path.absolute())


def default_store_url() -> str:
    """``$SESSION_STORE_URL``, else the embedded SQLite file (``~/.local/share/session-store/sessions.db``)."""
    return os.environ.get(STORE_URL_ENV) or sqlite_url(default_database_path())


async def with_store(url: str, command: Callable[[SessionStore], Coroutine[Any, Any, T]]) -> T:
    """Open the store at ``url``, run ``command(store)`` and close the store (if it has a ``close``)."""
    store = open_store(url)
    try:
        return await command(store)
    finally:
        closing = getattr(store, "close", None)
        outcome = closing() if callable(closing) else None
        if inspect.isawaitable(outcome):
            await outcome


@dataclass(frozen=True)
class Scope:
    """Which store and project a command works on (for messages and keys)."""

    store_url: str
    directory: str | None

    @property
    def project_key(self) -> str:
        return project_key_for_directory(self.directory)

    def describe(self) -> str:
        where = self.directory if self.directory is not None else os.getcwd()
        return f"project {where} (key {self.project_key}) in {redact_url(self.store_url)}"


def require_session_id(session_id: str, what: str = "session id") -> str:
    if validate_uuid(session_id) is None:
        raise CliError(f"{what} {session_id!r} is not a UUID (like 123e4567-e89b-12d3-a456-426614174000)")
    return session_id


def session_not_found(session_id: str, scope: Scope) -> CliError:
    return CliError(
        f"session {session_id} not found for {scope.describe()}; "
        f"'{PROG} list' shows the stored sessions (use --directory for another project)"
    )


async def require_session(store: SessionStore, session_id: str, scope: Scope) -> None:
    """Raise ``CliError`` unless ``session_id`` is a UUID whose main transcript the store holds."""
    require_session_id(session_id)
    key: SessionKey = {"project_key": scope.project_key, "session_id": session_id}
    if not await store.load(key):
        raise session_not_found(session_id, scope)


def as_json(value: Any) -> Any:
    """A dataclass instance as a dict (for ``--json``); anything else as it is."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


# --- list / show / subagents --------------------------------------------------------------------------------


async def list_command(store: SessionStore, scope: Scope, limit: int | None = None, offset: int = 0) -> Report:
    infos = await list_sessions_from_store(store, scope.directory, limit=limit, offset=offset)
    if not infos:
        return Report([], f"no sessions stored for {scope.describe()}")
    rows = [
        (
            info.session_id,
            format_time(info.last_modified),
            one_line(info.summary + (f" #{info.tag}" if info.tag else ""), 44),
            one_line(info.git_branch or "-", 24),
            one_line(info.first_prompt or "-", 48),
        )
        for info in infos
    ]
    headers = ("ID", "MODIFIED", "TITLE / SUMMARY", "BRANCH", "FIRST PROMPT")
    return Report([as_json(info) for info in infos], format_table(headers, rows))


def _block_lines(block: Any, tool_names: dict[str, str]) -> list[str]:
    """How one content block of a message reads in ``show``."""
    if not isinstance(block, dict):
        return [str(block)]
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", "")).splitlines() or [""]
    if kind == "tool_use":
        name = str(block.get("name", "?"))
        tool_names[str(block.get("id", ""))] = name
        arguments = block.get("input")
        if not isinstance(arguments, dict):
            arguments = {}
        shown = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
        return [f"→ {name}({one_line(shown, 100)})"]
    if kind == "tool_result":
        name = tool_names.get(str(block.get("tool_use_id", "")), "tool")
        content = block.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        text = str(content or "")
        lines = text.splitlines()
        more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
        return [f"← {name}: {one_line(lines[0] if lines else '', 90)}{more}"]
    if kind == "thinking":
        return ["(thinking)"]
    return [f"[{kind}]"]


def format_messages(messages: Sequence[SessionMessage]) -> str:
    tool_names: dict[str, str] = {}
    out: list[str] = []
    for message in messages:
        content = message.message.get("content") if isinstance(message.message, dict) else message.message
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        lines = [line for block in blocks for line in _block_lines(block, tool_names)]
        for index, line in enumerate(lines or [""]):
            out.append(f"{message.type if index == 0 else '':<10} {line}".rstrip())
    return "\n".join(out)


async def show_command(
    store: SessionStore,
    scope: Scope,
    session_id: str,
    *,
    agent_id: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Report:
    require_session_id(session_id)
    if agent_id is not None:
        return await _show_subagent(store, scope, session_id, agent_id, limit, offset)
    info = await get_session_info_from_store(store, session_id, scope.directory)
    if info is None:
        await require_session(store, session_id, scope)  # raises when it does not exist at all
    messages = await get_session_messages_from_store(store, session_id, scope.directory, limit=limit, offset=offset)
    header = [("Session", session_id)]
    if info is not None:
        header += [
            ("Title", info.custom_title or info.summary),
            ("Tag", info.tag or "-"),
            ("Branch", info.git_branch or "-"),
            ("Directory", info.cwd or "-"),
            ("Created", format_time(info.created_at)),
            ("Modified", format_time(info.last_modified)),
            ("First prompt", one_line(info.first_prompt, 100) or "-"),
        ]
    header.append(("Messages", str(len(messages))))
    text = "\n".join(f"{label + ':':<14}{value}" for label, value in header)
    if messages:
        text += "\n\n" + format_messages(messages)
    data = {"session": as_json(info), "messages": [as_json(message) for message in messages]}
    return Report(data, text)


async def _show_subagent(
    store: SessionStore, scope: Scope, session_id: str, agent_id: str, limit: int | None, offset: int
) -> Report:
    messages = await get_subagent_messages_from_store(
        store, session_id, agent_id, scope.directory, limit=limit, offset=offset
    )
    if not messages:
        known = await list_subagents_from_store(store, session_id, scope.directory)
        if agent_id not in known:
            await require_session(store, session_id, scope)
            listed = ", ".join(known) if known else "none"
            raise CliError(f"session {session_id} has no subagent {agent_id!r} (its subagents: {listed})")
    parent = next((m.parent_tool_use_id for m in messages if m.parent_tool_use_id), None)
    text = f"{'Session:':<14}{session_id}\n{'Subagent:':<14}{agent_id}\n{'Tool use:':<14}{parent or '-'}"
    text += f"\n{'Messages:':<14}{len(messages)}"
    if messages:
        text += "\n\n" + format_messages(messages)
    data = {"session_id": session_id, "agent_id": agent_id, "messages": [as_json(m) for m in messages]}
    return Report(data, text)


async def subagents_command(store: SessionStore, scope: Scope, session_id: str) -> Report:
    await require_session(store, session_id, scope)
    rows: list[dict[str, Any]] = []
    for agent_id in await list_subagents_from_store(store, session_id, scope.directory):
        messages = await get_subagent_messages_from_store(store, session_id, agent_id, scope.directory)
        parent = next((m.parent_tool_use_id for m in messages if m.parent_tool_use_id), None)
        rows.append({"agent_id": agent_id, "messages": len(messages), "parent_tool_use_id": parent})
    if not rows:
        return Report({"session_id": session_id, "subagents": []}, f"session {session_id} has no subagents")
    table = format_table(
        ("AGENT ID", "MESSAGES", "PARENT TOOL USE"),
        [(row["agent_id"], str(row["messages"]), row["parent_tool_use_id"] or "-") for row in rows],
    )
    return Report({"session_id": session_id, "subagents": rows}, table)


# --- resume -------------------------------------------------------------------------------------------------


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


# --- mutations ----------------------------------------------------------------------------------------------


async def rename_command(store: SessionStore, scope: Scope, session_id: str, title: str) -> Report:
    await require_session(store, session_id, scope)
    await rename_session_via_store(store, session_id, title, scope.directory)
    return Report({"session_id": session_id, "title": title.strip()}, f"renamed {session_id} to {title.strip()!r}")


async def tag_command(store: SessionStore, scope: Scope, session_id: str, tag: str | None) -> Report:
    await require_session(store, session_id, scope)
    await tag_session_via_store(store, session_id, tag, scope.directory)
    text = f"tagged {session_id} {tag.strip()!r}" if tag is not None else f"cleared the tag of {session_id}"
    return Report({"session_id": session_id, "tag": tag.strip() if tag is not None else None}, text)


async def fork_command(
    store: SessionStore, scope: Scope, session_id: str, up_to: str | None, title: str | None
) -> Report:
    await require_session(store, session_id, scope)
    if up_to is not None:
        require_session_id(up_to, "message id (--up-to)")
    result = await fork_session_via_store(store, session_id, scope.directory, up_to_message_id=up_to, title=title)
    return Report(
        {"session_id": result.session_id, "forked_from": session_id},
        f"forked {session_id} into new session {result.session_id}",
    )


async def delete_command(store: SessionStore, scope: Scope, session_id: str) -> Report:
    await require_session(store, session_id, scope)
    if not store_implements(store, "delete"):
        raise CliError(f"the store at {redact_url(scope.store_url)} cannot delete sessions (it has no delete())")
    await delete_session_via_store(store, session_id, scope.directory)
    return Report({"session_id": session_id, "deleted": True}, f"deleted {session_id} and its subagents")


# --- import -------------------------------------------------------------------------------------------------


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


# --- mirror -------------------------------------------------------------------------------------------------


async def mirror_command(
    store: SessionStore,
    store_url: str,
    folder: Path,
    console: Console,
    *,
    once: bool = False,
    duration: float | None = None,
    interval: float = POLL_INTERVAL_SECONDS,
    from_start: bool = False,
) -> Report:
    watcher = await compat.run_sync(partial(TranscriptFolderWatcher, folder, from_start=from_start))
    errors: list[dict[str, Any]] = []
    lines_by_file: dict[str, int] = {}

    def on_error(key: SessionKey | None, message: str) -> None:
        errors.append({"key": key, "error": message})
        console.warn(f"mirror failed: {message}")

    def on_frame(frame: TranscriptFrame) -> None:
        relative = frame.path.relative_to(folder).as_posix()
        lines_by_file[relative] = lines_by_file.get(relative, 0) + len(frame.entries)
        console.say(f"+{len(frame.entries)} {relative}")

    batcher = build_mirror_batcher(store, folder, on_error)
    console.note(f"mirroring {folder} into {redact_url(store_url)} (Ctrl-C to stop)")
    try:
        await watcher.follow(
            batcher, interval=interval, duration=duration, once=once, on_frame=on_frame, on_problem=console.warn
        )
    finally:
        await batcher.close()
    total = sum(lines_by_file.values())
    text = f"mirrored {total} entr{'y' if total == 1 else 'ies'} from {len(lines_by_file)} file(s)"
    if errors:
        text += f"; {len(errors)} batch(es) could not be stored (see the warnings above)"
    data = {"folder": str(folder), "entries": total, "files": lines_by_file, "errors": errors}
    return Report(data, text, EXIT_FAILURE if errors else 0)


# --- argument parsing ---------------------------------------------------------------------------------------


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number of seconds")
    return value


def _global_options(inherit: bool) -> _ArgumentParser:
    """--store/--backend/--json, accepted before and after the command (after wins when given)."""
    options = _ArgumentParser(add_help=False)
    default: Any = argparse.SUPPRESS if inherit else None
    options.add_argument(
        "--store",
        metavar="URL",
        default=default,
        help="sqlite:///relative.db, sqlite:////abs/path.db, memory://, postgresql://..., redis://... "
        f"(default: ${STORE_URL_ENV}, else the SQLite file ~/.local/share/session-store/sessions.db)",
    )
    options.add_argument("--backend", choices=BACKENDS, default=default, help="async library (default: asyncio)")
    for flag, help_text in (("--json", "print JSON"), ("--verbose", "also print the library's log messages")):
        options.add_argument(flag, action="store_true", default=argparse.SUPPRESS if inherit else False, help=help_text)
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog=PROG,
        description="Keep Claude Code session transcripts in a store: import, list, show, resume, mirror.",
        parents=[_global_options(inherit=False)],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inherited = [_global_options(inherit=True)]

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text, parents=inherited
        )
        return sub

    def scoped(name: str, help_text: str, *, session: bool = True) -> argparse.ArgumentParser:
        sub = command(name, help_text)
        if session:
            sub.add_argument("session_id", metavar="SESSION_ID")
        sub.add_argument(
            "-d",
            "--directory",
            metavar="DIR",
            help="project directory the sessions belong to (default: the current directory)",
        )
        return sub

    sub = command("import", "import Claude Code transcripts into the store")
    sub.add_argument(
        "folder",
        nargs="?",
        type=Path,
        metavar="FOLDER",
        help="projects folder or one project folder (default: $CLAUDE_CONFIG_DIR/projects or ~/.claude/projects)",
    )
    sub.add_argument("--session", action="append", default=[], metavar="SESSION_ID", help="only this session")
    sub.add_argument("--no-subagents", action="store_true", help="leave subagent transcripts out")
    sub.add_argument("--skip-invalid-lines", action="store_true", help="skip corrupt lines instead of failing")
    sub.add_argument(
        "--batch-size", type=_non_negative_int, default=500, help="entries per append (0: the default, 500)"
    )

    sub = scoped("list", "list the sessions of a project, newest first", session=False)
    sub.add_argument("--limit", type=_non_negative_int, help="at most this many rows")
    sub.add_argument("--offset", type=_non_negative_int, default=0, help="skip this many rows")

    sub = scoped("show", "show a session's details and messages")
    sub.add_argument("--agent", metavar="AGENT_ID", help="show this subagent's messages instead")
    sub.add_argument("--limit", type=_non_negative_int, help="at most this many messages")
    sub.add_argument("--offset", type=_non_negative_int, default=0, help="skip this many messages")

    scoped("subagents", "list a session's subagents")

    sub = scoped("resume", "write a stored session to a config folder the Claude CLI can resume from")
    sub.add_argument("--into", type=Path, required=True, metavar="DIR", help="target config folder")
    sub.add_argument("--timeout", type=_seconds, default=DEFAULT_LOAD_TIMEOUT_MS / 1000, help="store timeout (s)")

    sub = scoped("rename", "set a session's title")
    sub.add_argument("title", metavar="TITLE")

    sub = scoped("tag", "set or clear a session's tag")
    sub.add_argument("tag", nargs="?", metavar="TAG")
    sub.add_argument("--clear", action="store_true", help="remove the tag")

    sub = scoped("fork", "copy a session (optionally up to a message) into a new session")
    sub.add_argument("--up-to", metavar="MESSAGE_UUID", help="last message to keep")
    sub.add_argument("--title", help="title of the fork (default: the source title + ' (fork)')")

    scoped("delete", "delete a session and its subagents")

    sub = command("mirror", "follow a projects folder and mirror new transcript lines into the store")
    sub.add_argument("folder", nargs="?", type=Path, metavar="FOLDER", help="default: as for import")
    sub.add_argument("--once", action="store_true", help="poll once and exit")
    sub.add_argument("--duration", type=_seconds, metavar="SECONDS", help="stop after this long")
    sub.add_argument("--interval", type=_seconds, default=POLL_INTERVAL_SECONDS, metavar="SECONDS", help="poll period")
    sub.add_argument("--from-start", action="store_true", help="also mirror lines already in the files")

    sub = command(
        "demo",
        "import the bundled sample transcripts into a temporary SQLite store and run list, show, subagents "
        "and resume on them, on asyncio and on trio (or only on --backend); --store is not used",
    )
    sub.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    return parser


# --- dispatch -----------------------------------------------------------------------------------------------


def _store_command(args: argparse.Namespace, console: Console) -> Callable[[SessionStore], Coroutine[Any, Any, Report]]:
    """The async function that runs ``args.command`` against an open store."""
    scope = Scope(args.store, getattr(args, "directory", None))
    name = args.command
    if name == "tag" and (args.tag is None) == (not args.clear):
        raise CliError(f"give either a TAG or --clear (see '{PROG} tag --help')", EXIT_USAGE)
    projects = args.folder if getattr(args, "folder", None) is not None else default_projects_dir()

    async def run(store: SessionStore) -> Report:
        if name == "import":
            return await import_command(
                store,
                projects,
                console,
                session_ids=args.session,
                include_subagents=not args.no_subagents,
                skip_invalid_lines=args.skip_invalid_lines,
                batch_size=args.batch_size,
            )
        if name == "list":
            return await list_command(store, scope, args.limit, args.offset)
        if name == "show":
            return await show_command(
                store, scope, args.session_id, agent_id=args.agent, limit=args.limit, offset=args.offset
            )
        if name == "subagents":
            return await subagents_command(store, scope, args.session_id)
        if name == "resume":
            return await resume_command(store, scope, args.session_id, args.into, args.timeout * 1000)
        if name == "rename":
            return await rename_command(store, scope, args.session_id, args.title)
        if name == "tag":
            return await tag_command(store, scope, args.session_id, args.tag)
        if name == "fork":
            return await fork_command(store, scope, args.session_id, args.up_to, args.title)
        if name == "delete":
            return await delete_command(store, scope, args.session_id)
        if name == "mirror":
            return await mirror_command(
                store,
                args.store,
                projects,
                console,
                once=args.once,
                duration=args.duration,
                interval=args.interval,
                from_start=args.from_start,
            )
        raise CliError(f"unknown command {name!r}", EXIT_USAGE)  # argparse already rejects these

    return run


def _execute(argv: Sequence[str] | None, console: Console) -> int:
    args = build_parser().parse_args(argv)
    console.json_mode = args.json
    # What the libraries log (retries, pool reconnects) is either reported by the command or ends in its error
    # line; show it only on request.
    # Filtered at the handler: a library that sets its own logger's level (psycopg does) still cannot get past it.
    level = logging.DEBUG if args.verbose else logging.CRITICAL + 1
    handler = logging.StreamHandler(console.err)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    logging.basicConfig(level=level, handlers=[handler])
    if args.command == "demo":
        from .demo import demo_command  # demo builds on this module's commands: import it only when it runs

        report = demo_command((args.backend,) if args.backend else BACKENDS, console, keep=args.keep)
    else:
        args.store = args.store or default_store_url()
        command = _store_command(args, console)
        report = run_on_backend(args.backend or "asyncio", lambda: with_store(args.store, command))
    if console.json_mode:
        print(json.dumps(report.data, indent=2, ensure_ascii=False), file=console.out)
    elif report.text:
        print(report.text, file=console.out)
    console.out.flush()
    return report.status


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def describe_error(exc: BaseException) -> str:
    """One line for the user: the message of an expected error, the type and message of anything else."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = _leaves(exc)
        more = f" (and {len(leaves) - 1} more error(s))" if len(leaves) > 1 else ""
        return describe_error(leaves[0]) + more if leaves else str(exc)
    message = " ".join(str(exc).split())
    if isinstance(exc, CliError | ValueError | OSError | RuntimeError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _interrupted(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(isinstance(leaf, KeyboardInterrupt) for leaf in _leaves(exc))
    return isinstance(exc, KeyboardInterrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage error, 130 interrupted)."""
    console = Console()
    try:
        return _execute(argv, console)
    except SystemExit:
        raise  # --help
    except BrokenPipeError:
        # stdout closed early (``session-store list | head``): silence the interpreter's flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except BaseException as exc:
        if _interrupted(exc):
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"{PROG}: error: {describe_error(exc)}", file=sys.stderr)
        return exc.status if isinstance(exc, CliError) else EXIT_FAILURE
