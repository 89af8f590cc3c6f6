"""Following a Claude projects folder on disk and feeding what is written there to a mirror batcher.

The Claude CLI hands each new transcript line to the SDK as a ``transcript_mirror`` frame (reference §6.9). A
process that only sees the files, such as ``session-store mirror`` (SPEC §6), gets the same frames from
:class:`TranscriptFolderWatcher`: it polls file sizes under the projects folder and turns each new *complete*
JSONL line into an entry, and each new or changed subagent ``.meta.json`` sidecar into an ``agent_metadata``
entry (reference §3.8), then hands them to a :class:`~session_store.batcher.TranscriptMirrorBatcher`
(reference §6), which maps paths to store keys and appends.

Polling, not file-system notifications: it needs nothing outside the standard library and behaves the same on
every platform. The file reads are blocking; :meth:`TranscriptFolderWatcher.follow` runs them through
``compat.run_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

import compat

from .batcher import TranscriptMirrorBatcher
from .keys import file_path_to_session_key
from .metadata import AGENT_METADATA_TYPE, read_agent_metadata_sidecar
from .types import SessionStoreEntry
from .validation import loads_strict_json

__all__ = ["POLL_INTERVAL_SECONDS", "TranscriptFolderWatcher", "TranscriptFrame"]

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.5
"""Default time between two polls of :meth:`TranscriptFolderWatcher.follow`."""


class TranscriptFrame(NamedTuple):
    """New entries of one file: ``path`` is the transcript (for a sidecar, the transcript it belongs to)."""

    path: Path
    entries: list[SessionStoreEntry]


@dataclass
class _Tail:
    """How far one transcript has been read."""

    offset: int = 0  # bytes already read; always just after a newline
    line_number: int = 0  # lines already read, for messages


def _last_line_end(path: Path, size: int, chunk_bytes: int = 1 << 16) -> int:
    """Offset just after the last newline in the first ``size`` bytes of ``path`` (0 if there is none)."""
    with path.open("rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - chunk_bytes)
            handle.seek(start)
            position = handle.read(end - start).rfind(b"\n")
            if position >= 0:
                return start + position + 1
            end = start
    return 0


def _require_seconds(name: str, value: float) -> None:
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")


class TranscriptFolderWatcher:
    """Follows a Claude projects folder (``<projects>/<project>/...``) by polling, and mirrors what is appended.

    **What it polls.** Every transcript under ``projects_dir`` that maps to a store key (main transcripts
    ``<project>/<session>.jsonl`` and subagent transcripts ``<project>/<session>/subagents/agent-<id>.jsonl``),
    by size, and every subagent sidecar ``agent-<id>.meta.json`` beside such a transcript, by modification time
    and size. Files that appear later are picked up by the next poll. A FIFO or anything else that is not a
    regular file, and a symlink leading out of ``projects_dir``, is not followed (described once as a problem).

    **What it sends.** Only complete lines: bytes after the last newline wait until their line is finished.
    Each complete line that is a JSON object with a string ``type`` becomes one entry; a blank line is skipped
    silently, any other line is skipped and described as a problem (see :meth:`follow`). A new or changed
    sidecar becomes one ``{"type": "agent_metadata", ...}`` entry for its transcript. A file that shrinks is
    read again from its start. With ``from_start=False`` (the default) what the files hold when the watcher
    is created counts as already sent; ``from_start=True`` sends it on the first poll.

    **How it stops.** :meth:`follow` returns after one poll with ``once=True`` or once ``duration`` seconds
    have passed; otherwise it runs until its caller is cancelled (a cancel scope, or Ctrl-C). It never closes
    the batcher: the caller does, in a ``finally``, so entries already queued still reach the store.

    Creating a watcher scans the folder and :meth:`poll` reads files, both blocking: from async code create
    it with ``await compat.run_sync(TranscriptFolderWatcher, folder)``. A ``projects_dir`` that is not a
    directory raises ``NotADirectoryError``.
    """

    def __init__(self, projects_dir: Path, *, from_start: bool = False) -> None:
        if not projects_dir.is_dir():
            raise NotADirectoryError(
                f"projects folder {projects_dir} does not exist; pass the folder the Claude CLI writes under"
            )
        self.projects_dir = projects_dir
        self.problems: list[str] = []  # skipped lines and files, for people; follow() drains it
        self._tails: dict[Path, _Tail] = {}
        self._sidecars: dict[Path, tuple[int, int]] = {}
        self._refused: set[Path] = set()  # transcript paths not followed, already described in problems
        if not from_start:
            for path in self._transcripts():
                self._tails[path] = _Tail(offset=_last_line_end(path, path.stat().st_size))
            for sidecar, _ in self._sidecar_files():
                self._sidecars[sidecar] = self._signature(sidecar)

    async def follow(
        self,
        batcher: TranscriptMirrorBatcher,
        *,
        interval: float = POLL_INTERVAL_SECONDS,
        duration: float | None = None,
        once: bool = False,
        on_frame: Callable[[TranscriptFrame], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        """Poll every ``interval`` seconds; enqueue each frame on ``batcher`` and flush after each poll that found any.

        ``on_frame(frame)`` is called for each frame after it is enqueued; ``on_problem(text)`` for each skipped
        line or unreadable sidecar (without it they are logged as warnings of this module). Stops as the class
        docstring says, and also after the first poll that starts once ``stop_requested()`` is true (checked
        before each poll, so lines written before the request are mirrored). ``interval`` and ``duration`` must be non-negative
        (``ValueError`` otherwise).
        """
        _require_seconds("interval", interval)
        if duration is not None:
            _require_seconds("duration", duration)
        report_problem = on_problem if on_problem is not None else logger.warning
        stop_at = None if duration is None else compat.current_time() + duration
        while True:
            stopping = stop_requested is not None and stop_requested()  # seen before the poll, so it is the last
            frames = await compat.run_sync(self.poll)
            for problem in self.problems:
                report_problem(problem)
            self.problems.clear()
            for frame in frames:
                batcher.enqueue(str(frame.path), frame.entries)
                if on_frame is not None:
                    on_frame(frame)
            if frames:
                await batcher.flush()
            remaining = None if stop_at is None else stop_at - compat.current_time()
            if once or stopping or (remaining is not None and remaining <= 0):
                return
            await compat.sleep(interval if remaining is None else min(interval, remaining))

    def poll(self) -> list[TranscriptFrame]:
        """The frames found since the last poll, transcript lines before sidecars. Blocking.

        Skipped lines and unreadable sidecars are added to :attr:`problems`.
        """
        frames: list[TranscriptFrame] = []
        for path in self._transcripts():
            entries = self._new_entries(path, self._tails.setdefault(path, _Tail()))
            if entries:
                frames.append(TranscriptFrame(path, entries))
        for sidecar, transcript in self._sidecar_files():
            try:
                signature = self._signature(sidecar)
                if self._sidecars.get(sidecar) == signature:
                    continue
                self._sidecars[sidecar] = signature
                metadata = read_agent_metadata_sidecar(transcript)
            except OSError as exc:
                self.problems.append(f"cannot read {sidecar}: {exc}")
                continue
            if metadata is not None:
                entry = cast(SessionStoreEntry, {**metadata, "type": AGENT_METADATA_TYPE})
                frames.append(TranscriptFrame(transcript, [entry]))
        return frames

    def _transcripts(self) -> list[Path]:
        return [
            path
            for path in sorted(self.projects_dir.rglob("*.jsonl"))
            if file_path_to_session_key(path, self.projects_dir) is not None and self._is_followable(path)
        ]

    def _is_followable(self, path: Path) -> bool:
        """Whether ``path`` is a regular file inside ``projects_dir``; anything else is described once in
        :attr:`problems` (a FIFO would block the reader, a link out of the folder would mirror a foreign file)."""
        if path.is_dir():
            return False
        try:
            outside = not path.resolve().is_relative_to(self.projects_dir.resolve())
            why = "leads outside the projects folder" if outside else None if path.is_file() else "is not a file"
        except OSError as exc:
            why = f"cannot be read ({exc})"
        if why is None:
            return True
        if path not in self._refused:
            self._refused.add(path)
            self.problems.append(f"{path} {why}; not mirrored")
        return False

    def _sidecar_files(self) -> list[tuple[Path, Path]]:
        """``(sidecar, transcript)`` for each ``.meta.json`` beside a subagent transcript path."""
        found = []
        for sidecar in sorted(self.projects_dir.rglob("*.meta.json")):
            transcript = sidecar.with_name(sidecar.name.removesuffix(".meta.json") + ".jsonl")
            key = file_path_to_session_key(transcript, self.projects_dir)
            if key is not None and "subpath" in key:
                found.append((sidecar, transcript))
        return found

    @staticmethod
    def _signature(path: Path) -> tuple[int, int]:
        status = path.stat()
        return status.st_mtime_ns, status.st_size

    def _new_entries(self, path: Path, tail: _Tail) -> list[SessionStoreEntry]:
        try:
            size = path.stat().st_size
            if size < tail.offset:
                self.problems.append(f"{path} shrank; reading it again from the start")
                tail.offset, tail.line_number = 0, 0
            if size == tail.offset:
                return []
            with path.open("rb") as handle:
                handle.seek(tail.offset)
                chunk = handle.read(size - tail.offset)
        except FileNotFoundError:
            del self._tails[path]
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        tail.offset += len(complete)
        entries: list[SessionStoreEntry] = []
        for raw in complete.splitlines():
            tail.line_number += 1
            if not raw.strip():
                continue
            try:
                entry = loads_strict_json(raw)  # NaN / Infinity are no JSON: the store could not take them
            except ValueError:
                entry = None
            if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                entries.append(cast(SessionStoreEntry, entry))
            else:
                self.problems.append(f"{path}:{tail.line_number}: not a transcript entry (a JSON object with a type)")
        return entries
