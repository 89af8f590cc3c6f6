"""``mirror [FOLDER]``: follow a projects folder and mirror each new transcript line into the store.

A :class:`~session_store.watching.TranscriptFolderWatcher` (a library API) polls the folder and feeds each new
complete JSONL line (and each new or changed subagent ``.meta.json`` sidecar, as an ``agent_metadata`` entry)
to a mirror batcher. It stops on Ctrl-C (SIGINT; see :mod:`session_store.cli.dispatch` for a SIGINT the
process inherited as ignored), after ``--once`` poll or after ``--duration``.

SIGTERM (``kill``, ``systemctl stop``, ``docker stop``) stops it cleanly: one more poll, its lines flushed, the
batcher closed, the usual report and exit status. A second SIGTERM while that runs ends the process at once.

Exactly once (issue 14; "Mirror: positions, outages, memory" in docs/behaviour.md): every line goes through
``append_once`` with its occurrence number, and the position of each file is kept in a position file
(:func:`default_positions_path`, or ``--positions FILE``), so a restart, after a clean stop or a ``kill -9``,
continues where the last run stopped and stores nothing twice. Lines the store did not take stay in their files
and are sent again, with backoff, until it takes them; the report counts only the entries newly stored, and the
exit status is 1 when lines are still waiting at the end.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import compat

from ..batcher import build_mirror_batcher
from ..types import SessionKey, SessionStore
from ..watching import MAX_PENDING_BYTES, MAX_PENDING_LINES, POLL_INTERVAL_SECONDS, TranscriptFolderWatcher
from .output import Console, Report, redact_url
from .running import EXIT_FAILURE

__all__ = ["default_positions_path", "mirror_command", "store_identity"]


_SECRET_PARAMETER_WORDS = ("pass", "pwd", "secret", "token", "key")


def store_identity(store_url: str) -> str:
    """``store_url`` without anything secret, to tell stores apart: no user information (``user:password@``),
    no query parameter whose name looks secret (``password=``, ``sslpassword=``, ``token=``...), and for SQLite
    the absolute path of the file."""
    scheme, separator, rest = store_url.partition("://")
    if not separator:
        return "?"
    scheme = scheme.lower()
    location, _, query = rest.partition("?")
    location, _, _ = location.partition("#")
    if scheme == "sqlite":
        return f"sqlite://{os.path.abspath(location[1:]) if location else ''}"
    netloc, slash, path = location.partition("/")
    host = netloc.rpartition("@")[2]
    kept = [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if not any(word in name.lower() for word in _SECRET_PARAMETER_WORDS)
    ]
    return f"{scheme}://{host}{slash}{path}" + (f"?{urlencode(kept)}" if kept else "")


def default_positions_path(store_url: str, folder: Path) -> Path | None:
    """Where mirror keeps its positions for this store and folder: ``$XDG_STATE_HOME/session-store/mirror/``
    (``~/.local/state/...`` when unset), one file per store and folder, named by a digest of
    :func:`store_identity` and the folder's absolute path (nothing secret goes into it). None for
    ``memory://``, whose lines do not outlive the process."""
    if store_url.partition("://")[0].lower() == "memory":
        return None
    state_home = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    digest = hashlib.sha256(f"{store_identity(store_url)}\n{folder.resolve()}".encode()).hexdigest()[:32]
    return base / "session-store" / "mirror" / f"{digest}.json"


@contextmanager
def _stop_requested_by_sigterm() -> Iterator[list[int]]:
    """While the block runs, a SIGTERM is recorded in the yielded list instead of ending the process.

    The first SIGTERM restores the previous disposition, so a second one acts as it would have. Outside the
    main thread (where Python cannot install handlers) nothing is installed and the list stays empty.
    """
    received: list[int] = []
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            received.append(signum)
            signal.signal(signal.SIGTERM, previous)  # no printing here: stderr may be mid-write

        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    positions: Path | None = None,
    max_pending_lines: int = MAX_PENDING_LINES,
    max_pending_bytes: int = MAX_PENDING_BYTES,
) -> Report:
    position_file = positions if positions is not None else default_positions_path(store_url, folder)
    watcher = await compat.run_sync(
        partial(
            TranscriptFolderWatcher,
            folder,
            from_start=from_start,
            positions=position_file,
            positions_label=store_identity(store_url),
            max_pending_lines=max_pending_lines,
            max_pending_bytes=max_pending_bytes,
        )
    )
    errors: list[dict[str, Any]] = []
    stored_by_file: dict[str, int] = {}

    outage_reported = False

    def on_error(key: SessionKey | None, message: str) -> None:
        nonlocal outage_reported
        if outage_reported:
            return  # the outage was reported when it began; its lines are retried
        outage_reported = True
        errors.append({"key": key, "error": message})
        console.warn(f"mirror failed: {message}")

    def on_notice(text: str) -> None:
        nonlocal outage_reported
        if not watcher.failing_files:  # the store took every waiting line: a later failure is a new outage
            outage_reported = False
        console.note(text)

    def on_stored(path: Path, count: int) -> None:
        relative = path.relative_to(folder).as_posix()
        stored_by_file[relative] = stored_by_file.get(relative, 0) + count
        console.say(f"+{count} {relative}")

    batcher = build_mirror_batcher(watcher.exactly_once_store(store), folder, on_error)
    where = f"; positions in {position_file}" if position_file is not None else ""
    with _stop_requested_by_sigterm() as sigterms:  # before the note: whoever waits for it may send SIGTERM
        try:
            console.note(f"mirroring {folder} into {redact_url(store_url)} (Ctrl-C to stop{where})")
            await watcher.follow(
                batcher,
                interval=interval,
                duration=duration,
                once=once,
                on_problem=console.warn,
                on_stored=on_stored,
                on_notice=on_notice,
                stop_requested=lambda: bool(sigterms),
            )
        finally:
            await batcher.close()
    waiting = await compat.run_sync(watcher.unstored_lines)
    pending = {path.relative_to(folder).as_posix(): count for path, count in waiting.items()}
    total = sum(stored_by_file.values())
    text = f"mirrored {total} entr{'y' if total == 1 else 'ies'} from {len(stored_by_file)} file(s)"
    if pending:
        lines = sum(pending.values())
        text += (
            f"; {lines} line(s) of {len(pending)} file(s) not stored yet (the store failed, see the warnings "
            "above): the next run stores them"
        )
    elif errors:
        text += "; the store failed for a while, every line was stored once it was back"
    if sigterms:
        text += " (stopped by SIGTERM)"
    data = {
        "folder": str(folder),
        "entries": total,
        "files": stored_by_file,
        "pending": pending,
        "errors": errors,
        "positions": None if position_file is None else str(position_file),
        "sigterm": bool(sigterms),
    }
    return Report(data, text, EXIT_FAILURE if pending else 0)
