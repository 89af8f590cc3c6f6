"""The argument parser of ``session-store``: global options (before or after the command) and each command's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from ..resume import DEFAULT_LOAD_TIMEOUT_MS
from ..watching import MAX_PENDING_LINES, POLL_INTERVAL_SECONDS
from .output import PROG
from .prune import duration_argument
from .running import BACKENDS, EXIT_USAGE, CliError
from .scope import STORE_URL_ENV

__all__ = ["build_parser"]


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


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
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
    sub.description = (
        f"{sub.description}; never follows a link in or below DIR, never replaces a different file without "
        "--force. Exit status: 0 written, 1 error (no partial or temp file left), 2 usage error, 3 written but "
        "incomplete (what was left out is named on stderr)"
    )
    sub.add_argument("--into", required=True, metavar="DIR", help="target config folder (created 0700 if missing)")
    sub.add_argument(
        "--force",
        action="store_true",
        help="replace files that differ from the stored session, keeping each old one beside it as NAME.bak",
    )
    sub.add_argument("--timeout", type=_seconds, default=DEFAULT_LOAD_TIMEOUT_MS / 1000, help="store timeout (s)")
    sub.add_argument("--with-skills", action="store_true", help="also copy your skills/ into DIR (links not followed)")
    sub.add_argument(
        "--with-memory",
        action="store_true",
        help="also copy the project's memory/ into DIR (bring it back: memory-sync)",
    )

    sub = scoped("rename", "set a session's title")
    sub.add_argument("title", metavar="TITLE")

    sub = scoped("tag", "set or clear a session's tag")
    sub.add_argument("tag", nargs="?", metavar="TAG")
    sub.add_argument("--clear", action="store_true", help="remove the tag")

    sub = scoped("fork", "copy a session (optionally up to a message) into a new session")
    sub.add_argument("--up-to", metavar="MESSAGE_UUID", help="last message to keep")
    sub.add_argument("--title", help="title of the fork (default: the source title + ' (fork)')")

    scoped("delete", "delete a session and its subagents")

    sub = scoped("compact", "merge a session's part objects into one (object stores: s3://)", session=False)
    sub.add_argument("session_id", nargs="?", metavar="SESSION_ID", help="only this session (default: every one)")

    sub = command("mirror", "follow a projects folder and mirror new transcript lines into the store")
    sub.add_argument("folder", nargs="?", type=Path, metavar="FOLDER", help="default: as for import")
    sub.add_argument("--once", action="store_true", help="poll once and exit")
    sub.add_argument("--duration", type=_seconds, metavar="SECONDS", help="stop after this long")
    sub.add_argument("--interval", type=_seconds, default=POLL_INTERVAL_SECONDS, metavar="SECONDS", help="poll period")
    sub.add_argument("--from-start", action="store_true", help="also mirror lines already in the files")
    sub.add_argument(
        "--positions",
        type=Path,
        metavar="FILE",
        help="position file (default: one per store and folder under $XDG_STATE_HOME/session-store/mirror)",
    )
    sub.add_argument(
        "--max-pending",
        type=_positive_int,
        default=MAX_PENDING_LINES,
        metavar="LINES",
        help="stop reading past this many lines not yet stored (default: %(default)s)",
    )

    sub = scoped(
        "memory-sync", "bring the project memory a resumed session wrote back into your config folder", session=False
    )
    sub.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR", help="the resume --into folder")
    sub.add_argument(
        "--to", type=Path, metavar="DIR", help="config folder (default: $CLAUDE_CONFIG_DIR, else ~/.claude)"
    )
    sub.add_argument(
        "--backup", action="store_true", help="on a conflict keep yours as NAME.bak-<time>, take the session's"
    )

    sub = command("prune", "delete the sessions not modified for longer than --older-than (every project by default)")
    sub.add_argument("--older-than", type=duration_argument, required=True, metavar="DURATION", help="e.g. 30d, 12h")
    sub.add_argument("-d", "--directory", metavar="DIR", help="only the project of this directory")
    sub.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    sub = command(
        "demo",
        "import the bundled sample transcripts into a temporary SQLite store and run list, show, subagents "
        "and resume on them, on asyncio and on trio (or only on --backend); --store is not used",
    )
    sub.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    return parser
