"""``InMemorySessionStore``: a complete ``SessionStore`` in a few dicts, for tests, demos and as a model.

Implements reference §4.1-§4.2, with this project's decisions:

- SPEC §4 decision 2: a key with ``subpath == ""`` raises ``ValueError`` in every method, and
  ``append(key, [])`` is a no-op that creates nothing (no entries, no listing, no summary).
- SPEC §4 decision 8: entries are deduplicated by ``uuid`` per key: an entry whose uuid the key already holds
  (from an earlier append or earlier in the same batch) is ignored, so a retried append never duplicates.
  Entries without a uuid are always appended by ``append``. Only the accepted entries are folded into the summary.
- ``append_once`` (this project's optional method, :mod:`session_store.exactly_once`) keeps a count of the
  uuid-less entries per key by canonical JSON, filled by ``append`` too.
- All seven methods are implemented. Appends to a main transcript fold the summary sidecar with
  :func:`session_store.summary.fold_session_summary` (never for a subpath key) and stamp it with the same
  mtime as the session's ``list_sessions`` row: one strictly increasing epoch-millisecond clock.
- Entries are checked and copied on the way in as every adapter stores them, through JSON
  (:mod:`session_store.validation`: NaN, Infinity and non-JSON values are rejected, the batch whole), and
  deep-copied on the way out, so neither the caller nor the store can change the other's data afterwards.

Every method completes without awaiting anything: one call is atomic with respect to other tasks.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Self, cast

from .exactly_once import canonical_json, check_occurrences, entry_uuid, plan_append_once
from .keys import validate_project_key, validate_session_key
from .summary import fold_session_summary
from .types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from .validation import check_entry_list, encode_entry

__all__ = ["InMemorySessionStore"]

# (project_key, session_id, subpath or None for the main transcript)
_StorageKey = tuple[str, str, str | None]


def _storage_key(key: SessionKey) -> _StorageKey:
    validate_session_key(key)
    return key["project_key"], key["session_id"], key.get("subpath")


class InMemorySessionStore(SessionStore):
    """A process-local ``SessionStore`` keeping everything in memory (lost when the object goes away)."""

    def __init__(self) -> None:
        self._entries: dict[_StorageKey, list[SessionStoreEntry]] = {}
        self._uuids: dict[_StorageKey, set[str]] = {}
        self._contents: dict[_StorageKey, Counter[str]] = {}  # canonical JSON -> copies, uuid-less entries
        self._mtimes: dict[_StorageKey, int] = {}
        self._summaries: dict[tuple[str, str], SessionSummaryEntry] = {}
        self._last_mtime = 0

    def _next_mtime(self) -> int:
        """Wall-clock epoch ms, forced strictly increasing so two writes never share an mtime."""
        now = time.time_ns() // 1_000_000
        self._last_mtime = max(now, self._last_mtime + 1)
        return self._last_mtime

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        storage_key = _storage_key(key)
        self._store(key, storage_key, check_entry_list(entries))

    async def append_once(
        self, key: SessionKey, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        """Store each entry unless the key already holds it (see ``SessionStore.append_once``)."""
        storage_key = _storage_key(key)
        check_occurrences(check_entry_list(entries), occurrences)
        kept = plan_append_once(
            entries, occurrences, self._uuids.get(storage_key, set()), self._contents.get(storage_key, Counter())
        )
        if kept:
            # through append (which stores without awaiting, so the call stays atomic): a subclass that
            # watches append sees what append_once stores
            await self.append(key, [entries[index] for index in kept])
        return len(kept)

    def _store(self, key: SessionKey, storage_key: _StorageKey, entries: Sequence[SessionStoreEntry]) -> int:
        """Append JSON copies of the entries whose uuid the key does not hold yet; return how many were stored.

        Every copy is made before anything changes, so an entry JSON cannot carry leaves the store unchanged.
        """
        known_uuids = self._uuids.get(storage_key, set())
        new_uuids: set[str] = set()
        accepted: list[SessionStoreEntry] = []
        for entry in entries:
            uuid = entry_uuid(entry)
            if uuid is not None:
                if uuid in known_uuids or uuid in new_uuids:
                    continue
                new_uuids.add(uuid)
            accepted.append(json.loads(encode_entry(entry)))  # raises before anything is stored
        if not accepted:
            return 0
        known_uuids.update(new_uuids)
        self._uuids[storage_key] = known_uuids
        contents = self._contents.setdefault(storage_key, Counter())
        contents.update(canonical_json(entry) for entry in accepted if entry_uuid(entry) is None)
        self._entries.setdefault(storage_key, []).extend(accepted)
        mtime = self._next_mtime()
        self._mtimes[storage_key] = mtime
        project_key, session_id, subpath = storage_key
        if subpath is None:
            summary = fold_session_summary(self._summaries.get((project_key, session_id)), key, accepted)
            summary["mtime"] = mtime
            self._summaries[project_key, session_id] = summary
        return len(accepted)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        stored = self._entries.get(_storage_key(key))
        return None if stored is None else copy.deepcopy(stored)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        validate_project_key(project_key)
        return [
            {"session_id": session_id, "mtime": self._mtimes[(project, session_id, subpath)]}
            for project, session_id, subpath in self._entries
            if project == project_key and subpath is None
        ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        validate_project_key(project_key)
        return [
            copy.deepcopy(summary)
            for (summary_project, _), summary in self._summaries.items()
            if summary_project == project_key
        ]

    async def delete(self, key: SessionKey) -> None:
        project_key, session_id, subpath = _storage_key(key)
        if subpath is None:
            doomed = [k for k in self._entries if k[0] == project_key and k[1] == session_id]
            self._summaries.pop((project_key, session_id), None)
        else:
            doomed = [(project_key, session_id, subpath)]
        for storage_key in doomed:
            self._entries.pop(storage_key, None)
            self._uuids.pop(storage_key, None)
            self._contents.pop(storage_key, None)
            self._mtimes.pop(storage_key, None)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        validate_session_key(cast(SessionKey, key))
        return [
            subpath
            for project_key, session_id, subpath in self._entries
            if project_key == key["project_key"] and session_id == key["session_id"] and subpath is not None
        ]

    # -- retention (session_store.retention) --

    async def list_projects(self) -> list[str]:
        """Every project key holding at least one main transcript."""
        return sorted({project_key for project_key, _, subpath in self._entries if subpath is None})

    def _prune_candidates(self, project_key: str, before_ms: int) -> list[tuple[str, int]]:
        return [
            (session_id, summary["mtime"])
            for (summary_project, session_id), summary in self._summaries.items()
            if summary_project == project_key and summary["mtime"] < before_ms
        ]

    async def prune_project(
        self, project_key: str, *, before_ms: int, dry_run: bool = False
    ) -> list[SessionStoreListEntry]:
        """Delete the project's sessions whose mtime is before ``before_ms``; the deleted (or, with
        ``dry_run``, the found) rows. A session is deleted only if its mtime is still before the cutoff."""
        validate_project_key(project_key)
        if isinstance(before_ms, bool) or not isinstance(before_ms, int):
            raise TypeError(f"before_ms must be an int (epoch milliseconds), got {before_ms!r}")
        found = self._prune_candidates(project_key, before_ms)
        if dry_run:
            return [{"session_id": session_id, "mtime": mtime} for session_id, mtime in found]
        pruned: list[SessionStoreListEntry] = []
        for session_id, _ in found:
            summary = self._summaries.get((project_key, session_id))
            if summary is None or summary["mtime"] >= before_ms:
                continue  # appended to (or deleted) since it was found
            await self.delete({"project_key": project_key, "session_id": session_id})
            pruned.append({"session_id": session_id, "mtime": summary["mtime"]})
        return pruned

    # -- lifecycle: nothing to release, but every store closes the same way --

    async def close(self) -> None:
        """Nothing to release; present so that callers can close any store alike."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- helpers for tests --

    def get_entries(self, key: SessionKey) -> list[SessionStoreEntry]:
        """A copy of the key's entries, ``[]`` when it was never written (synchronous, for tests)."""
        return copy.deepcopy(self._entries.get(_storage_key(key), []))

    @property
    def size(self) -> int:
        """How many main transcripts the store holds (subagent transcripts are not counted)."""
        return sum(1 for _, _, subpath in self._entries if subpath is None)

    def clear(self) -> None:
        """Forget everything, the mtime clock included."""
        self._entries.clear()
        self._uuids.clear()
        self._contents.clear()
        self._mtimes.clear()
        self._summaries.clear()
        self._last_mtime = 0
