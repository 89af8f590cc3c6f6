"""Resume from a store: write a stored session into a temporary config dir the Claude CLI can resume from (§7).

The CLI resumes only from a local transcript file, but with a session store the transcript lives in the store.
:func:`materialize_resume_session` loads the session (an explicit ``resume`` id, or for ``continue_conversation``
the most recent main session of the project), writes it into a fresh private temp dir laid out like
``~/.claude/``, and returns a :class:`MaterializedResume`. The caller starts the CLI with
``CLAUDE_CONFIG_DIR=<config_dir>`` and ``--resume=<resume_session_id>``, mirrors through
``build_mirror_batcher(store, materialized.projects_dir, ...)``, and awaits ``materialized.cleanup()`` once the
CLI has exited.

Layout of the temp dir (directories 0o700, files 0o600)::

    <config_dir>/projects/<project_key>/<session_id>.jsonl                 every loaded entry, one per line
    <config_dir>/projects/<project_key>/<session_id>/<subpath>.jsonl       each subagent transcript (§7.6)
    <config_dir>/projects/<project_key>/<session_id>/<subpath>.meta.json   its agent_metadata, minus ``type``

Subpaths come from the store and are never trusted: anything that could leave the session directory (empty,
absolute, drive or UNC prefixed, ``.``/``..`` segments, NUL, or resolving outside) is skipped with a warning and
never loaded (§7.7). If anything fails after the temp dir exists, cancellation included, the dir is removed
before the error propagates.

Store calls run under ``load_timeout_ms`` each through :func:`with_timeout`, which turns a timeout or an adapter
error into ``RuntimeError`` naming the call (§7.5). SPEC §4 decision 3: ``load_timeout_ms <= 0`` times out at
once, before the store is called (the reference only times out at the store's first checkpoint, which an
in-memory store never reaches).

Not part of this module: the Claude-CLI specific copying of credentials and settings (§7.10). A caller that needs
its own files in the temp dir passes ``seed_config_dir``, a sync or async callable that gets the temp dir's path
after the main transcript is written.
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import math
import ntpath
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import compat

from .keys import project_key_for_directory, validate_uuid
from .metadata import agent_metadata_sidecar_path, split_agent_metadata
from .store_results import checked_store_result
from .types import SessionKey, SessionListSubkeysKey, SessionStore, SessionStoreEntry, store_implements
from .validation import require_number, require_str

__all__ = [
    "DEFAULT_LOAD_TIMEOUT_MS",
    "RESUME_DIR_PREFIX",
    "MaterializedResume",
    "SeedConfigDir",
    "materialize_resume_session",
    "remove_tree",
    "with_timeout",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LOAD_TIMEOUT_MS = 60_000
"""Default time limit of each store call made while materializing, in milliseconds."""

RESUME_DIR_PREFIX = "claude-resume-"
"""Name prefix of the temp dirs created in the system temp directory."""

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_TRANSIENT_RMTREE_ERRNOS = frozenset(
    {errno.EBUSY, errno.EMFILE, errno.ENFILE, errno.ENOTEMPTY, errno.EPERM, errno.EACCES}
)
"""rmtree failures worth retrying: a handle briefly held (Windows antivirus or indexer) or out of descriptors."""

_UNWRITABLE_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR})
"""Write failures caused by a subpath's name (too long, or a file where a folder must be, or the reverse):
that subpath is skipped with a warning like an unsafe one, the rest of the session is still written."""

SeedConfigDir = Callable[[Path], Awaitable[object] | None]
"""``seed_config_dir(config_dir)``: copy the caller's own config or auth files into the temp dir."""


@dataclass
class MaterializedResume:
    """A stored session written to a temp config dir (the result of :func:`materialize_resume_session`).

    ``config_dir``: the temp dir laid out like ``~/.claude/``; start the CLI with ``CLAUDE_CONFIG_DIR`` set to it.
    ``resume_session_id``: the session to pass as ``--resume`` (for ``continue_conversation``, the one chosen).
    ``cleanup``: removes ``config_dir`` (best effort, never raises but cancellation, safe to call twice); await
    it after the CLI has exited.
    """

    config_dir: Path
    resume_session_id: str
    cleanup: Callable[[], Awaitable[None]]

    @property
    def projects_dir(self) -> Path:
        """``config_dir / "projects"``: what the CLI writes under, and what the mirror batcher maps from."""
        return self.config_dir / "projects"


async def materialize_resume_session(
    store: SessionStore | None,
    *,
    resume: str | None = None,
    continue_conversation: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    load_timeout_ms: float = DEFAULT_LOAD_TIMEOUT_MS,
    seed_config_dir: SeedConfigDir | None = None,
) -> MaterializedResume | None:
    """Load a session from ``store`` and write it to a new temp config dir (reference §7.3).

    ``resume`` (a session id) wins over ``continue_conversation`` (the most recently modified main session of
    the project of ``cwd``, default the process cwd). Returns None, meaning "start without the store", when
    there is no store, neither option is set, ``resume`` is not a UUID, the session loads as None or ``[]``,
    or ``continue_conversation`` finds no candidate.

    Raises ``RuntimeError`` when a store call fails or exceeds ``load_timeout_ms`` (``<= 0``: at once, without
    calling the store); ``ValueError`` for ``continue_conversation`` with a store lacking ``list_sessions`` or
    for a NaN timeout; ``TypeError`` for a ``resume`` that is not a str, a timeout that is not a number, or
    entries that are not JSON-serializable; and whatever ``seed_config_dir`` raises. The temp dir never
    outlives a failure or a cancellation.
    """
    if store is None or (resume is None and not continue_conversation):
        return None
    if resume is not None and validate_uuid(require_str(resume, "resume")) is None:
        return None  # used as a file name below; a non-UUID could traverse
    require_number(load_timeout_ms, "load_timeout_ms", "milliseconds")
    if resume is None and not store_implements(store, "list_sessions"):
        raise ValueError(
            "continue_conversation with a session store requires the store to implement list_sessions(); "
            "pass resume=<session id> instead"
        )
    timeout_s = load_timeout_ms / 1000
    project_key = project_key_for_directory(cwd)
    if resume is not None:
        found = await _load_session(store, project_key, resume, timeout_s)
    else:
        found = await _most_recent_main_session(store, project_key, timeout_s)
    if found is None:
        return None
    session_id, entries = found

    config_dir = Path(tempfile.mkdtemp(prefix=RESUME_DIR_PREFIX))
    try:
        await _write_session(store, config_dir, project_key, session_id, entries, timeout_s, seed_config_dir)
    except BaseException:
        await remove_tree(config_dir)
        raise

    async def cleanup() -> None:
        await remove_tree(config_dir)

    return MaterializedResume(config_dir=config_dir, resume_session_id=session_id, cleanup=cleanup)


# --- store calls with a time limit (§7.4, §7.5) ---------------------------------------------------------------


async def with_timeout(awaitable: Awaitable[T], timeout_s: float, what: str) -> T:
    """Await ``awaitable`` within ``timeout_s`` seconds, as one step of resume materialization (reference §7.5).

    Raises ``RuntimeError("<what> timed out after <ms>ms during resume materialization")`` when the deadline
    passes, at once for ``timeout_s <= 0`` (the awaitable is then closed unstarted, so it never runs), and
    ``RuntimeError("<what> failed during resume materialization: <Type>: <error>")`` for any other error, both
    chained to the original. A ``TimeoutError`` the awaitable raises itself (a socket timeout, say) counts as
    a failure, not as our timeout. Cancellation propagates unchanged. ``ValueError`` for NaN.
    """
    if math.isnan(timeout_s) or timeout_s <= 0:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        if math.isnan(timeout_s):
            raise ValueError(f"timeout_s for {what} must be a number of seconds, got NaN; pass math.inf for no limit")
        raise _timed_out(what, timeout_s)
    try:
        with compat.fail_after(timeout_s) as deadline:
            result = await awaitable
    except TimeoutError as exc:
        if deadline.cancelled_caught:
            raise _timed_out(what, timeout_s) from exc
        raise _failed(what, exc) from exc
    except Exception as exc:
        raise _failed(what, exc) from exc
    return result


def _timed_out(what: str, timeout_s: float) -> RuntimeError:
    return RuntimeError(f"{what} timed out after {max(0, int(timeout_s * 1000))}ms during resume materialization")


def _failed(what: str, exc: BaseException) -> RuntimeError:
    return RuntimeError(f"{what} failed during resume materialization: {type(exc).__name__}: {exc}")


async def _ask_store(what: str, timeout_s: float, method: Callable[[Any], Awaitable[T]], argument: Any) -> T:
    """``await method(argument)`` through :func:`with_timeout`; the method is not even called once timed out."""
    if timeout_s <= 0:
        raise _timed_out(what, timeout_s)  # SPEC §4 decision 3
    try:
        awaitable = method(argument)
    except Exception as exc:  # a store method that fails before returning its awaitable
        raise _failed(what, exc) from exc
    return await with_timeout(awaitable, timeout_s, what)


async def _load_session(
    store: SessionStore, project_key: str, session_id: str, timeout_s: float
) -> tuple[str, list[SessionStoreEntry]] | None:
    """``(session_id, entries)``, or None when the main transcript loads as None or empty."""
    key: SessionKey = {"project_key": project_key, "session_id": session_id}
    what = f"SessionStore.load() for session {session_id}"
    entries = checked_store_result("load", await _ask_store(what, timeout_s, store.load, key))
    return (session_id, entries) if entries else None


async def _most_recent_main_session(
    store: SessionStore, project_key: str, timeout_s: float
) -> tuple[str, list[SessionStoreEntry]] | None:
    """The newest session (by store mtime; ties keep listing order) that is a UUID, non-empty and no sidechain.

    Sidechains are mirrored as top-level keys and are often the newest; ``--continue`` must skip them. Any
    failing call aborts the search (no skip-on-error), like the reference.
    """
    listing = checked_store_result(
        "list_sessions", await _ask_store("SessionStore.list_sessions()", timeout_s, store.list_sessions, project_key)
    )
    for row in sorted(listing, key=lambda row: row["mtime"], reverse=True):  # stable, also reversed
        if validate_uuid(row["session_id"]) is None:
            continue
        found = await _load_session(store, project_key, row["session_id"], timeout_s)
        if found is None:
            continue
        first = found[1][0]
        if isinstance(first, dict) and first.get("isSidechain") is True:
            continue
        return found
    return None


# --- writing the temp dir (§7.6-§7.8) ---------------------------------------------------------------------------


async def _write_session(
    store: SessionStore,
    config_dir: Path,
    project_key: str,
    session_id: str,
    entries: list[SessionStoreEntry],
    timeout_s: float,
    seed_config_dir: SeedConfigDir | None,
) -> None:
    project_dir = config_dir / "projects" / project_key
    await compat.run_sync(_write_transcript, config_dir, project_dir / f"{session_id}.jsonl", entries, None)
    if seed_config_dir is not None:
        outcome = seed_config_dir(config_dir)
        if inspect.isawaitable(outcome):
            await outcome
    if store_implements(store, "list_subkeys"):
        await _write_subkeys(store, config_dir, project_dir / session_id, project_key, session_id, timeout_s)


async def _write_subkeys(
    store: SessionStore, config_dir: Path, session_dir: Path, project_key: str, session_id: str, timeout_s: float
) -> None:
    """Write every safe subpath of the session: its transcript lines and its agent_metadata sidecar (§7.6)."""
    session: SessionListSubkeysKey = {"project_key": project_key, "session_id": session_id}
    subpaths = checked_store_result(
        "list_subkeys",
        await _ask_store(
            f"SessionStore.list_subkeys() for session {session_id}", timeout_s, store.list_subkeys, session
        ),
    )
    pending: list[_SubpathFile] = []
    pending_entries = 0
    for subpath in subpaths:
        if not _is_safe_subpath(subpath, session_dir):
            logger.warning("[SessionStore] skipping unsafe subpath from list_subkeys: %r", subpath)
            continue
        key: SessionKey = {"project_key": project_key, "session_id": session_id, "subpath": subpath}
        what = f"SessionStore.load() for session {session_id} subpath {subpath}"
        entries = checked_store_result("load", await _ask_store(what, timeout_s, store.load, key))
        if not entries:
            continue
        metadata, transcript = split_agent_metadata(entries)
        pending.append((subpath, _subpath_transcript(session_dir, subpath), transcript, metadata))
        pending_entries += len(entries)
        if pending_entries >= SUBPATH_WRITE_BATCH_ENTRIES:
            await compat.run_sync(_write_subpath_files, config_dir, pending)
            pending, pending_entries = [], 0
    if pending:
        await compat.run_sync(_write_subpath_files, config_dir, pending)


SUBPATH_WRITE_BATCH_ENTRIES = 20_000
"""Subagent transcripts loaded are written together, in one worker-thread call, once they hold this many entries
(and at the end): one thread hop for many small files, with a bound on what is held in memory meanwhile."""

_SubpathFile = tuple[str, Path, list[Any], dict[str, Any] | None]


def _write_subpath_files(config_dir: Path, files: list[_SubpathFile]) -> None:
    """Blocking: write each subagent transcript and sidecar; a subpath whose name cannot be a file here (too long,
    a file where a folder must be) is skipped with a warning, the others are still written."""
    for subpath, path, transcript, metadata in files:
        try:
            _write_transcript(config_dir, path, transcript, metadata)
        except OSError as error:
            if error.errno not in _UNWRITABLE_NAME_ERRNOS:
                raise
            logger.warning(
                "[SessionStore] skipping subpath from list_subkeys that cannot be a file name here: %r (%s)",
                subpath,
                error,
            )


def _subpath_transcript(session_dir: Path, subpath: str) -> Path:
    """``<session_dir>/<subpath>.jsonl``: the one expression both the safety check and the writer use."""
    target = session_dir / subpath
    return target.with_name(target.name + ".jsonl")


_SEGMENT_SEPARATORS = re.compile(r"[\\/]")


def _is_safe_subpath(subpath: object, session_dir: Path) -> bool:
    """Whether a store-provided subpath stays inside ``session_dir`` on every OS (reference §7.7), and names one
    file only: no empty, ``.`` or ``..`` segment between its ``/`` or ``\\`` separators."""
    if not isinstance(subpath, str) or not subpath or "\x00" in subpath:
        return False
    if subpath.startswith(("/", "\\")) or Path(subpath).is_absolute() or ntpath.splitdrive(subpath)[0]:
        return False
    # an empty segment ("a//b", "a/") would alias another subpath's file ("a/b", "a")
    if any(segment in ("", ".", "..") for segment in _SEGMENT_SEPARATORS.split(subpath)):
        return False
    try:
        _subpath_transcript(session_dir, subpath).resolve().relative_to(session_dir.resolve())
    except (ValueError, OSError):
        return False
    return True


def _compact_line_encoder() -> Callable[[Any], str]:
    """``json.dumps(entry, separators=(",", ":"))`` without building a new encoder per entry (as ``json.dumps``
    does): the same text and the same errors (``TypeError`` for a value JSON cannot carry, ``ValueError`` for an
    entry that holds itself). Its cycle table is its own, so build one per thread (one per file written)."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has _json
        return json.JSONEncoder(separators=(",", ":")).encode
    # markers (cycle table), default, encoder, indent, key separator, item separator, sort_keys, skipkeys, allow_nan
    chunks = c_make_encoder(
        {}, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    join = "".join
    return lambda entry: join(chunks(entry, 0))


def _write_transcript(config_dir: Path, path: Path, transcript: list[Any], metadata: dict[str, Any] | None) -> None:
    """Blocking: write ``transcript`` as compact JSON lines (if any) and ``metadata`` as its sidecar (if any)."""
    if transcript:
        _make_private_dirs(config_dir, path.parent)
        encode = _compact_line_encoder()
        lines = [encode(entry) for entry in transcript]
        lines.append("")
        _write_private_file(path, "\n".join(lines))
    if metadata is not None:
        sidecar = agent_metadata_sidecar_path(path)
        _make_private_dirs(config_dir, sidecar.parent)
        _write_private_file(sidecar, json.dumps({k: v for k, v in metadata.items() if k != "type"}))


def _make_private_dirs(root: Path, directory: Path) -> None:
    """Create ``directory`` and its missing parents below ``root``, each with mode 0o700."""
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        with suppress(FileExistsError):
            current.mkdir(mode=PRIVATE_DIR_MODE)
            with suppress(OSError):
                current.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a new file readable only by its owner; symlinks are not followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with open(os.open(path, flags, PRIVATE_FILE_MODE), "w", encoding="utf-8") as file:
        file.write(text)
    with suppress(OSError):
        path.chmod(PRIVATE_FILE_MODE)


# --- removing the temp dir (§7.9) ----------------------------------------------------------------------------


async def remove_tree(path: str | os.PathLike[str], *, retries: int = 4, delay: float = 0.1) -> None:
    """Remove the directory tree at ``path``, retrying transient failures. Never raises but cancellation.

    Each attempt runs ``shutil.rmtree`` in a worker thread (``compat.run_sync``). A ``PermissionError`` or a
    transient errno (EBUSY, EMFILE, ENFILE, ENOTEMPTY, EPERM, EACCES) is retried after ``delay`` seconds, up to
    ``retries`` attempts; any other failure stops the retries. What is left is then removed with
    ``ignore_errors=True``. A missing path is fine. If the caller is cancelled (even before the first attempt,
    in an already-cancelled scope), a last synchronous ``rmtree(ignore_errors=True)`` runs before the
    cancellation is re-raised, so a cancelled caller does not leak the tree.
    """
    target = Path(path)
    try:
        await _remove_tree_with_retries(target, retries, delay)
    except BaseException as exc:
        _rmtree_ignoring_errors(target)
        if not isinstance(exc, Exception):
            raise  # cancellation (or KeyboardInterrupt): re-raised once the tree is gone
        logger.warning("[SessionStore] could not remove %s: %s: %s", target, type(exc).__name__, exc)


async def _remove_tree_with_retries(target: Path, retries: int, delay: float) -> None:
    for attempt in range(1, retries + 1):
        try:
            await compat.run_sync(_rmtree_if_present, target)
            return
        except OSError as exc:
            if not (isinstance(exc, PermissionError) or exc.errno in _TRANSIENT_RMTREE_ERRNOS):
                logger.debug("[SessionStore] rmtree %s failed for good: %s", target, exc)
                break
            logger.debug("[SessionStore] rmtree %s attempt %d/%d failed: %s", target, attempt, retries, exc)
        if attempt < retries:
            await compat.sleep(delay)
    await compat.run_sync(_rmtree_ignoring_errors, target)


def _rmtree_if_present(target: Path) -> None:
    if os.path.lexists(target):
        shutil.rmtree(target)


def _rmtree_ignoring_errors(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
