"""``mirror [FOLDER]``: follow a projects folder and mirror each new transcript line into the store.

A :class:`~session_store.watching.TranscriptFolderWatcher` (a library API) polls the folder and feeds each new
complete JSONL line (and each new or changed subagent ``.meta.json`` sidecar, as an ``agent_metadata`` entry)
to a mirror batcher. It stops on Ctrl-C (SIGINT; see :mod:`session_store.cli.dispatch` for a SIGINT the
process inherited as ignored), after ``--once`` poll or after ``--duration``.

SIGTERM (``kill``, ``systemctl stop``, ``docker stop``) stops it cleanly: one more poll, its lines flushed, the
batcher closed, the usual report and exit status. A second SIGTERM while that runs ends the process at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import compat

from ..batcher import build_mirror_batcher
from ..types import SessionKey, SessionStore
from ..watching import POLL_INTERVAL_SECONDS, TranscriptFolderWatcher, TranscriptFrame
from .output import Console, Report, redact_url
from .running import EXIT_FAILURE

__all__ = ["mirror_command"]


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
    with _stop_requested_by_sigterm() as sigterms:  # before the note: whoever waits for it may send SIGTERM
        try:
            console.note(f"mirroring {folder} into {redact_url(store_url)} (Ctrl-C to stop)")
            await watcher.follow(
                batcher,
                interval=interval,
                duration=duration,
                once=once,
                on_frame=on_frame,
                on_problem=console.warn,
                stop_requested=lambda: bool(sigterms),
            )
        finally:
            await batcher.close()
    total = sum(lines_by_file.values())
    text = f"mirrored {total} entr{'y' if total == 1 else 'ies'} from {len(lines_by_file)} file(s)"
    if errors:
        text += f"; {len(errors)} batch(es) could not be stored (see the warnings above)"
    if sigterms:
        text += " (stopped by SIGTERM)"
    data = {
        "folder": str(folder),
        "entries": total,
        "files": lines_by_file,
        "errors": errors,
        "sigterm": bool(sigterms),
    }
    return Report(data, text, EXIT_FAILURE if errors else 0)
