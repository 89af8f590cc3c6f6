"""Store each line of a source transcript exactly once, uuid or not: what ``import`` and ``mirror`` write with.

A transcript line with a ``uuid`` is its own idempotency key: every store ignores a uuid the key already holds.
A line without one (``summary``, ``custom-title``, ``tag``, ``agent_metadata``, mode markers) has no key, and
plain ``append`` stores it again on every re-run. This module gives such a line an identity: its *content*
(:func:`canonical_json`) plus its *occurrence*, how many equal lines come before it in the same source file
(:func:`occurrences`, or :class:`OccurrenceCounter` for a file read in pieces). The n-th copy (counting from 0)
of a line is stored unless the key already holds more than n entries equal to it. Re-sending a file, or any
prefix of it, therefore stores nothing twice, while a line that really is repeated in the source (two equal
``tag`` lines) is stored as many times as it occurs.

:func:`append_once` applies that rule. A store that implements the optional ``append_once`` method (every
adapter of this project) applies it atomically, in the same transaction as its ``append``, so concurrent
writers sending the same lines store each once. Any other store gets a fallback over the plain protocol
(``load`` then ``append`` of what is missing): exact for sequential re-runs, but two concurrent writers may
both store a missing line (see "Exactly-once import and mirror" in docs/behaviour.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

from .types import SessionKey, SessionStore, SessionStoreEntry, store_implements
from .validation import check_entry_list, encode_json

__all__ = [
    "OccurrenceCounter",
    "append_once",
    "canonical_json",
    "check_occurrences",
    "content_hash",
    "entry_uuid",
    "occurrences",
    "plan_append_once",
]


def canonical_json(entry: Mapping[str, Any]) -> str:
    """The identity of an entry without a uuid: its JSON with sorted keys, compact, non-ASCII kept.

    Two entries are equal for :func:`append_once` exactly when their canonical JSON is equal, so key order
    does not matter and ``1`` differs from ``1.0`` and ``"1"``. A dict that JSON would change (non-string keys)
    is taken as the JSON copy a store keeps of it.
    """
    try:
        return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError:  # keys of mixed types cannot be sorted: use the copy a store would keep
        return json.dumps(json.loads(encode_json(entry)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_json`: what the adapters index to count the entries equal to one.

    Lone surrogates (kept by the stores, see :mod:`session_store.validation`) are hashed as their code units.
    """
    return hashlib.sha256(canonical_json(entry).encode("utf-8", "surrogatepass")).hexdigest()


def entry_uuid(entry: Mapping[str, Any]) -> str | None:
    """The entry's idempotency key: its ``uuid`` when that is a string, else None (counted by content)."""
    uuid = entry.get("uuid")
    return uuid if isinstance(uuid, str) else None


class OccurrenceCounter:
    """:func:`occurrences` one entry at a time, for a file read in pieces (``mirror`` reading as it grows).

    Its :meth:`state` is a plain dict (canonical JSON -> copies seen) that can be saved and given back to
    :meth:`from_state`; replaying the file's prefix through a fresh counter rebuilds the same state.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def next(self, entry: Mapping[str, Any]) -> int | None:
        """None for an entry with a string uuid, else how many equal uuid-less entries came before it."""
        if entry_uuid(entry) is not None:
            return None
        identity = canonical_json(entry)
        count = self._seen.get(identity, 0)
        self._seen[identity] = count + 1
        return count

    def state(self) -> dict[str, int]:
        """A copy of the counts, JSON-serializable."""
        return dict(self._seen)

    @classmethod
    def from_state(cls, state: Mapping[str, int]) -> Self:
        """A counter that continues from a saved :meth:`state`."""
        counter = cls()
        for identity, count in state.items():
            if not isinstance(identity, str) or isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(
                    f"occurrence state must map canonical JSON strings to counts >= 0, got {identity!r}: {count!r}"
                )
            counter._seen[identity] = count
        return counter


def occurrences(entries: Iterable[Mapping[str, Any]]) -> list[int | None]:
    """Per entry: None when it has a string ``uuid``, else how many earlier entries of ``entries`` have the same
    :func:`canonical_json` (0 for the first copy, 1 for the second, ...)."""
    counter = OccurrenceCounter()
    return [counter.next(entry) for entry in entries]


def check_occurrences(entries: Sequence[object], occurrences: object) -> list[int | None]:
    """``occurrences`` if it is a list as long as ``entries`` of None or ints >= 0, else an error naming it."""
    if not isinstance(occurrences, list):
        raise TypeError(
            f"occurrences must be a list (one int or None per entry), got {type(occurrences).__name__}; "
            "compute it with session_store.exactly_once.occurrences(entries)"
        )
    if len(occurrences) != len(entries):
        raise ValueError(
            f"occurrences has {len(occurrences)} item(s) for {len(entries)} entries; give one per entry "
            "(session_store.exactly_once.occurrences(entries))"
        )
    for index, occurrence in enumerate(occurrences):
        if occurrence is None:
            continue
        if isinstance(occurrence, bool) or not isinstance(occurrence, int):
            raise TypeError(f"occurrences[{index}] must be an int >= 0 or None, got {type(occurrence).__name__}")
        if occurrence < 0:
            raise ValueError(f"occurrences[{index}] must be >= 0 (0 for the first copy of a line), got {occurrence}")
    return occurrences


def plan_append_once(
    entries: Sequence[SessionStoreEntry],
    occurrences: Sequence[int | None],
    held_uuids: set[str] | frozenset[str],
    held_counts: Mapping[str, int],
    identity: Any = canonical_json,
) -> list[int]:
    """Indexes of the entries :func:`append_once` stores, given what the key holds (the shared rule).

    ``held_uuids``: the uuids the key holds; ``held_counts``: how many uuid-less entries it holds per
    ``identity`` (:func:`canonical_json` by default, :func:`content_hash` for the adapters). An entry with a
    string uuid is kept unless held (or kept earlier in the call); an entry without one, occurrence n, is kept
    unless the key, with the entries kept earlier in the call, holds more than n equal entries. A uuid-less
    entry whose occurrence is None counts as occurrence 0.
    """
    kept: list[int] = []
    new_uuids: set[str] = set()
    added: dict[str, int] = {}
    for index, entry in enumerate(entries):
        uuid = entry_uuid(entry)
        if uuid is not None:
            if uuid in held_uuids or uuid in new_uuids:
                continue
            new_uuids.add(uuid)
        else:
            key = identity(entry)
            have = held_counts.get(key, 0) + added.get(key, 0)
            if have > (occurrences[index] or 0):
                continue
            added[key] = added.get(key, 0) + 1
        kept.append(index)
    return kept


async def append_once(
    store: SessionStore, key: SessionKey, entries: list[SessionStoreEntry], occurrences: list[int | None]
) -> int:
    """Store each entry unless ``key`` already holds it; return how many were newly stored.

    ``occurrences`` (from :func:`occurrences` over the whole source file, or an :class:`OccurrenceCounter`)
    gives each uuid-less entry its copy number. Uses ``store.append_once`` when the store implements it
    (atomic per call); otherwise ``load(key)`` and one ``append`` of the entries missing (exact for sequential
    re-runs, not atomic against a concurrent writer). ``append_once(store, key, [], [])`` returns 0 and
    touches nothing.
    """
    check_entry_list(entries)
    check_occurrences(entries, occurrences)
    if store_implements(store, "append_once"):
        return await store.append_once(key, entries, occurrences)
    if not entries:
        return 0
    held = await store.load(key) or []
    held_uuids = {uuid for entry in held if (uuid := entry_uuid(entry)) is not None}
    held_counts: dict[str, int] = {}
    for entry in held:
        if entry_uuid(entry) is None:
            identity = canonical_json(entry)
            held_counts[identity] = held_counts.get(identity, 0) + 1
    missing = [entries[index] for index in plan_append_once(entries, occurrences, held_uuids, held_counts)]
    if missing:
        await store.append(key, missing)
    return len(missing)
