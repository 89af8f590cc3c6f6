"""Small builders for transcript entries and seeded stores, shared by the read-path tests.

Every builder returns plain dicts shaped like Claude Code transcript lines; ``at`` is seconds after
:data:`BASE_TIME`, so tests can say which entry is newer without writing timestamps by hand.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import compat
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.types import SessionKey, SessionStore, SessionStoreEntry, SessionSummaryEntry

Entry = dict[str, Any]

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
BASE_TIME_MS = int(BASE_TIME.timestamp() * 1000)


def new_id() -> str:
    return str(uuid_module.uuid4())


def iso(at: float) -> str:
    """The ISO timestamp (``Z``, milliseconds) ``at`` seconds after :data:`BASE_TIME`."""
    moment = BASE_TIME + timedelta(seconds=at)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(at: float) -> int:
    return BASE_TIME_MS + int(at * 1000)


def entry(
    type_: str,
    *,
    uuid: str | None = None,
    parent: str | None = None,
    session_id: str = "",
    at: float = 0,
    **fields: Any,
) -> Entry:
    return {
        "type": type_,
        "uuid": uuid or new_id(),
        "parentUuid": parent,
        "sessionId": session_id,
        "timestamp": iso(at),
        **fields,
    }


def user(text: str | list[Any], **kwargs: Any) -> Entry:
    return entry("user", message={"role": "user", "content": text}, **kwargs)


def assistant(text: str, **kwargs: Any) -> Entry:
    return entry("assistant", message={"role": "assistant", "content": [{"type": "text", "text": text}]}, **kwargs)


def progress(**kwargs: Any) -> Entry:
    return entry("progress", data={"type": "hook_progress"}, **kwargs)


def tool_result(tool_use_id: str, **kwargs: Any) -> Entry:
    content = [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "ok"}]
    return entry("user", message={"role": "user", "content": content}, **kwargs)


def linked(*entries: Entry) -> list[Entry]:
    """``entries`` with each one's ``parentUuid`` set to the previous entry's ``uuid`` (the first: None)."""
    parent: str | None = None
    for item in entries:
        item["parentUuid"] = parent
        parent = item["uuid"]
    return list(entries)


def conversation(*prompts: str, session_id: str = "", start_at: float = 0, **fields: Any) -> list[Entry]:
    """A linear chain: for each prompt a user entry and an assistant reply, one second apart."""
    items: list[Entry] = []
    for index, prompt in enumerate(prompts):
        at = start_at + 2 * index
        items.append(user(prompt, session_id=session_id, at=at, **fields))
        items.append(assistant(f"reply to {prompt}", session_id=session_id, at=at + 1, **fields))
    return linked(*items)


def custom_title(title: str, *, session_id: str = "") -> Entry:
    return {"type": "custom-title", "customTitle": title, "sessionId": session_id}


def tag(value: str, *, session_id: str = "") -> Entry:
    return {"type": "tag", "tag": value, "sessionId": session_id}


def agent_metadata(**fields: Any) -> Entry:
    return {"type": "agent_metadata", **fields}


def jsonl(entries: Iterable[object]) -> str:
    return "".join(json.dumps(item) + "\n" for item in entries)


def write_jsonl(path: Path, entries: Iterable[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonl(entries), encoding="utf-8")
    return path


def key_for(directory: str | Path, session_id: str, subpath: str | None = None) -> SessionKey:
    key: SessionKey = {"project_key": project_key_for_directory(directory), "session_id": session_id}
    if subpath is not None:
        key["subpath"] = subpath
    return key


async def seed(
    store: SessionStore,
    directory: str | Path,
    session_id: str,
    entries: Sequence[Entry],
    subpath: str | None = None,
) -> None:
    """Append ``entries`` to the session (or its ``subpath``) of ``directory``'s project."""
    await store.append(key_for(directory, session_id, subpath), cast("list[SessionStoreEntry]", list(entries)))


# --- store doubles --------------------------------------------------------------------------------------------


class RecordingStore(InMemorySessionStore):
    """An in-memory store that records loads, can slow or fail them, and lets a test doctor the summaries.

    ``loaded`` lists the session ids loaded; ``max_in_flight`` is the most loads that ran at once;
    ``finished_loads`` counts loads that ended in any way (returned, raised or were cancelled).
    """

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.load_delay_seconds = 0.0
        self.failing_loads: dict[str, BaseException] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.finished_loads = 0
        self.hidden_summaries: set[str] = set()
        self.replaced_summaries: dict[str, SessionSummaryEntry] = {}
        self.extra_summaries: list[SessionSummaryEntry] = []

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        self.loaded.append(key["session_id"])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await compat.sleep(self.load_delay_seconds)
            failure = self.failing_loads.get(key["session_id"])
            if failure is not None:
                raise failure
            return await super().load(key)
        finally:
            self.in_flight -= 1
            self.finished_loads += 1

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        summaries = [
            self.replaced_summaries.get(summary["session_id"], summary)
            for summary in await super().list_session_summaries(project_key)
            if summary["session_id"] not in self.hidden_summaries
        ]
        return summaries + self.extra_summaries


class AppendSpyStore(RecordingStore):
    """Records the key and a copy of the entries of every append."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[tuple[SessionKey, list[Entry]]] = []

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.appends.append((key, [dict(entry) for entry in entries]))
        await super().append(key, entries)


class ListingOnlyStore(RecordingStore):
    """No summaries (it inherits the protocol default, which counts as absent): forces the slow listing path."""

    list_session_summaries = SessionStore.list_session_summaries  # type: ignore[assignment]  # mark as absent


class SummariesOnlyStore(RecordingStore):
    """Summaries but no ``list_sessions``: the fast path without gap-fill."""

    list_sessions = SessionStore.list_sessions  # type: ignore[assignment]  # mark as absent


class NoSubkeysStore(RecordingStore):
    """A store that cannot enumerate subpaths."""

    list_subkeys = SessionStore.list_subkeys  # type: ignore[assignment]  # mark as absent


class MinimalStore:
    """Only the two required methods, duck-typed; records every call."""

    def __init__(self) -> None:
        self.inner = InMemorySessionStore()
        self.calls: list[str] = []

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.calls.append("append")
        await self.inner.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        self.calls.append("load")
        return await self.inner.load(key)
