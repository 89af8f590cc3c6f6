"""Dispatch: parse the arguments, run the command on its backend, print its report, turn errors into one line.

:func:`main` is the entry point of ``session-store`` and ``python -m session_store``. Errors print one line,
``session-store: error: ...``, on stderr and exit 1 (2 for a usage error, 130 on Ctrl-C); never a traceback.

Secrets and the terminal: the error line, the notes and warnings, the ``--verbose`` log and the report of every
command that shows no transcript text (``import``, ``mirror``, ``resume``, ``rename``, ``tag``, ``fork``,
``delete``) go through :func:`session_store.redaction.redact` with the store URL, so its password never shows;
everything printed has its control characters made visible (:func:`session_store.cli.output.visible`; JSON
through :func:`~session_store.cli.output.json_text`). The readers (``list``, ``show``, ``subagents``) show
transcript text as stored, controls made visible, and name the store only through ``redact_url``.
Read-only commands (``list``, ``show``, ``subagents``, ``resume``) open the store read-only.

``--store ''`` (or ``$SESSION_STORE_URL`` set but empty, as an unset shell variable gives) is a usage error:
the default store is used only when neither is given.

Signals: Ctrl-C (SIGINT) stops any command, ``mirror`` included (exit status 130). A process started with
SIGINT *ignored* keeps it ignored, as POSIX tools do: a non-interactive shell starts its background jobs
(``session-store mirror &``) that way on purpose, so that a Ctrl-C meant for the foreground does not stop them.
To stop such a ``mirror`` by SIGINT, start it with SIGINT restored (``(trap - INT; exec session-store mirror) &``
or ``set -m`` in the script; ``SIG_DFL`` in the child from Python), or send it SIGTERM: ``mirror`` takes SIGTERM
as a request to stop cleanly (one more poll, everything flushed, the usual report; see
:mod:`session_store.cli.mirror`), so ``kill``, ``systemctl stop`` and ``docker stop`` lose nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..keys import default_projects_dir
from ..redaction import redact
from ..types import SessionStore
from .browse import list_command, show_command, subagents_command
from .compact import compact_command
from .demo import demo_command
from .edit import delete_command, fork_command, rename_command, tag_command
from .import_folder import import_command
from .memory import carry_skills_and_memory, memory_sync_command
from .mirror import mirror_command
from .output import PROG, Console, Report, json_text, shown, visible
from .parser import build_parser
from .prune import prune_command
from .resume_into import resume_command
from .running import (
    BACKENDS,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    run_on_backend,
)
from .scope import STORE_URL_ENV, Scope, default_store_url, with_store

__all__ = ["describe_error", "main"]

READ_ONLY_COMMANDS = frozenset({"list", "show", "subagents", "resume"})
"""Commands that only read the store: they open it read-only."""

TRANSCRIPT_COMMANDS = frozenset({"list", "show", "subagents"})
"""Commands whose report is transcript text, shown as stored (controls visible) rather than redacted."""


def _store_url(given: str | None) -> str:
    """The store URL of ``--store`` (else ``$SESSION_STORE_URL``, else the default); empty is a usage error."""
    if given is None:
        configured = os.environ.get(STORE_URL_ENV)
        if configured is not None and not configured.strip():
            raise CliError(
                f"${STORE_URL_ENV} is set but empty; set it to a store URL such as sqlite:///sessions.db, "
                f"or unset it (unset {STORE_URL_ENV}) for the default store",
                EXIT_USAGE,
            )
        return default_store_url()
    if not given.strip():
        raise CliError(
            "--store is empty (is the variable you passed unset?); give a store URL such as "
            "sqlite:///sessions.db, or leave --store out for the default store",
            EXIT_USAGE,
        )
    return given


class _RedactingFormatter(logging.Formatter):
    """Log lines (with any traceback) redacted with the store URL and with their controls made visible."""

    def __init__(self, fmt: str, store_url: str | None) -> None:
        super().__init__(fmt)
        self.store_url = store_url

    def format(self, record: logging.LogRecord) -> str:
        return shown(super().format(record), url=self.store_url)


def _redacted(data: Any, url: str | None) -> Any:
    """``data`` (a JSON document) with every string redacted."""
    if isinstance(data, str):
        return redact(data, url=url)
    if isinstance(data, dict):
        return {key: _redacted(value, url) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_redacted(value, url) for value in data]
    return data


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
            carry = carry_skills_and_memory(
                scope.project_key, skills=args.with_skills, memory=args.with_memory, console=console
            )
            return await resume_command(
                store,
                scope,
                args.session_id,
                args.into,
                args.timeout * 1000,
                force=args.force,
                console=console,
                seed_config_dir=carry,
            )
        if name == "rename":
            return await rename_command(store, scope, args.session_id, args.title)
        if name == "tag":
            return await tag_command(store, scope, args.session_id, args.tag)
        if name == "fork":
            return await fork_command(store, scope, args.session_id, args.up_to, args.title)
        if name == "delete":
            return await delete_command(store, scope, args.session_id)
        if name == "compact":
            return await compact_command(store, scope, args.session_id)
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
                positions=args.positions,
                max_pending_lines=args.max_pending,
            )
        if name == "prune":
            return await prune_command(store, args.store, args.older_than, args.directory, dry_run=args.dry_run)
        raise CliError(f"unknown command {name!r}", EXIT_USAGE)  # argparse already rejects these

    return run


def _execute(argv: Sequence[str] | None, console: Console) -> int:
    args = build_parser().parse_args(argv)
    console.json_mode = args.json
    if args.command != "demo":
        args.store = console.store_url = _store_url(args.store)
    # What the libraries log (retries, pool reconnects) is either reported by the command or ends in its error
    # line; show it only on request.
    # Filtered at the handler: a library that sets its own logger's level (psycopg does) still cannot get past it.
    level = logging.DEBUG if args.verbose else logging.CRITICAL + 1
    handler = logging.StreamHandler(console.err)
    handler.setFormatter(_RedactingFormatter(f"{PROG}: %(levelname)s %(name)s: %(message)s", console.store_url))
    handler.setLevel(level)
    logging.basicConfig(level=level, handlers=[handler])
    if args.command == "demo":
        report = demo_command((args.backend,) if args.backend else BACKENDS, console, keep=args.keep)
    elif args.command == "memory-sync":  # files only: no store, no event loop
        report = memory_sync_command(args.source, args.to, args.directory, backup=args.backup)
    else:
        command = _store_command(args, console)
        read_only = args.command in READ_ONLY_COMMANDS
        report = run_on_backend(args.backend or "asyncio", lambda: with_store(args.store, command, read_only=read_only))
    data, text = report.data, report.text
    if args.command != "demo" and args.command not in TRANSCRIPT_COMMANDS:
        data, text = _redacted(data, console.store_url), redact(text, url=console.store_url)
    if console.json_mode:
        print(json_text(data), file=console.out)
    elif text:
        print(visible(text, keep="\n\t"), file=console.out)
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
        print(f"{PROG}: error: {shown(describe_error(exc), url=console.store_url)}", file=sys.stderr)
        return exc.status if isinstance(exc, CliError) else EXIT_FAILURE
