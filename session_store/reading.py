"""Reading sessions back from a store: list, info, messages, subagents (reference §9).

- :func:`list_sessions_from_store` takes the **fast path** when the store implements
  ``list_session_summaries``: one call, plus one ``list_sessions`` to drop ghost summaries and to gap-fill
  sessions whose sidecar is missing or stale. Pagination happens *before* any gap-fill load, so a page costs
  at most ``limit`` loads. Otherwise it takes the **slow path**: ``list_sessions`` plus one ``load`` per
  session, at most :data:`STORE_LIST_LOAD_CONCURRENCY` in flight, filtered before pagination.
- :func:`get_session_info_from_store`, :func:`get_session_messages_from_store`,
  :func:`list_subagents_from_store` and :func:`get_subagent_messages_from_store` read one session.

Decisions (SPEC §4 decision 6):

- Session ids that are not UUIDs are ignored everywhere: rows of ``list_sessions``, summaries, and the
  ``session_id`` arguments (which give None / ``[]`` without calling the store).
- Every row comes from :func:`session_store.summary.fold_session_summary` and
  :func:`session_store.summary.summary_entry_to_session_info`: a loaded session is folded exactly as the store
  folds it inside ``append``, so the fast and slow paths give identical rows for identical data. The reference
  lite-parses re-serialized JSONL on the slow path instead, which differs for long sessions (64 KiB windows).
  ``SessionInfo.file_size`` is therefore None on every path.
- ``last_modified`` of a listed row is the store's mtime (of the summary, or of the ``list_sessions`` row),
  one storage clock for sorting. :func:`get_session_info_from_store` makes no listing call, so, as in the
  reference, its ``last_modified`` is the last entry's ``timestamp`` (the current time if it has none).

Errors while loading one session on the slow path or during gap-fill do not fail the listing: that row comes
back degraded (``summary=""``, only ``session_id`` and ``last_modified`` set). Anything that is not an
``Exception`` (cancellation, ``KeyboardInterrupt``) propagates, and the task group guarantees that no load is
left running when :func:`list_sessions_from_store` returns or raises.

What a store returns is checked by :func:`session_store.store_results.checked_store_result`: a read method
returning the wrong type (``load`` a dict, ``list_sessions`` None, ``list_subkeys`` a str, summaries that are not
summary dicts) raises ``TypeError`` naming the method, the type received and the type expected; on the slow path
that fails the whole listing rather than degrading every row.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import compat

from .keys import canonicalize_path, checked_directory, sanitize_path, validate_uuid
from .metadata import parent_ids_from_agent_metadata, split_agent_metadata
from .store_results import checked_store_result
from .summary import fold_session_summary, iso_to_epoch_ms, summary_entry_to_session_info
from .transcript import (
    build_subagent_chain,
    entries_to_session_messages,
    filter_transcript_entries,
    paginate,
    to_session_message,
)
from .types import (
    SessionInfo,
    SessionKey,
    SessionMessage,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
    store_implements,
)

__all__ = [
    "STORE_LIST_LOAD_CONCURRENCY",
    "SUBAGENTS_PREFIX",
    "agent_id_problem",
    "checked_agent_id",
    "get_session_info_from_store",
    "get_session_messages_from_store",
    "get_subagent_messages_from_store",
    "list_sessions_from_store",
    "list_subagents_from_store",
]

logger = logging.getLogger(__name__)

STORE_LIST_LOAD_CONCURRENCY = 16
"""Most ``load`` calls :func:`list_sessions_from_store` keeps in flight at once."""

SUBAGENTS_PREFIX = "subagents/"
"""Subpaths of subagent transcripts start with this (``subagents/agent-<id>``, or nested workflow folders)."""

AGENT_FILE_PREFIX = "agent-"

Directory = str | os.PathLike[str] | None


@dataclass(frozen=True)
class _Project:
    """Where a directory's sessions live: its canonical path (the ``cwd`` fallback) and its project key."""

    path: str
    key: str

    @classmethod
    def of(cls, directory: Directory) -> _Project:
        path = canonicalize_path(checked_directory(directory) or ".")
        return cls(path=path, key=sanitize_path(path))

    def session_key(self, session_id: str, subpath: str | None = None) -> SessionKey:
        key: SessionKey = {"project_key": self.key, "session_id": session_id}
        if subpath is not None:
            key["subpath"] = subpath
        return key


def _row_from_entries(
    project: _Project, session_id: str, entries: Sequence[SessionStoreEntry], mtime: int
) -> SessionInfo | None:
    """The listing row of loaded entries, folded as a store folds them; None for a sidechain or no summary."""
    summary = fold_session_summary(None, project.session_key(session_id), entries)
    summary["mtime"] = mtime
    return summary_entry_to_session_info(summary, project.path)


def _degraded_row(session_id: str, mtime: int) -> SessionInfo:
    """The row of a session whose load failed: listed, but with nothing known about it."""
    return SessionInfo(session_id=session_id, summary="", last_modified=mtime)


class _StoreInterrupted(Exception):
    """Carries a store's ``KeyboardInterrupt``/``SystemExit``/``GeneratorExit`` out of a load task as an
    ordinary error, so the task group stops the other loads and the event loop keeps running."""

    def __init__(self, interruption: BaseException) -> None:
        super().__init__(repr(interruption))
        self.interruption = interruption


def _first_interruption(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_interruption(error)
        if isinstance(error, _StoreInterrupted):
            return error.interruption
    raise AssertionError("split() returned a group without _StoreInterrupted")  # pragma: no cover


async def _rows_via_load(
    store: SessionStore, project: _Project, listing: Sequence[SessionStoreListEntry]
) -> list[SessionInfo]:
    """Load and fold every listed session, at most :data:`STORE_LIST_LOAD_CONCURRENCY` loads at a time.

    Rows keep listing order; empty, sidechain and summary-less sessions are dropped; a session whose load (or
    fold) raises an ``Exception`` gives a degraded row. A load returning something that is not a list or None is
    a ``TypeError`` for the whole listing (:mod:`session_store.store_results`), raised once every load is done.
    A ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit`` from a load stops every other load and reaches
    the caller as itself on both backends (raised in a task, asyncio would also stop the event loop with the
    first two). Anything else propagates once the task group has stopped every load. The task group runs one
    worker per limiter token; each worker takes the next session as soon as its previous one is done, so a
    finished load is followed by the next one without waiting for a wake-up, and each session is folded while
    other loads are in flight.
    """
    limiter = compat.CapacityLimiter(STORE_LIST_LOAD_CONCURRENCY)
    rows: list[SessionInfo | None] = [None] * len(listing)
    pending = iter(enumerate(listing))
    wrong_types: list[TypeError] = []

    async def load_one(index: int, row: SessionStoreListEntry) -> None:
        session_id = row["session_id"]
        try:
            async with limiter:
                loaded = await store.load(project.session_key(session_id))
        except (KeyboardInterrupt, SystemExit, GeneratorExit) as interruption:
            raise _StoreInterrupted(interruption) from None  # stops the other loads; raised as itself below
        except Exception:  # the adapter is user code; one bad session must not hide the rest
            rows[index] = _degraded_row(session_id, row["mtime"])
            return
        try:
            entries = checked_store_result("load", loaded)
        except TypeError as error:  # the store breaks its contract: the listing fails, not just this row
            wrong_types.append(error)
            return
        try:
            if entries:
                rows[index] = _row_from_entries(project, session_id, entries, row["mtime"])
        except Exception:
            rows[index] = _degraded_row(session_id, row["mtime"])

    async def worker() -> None:
        for index, row in pending:  # the workers share one iterator: each session is taken exactly once
            await load_one(index, row)

    try:
        async with compat.create_task_group() as task_group:
            for _ in range(min(STORE_LIST_LOAD_CONCURRENCY, len(listing))):
                task_group.start_soon(worker)
    except BaseExceptionGroup as group:
        interrupted, _rest = group.split(_StoreInterrupted)
        if interrupted is None:
            raise
        raise _first_interruption(interrupted) from None
    if wrong_types:
        raise wrong_types[0]  # raised here, not in a worker, so it is a TypeError and not an ExceptionGroup
    return [info for info in rows if info is not None]


async def _uuid_listing(store: SessionStore, project: _Project) -> list[SessionStoreListEntry]:
    """The store's ``list_sessions`` rows with a UUID session id, the first row per id, in a new list."""
    seen: set[str] = set()
    listing: list[SessionStoreListEntry] = []
    for row in checked_store_result("list_sessions", await store.list_sessions(project.key)):
        session_id = row["session_id"]
        if validate_uuid(session_id) and session_id not in seen:
            seen.add(session_id)
            listing.append(row)
    return listing


@dataclass
class _Slot:
    """One place in the fast-path listing: a row from a summary, or a session still to be loaded."""

    session_id: str
    mtime: int
    info: SessionInfo | None = None


async def _list_from_summaries(
    store: SessionStore,
    project: _Project,
    summaries: Sequence[SessionSummaryEntry],
    limit: int | None,
    offset: int,
) -> list[SessionInfo]:
    """The fast path (reference §9.2): fresh summaries become rows, the rest of the listing is gap-filled."""
    listing = await _uuid_listing(store, project) if store_implements(store, "list_sessions") else None
    known_mtimes = {row["session_id"]: row["mtime"] for row in listing or ()}
    slots: list[_Slot] = []
    handled: set[str] = set()
    for summary in summaries:
        session_id = summary["session_id"]
        if not validate_uuid(session_id) or session_id in handled:
            continue
        if listing is not None:
            listed_mtime = known_mtimes.get(session_id)
            if listed_mtime is None or summary["mtime"] < listed_mtime:
                continue  # a ghost (no transcript) or stale (written before the last append): load instead
        handled.add(session_id)
        info = summary_entry_to_session_info(summary, project.path)
        if info is not None:  # a sidechain or empty session takes no page slot
            slots.append(_Slot(session_id, summary["mtime"], info))
    for row in listing or ():
        if row["session_id"] not in handled:
            slots.append(_Slot(row["session_id"], row["mtime"]))

    slots.sort(key=lambda slot: slot.mtime, reverse=True)
    page = paginate(slots, limit, offset)
    to_load = [slot for slot in page if slot.info is None]
    if to_load:
        loaded = await _rows_via_load(
            store, project, [{"session_id": slot.session_id, "mtime": slot.mtime} for slot in to_load]
        )
        by_id = {info.session_id: info for info in loaded}
        for slot in to_load:
            slot.info = by_id.get(slot.session_id)
    return [slot.info for slot in page if slot.info is not None]


async def list_sessions_from_store(
    session_store: SessionStore, directory: Directory = None, limit: int | None = None, offset: int = 0
) -> list[SessionInfo]:
    """The sessions of ``directory``'s project (the cwd when None), newest first, then paged.

    ``offset`` rows are skipped, then at most ``limit`` are returned (None or ``<= 0``: all). Sidechain,
    empty and summary-less sessions are never listed and use no page slot. A session whose load fails is
    listed with ``summary=""``.

    Uses ``list_session_summaries`` when the store has it (falling back when it raises
    ``NotImplementedError``), else ``list_sessions`` plus one ``load`` per session. With summaries but no
    ``list_sessions``, sessions without a summary cannot be discovered and are not listed.

    A failing load is caught only when it raises an ``Exception``; anything else stops the other loads: a
    ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit`` reaches the caller as itself, any other
    ``BaseException`` from the task group (as a ``BaseExceptionGroup``). A cancelled caller leaves no load
    running.

    Raises ``ValueError`` when the store implements neither ``list_session_summaries`` nor ``list_sessions``.
    """
    project = _Project.of(directory)
    if store_implements(session_store, "list_session_summaries"):
        try:
            summaries = checked_store_result(
                "list_session_summaries", await session_store.list_session_summaries(project.key)
            )
        except NotImplementedError:
            pass
        else:
            return await _list_from_summaries(session_store, project, summaries, limit, offset)
    if not store_implements(session_store, "list_sessions"):
        raise ValueError(
            f"session_store {type(session_store).__name__} implements neither list_session_summaries() nor "
            "list_sessions() -- cannot list sessions. Provide a store with at least one of those methods."
        )
    rows = await _rows_via_load(session_store, project, await _uuid_listing(session_store, project))
    rows.sort(key=lambda info: info.last_modified, reverse=True)
    return paginate(rows, limit, offset)


def _last_entry_time_ms(entries: Sequence[SessionStoreEntry]) -> int:
    last = entries[-1]
    timestamp = iso_to_epoch_ms(last.get("timestamp")) if isinstance(last, dict) else None
    return timestamp if timestamp is not None else int(time.time() * 1000)


async def get_session_info_from_store(
    session_store: SessionStore, session_id: str, directory: Directory = None
) -> SessionInfo | None:
    """The listing row of one session, or None when the id is not a UUID, the session is missing or empty,
    is a sidechain, or has nothing to show as a summary.

    The row is folded as the listing folds it; ``last_modified`` is the last entry's ``timestamp`` (the
    current time when it has none), since no listing call is made.
    """
    if not validate_uuid(session_id):
        return None
    project = _Project.of(directory)
    entries = checked_store_result("load", await session_store.load(project.session_key(session_id)))
    if not entries:
        return None
    return _row_from_entries(project, session_id, entries, _last_entry_time_ms(entries))


async def get_session_messages_from_store(
    session_store: SessionStore,
    session_id: str,
    directory: Directory = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[SessionMessage]:
    """The visible user/assistant messages of a session's conversation chain, root first, paged (§8.1).

    A turn that ran tools in parallel is returned whole, every ``tool_use`` and every ``tool_result``, in the
    order :func:`session_store.transcript.recover_parallel_tool_results` gives (as the SDK since 0.2.170);
    paging counts those messages too. ``[]`` when the id is not a UUID or the session is missing. Metadata
    entries (titles, tags) never appear; both parent ids are None.
    """
    if not validate_uuid(session_id):
        return []
    entries = checked_store_result("load", await session_store.load(_Project.of(directory).session_key(session_id)))
    return entries_to_session_messages(entries or [], limit, offset)


_UNSAFE_AGENT_ID_CHARACTERS = re.compile(r"[/\\\x00-\x1f\x7f\ud800-\udfff]")


def agent_id_problem(agent_id: str) -> str | None:
    """Why ``agent_id`` cannot name a subagent transcript, or None when it can.

    An agent id becomes the last part of a subpath (``subagents/agent-<id>``), hence of a store key and of a
    file name on resume, so it must stay one name: no ``/`` or ``\\``, not ``.`` or ``..``, no NUL or other
    control character, no lone surrogate (the Ruby SDK's issue #79: an id taken on trust escaped its folder).
    """
    if agent_id in (".", ".."):
        return "is a relative path component"
    found = _UNSAFE_AGENT_ID_CHARACTERS.search(agent_id)
    if found is not None:
        return f"holds {found.group()!r}, which cannot be part of one file name"
    return None


def checked_agent_id(agent_id: str) -> str:
    """``agent_id`` unchanged when it can name a subagent transcript (:func:`agent_id_problem`), else
    ``ValueError`` naming it; ``TypeError`` for a non-str."""
    if not isinstance(agent_id, str):
        raise TypeError(f"agent_id must be a str, got {type(agent_id).__name__} {agent_id!r}")
    problem = agent_id_problem(agent_id)
    if problem is not None:
        raise ValueError(
            f"Invalid agent_id {agent_id!r}: it {problem}; pass an id as list_subagents_from_store() returns it "
            "(the part after 'agent-' of a subagent transcript's name)"
        )
    return agent_id


def _agent_id_of(subpath: str) -> str | None:
    """``abc`` for ``subagents/.../agent-abc``; None for a subpath that is not a subagent transcript."""
    if not subpath.startswith(SUBAGENTS_PREFIX):
        return None
    name = subpath.rsplit("/", 1)[-1]
    return name[len(AGENT_FILE_PREFIX) :] if name.startswith(AGENT_FILE_PREFIX) else None


async def list_subagents_from_store(
    session_store: SessionStore, session_id: str, directory: Directory = None
) -> list[str]:
    """The agent ids of a session's subagent transcripts, in the store's order, each once.

    ``[]`` for a non-UUID session id. Nested workflow subpaths (``subagents/workflows/<run>/agent-<id>``)
    count; an id found under two subpaths is returned once. An id that could not name a file
    (:func:`agent_id_problem`: a ``\\``, a control character, ``..``, empty) is skipped with a warning, so
    every id returned is one :func:`get_subagent_messages_from_store` accepts.

    Raises ``ValueError`` when the store does not implement ``list_subkeys``.
    """
    if not validate_uuid(session_id):
        return []
    if not store_implements(session_store, "list_subkeys"):
        raise ValueError(
            f"session_store {type(session_store).__name__} does not implement list_subkeys() -- cannot list "
            "subagents. Provide a store with a list_subkeys() method."
        )
    project = _Project.of(directory)
    subpaths = checked_store_result(
        "list_subkeys", await session_store.list_subkeys({"project_key": project.key, "session_id": session_id})
    )
    agent_ids: dict[str, None] = {}
    for subpath in subpaths:
        agent_id = _agent_id_of(subpath)
        if agent_id is None or agent_id in agent_ids:
            continue
        problem = agent_id_problem(agent_id) if agent_id else "is empty"
        if problem is not None:
            logger.warning("[SessionStore] skipping subagent %r of list_subkeys: its agent id %s", subpath, problem)
            continue
        agent_ids[agent_id] = None
    return list(agent_ids)


async def _subagent_subpath(store: SessionStore, project: _Project, session_id: str, agent_id: str) -> str | None:
    """Where the agent's transcript is: the first matching subkey when the store can list them (None if
    none matches), else the direct ``subagents/agent-<id>``."""
    if not store_implements(store, "list_subkeys"):
        return f"{SUBAGENTS_PREFIX}{AGENT_FILE_PREFIX}{agent_id}"
    subpaths = checked_store_result(
        "list_subkeys", await store.list_subkeys({"project_key": project.key, "session_id": session_id})
    )
    return next((subpath for subpath in subpaths if _agent_id_of(subpath) == agent_id), None)


async def get_subagent_messages_from_store(
    session_store: SessionStore,
    session_id: str,
    agent_id: str,
    directory: Directory = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[SessionMessage]:
    """The user/assistant messages of one subagent transcript, root first, paged (§8.2, §9.8).

    A parallel tool turn is returned whole, as for the main session (SPEC §4 decision 9). **Differs from the
    SDK** (0.2.189), whose subagent reader still follows one branch of the turn and drops the other calls and
    results: a subagent transcript forks exactly as the main one does (see
    :func:`session_store.transcript.build_subagent_chain`).

    Every message carries the ``toolUseId`` / ``parentAgentId`` of the transcript's last ``agent_metadata``
    entry (string values only) as ``parent_tool_use_id`` / ``parent_agent_id``. ``[]`` when the session id is
    not a UUID, ``agent_id`` is empty, or the transcript is missing or empty. ``ValueError`` naming ``agent_id``
    when it could not be one file name (a ``/`` or ``\\``, ``.`` or ``..``, a control character: see
    :func:`agent_id_problem`), whether or not the store has ``list_subkeys``, before any store call.
    """
    if not validate_uuid(session_id) or not agent_id:
        return []
    checked_agent_id(agent_id)  # before it becomes part of a key (no list_subkeys) or is matched (list_subkeys)
    project = _Project.of(directory)
    subpath = await _subagent_subpath(session_store, project, session_id, agent_id)
    if subpath is None:
        return []
    entries = checked_store_result("load", await session_store.load(project.session_key(session_id, subpath)))
    metadata, transcript = split_agent_metadata(entries or [])
    parent_tool_use_id, parent_agent_id = parent_ids_from_agent_metadata(metadata)
    chain = build_subagent_chain(filter_transcript_entries(transcript))
    messages = [to_session_message(entry, parent_tool_use_id, parent_agent_id) for entry in chain]
    return paginate(messages, limit, offset)
