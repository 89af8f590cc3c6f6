"""Changing sessions in a store: rename, tag, delete and fork (reference §10).

A store is append-only from the SDK's point of view, so rename and tag *append* a metadata entry
(``custom-title`` / ``tag``) that the summary fold picks up as last-wins; they do not check that the session
exists (an unknown id gets a session holding just that entry). Delete calls the store's optional ``delete``
and is a no-op for a store without one (write-once backends). Fork loads the source, runs the fork transform
(:func:`build_fork_entries`, §10.5) and writes the new session in a single ``append``.

Every function checks its ids before touching the store (``ValueError`` naming the bad value). Every entry
written carries a fresh ``uuid`` and a ``timestamp`` (UTC ISO-8601 with microseconds and ``Z``), so stores that
deduplicate by uuid (SPEC §4 decision 8) never merge two of them.

Tags go through :func:`sanitize_unicode` first: NFKC, then removal of format, private-use and unassigned
characters (zero-width spaces, bidi controls, BOM), repeated until stable, so a tag cannot hide text or reorder
how it is displayed.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import compat

from .keys import project_key_for_directory
from .store_results import checked_store_result
from .transcript import entries_to_jsonl, extract_first_prompt_from_head
from .types import ForkSessionResult, SessionKey, SessionStore, SessionStoreEntry, store_implements
from .validation import require_str, require_uuid

__all__ = [
    "FORK_DROPPED_FIELDS",
    "FORK_TRANSCRIPT_TYPES",
    "FORK_UNDO_TIMEOUT_S",
    "build_fork_entries",
    "delete_session_via_store",
    "derive_title_from_entries",
    "fork_session_via_store",
    "iso_now",
    "rename_session_via_store",
    "sanitize_unicode",
    "tag_session_via_store",
]

FORK_TRANSCRIPT_TYPES = frozenset({"user", "assistant", "attachment", "system", "progress"})
"""Entry types a fork copies (progress entries only to keep the parent chain; they are not written)."""

FORK_DROPPED_FIELDS = ("teamName", "agentName", "slug", "sourceToolAssistantUUID")
"""Fields of the source session that would leak into the fork; they are removed from every copied entry."""

SANITIZE_MAX_PASSES = 10
"""How many times :func:`sanitize_unicode` normalizes and strips before giving up on reaching a fixed point."""

_REMOVED_CATEGORIES = frozenset({"Cf", "Co", "Cn"})  # format, private use, unassigned
_REMOVED_RANGES = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ue000-\uf8ff]")

Directory = str | os.PathLike[str] | None

logger = logging.getLogger(__name__)


def iso_now() -> str:
    """The current UTC time as ISO-8601 with microseconds and a ``Z`` suffix."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def sanitize_unicode(value: str) -> str:
    """``value`` under NFKC without format (Cf), private-use (Co) or unassigned (Cn) characters.

    Zero-width characters, bidi embeddings/overrides/isolates, the BOM and BMP private use are removed
    explicitly too. Normalizing can expose new characters to remove, so the passes repeat until nothing
    changes (at most :data:`SANITIZE_MAX_PASSES`).
    """
    current = value
    for _ in range(SANITIZE_MAX_PASSES):
        previous = current
        normalized = unicodedata.normalize("NFKC", current)
        kept = "".join(char for char in normalized if unicodedata.category(char) not in _REMOVED_CATEGORIES)
        current = _REMOVED_RANGES.sub("", kept)
        if current == previous:
            break
    return current


def _session_key(directory: Directory, session_id: str) -> SessionKey:
    return {"project_key": project_key_for_directory(directory), "session_id": session_id}


def _metadata_entry(type_: str, session_id: str, **fields: Any) -> SessionStoreEntry:
    entry = {"type": type_, **fields, "sessionId": session_id, "uuid": str(uuid.uuid4()), "timestamp": iso_now()}
    return cast(SessionStoreEntry, entry)


async def rename_session_via_store(
    session_store: SessionStore, session_id: str, title: str, directory: Directory = None
) -> None:
    """Give a session a title by appending ``{"type": "custom-title", "customTitle": <title stripped>}``.

    Raises ``ValueError`` for a non-UUID ``session_id`` or a ``title`` without a visible character (empty,
    whitespace, or only zero-width and other format characters, which :func:`sanitize_unicode` removes), and
    ``TypeError`` for a non-str one, before any store call. The title is stored stripped, otherwise as given.
    """
    require_uuid(session_id, "session_id")
    stripped = require_str(title, "title").strip()
    if not sanitize_unicode(stripped).strip():
        raise ValueError(
            f"title must be non-empty, with a visible character (got {title!r}); pass a title such as 'Bug triage'"
        )
    entry = _metadata_entry("custom-title", session_id, customTitle=stripped)
    await session_store.append(_session_key(directory, session_id), [entry])


async def tag_session_via_store(
    session_store: SessionStore, session_id: str, tag: str | None, directory: Directory = None
) -> None:
    """Tag a session by appending ``{"type": "tag", "tag": ...}``; ``None`` clears the tag (stored as ``""``).

    The tag is passed through :func:`sanitize_unicode` and stripped. Raises ``ValueError`` for a non-UUID
    ``session_id`` or a tag that is empty after that, and ``TypeError`` for a tag that is neither a str nor
    None, before any store call.
    """
    require_uuid(session_id, "session_id")
    stored = ""
    if tag is not None:
        stored = sanitize_unicode(require_str(tag, "tag")).strip()
        if not stored:
            raise ValueError(
                f"tag must be non-empty, with a visible character (got {tag!r}); use None to clear the tag"
            )
    entry = _metadata_entry("tag", session_id, tag=stored)
    await session_store.append(_session_key(directory, session_id), [entry])


async def delete_session_via_store(session_store: SessionStore, session_id: str, directory: Directory = None) -> None:
    """Delete a session through the store's ``delete``; a no-op when the store has none (write-once storage).

    Whether the session's subagent transcripts go too is up to the store (the stores of this project cascade).
    Raises ``ValueError`` for a non-UUID ``session_id``, before any store call.
    """
    require_uuid(session_id, "session_id")
    if store_implements(session_store, "delete"):
        await session_store.delete(_session_key(directory, session_id))


def derive_title_from_entries(entries: Sequence[object]) -> str | None:
    """The title a fork inherits: the last non-empty ``customTitle`` of any entry, else the last ``aiTitle``,
    else the session's first prompt (as the listing finds it), else None."""
    custom_title = ai_title = None
    for entry in entries:
        if isinstance(entry, dict):
            if isinstance(entry.get("customTitle"), str) and entry["customTitle"]:
                custom_title = entry["customTitle"]
            if isinstance(entry.get("aiTitle"), str) and entry["aiTitle"]:
                ai_title = entry["aiTitle"]
    return custom_title or ai_title or extract_first_prompt_from_head(entries_to_jsonl(entries)) or None


def build_fork_entries(
    transcript: Sequence[dict[str, Any]],
    content_replacements: Sequence[Any],
    session_id: str,
    up_to_message_id: str | None,
    title: str | None,
    derive_title: Callable[[], str | None],
) -> tuple[str, list[dict[str, Any]]]:
    """The fork transform (reference §10.5): ``(new_session_id, entries to write)``.

    ``transcript`` holds the source's chain entries (types of :data:`FORK_TRANSCRIPT_TYPES` with a uuid), in
    order. Sidechain entries are dropped; with ``up_to_message_id`` the transcript ends at that entry
    (inclusive). Every kept entry gets a fresh uuid; progress entries are not written, and a ``parentUuid``
    skips past them to the nearest written ancestor (None when that lies outside the fork). Each written entry
    is a copy with ``uuid``, ``parentUuid``, ``logicalParentUuid`` (remapped), ``sessionId``, ``isSidechain``
    (False) and ``forkedFrom`` (source session and message) set, :data:`FORK_DROPPED_FIELDS` removed, and its
    own timestamp except for the last entry, which is stamped now. Then come one ``content-replacement`` entry
    with the collected ``content_replacements`` (if any) and a ``custom-title`` entry: ``title`` stripped as
    given, else ``"<derive_title() or 'Forked session'> (fork)"``.

    Raises ``ValueError`` when nothing is left to fork or ``up_to_message_id`` is not in the transcript.
    """
    kept = [entry for entry in transcript if not entry.get("isSidechain")]
    if up_to_message_id:
        cutoff = next((index for index, entry in enumerate(kept) if entry["uuid"] == up_to_message_id), None)
        if cutoff is None:
            raise ValueError(
                f"Message {up_to_message_id} not found in session {session_id}; "
                "pass the uuid of a message of that session, or omit up_to_message_id to fork all of it"
            )
        kept = kept[: cutoff + 1]
    writable = [entry for entry in kept if entry.get("type") != "progress"]
    if not writable:
        raise ValueError(f"Session {session_id} has no messages to fork")

    new_uuids = {entry["uuid"]: str(uuid.uuid4()) for entry in kept}
    by_uuid = {entry["uuid"]: entry for entry in kept}

    def written_parent(entry: dict[str, Any]) -> str | None:
        parent_id = entry.get("parentUuid")
        seen: set[str] = set()
        while parent_id and parent_id in by_uuid and parent_id not in seen:
            seen.add(parent_id)
            parent = by_uuid[parent_id]
            if parent.get("type") != "progress":
                return new_uuids[parent_id]
            parent_id = parent.get("parentUuid")
        return None

    new_session_id = str(uuid.uuid4())
    now = iso_now()
    forked: list[dict[str, Any]] = []
    for index, original in enumerate(writable):
        logical_parent = original.get("logicalParentUuid")
        copy = {
            **original,
            "uuid": new_uuids[original["uuid"]],
            "parentUuid": written_parent(original),
            "logicalParentUuid": new_uuids.get(logical_parent) if logical_parent else logical_parent,
            "sessionId": new_session_id,
            "timestamp": now if index == len(writable) - 1 else original.get("timestamp", now),
            "isSidechain": False,
            "forkedFrom": {"sessionId": session_id, "messageUuid": original["uuid"]},
        }
        for field in FORK_DROPPED_FIELDS:
            copy.pop(field, None)
        forked.append(copy)

    def trailer(type_: str, **fields: Any) -> dict[str, Any]:
        return {"type": type_, "sessionId": new_session_id, **fields, "uuid": str(uuid.uuid4()), "timestamp": now}

    if content_replacements:
        forked.append(trailer("content-replacement", replacements=list(content_replacements)))
    fork_title = title.strip() if title else ""
    if not fork_title:
        fork_title = f"{derive_title() or 'Forked session'} (fork)"
    forked.append(trailer("custom-title", customTitle=fork_title))
    return new_session_id, forked


async def fork_session_via_store(
    session_store: SessionStore,
    session_id: str,
    directory: Directory = None,
    up_to_message_id: str | None = None,
    title: str | None = None,
) -> ForkSessionResult:
    """Copy a session (up to ``up_to_message_id``, inclusive) into a new session of the same project.

    The copy has fresh uuids, the same parent chain, ``forkedFrom`` links to the source, the source's
    ``content-replacement`` records, and a title (``title``, else the source's title or first prompt plus
    ``" (fork)"``). It is written in one ``append``; the source is untouched.

    Atomic (the SDK's PR #960): readers see no fork or all of it, since one ``append`` is applied whole by the
    SQLite, PostgreSQL, Redis and in-memory stores (one transaction in SQLite and PostgreSQL, one
    ``MULTI``/``EXEC`` in Redis, one step in memory). When that append fails or is cancelled, what it may have written is deleted (shielded from the
    cancellation) before the error propagates, so no partial fork is left; a store without ``delete``, or a
    ``delete`` that fails too, gets a note on the error naming the session id to remove.

    Raises ``ValueError`` for a non-UUID id (before any store call) or a session with nothing to fork, and
    ``FileNotFoundError`` when the source session is missing or empty.
    """
    require_uuid(session_id, "session_id")
    if up_to_message_id:
        require_uuid(up_to_message_id, "up_to_message_id")
    if title is not None:
        require_str(title, "title")
    source_key = _session_key(directory, session_id)
    loaded = checked_store_result("load", await session_store.load(source_key))
    if not loaded:
        raise FileNotFoundError(
            f"Session {session_id} not found in project {source_key['project_key']!r}; "
            "check the session id and the directory it belongs to"
        )
    raw = cast("list[object]", loaded)
    transcript: list[dict[str, Any]] = []
    content_replacements: list[Any] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") in FORK_TRANSCRIPT_TYPES and isinstance(entry.get("uuid"), str):
            transcript.append(entry)
        elif (
            entry.get("type") == "content-replacement"
            and entry.get("sessionId") == session_id
            and isinstance(entry.get("replacements"), list)
        ):
            content_replacements.extend(entry["replacements"])

    new_session_id, forked = build_fork_entries(
        transcript, content_replacements, session_id, up_to_message_id, title, lambda: derive_title_from_entries(raw)
    )
    new_key = _session_key(directory, new_session_id)
    try:
        await session_store.append(new_key, cast("list[SessionStoreEntry]", forked))
    except BaseException as error:  # cancellation included: the append may have landed, in part or whole
        if getattr(session_store, "read_only", False) is not True:  # a read-only store wrote nothing to undo
            await _undo_partial_fork(session_store, new_key, error)
        raise
    return ForkSessionResult(session_id=new_session_id)


FORK_UNDO_TIMEOUT_S = 30.0
"""Time limit of the ``delete`` that removes what a failed fork may have written."""


async def _undo_partial_fork(store: SessionStore, key: SessionKey, error: BaseException) -> None:
    """After a failed or cancelled fork append, delete the new session (shielded from the cancellation, within
    :data:`FORK_UNDO_TIMEOUT_S`) so no partial fork is left; when that is impossible (no ``delete``, or it fails
    too), a note on ``error`` names the session id that may hold a partial fork."""
    session_id = key["session_id"]
    if not store_implements(store, "delete"):
        error.add_note(
            f"the fork {session_id} may be partly written: the store has no delete() to remove it; delete session "
            f"{session_id} of project {key['project_key']!r} by hand if it exists"
        )
        return

    async def delete() -> str | None:
        try:
            with compat.move_on_after(FORK_UNDO_TIMEOUT_S) as scope:
                await store.delete(key)
        except Exception as failure:
            return f"{type(failure).__name__}: {failure}"
        return f"delete() took more than {FORK_UNDO_TIMEOUT_S:g}s" if scope.cancelled_caught else None

    problem = await compat.shield(delete)
    if problem is not None:
        logger.warning("[SessionStore] could not remove the failed fork %s: %s", session_id, problem)
        error.add_note(
            f"the fork {session_id} may be partly written: removing it failed ({problem}); delete session "
            f"{session_id} of project {key['project_key']!r} once the store is reachable"
        )
