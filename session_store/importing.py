"""Importing a Claude Code session from disk into a store (reference §11), each source line exactly once.

:func:`import_session_to_store` finds ``<projects>/<project>/<session_id>.jsonl`` (in ``directory``'s project
folder and its git worktrees, or in every project folder); :func:`import_transcript_file` takes that path
directly (the command line finds each file once and imports it by path). The session's subagent transcripts
under ``<project>/<session_id>/subagents/**`` go first, in batches, each followed by its ``.meta.json`` sidecar
as an ``agent_metadata`` entry; the main transcript goes last, in one call. Every line is written with
:func:`session_store.exactly_once.append_once`, so re-running an import, re-running it after ``kill -9``,
Ctrl-C or cancellation, and two imports at once store each line once, with or without a ``uuid``; and since a
session is listed only once its main transcript exists, an interrupted import is never listed partial (the
project's stores write one call atomically). See "Exactly-once import and mirror" in docs/behaviour.md.
``sdk_order=True`` (what :mod:`session_store.sdk.session_import` uses) keeps the SDK's order and batching
instead: main transcript first, every transcript in batches.

Keys are exactly those :func:`session_store.keys.file_path_to_session_key` gives for the files (the project key
is the name of the folder the file was found in), so an imported session cannot be told apart from a
live-mirrored one.

SPEC §4 decision 7 (the reference stops with a bare ``JSONDecodeError``):

- A line that is not valid UTF-8 JSON (``NaN`` and ``Infinity`` included: JSON has no such numbers), nested too
  deeply or too large to parse, or not a JSON object, raises :class:`InvalidLineError` (a ``ValueError``)
  naming the file and line number. Every file of the session is checked before the first write, so the store
  is left unchanged (issue 10; this costs one extra parse of the subagent files). Should a file change between
  the check and the import, what was written stays, and re-importing stores only what is missing.
- With ``skip_invalid_lines=True`` such lines are skipped instead; the returned :class:`ImportResult` lists
  them (and each is logged as a warning).
- A transcript (main or subagent) must be a regular file inside ``projects_dir``: a directory or FIFO named
  ``*.jsonl``, a symlink leading out of ``projects_dir``, or a file or folder name no store can key (one that
  is not valid UTF-8), raises ``ValueError`` naming it, also before the first ``append``. Symlinked folders inside are followed once (a link loop is not walked twice).

Batches hold at most ``batch_size`` entries (a value ``<= 0`` means the default, 500) and about
:data:`~session_store.batcher.MAX_PENDING_BYTES` of line text (counted in UTF-8 bytes, where the reference
counts characters). All file-system work runs in worker threads through ``compat.run_sync``, one batch at a
time, so the event loop never blocks; memory is bounded by one batch, and by the main transcript, which is held
whole to be written in one call (``sdk_order=True``: one batch).
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import compat

from .batcher import MAX_PENDING_BYTES, MAX_PENDING_ENTRIES
from .exactly_once import OccurrenceCounter, append_once
from .keys import (
    MAX_SANITIZED_LENGTH,
    canonicalize_path,
    checked_directory,
    checked_path,
    default_projects_dir,
    sanitize_path,
    validate_session_key,
    validate_uuid,
)
from .metadata import AGENT_METADATA_TYPE, read_agent_metadata_sidecar
from .types import SessionKey, SessionStore, SessionStoreEntry
from .validation import loads_strict_json, require_uuid

__all__ = [
    "GIT_WORKTREE_TIMEOUT_SECONDS",
    "EXPECTED_LAYOUT",
    "ImportResult",
    "InvalidLineError",
    "SkippedLine",
    "find_session_file",
    "import_session_to_store",
    "import_transcript_file",
]

logger = logging.getLogger(__name__)

GIT_WORKTREE_TIMEOUT_SECONDS = 5.0
"""How long ``git worktree list`` may take when looking for a session in the worktrees of ``directory``."""

_TRANSCRIPT_SUFFIX = ".jsonl"

EXPECTED_LAYOUT = "<projects>/<project>/<session-id>.jsonl"
"""Where import looks for main transcripts (``<projects>`` is e.g. ``~/.claude/projects``)."""


class InvalidLineError(ValueError):
    """A transcript line that cannot be imported (not JSON, too deep or too large to parse, not an object).

    Names the file and line; ``skip_invalid_lines=True`` (``--skip-invalid-lines``) skips such lines instead.
    """


@dataclass(frozen=True)
class SkippedLine:
    """A transcript line that ``skip_invalid_lines=True`` left out: where it is and why."""

    path: Path
    line_number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.reason}"


@dataclass
class ImportResult:
    """What :func:`import_session_to_store` wrote.

    ``project_key`` is the key the session was written under; ``transcripts`` counts the files imported (the
    main transcript plus each subagent transcript); ``entries`` counts the entries read and sent to the store
    (``agent_metadata`` entries included); ``stored`` counts those the store did not hold yet (what
    ``append_once`` newly stored: 0 when re-importing an unchanged session); ``skipped_lines`` lists the
    invalid lines skipped (always empty unless ``skip_invalid_lines=True``).
    """

    session_id: str
    project_key: str
    transcripts: int = 0
    entries: int = 0
    stored: int = 0
    skipped_lines: list[SkippedLine] = field(default_factory=list)


# --- finding the file (blocking; run in a worker thread) ----------------------------------------------------


def _non_empty_transcript(project_dir: Path, session_id: str) -> Path | None:
    """The session's transcript in ``project_dir`` if it is a non-empty file, or anything that is not a file
    (a directory, a FIFO), which :func:`_require_transcript_file` then rejects by name."""
    candidate = project_dir / f"{session_id}{_TRANSCRIPT_SUFFIX}"
    try:
        status = candidate.stat()
    except OSError:
        return None
    return candidate if status.st_size > 0 or not stat.S_ISREG(status.st_mode) else None


def _require_transcript_file(path: Path, root: Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a regular file that resolves inside ``root`` (blocking)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(
            f"{path} leads to {resolved}, outside the projects folder {root}; import only transcripts inside it "
            "(copy the file there instead of linking it)"
        )
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ValueError(f"{path} is {kind}, not a transcript file; remove or rename it, then import again")


def _check_session_files(paths: list[Path], root: Path, skip_invalid_lines: bool) -> None:
    """Every check of the import that can fail, run before anything is appended (blocking).

    Each path must pass :func:`_require_transcript_file`; unless ``skip_invalid_lines``, every line is parsed
    too, so an invalid one raises here (with its file and line number) while the store is still unchanged.
    """
    for path in paths:
        _require_transcript_file(path, root)
    if skip_invalid_lines:
        return
    for path in paths:
        batches = _TranscriptBatches(path, MAX_PENDING_ENTRIES, skip_invalid_lines=False, skipped=[])
        try:
            while batches.read_batch():
                pass
        finally:
            batches.close()


def _project_dir(projects_dir: Path, project_path: str) -> Path | None:
    """The folder of a project path; for keys cut at 200 characters, any folder with the same cut prefix
    (another hash implementation may have made the suffix)."""
    sanitized = sanitize_path(project_path)
    exact = projects_dir / sanitized
    if exact.is_dir():
        return exact
    if len(sanitized) <= MAX_SANITIZED_LENGTH:
        return None
    prefix = sanitized[:MAX_SANITIZED_LENGTH] + "-"
    try:
        return next((p for p in sorted(projects_dir.iterdir()) if p.is_dir() and p.name.startswith(prefix)), None)
    except OSError:
        return None


def _git_worktree_paths(cwd: str) -> list[str]:
    """The worktrees of the git repository containing ``cwd``; ``[]`` without git or outside a repository."""
    try:
        listed = subprocess.run(
            ["git", "worktree", "list", "--porcelain"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_WORKTREE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if listed.returncode != 0:
        return []
    prefix = "worktree "
    return [
        unicodedata.normalize("NFC", line[len(prefix) :])
        for line in listed.stdout.splitlines()
        if line.startswith(prefix)
    ]


def find_session_file(
    session_id: str, directory: str | os.PathLike[str] | None, projects_dir: str | os.PathLike[str]
) -> Path | None:
    """The first non-empty ``<session_id>.jsonl`` under ``projects_dir``, or None (blocking).

    With ``directory``: its project folder, then the folders of its git worktrees. Without: every project
    folder, in name order.
    """
    root = Path(projects_dir)
    directory = checked_directory(directory)
    if directory:
        canonical = canonicalize_path(directory)
        for project_path in [canonical, *(p for p in _git_worktree_paths(canonical) if p != canonical)]:
            project_dir = _project_dir(root, project_path)
            found = _non_empty_transcript(project_dir, session_id) if project_dir else None
            if found is not None:
                return found
        return None
    try:
        project_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return None
    return next((f for p in project_dirs if (f := _non_empty_transcript(p, session_id)) is not None), None)


def _subagent_transcripts(directory: Path) -> list[Path]:
    """Every ``*.jsonl`` below ``directory``, depth first, each folder in name order; ``[]`` if it is missing."""

    walked: set[Path] = set()

    def walk(folder: Path) -> Iterator[Path]:
        try:
            resolved = folder.resolve()
            children = sorted(folder.iterdir(), key=lambda child: child.name)
        except OSError:
            return
        if resolved in walked:  # a symlink loop
            return
        walked.add(resolved)
        for child in children:
            if child.is_dir():
                yield from walk(child)
            elif child.name.endswith(_TRANSCRIPT_SUFFIX) and os.path.lexists(child):
                yield child  # a FIFO or a dangling link too: the checks reject it by name

    return list(walk(directory))


# --- reading a transcript in batches --------------------------------------------------------------------------


class _TranscriptBatches:
    """Reads one JSONL transcript batch by batch; each :meth:`read_batch` call is blocking (worker thread).

    Lines are split on ``\\n`` (a trailing ``\\r`` is dropped) and decoded one at a time, so an invalid line
    is reported with its number. Empty lines are skipped; anything else must be a JSON object. Each entry comes
    with its occurrence (:class:`~session_store.exactly_once.OccurrenceCounter`, counted over the whole file).
    """

    def __init__(self, path: Path, batch_size: int, skip_invalid_lines: bool, skipped: list[SkippedLine]) -> None:
        self._path = path
        self._batch_size = batch_size
        self._skip_invalid_lines = skip_invalid_lines
        self._skipped = skipped
        self._file: IO[bytes] | None = None
        self._line_number = 0
        self._occurrences = OccurrenceCounter()

    def _parse(self, raw: bytes) -> tuple[dict[str, Any], int | None] | None:
        try:
            entry = loads_strict_json(raw.decode("utf-8"))
            if not isinstance(entry, dict):
                raise ValueError(f"a transcript line must be a JSON object, not {type(entry).__name__}")
            occurrence = self._occurrences.next(entry)
        except RecursionError as error:  # canonical JSON of an entry that only just parsed
            reason = f"invalid transcript line (nested too deeply to process: {error})"
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too deep or too large to parse
            reason = f"invalid transcript line ({error})"
        else:
            return entry, occurrence
        if not self._skip_invalid_lines:
            raise InvalidLineError(
                f"{self._path}:{self._line_number}: {reason}; fix or delete the line, or import with "
                "skip_invalid_lines=True (--skip-invalid-lines) to skip such lines"
            )
        skipped = SkippedLine(self._path, self._line_number, reason)
        logger.warning("skipping %s", skipped)
        self._skipped.append(skipped)
        return None

    def read_batch(self) -> tuple[list[SessionStoreEntry], list[int | None]]:
        """The next batch (up to ``batch_size`` entries or about MAX_PENDING_BYTES) and the occurrence of each
        of its entries; ``([], [])`` at the end."""
        if self._file is None:
            self._file = self._path.open("rb")
        batch: list[SessionStoreEntry] = []
        occurrences: list[int | None] = []
        batch_bytes = 0
        for line in self._file:
            self._line_number += 1
            raw = line.rstrip(b"\n").removesuffix(b"\r")
            if not raw:
                continue
            parsed = self._parse(raw)
            if parsed is None:
                continue
            batch.append(cast(SessionStoreEntry, parsed[0]))
            occurrences.append(parsed[1])
            batch_bytes += len(raw)
            if len(batch) >= self._batch_size or batch_bytes >= MAX_PENDING_BYTES:
                break
        return batch, occurrences

    def read_all(self) -> tuple[list[SessionStoreEntry], list[int | None]]:
        """Every remaining entry of the file and its occurrence (blocking)."""
        entries: list[SessionStoreEntry] = []
        occurrences: list[int | None] = []
        while True:
            batch, counts = self.read_batch()
            if not batch:
                return entries, occurrences
            entries += batch
            occurrences += counts

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _read_whole_transcript(
    path: Path, skip_invalid_lines: bool, skipped: list[SkippedLine]
) -> tuple[list[SessionStoreEntry], list[int | None]]:
    """Every entry of ``path`` and its occurrence, in one list (blocking)."""
    lines = _TranscriptBatches(path, MAX_PENDING_ENTRIES, skip_invalid_lines, skipped)
    try:
        return lines.read_all()
    finally:
        lines.close()


async def _import_transcript(
    store: SessionStore,
    path: Path,
    key: SessionKey,
    batch_size: int,
    skip_invalid_lines: bool,
    result: ImportResult,
) -> None:
    """Send one transcript in batches, each through ``append_once`` with the file's occurrences."""
    batches = _TranscriptBatches(path, batch_size, skip_invalid_lines, result.skipped_lines)
    try:
        while True:
            batch, occurrences = await compat.run_sync(batches.read_batch)
            if not batch:
                break
            result.stored += await append_once(store, key, batch, occurrences)
            result.entries += len(batch)
    finally:
        batches.close()
    result.transcripts += 1


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int (<= 0: the default, {MAX_PENDING_ENTRIES}), got {batch_size!r}")
    return batch_size if batch_size > 0 else MAX_PENDING_ENTRIES


def _check_store(store: object) -> None:
    if not callable(getattr(store, "append", None)):
        raise TypeError(f"store must be a SessionStore with an append() method, got {type(store).__name__}")


async def import_session_to_store(
    session_id: str,
    store: SessionStore,
    *,
    directory: str | os.PathLike[str] | None = None,
    include_subagents: bool = True,
    batch_size: int = MAX_PENDING_ENTRIES,
    skip_invalid_lines: bool = False,
    projects_dir: str | os.PathLike[str] | None = None,
    sdk_order: bool = False,
) -> ImportResult:
    """Replay the local transcript of ``session_id`` (and its subagents) into ``store``, each line once.

    ``directory`` selects the project (and its git worktrees) to look in; without it every project folder
    under ``projects_dir`` is searched (the first non-empty transcript, in folder-name order; to import one
    file by its path, use :func:`import_transcript_file`). ``projects_dir`` defaults to the Claude CLI's
    (``$CLAUDE_CONFIG_DIR/projects`` or ``~/.claude/projects``). ``batch_size`` caps the entries per store call
    for subagent transcripts (``<= 0``: the default, 500); the main transcript is written last, in one call.
    ``sdk_order=True`` does as the SDK does instead: main transcript first, every transcript in batches (an
    interrupted import may then leave a partial main transcript listed until the next import completes it).
    With ``include_subagents`` (the default) the subagent transcripts and their ``.meta.json`` sidecars are
    imported too; an unreadable or non-object sidecar counts as absent.

    Every line goes through :func:`session_store.exactly_once.append_once`: importing again stores only what
    the store does not hold yet (``ImportResult.stored``).

    Raises ``TypeError`` for a non-str ``session_id``, a non-int ``batch_size`` or a store without ``append``;
    ``ValueError`` for a non-UUID ``session_id``, an invalid transcript line (:class:`InvalidLineError`, unless
    ``skip_invalid_lines``) or a transcript that is not a regular file inside ``projects_dir`` (all before the
    first write, so the store is unchanged), and ``FileNotFoundError`` when no non-empty transcript is found.
    """
    require_uuid(session_id, "session_id")
    batch_size = _check_batch_size(batch_size)
    _check_store(store)
    directory = checked_directory(directory)
    root = Path(projects_dir) if projects_dir is not None else default_projects_dir()
    found = await compat.run_sync(find_session_file, session_id, directory, root)
    if found is None:
        where = f"the project of {directory!r}" if directory else "any project"
        raise FileNotFoundError(
            f"Session {session_id} not found in {where} under {root}; check the id, the directory, or CLAUDE_CONFIG_DIR"
        )
    return await _import_session(store, found, root, include_subagents, batch_size, skip_invalid_lines, sdk_order)


async def import_transcript_file(
    path: str | os.PathLike[str],
    store: SessionStore,
    *,
    projects_dir: str | os.PathLike[str] | None = None,
    include_subagents: bool = True,
    batch_size: int = MAX_PENDING_ENTRIES,
    skip_invalid_lines: bool = False,
) -> ImportResult:
    """Import the session whose main transcript is ``path`` (``<projects_dir>/<project>/<session-id>.jsonl``).

    The session id is the file name, the project key the name of its folder: two projects holding the same
    session id are two sessions, each imported from its own file. ``projects_dir`` defaults to the folder two
    levels up; the file must be inside it. Otherwise as :func:`import_session_to_store` (``FileNotFoundError``
    for a missing or empty file, ``ValueError`` for a file name that is not ``<uuid>.jsonl``).
    """
    file = Path(checked_path(path, "path"))
    batch_size = _check_batch_size(batch_size)
    _check_store(store)
    if file.suffix != _TRANSCRIPT_SUFFIX or validate_uuid(file.stem) is None:
        raise ValueError(f"{file} is not a main transcript: expected {EXPECTED_LAYOUT}")
    root = Path(projects_dir) if projects_dir is not None else file.parent.parent
    if await compat.run_sync(_non_empty_transcript, file.parent, file.stem) is None:
        raise FileNotFoundError(f"{file} is missing or empty; expected a transcript at {EXPECTED_LAYOUT}")
    return await _import_session(store, file, root, include_subagents, batch_size, skip_invalid_lines, False)


async def _import_session(
    store: SessionStore,
    found: Path,
    root: Path,
    include_subagents: bool,
    batch_size: int,
    skip_invalid_lines: bool,
    sdk_order: bool,
) -> ImportResult:
    session_id = found.stem
    project_key = found.parent.name
    result = ImportResult(session_id=session_id, project_key=project_key)
    session_dir = found.parent / session_id
    subagents = await compat.run_sync(_subagent_transcripts, session_dir / "subagents") if include_subagents else []
    main_key: SessionKey = {"project_key": project_key, "session_id": session_id}
    subkeys: list[SessionKey] = [
        {**main_key, "subpath": path.relative_to(session_dir).as_posix().removesuffix(_TRANSCRIPT_SUFFIX)}
        for path in subagents
    ]
    for key in (main_key, *subkeys):  # a folder or file name no store can key (NUL, undecodable bytes)
        validate_session_key(key)

    if sdk_order:
        await compat.run_sync(_check_session_files, [found, *subagents], root, skip_invalid_lines)
        metadata_of = [await compat.run_sync(read_agent_metadata_sidecar, path) for path in subagents]
        await _import_transcript(store, found, main_key, batch_size, skip_invalid_lines, result)
        await _import_subagents(store, subagents, subkeys, metadata_of, batch_size, skip_invalid_lines, result)
        return result

    # Checks first (the store stays unchanged when one fails), then the subagents, then the main transcript in
    # one call: a session is listed once its main transcript exists, and then it is complete.
    await compat.run_sync(_require_transcript_file, found, root)
    main_skipped: list[SkippedLine] = []
    main_entries, main_occurrences = await compat.run_sync(
        _read_whole_transcript, found, skip_invalid_lines, main_skipped
    )
    await compat.run_sync(_check_session_files, subagents, root, skip_invalid_lines)
    metadata_of = [await compat.run_sync(read_agent_metadata_sidecar, path) for path in subagents]
    await _import_subagents(store, subagents, subkeys, metadata_of, batch_size, skip_invalid_lines, result)
    result.stored += await append_once(store, main_key, main_entries, main_occurrences)
    result.entries += len(main_entries)
    result.transcripts += 1
    result.skipped_lines[:0] = main_skipped
    return result


async def _import_subagents(
    store: SessionStore,
    subagents: list[Path],
    subkeys: list[SessionKey],
    metadata_of: list[dict[str, Any] | None],
    batch_size: int,
    skip_invalid_lines: bool,
    result: ImportResult,
) -> None:
    for path, key, metadata in zip(subagents, subkeys, metadata_of, strict=True):
        await _import_transcript(store, path, key, batch_size, skip_invalid_lines, result)
        if metadata is not None:
            # the marker goes last so a stray "type" in the sidecar cannot shadow it
            marker = cast(SessionStoreEntry, {**metadata, "type": AGENT_METADATA_TYPE})
            result.stored += await append_once(store, key, [marker], [0])
            result.entries += 1
