"""Following a Claude projects folder on disk and feeding what is written there to a mirror batcher.

The Claude CLI hands each new transcript line to the SDK as a ``transcript_mirror`` frame (reference §6.9). A
process that only sees the files, such as ``session-store mirror`` (SPEC §6), gets the same frames from
:class:`TranscriptFolderWatcher`: it polls file sizes under the projects folder and turns each new *complete*
JSONL line into an entry, and each new or changed subagent ``.meta.json`` sidecar into an ``agent_metadata``
entry (reference §3.8), then hands them to a :class:`~session_store.batcher.TranscriptMirrorBatcher`
(reference §6), which maps paths to store keys and appends.

**Exactly once** (issue 14; "Mirror: positions, outages, memory" in docs/behaviour.md). A batcher built on
:meth:`TranscriptFolderWatcher.exactly_once_store` stores every line through
:func:`session_store.exactly_once.append_once`, with the line's occurrence number in its file, and tells the
watcher which lines the store confirmed. The watcher only moves a file's position past confirmed lines: after a
failed append it goes back to the first unconfirmed line and reads it again later, with backoff (the file itself
is the buffer). With a position file the positions survive a restart, a clean stop or a ``kill -9``: lines
written while the watcher was stopped are read then, and lines stored but not yet recorded are sent again and
skipped by ``append_once``.

Polling, not file-system notifications: it needs nothing outside the standard library and behaves the same on
every platform. The file reads are blocking; :meth:`TranscriptFolderWatcher.follow` runs them through
``compat.run_sync``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import compat

from .batcher import TranscriptMirrorBatcher
from .exactly_once import OccurrenceCounter, append_once, content_hash
from .keys import file_path_to_session_key
from .metadata import AGENT_METADATA_TYPE, read_agent_metadata_sidecar
from .types import SessionKey, SessionStore, SessionStoreEntry
from .validation import loads_strict_json

__all__ = [
    "MAX_PENDING_BYTES",
    "MAX_PENDING_LINES",
    "POLL_INTERVAL_SECONDS",
    "POSITIONS_FORMAT",
    "POSITIONS_SAVE_SECONDS",
    "RETRY_BACKOFF_SECONDS",
    "TranscriptFolderWatcher",
    "TranscriptFrame",
]

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.5
"""Default time between two polls of :meth:`TranscriptFolderWatcher.follow`."""

MAX_PENDING_LINES = 10_000
"""Default bound of the lines read and not yet confirmed stored (per round of reading)."""

MAX_PENDING_BYTES = 16 << 20
"""Default bound of the bytes read and not yet confirmed stored (one longer line is still read alone)."""

RETRY_BACKOFF_SECONDS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Wait before reading a file again after its 1st, 2nd, ... failed append; the last value repeats.

Read at each failure, so tests may monkeypatch it."""

POSITIONS_SAVE_SECONDS = 1.0
"""The position file is written at most this often while following (and always when :meth:`follow` returns):
a position saved late only makes a restart send lines again, which ``append_once`` then skips."""

POSITIONS_FORMAT = "session-store mirror positions 1"
"""The ``format`` field of a position file."""

_READ_PIECE_BYTES = 1 << 20


class TranscriptFrame(NamedTuple):
    """New entries of one file: ``path`` is the transcript (for a sidecar, the transcript it belongs to)."""

    path: Path
    entries: list[SessionStoreEntry]


@dataclass
class _Record:
    """One entry handed to the batcher, until the store confirms it."""

    path: Path
    entry: SessionStoreEntry
    occurrence: int | None
    start: int  # offset of the line's first byte (for a sidecar entry: unused)
    line_number: int
    stored: bool = False


@dataclass
class _Round:
    """What one transcript contributed to the current round: its lines from ``start`` to the tail's offset."""

    start: int
    start_line: int
    counts: dict[str, int]  # the occurrence counter's state at ``start``
    records: list[_Record] = field(default_factory=list)


@dataclass
class _Tail:
    """How far one transcript has been read (and, between rounds, confirmed)."""

    offset: int = 0  # bytes already read; always just after a newline
    line_number: int = 0  # lines already read, for messages
    device: int | None = None
    inode: int | None = None
    counter: OccurrenceCounter | None = None  # occurrences before ``offset``; None: replay the prefix first
    reported_through: int = 0  # bad lines up to this line number were described already
    failures: int = 0  # failed rounds in a row
    retry_at: float = 0.0  # time.monotonic() before which the file is not read again


@dataclass
class _Sidecar:
    """What is known of one ``.meta.json`` sidecar: its last stored version and how often each content was stored."""

    signature: tuple[int, int] | None = None  # (mtime_ns, size) of the version stored last
    content: str | None = None  # content_hash of that version
    occurrence: int = 0  # occurrence it was sent with
    stored: dict[str, int] = field(default_factory=dict)  # content_hash -> versions with that content stored
    failures: int = 0
    retry_at: float = 0.0


@dataclass
class _SidecarRound:
    record: _Record
    signature: tuple[int, int]
    content: str


@dataclass
class _Budget:
    lines: int
    bytes: int
    untouched: bool = True

    def spend(self, lines: int, size: int) -> None:
        self.lines -= lines
        self.bytes -= size
        self.untouched = False

    @property
    def spent(self) -> bool:
        return self.lines <= 0 or self.bytes <= 0


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


def _require_limit(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


NOT_AN_ENTRY = "not a transcript entry (a JSON object with a type)"
TOO_DEEP = "nested too deeply for the JSON parser; not a transcript entry"


def _parse_line(raw: bytes) -> tuple[SessionStoreEntry | None, str]:
    """The entry of one JSONL line, or None and why it is none (not a JSON object with a string ``type``)."""
    try:
        entry = loads_strict_json(raw)  # NaN / Infinity are no JSON: the store could not take them
    except RecursionError:  # a line nested deeper than the parser goes (100,000 '[')
        return None, TOO_DEEP
    except ValueError as exc:
        text = str(exc).lower()
        return None, TOO_DEEP if any(word in text for word in ("recursion", "deep", "nest")) else NOT_AN_ENTRY
    if isinstance(entry, dict) and isinstance(entry.get("type"), str):
        return cast(SessionStoreEntry, entry), ""
    return None, NOT_AN_ENTRY


def _backoff(failures: int) -> float:
    steps = RETRY_BACKOFF_SECONDS
    return steps[min(failures, len(steps)) - 1] if steps else 0.0


def _complete_lines(path: Path, offset: int, size: int, budget: _Budget) -> tuple[bytes, bool]:
    """The complete lines of ``path`` from ``offset`` that fit ``budget`` (at least one line when the budget is
    untouched), and whether more complete data may follow."""
    want = size - offset
    take = min(want, max(budget.bytes, 0))
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read(take)
        end = chunk.rfind(b"\n") + 1
        if end == 0 and take < want and budget.untouched:  # one line longer than the byte budget: read it alone
            while end == 0 and len(chunk) < want:
                piece = handle.read(min(_READ_PIECE_BYTES, want - len(chunk)))
                if not piece:
                    break
                found = piece.find(b"\n")
                chunk += piece
                if found >= 0:
                    end = len(chunk) - len(piece) + found + 1
    complete = chunk[:end]
    more = len(chunk) < want  # unread data (perhaps only the rest of an unfinished line)
    if budget.lines > 0 and complete.count(b"\n") > budget.lines:
        cut = -1
        for _ in range(budget.lines):
            cut = complete.index(b"\n", cut + 1)
        complete, more = complete[: cut + 1], True
    return complete, more


def _ends_a_line(path: Path, offset: int) -> bool:
    """Whether ``offset`` is 0 or just after a newline of ``path`` (a saved position must be, or the file was
    rewritten in place)."""
    if offset == 0:
        return True
    with path.open("rb") as handle:
        handle.seek(offset - 1)
        return handle.read(1) == b"\n"


def _file_identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


class _ExactlyOnceStore(SessionStore):
    """The store a watcher's batcher writes to: ``append`` is ``append_once`` with the watcher's occurrences,
    and tells the watcher which entries were stored."""

    def __init__(self, store: SessionStore, watcher: TranscriptFolderWatcher) -> None:
        self.store = store
        self.watcher = watcher

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        records = [self.watcher._records.get(id(entry)) for entry in entries]
        occurrences = [
            record.occurrence if record is not None and record.entry is entry else None
            for record, entry in zip(records, entries, strict=True)
        ]
        stored = await append_once(self.store, key, entries, occurrences)
        for record, entry in zip(records, entries, strict=True):
            if record is not None and record.entry is entry:
                record.stored = True
        path = next((record.path for record in records if record is not None), None)
        if path is not None:
            self.watcher._newly_stored[path] = self.watcher._newly_stored.get(path, 0) + stored
        self.watcher.stored_entries += stored

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.store.load(key)


class TranscriptFolderWatcher:
    """Follows a Claude projects folder (``<projects>/<project>/...``) by polling, and mirrors what is appended.

    **What it polls.** Every transcript under ``projects_dir`` that maps to a store key (main transcripts
    ``<project>/<session>.jsonl`` and subagent transcripts ``<project>/<session>/subagents/agent-<id>.jsonl``),
    by size, and every subagent sidecar ``agent-<id>.meta.json`` beside such a transcript, by modification time
    and size. Files that appear later are picked up by the next poll. A FIFO or anything else that is not a
    regular file, and a symlink leading out of ``projects_dir``, is not followed (described once as a problem).

    **What it sends.** Only complete lines: bytes after the last newline wait until their line is finished.
    Each complete line that is a JSON object with a string ``type`` becomes one entry; a blank line is skipped
    silently, any other line (invalid JSON, nested too deeply, not an object) is skipped and described once as
    a problem naming file and line (see :meth:`follow`). A new or changed sidecar becomes one
    ``{"type": "agent_metadata", ...}`` entry for its transcript. A file that shrinks or is replaced by another
    file is read again from its start.

    **Where it starts.** With a ``positions`` file that exists, each transcript continues at its saved position
    (one that appeared since is read from its start); ``from_start=True`` reads every file from its start
    anyway (``append_once`` skips what is stored). Without saved positions, what the files hold when the
    watcher is created counts as already sent unless ``from_start=True``. The position file is written when the
    watcher is created, then at most every :data:`POSITIONS_SAVE_SECONDS` while rounds move positions and when
    :meth:`follow` returns (atomically: a temp file renamed over it).

    **Exactly once.** Build the batcher on :meth:`exactly_once_store`; then a position only moves past lines the
    store confirmed, a failed append sends the file back to its first unconfirmed line (read again after
    :data:`RETRY_BACKOFF_SECONDS`), and each round reads at most ``max_pending_lines`` lines and
    ``max_pending_bytes`` bytes. With a batcher on any other store, a line counts as done once its flush
    returned (at most once, as before).

    **How it stops.** :meth:`follow` returns after one poll with ``once=True`` or once ``duration`` seconds
    have passed; otherwise it runs until its caller is cancelled (a cancel scope, or Ctrl-C). It never closes
    the batcher: the caller does, in a ``finally``, so entries already queued still reach the store.

    Creating a watcher scans the folder and :meth:`poll` reads files, both blocking: from async code create
    it with ``await compat.run_sync(TranscriptFolderWatcher, folder)``. A ``projects_dir`` that is not a
    directory raises ``NotADirectoryError``; a position file that belongs to another folder ``ValueError``.
    """

    def __init__(
        self,
        projects_dir: Path,
        *,
        from_start: bool = False,
        positions: Path | None = None,
        positions_label: str | None = None,
        max_pending_lines: int = MAX_PENDING_LINES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        if not projects_dir.is_dir():
            raise NotADirectoryError(
                f"projects folder {projects_dir} does not exist; pass the folder the Claude CLI writes under"
            )
        _require_limit("max_pending_lines", max_pending_lines)
        _require_limit("max_pending_bytes", max_pending_bytes)
        self.projects_dir = projects_dir
        self.positions = positions
        self.positions_label = positions_label
        self.max_pending_lines = max_pending_lines
        self.max_pending_bytes = max_pending_bytes
        self.problems: list[str] = []  # skipped lines and files, for people; follow() drains it
        self.notices: list[str] = []  # outage and limit notes, for people; follow() drains it
        self.stored_entries = 0  # entries newly stored through exactly_once_store (append_once's counts)
        self._tails: dict[Path, _Tail] = {}
        self._sidecars: dict[Path, _Sidecar] = {}
        self._refused: set[Path] = set()  # transcript paths not followed, already described in problems
        self._records: dict[int, _Record] = {}  # id(entry) -> record, for the entries of the current round
        self._rounds: dict[Path, _Round] = {}
        self._sidecar_rounds: dict[Path, _SidecarRound] = {}
        self._newly_stored: dict[Path, int] = {}
        self._limited = False  # the last poll left complete lines unread because of the limits
        self._retry_everything = False
        self._outage = False
        self._limit_reported = False
        self._saved: dict[str, Any] | None = None
        saved = self._load_positions() if positions is not None else None
        if saved is not None:
            self._restore(saved, from_start)
        elif not from_start:
            for path in self._transcripts():
                status = path.stat()
                self._tails[path] = _Tail(
                    offset=_last_line_end(path, status.st_size), device=status.st_dev, inode=status.st_ino
                )
            for sidecar, transcript in self._sidecar_files():
                self._sidecars[sidecar] = self._seen_sidecar(sidecar, transcript)
        if positions is not None:
            self._save_positions()

    # --- the exactly-once path ------------------------------------------------------------------------------

    def exactly_once_store(self, store: SessionStore) -> SessionStore:
        """A store for this watcher's batcher: each append is ``append_once`` with the lines' occurrences, and
        confirms the lines stored (see the class docstring). Only ``append`` and ``load`` are provided."""
        return _ExactlyOnceStore(store, self)

    def _tracks(self, batcher: TranscriptMirrorBatcher) -> bool:
        store = batcher.store
        return isinstance(store, _ExactlyOnceStore) and store.watcher is self

    @property
    def failing_files(self) -> int:
        """How many files (transcripts and sidecars) wait for a retry after a failed append."""
        return sum(1 for tail in self._tails.values() if tail.failures) + sum(
            1 for sidecar in self._sidecars.values() if sidecar.failures
        )

    def unstored_lines(self) -> dict[Path, int]:
        """Complete lines after the position of each file whose last append failed (blocking: reads them)."""
        waiting: dict[Path, int] = {}
        for path, tail in self._tails.items():
            if not tail.failures:
                continue
            try:
                with path.open("rb") as handle:
                    handle.seek(tail.offset)
                    count = 0
                    while piece := handle.read(_READ_PIECE_BYTES):
                        count += piece.count(b"\n")
            except OSError:
                continue
            if count:
                waiting[path] = count
        for sidecar, state in self._sidecars.items():
            if state.failures:
                waiting[sidecar] = 1
        return waiting

    # --- following ------------------------------------------------------------------------------------------

    async def follow(
        self,
        batcher: TranscriptMirrorBatcher,
        *,
        interval: float = POLL_INTERVAL_SECONDS,
        duration: float | None = None,
        once: bool = False,
        on_frame: Callable[[TranscriptFrame], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        on_stored: Callable[[Path, int], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        """Poll every ``interval`` seconds; enqueue each frame on ``batcher`` and flush after each poll that found any.

        ``on_frame(frame)`` is called for each frame after it is enqueued; ``on_problem(text)`` for each skipped
        line or unreadable sidecar (without it they are logged as warnings of this module);
        ``on_stored(path, count)`` after each round that newly stored ``count`` > 0 entries of ``path``
        (through :meth:`exactly_once_store`); ``on_notice(text)`` when reading stops at the limits during an
        outage and when the store takes lines again (logged as info without it). Stops as the class docstring
        says, and also after the first poll that starts once ``stop_requested()`` is true (checked before each
        poll, so lines written before the request are mirrored; that last poll also retries files waiting for
        their backoff). A poll that stopped at the limits while the store works is followed at once by another.
        ``interval`` and ``duration`` must be non-negative (``ValueError`` otherwise).
        """
        _require_seconds("interval", interval)
        if duration is not None:
            _require_seconds("duration", duration)
        report_problem = on_problem if on_problem is not None else logger.warning
        report_notice = on_notice if on_notice is not None else logger.info
        tracking = self._tracks(batcher)
        stop_at = None if duration is None else compat.current_time() + duration
        unsaved, saved_at = False, -math.inf
        while True:
            stopping = stop_requested is not None and stop_requested()  # seen before the poll, so it is the last
            self._retry_everything = stopping or once
            while True:
                frames = await compat.run_sync(self.poll)
                self._enqueue(batcher, frames, on_frame)
                if frames:
                    await batcher.flush()
                if not tracking:
                    for record in self._records.values():
                        record.stored = True
                moved = self._settle()
                for problem in self.problems:
                    report_problem(problem)
                self.problems.clear()
                for notice in self.notices:
                    report_notice(notice)
                self.notices.clear()
                if on_stored is not None:
                    for path, count in self._newly_stored.items():
                        if count:
                            on_stored(path, count)
                self._newly_stored.clear()
                unsaved = unsaved or moved
                if unsaved and compat.current_time() - saved_at >= POSITIONS_SAVE_SECONDS:
                    unsaved, saved_at = await self._save_if_kept(), compat.current_time()
                if not self._limited or self.failing_files:
                    break  # caught up, or the store fails: wait for the next poll
            remaining = None if stop_at is None else stop_at - compat.current_time()
            if once or stopping or (remaining is not None and remaining <= 0):
                if unsaved:
                    await self._save_if_kept()
                return
            await compat.sleep(interval if remaining is None else min(interval, remaining))

    async def _save_if_kept(self) -> bool:
        """Write the position file, if there is one; False (nothing left unsaved)."""
        if self.positions is not None:
            await compat.run_sync(self._save_positions)
        return False

    def _enqueue(
        self,
        batcher: TranscriptMirrorBatcher,
        frames: list[TranscriptFrame],
        on_frame: Callable[[TranscriptFrame], None] | None,
    ) -> None:
        for frame in frames:
            try:
                batcher.enqueue(str(frame.path), frame.entries)
            except (TypeError, ValueError):  # an entry the batcher refuses: send the others, name the bad one
                for entry in frame.entries:
                    try:
                        batcher.enqueue(str(frame.path), [entry])
                    except (TypeError, ValueError) as exc:
                        record = self._records.get(id(entry))
                        where = f"{frame.path}:{record.line_number}" if record is not None else str(frame.path)
                        self.problems.append(f"{where}: cannot be mirrored ({exc})")
                        if record is not None:
                            record.stored = True  # skipped for good, like a line that is not JSON
            if on_frame is not None:
                on_frame(frame)

    # --- reading --------------------------------------------------------------------------------------------

    def poll(self) -> list[TranscriptFrame]:
        """The frames found since the last poll, transcript lines before sidecars. Blocking.

        Skipped lines and unreadable sidecars are added to :attr:`problems`. Reads at most the pending limits;
        files waiting for a retry are left alone until their backoff is over.
        """
        self._records.clear()
        self._rounds.clear()
        self._sidecar_rounds.clear()
        self._limited = False
        budget = _Budget(self.max_pending_lines, self.max_pending_bytes)
        now = time.monotonic()
        frames: list[TranscriptFrame] = []
        for path in self._transcripts():
            tail = self._tails.setdefault(path, _Tail())
            if tail.retry_at > now and not self._retry_everything:
                continue
            if budget.spent:
                self._limited = True
                break
            entries = self._new_entries(path, tail, budget)
            if entries:
                frames.append(TranscriptFrame(path, entries))
        for sidecar, transcript in self._sidecar_files():
            state = self._sidecars.setdefault(sidecar, _Sidecar())
            if state.retry_at > now and not self._retry_everything:
                continue
            try:
                signature = self._signature(sidecar)
                if state.signature == signature:
                    continue
                metadata = read_agent_metadata_sidecar(transcript)
            except OSError as exc:
                self.problems.append(f"cannot read {sidecar}: {exc}")
                continue
            if metadata is None:
                state.signature = signature  # unusable: counts as absent until it changes
                continue
            entry = cast(SessionStoreEntry, {**metadata, "type": AGENT_METADATA_TYPE})
            content = content_hash(entry)
            occurrence = state.occurrence if content == state.content else state.stored.get(content, 0)
            record = _Record(transcript, entry, occurrence, 0, 0)
            self._records[id(entry)] = record
            self._sidecar_rounds[sidecar] = _SidecarRound(record, signature, content)
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

    def _seen_sidecar(self, sidecar: Path, transcript: Path) -> _Sidecar:
        """A sidecar present before a first run without ``from_start``: taken as stored once (so a later change
        back to this content is stored again, and re-sending it is not)."""
        try:
            state = _Sidecar(signature=self._signature(sidecar))
            metadata = read_agent_metadata_sidecar(transcript)
        except OSError:
            return _Sidecar()
        if metadata is not None:
            state.content = content_hash(cast(SessionStoreEntry, {**metadata, "type": AGENT_METADATA_TYPE}))
            state.stored[state.content] = 1
        return state

    def _start_over(self, tail: _Tail) -> None:
        tail.offset, tail.line_number, tail.counter, tail.reported_through = 0, 0, OccurrenceCounter(), 0

    def _new_entries(self, path: Path, tail: _Tail, budget: _Budget) -> list[SessionStoreEntry]:
        try:
            status = path.stat()
            identity = _file_identity(status)
            if tail.inode is not None and (tail.device, tail.inode) != identity and tail.offset:
                self.problems.append(f"{path} was replaced by another file; reading it again from the start")
                self._start_over(tail)
            tail.device, tail.inode = identity
            if status.st_size < tail.offset:
                self.problems.append(f"{path} shrank; reading it again from the start")
                self._start_over(tail)
            if status.st_size == tail.offset:
                return []
            if tail.counter is None:
                tail.counter = self._replay(path, tail.offset)
            complete, more = _complete_lines(path, tail.offset, status.st_size, budget)
        except FileNotFoundError:
            del self._tails[path]
            return []
        except OSError as exc:
            self.problems.append(f"cannot read {path}: {exc}")
            return []
        if more:
            self._limited = True
        if not complete:
            return []
        budget.spend(complete.count(b"\n"), len(complete))
        round_ = _Round(tail.offset, tail.line_number, tail.counter.state())
        self._rounds[path] = round_
        entries: list[SessionStoreEntry] = []
        start = tail.offset
        for raw in complete.splitlines(keepends=True):
            tail.line_number += 1
            line_start, start = start, start + len(raw)
            if not raw.strip():
                continue
            entry, why = _parse_line(raw)
            if entry is None:
                if tail.line_number > tail.reported_through:
                    self.problems.append(f"{path}:{tail.line_number}: {why}")
                continue
            try:
                occurrence = tail.counter.next(entry)
            except (RecursionError, TypeError, ValueError):  # parsed, but cannot be encoded again: skipped
                if tail.line_number > tail.reported_through:
                    self.problems.append(f"{path}:{tail.line_number}: {TOO_DEEP}")
                continue
            record = _Record(path, entry, occurrence, line_start, tail.line_number)
            self._records[id(entry)] = record
            round_.records.append(record)
            entries.append(entry)
        tail.reported_through = max(tail.reported_through, tail.line_number)
        tail.offset = start
        return entries

    def _replay(self, path: Path, end: int) -> OccurrenceCounter:
        """The occurrence counter of the entries in the first ``end`` bytes of ``path`` (its lines already read)."""
        counter = OccurrenceCounter()
        with path.open("rb") as handle:
            rest = b""
            done = 0
            while done < end:
                piece = handle.read(min(_READ_PIECE_BYTES, end - done))
                if not piece:
                    break
                done += len(piece)
                lines = (rest + piece).split(b"\n")
                rest = lines.pop()
                for raw in lines:
                    if raw.strip() and (entry := _parse_line(raw)[0]) is not None:
                        with contextlib.suppress(RecursionError, TypeError, ValueError):  # skipped when read too
                            counter.next(entry)
        return counter

    # --- after a round --------------------------------------------------------------------------------------

    def _settle(self) -> bool:
        """Move each file's position past the lines the store confirmed; send the others back. Whether any
        position or sidecar state changed."""
        now = time.monotonic()
        moved = False
        failed_lines = 0
        for path, round_ in self._rounds.items():
            tail = self._tails.get(path)
            if tail is None:
                continue
            first = next((index for index, record in enumerate(round_.records) if not record.stored), None)
            moved = True
            if first is None:
                tail.failures, tail.retry_at = 0, 0.0
                continue
            counter = OccurrenceCounter.from_state(round_.counts)
            for record in round_.records[:first]:
                counter.next(record.entry)
            unstored = round_.records[first]
            tail.offset, tail.line_number, tail.counter = unstored.start, unstored.line_number - 1, counter
            tail.failures += 1
            tail.retry_at = now + _backoff(tail.failures)
            failed_lines += len(round_.records) - first
        for sidecar, sidecar_round in self._sidecar_rounds.items():
            state = self._sidecars[sidecar]
            record = sidecar_round.record
            if record.stored:
                state.signature, state.content, state.occurrence = (
                    sidecar_round.signature,
                    sidecar_round.content,
                    record.occurrence or 0,
                )
                state.stored[state.content] = max(state.stored.get(state.content, 0), state.occurrence + 1)
                state.failures, state.retry_at = 0, 0.0
                moved = True
            else:
                state.failures += 1
                state.retry_at = now + _backoff(state.failures)
                failed_lines += 1
        failing = self.failing_files
        if failing and self._limited and not self._limit_reported:
            self._limit_reported = True
            self.notices.append(
                f"the store is not taking lines: mirror stops reading at its limit of {self.max_pending_lines} "
                f"lines / {self.max_pending_bytes} bytes pending ({failed_lines} line(s) read and not stored); "
                "the lines wait in their files and reading resumes when the store is back"
            )
        if failing:
            self._outage = True
        elif self._outage:
            self._outage = False
            self._limit_reported = False
            self.notices.append("the store takes lines again; every pending line was stored")
        self._retry_everything = False
        return moved

    # --- the position file ----------------------------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.projects_dir).as_posix()

    def _positions_data(self) -> dict[str, Any]:
        files = {
            self._relative(path): {
                "offset": tail.offset,
                "line": tail.line_number,
                "device": tail.device,
                "inode": tail.inode,
            }
            for path, tail in sorted(self._tails.items())
        }
        sidecars = {
            self._relative(path): {
                "mtime_ns": None if state.signature is None else state.signature[0],
                "size": None if state.signature is None else state.signature[1],
                "content": state.content,
                "occurrence": state.occurrence,
                "stored": dict(sorted(state.stored.items())),
            }
            for path, state in sorted(self._sidecars.items())
        }
        data: dict[str, Any] = {"format": POSITIONS_FORMAT, "folder": str(self.projects_dir.resolve())}
        if self.positions_label is not None:
            data["store"] = self.positions_label
        data["files"] = files
        data["sidecars"] = sidecars
        return data

    def _save_positions(self) -> None:
        """Write the position file atomically (temp file in the same folder, fsync, rename), mode 0600."""
        assert self.positions is not None
        data = self._positions_data()
        if data == self._saved:
            return
        folder = self.positions.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temp_name = tempfile.mkstemp(prefix=f".{self.positions.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=1, ensure_ascii=False)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp_name, self.positions)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        self._saved = data

    def _load_positions(self) -> dict[str, Any] | None:
        """The saved positions, or None when there are none (a file that cannot be used is described as a
        problem and every transcript is read from its start: append_once skips what is stored)."""
        assert self.positions is not None
        try:
            text = self.positions.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(
                f"cannot read the position file {self.positions} ({exc}); reading every transcript from its start "
                "(lines already stored are not stored again)"
            )
            return {"files": {}, "sidecars": {}}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != POSITIONS_FORMAT:
                raise ValueError(f"not a position file of format {POSITIONS_FORMAT!r}")
            files, sidecars = data.get("files"), data.get("sidecars")
            if not isinstance(files, dict) or not isinstance(sidecars, dict):
                raise ValueError("'files' and 'sidecars' must be objects")
        except ValueError as exc:
            self.problems.append(
                f"the position file {self.positions} is damaged ({exc}); reading every transcript from its start "
                "(lines already stored are not stored again)"
            )
            return {"files": {}, "sidecars": {}}
        folder = data.get("folder")
        if folder is not None and folder != str(self.projects_dir.resolve()):
            raise ValueError(
                f"the position file {self.positions} belongs to the folder {folder}, not {self.projects_dir.resolve()}; "
                "give each folder its own position file"
            )
        return data

    def _restore(self, saved: Mapping[str, Any], from_start: bool) -> None:
        files: Mapping[str, Any] = saved.get("files", {})
        for path in self._transcripts():
            tail = _Tail(counter=OccurrenceCounter())
            self._tails[path] = tail
            known = files.get(self._relative(path))
            if from_start or not isinstance(known, dict):
                continue  # from the start: new since the last run (or asked for)
            offset, line = known.get("offset"), known.get("line")
            if not (isinstance(offset, int) and isinstance(line, int) and offset >= 0 and line >= 0):
                continue
            status = path.stat()
            same_file = (known.get("device"), known.get("inode")) in ((status.st_dev, status.st_ino), (None, None))
            if not same_file or status.st_size < offset or not _ends_a_line(path, offset):
                self.problems.append(
                    f"{path} was replaced or rewritten while mirror was stopped; reading it again from the start"
                )
                continue
            tail.offset, tail.line_number, tail.counter = offset, line, None
            tail.reported_through = line
            tail.device, tail.inode = status.st_dev, status.st_ino
        sidecars: Mapping[str, Any] = saved.get("sidecars", {})
        for sidecar, _ in self._sidecar_files():
            state = _Sidecar()
            self._sidecars[sidecar] = state
            known = sidecars.get(self._relative(sidecar))
            if not isinstance(known, dict):
                continue
            stored = known.get("stored")
            if isinstance(stored, dict):
                state.stored = {k: v for k, v in stored.items() if isinstance(v, int) and not isinstance(v, bool)}
            content, occurrence = known.get("content"), known.get("occurrence")
            state.content = content if isinstance(content, str) else None
            state.occurrence = occurrence if isinstance(occurrence, int) and occurrence >= 0 else 0
            mtime_ns, size = known.get("mtime_ns"), known.get("size")
            if not from_start and isinstance(mtime_ns, int) and isinstance(size, int):
                state.signature = (mtime_ns, size)
