"""Bad input at every public door (issue 10, suite 4): a clear error naming the value, and the store unchanged.

The decisions (see ``session_store/validation.py``): an entry is stored exactly when JSON can carry it, so NaN,
Infinity and non-JSON values are rejected by every adapter alike, with the whole batch; lone surrogates and
``\\u0000`` round-trip; an entry of 10 MiB round-trips. Keys, ids, titles, tags, timeouts and store URLs of the
wrong type or form are refused before any store call. "Unchanged" is checked by dumping everything the store
holds (listing, summaries, every transcript and subkey) before and after.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from servers import redis_test_prefix

from session_store import (
    InMemorySessionStore,
    TranscriptMirrorBatcher,
)
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore
from session_store.types import SessionKey, SessionStore, SessionStoreEntry

StoreFactory = Callable[[], SessionStore]
PROJECT = "proj"


def new_id() -> str:
    return str(uuid.uuid4())


def entry(**fields: Any) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": "user", "uuid": new_id(), **fields})


def main_key(session_id: str, project_key: str = PROJECT) -> SessionKey:
    return {"project_key": project_key, "session_id": session_id}


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("redis", marks=pytest.mark.servers),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds fresh, empty stores of one adapter."""
    numbers = itertools.count()
    if request.param == "memory":
        return InMemorySessionStore
    if request.param == "sqlite":
        return lambda: SQLiteSessionStore(tmp_path / f"store-{next(numbers)}.db")
    if request.param == "postgres":
        postgres_url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresSessionStore(postgres_url, table=f"t_{uuid.uuid4().hex[:16]}")
    redis_url: str = request.getfixturevalue("redis_url")
    return lambda: RedisSessionStore(redis_url, prefix=redis_test_prefix())


async def dump(store: SessionStore, project_keys: tuple[str, ...] = (PROJECT,)) -> dict[str, Any]:
    """Everything the store holds for ``project_keys``: listing, summaries, each transcript and subkey."""
    everything: dict[str, Any] = {}
    for project_key in project_keys:
        sessions = sorted(await store.list_sessions(project_key), key=lambda row: row["session_id"])
        summaries = sorted(await store.list_session_summaries(project_key), key=lambda row: row["session_id"])
        transcripts = {}
        for row in sessions:
            key = main_key(row["session_id"], project_key)
            transcripts[row["session_id"]] = await store.load(key)
            for subpath in sorted(await store.list_subkeys(key)):
                transcripts[f"{row['session_id']}/{subpath}"] = await store.load({**key, "subpath": subpath})
        everything[project_key] = {"sessions": sessions, "summaries": summaries, "transcripts": transcripts}
    return everything


async def seeded(make_store: StoreFactory) -> tuple[SessionStore, str]:
    """A store holding one session with a subagent transcript, and that session's id."""
    store = make_store()
    session_id = new_id()
    await store.append(main_key(session_id), [entry(message={"content": "hello"}), entry()])
    await store.append({**main_key(session_id), "subpath": "subagents/agent-1"}, [entry()])
    return store, session_id


async def close(store: SessionStore) -> None:
    closer = getattr(store, "close", None)
    if closer is not None:
        await closer()


# --- entries JSON cannot carry --------------------------------------------------------------------------------

UNSTORABLE = [
    pytest.param(math.nan, ValueError, id="nan"),
    pytest.param(math.inf, ValueError, id="infinity"),
    pytest.param([1, -math.inf], ValueError, id="nested-minus-infinity"),
    pytest.param({1, 2}, TypeError, id="set"),
    pytest.param(datetime(2024, 5, 1, tzinfo=UTC), TypeError, id="datetime"),
    pytest.param(b"bytes", TypeError, id="bytes"),
]


@pytest.mark.parametrize("subpath", [None, "subagents/agent-1"])
@pytest.mark.parametrize(("value", "error"), UNSTORABLE)
async def test_an_entry_json_cannot_carry_is_rejected_by_name_with_its_batch_and_the_store_is_unchanged(
    make_store: StoreFactory, value: object, error: type[Exception], subpath: str | None
) -> None:
    store, session_id = await seeded(make_store)
    key: SessionKey = main_key(session_id) if subpath is None else {**main_key(session_id), "subpath": subpath}
    before = await dump(store)
    bad = entry(value=value)
    with pytest.raises(error, match=bad["uuid"]):
        await store.append(key, [entry(), bad, entry()])
    assert await dump(store) == before
    await store.append(key, [bad | {"value": None}])  # the way out named in the message works
    await close(store)


async def test_an_entry_holding_itself_is_rejected_and_the_store_is_unchanged(make_store: StoreFactory) -> None:
    store, session_id = await seeded(make_store)
    before = await dump(store)
    cyclic = entry()
    cyclic["self"] = cyclic  # type: ignore[typeddict-unknown-key]  # a deliberately malformed entry
    with pytest.raises(ValueError, match=r"[Cc]ircular"):
        await store.append(main_key(session_id), [cyclic])
    assert await dump(store) == before
    await close(store)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        pytest.param("not a list", "entries must be a list", id="str"),
        pytest.param(None, "entries must be a list", id="none"),
        pytest.param({"type": "user"}, "entries must be a list", id="one-dict"),
        pytest.param([{"type": "user"}, "line"], r"entries\[1\] must be a dict", id="str-entry"),
        pytest.param([["type", "user"]], r"entries\[0\] must be a dict", id="list-entry"),
    ],
)
async def test_entries_that_are_not_a_list_of_dicts_are_rejected_and_the_store_is_unchanged(
    make_store: StoreFactory, entries: object, match: str
) -> None:
    store, session_id = await seeded(make_store)
    before = await dump(store)
    with pytest.raises(TypeError, match=match):
        await store.append(main_key(session_id), entries)  # type: ignore[arg-type]  # the wrong type under test
    assert await dump(store) == before
    await close(store)


async def test_unicode_nul_lone_surrogates_and_a_10_mib_entry_round_trip_exactly(make_store: StoreFactory) -> None:
    store = make_store()
    key = main_key(new_id())
    odd = [
        entry(text="a\x00b", title="\ud83d cut emoji", tail="x\udc00", crab="🦀", separators="\u2028\u2029"),
        entry(message={"content": "\ud83d"}, lastPrompt="\udfff"),  # folded into the summary too
        entry(big="ü" * (10 << 20)),
    ]
    await store.append(key, odd)
    assert await store.load(key) == odd
    [summary] = await store.list_session_summaries(PROJECT)
    assert summary["data"]["last_prompt"] == "\udfff"
    await close(store)


async def test_json_turns_non_string_dict_keys_and_tuples_into_strings_and_lists_on_every_adapter(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    key = main_key(new_id())
    stored = entry(counts={1: "one", None: "none"}, pair=(1, 2))
    await store.append(key, [stored])
    assert await store.load(key) == [{**stored, "counts": {"1": "one", "null": "none"}, "pair": [1, 2]}]
    await close(store)


# --- keys ---------------------------------------------------------------------------------------------------------

BAD_KEYS = [
    pytest.param("proj/session", TypeError, "must be a dict", id="str"),
    pytest.param({"project_key": PROJECT}, TypeError, "session_id must be a str, got missing", id="no-session-id"),
    pytest.param({"project_key": PROJECT, "session_id": 7}, TypeError, "session_id must be a str, got int", id="int"),
    pytest.param({"project_key": None, "session_id": "s"}, TypeError, "project_key must be a str", id="none-project"),
    pytest.param({"project_key": "p\x00", "session_id": "s"}, ValueError, "NUL", id="nul"),
    pytest.param({"project_key": PROJECT, "session_id": "s\ud800"}, ValueError, "surrogate", id="surrogate"),
    pytest.param({"project_key": PROJECT, "session_id": "s", "subpath": ""}, ValueError, "non-empty", id="empty-sub"),
    pytest.param({"project_key": PROJECT, "session_id": "s", "subpath": 3}, TypeError, "subpath must be a str", id="i"),
]


@pytest.mark.parametrize(("key", "error", "match"), BAD_KEYS)
async def test_a_bad_key_is_refused_by_every_method_and_the_store_is_unchanged(
    make_store: StoreFactory, key: object, error: type[Exception], match: str
) -> None:
    store, _ = await seeded(make_store)
    before = await dump(store)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.append(key, [entry()]),  # type: ignore[arg-type]  # the wrong type under test
        lambda: store.load(key),  # type: ignore[arg-type]
        lambda: store.delete(key),  # type: ignore[arg-type]
    ]
    if not (isinstance(key, dict) and "subpath" in key):
        calls.append(lambda: store.list_subkeys(key))  # type: ignore[arg-type]
    for call in calls:
        with pytest.raises(error, match=match):
            await call()
    assert await dump(store) == before
    await close(store)


@pytest.mark.parametrize(
    ("project_key", "error"), [(None, TypeError), (5, TypeError), ("p\x00", ValueError), ("p\udcff", ValueError)]
)
async def test_listing_a_bad_project_key_is_refused(
    make_store: StoreFactory, project_key: object, error: type[Exception]
) -> None:
    store, _ = await seeded(make_store)
    for listing in (store.list_sessions, store.list_session_summaries):
        with pytest.raises(error, match="project_key"):
            await listing(project_key)  # type: ignore[arg-type]  # the wrong type under test
    await close(store)


# --- the mirror batcher -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "error", "match"),
    [
        pytest.param([entry(value=math.nan)], ValueError, "NaN", id="nan"),
        pytest.param([entry(value={1})], TypeError, "set", id="set"),
        pytest.param(["line"], TypeError, r"entries\[0\] must be a dict", id="str-entry"),
        pytest.param("line", TypeError, "entries must be a list", id="str"),
    ],
)
async def test_the_batcher_refuses_a_frame_it_could_not_store_and_keeps_the_good_ones(
    tmp_path: Path, entries: object, error: type[Exception], match: str
) -> None:
    store = InMemorySessionStore()
    errors: list[str] = []
    batcher = TranscriptMirrorBatcher(store, str(tmp_path), lambda key, message: errors.append(message))
    session_id = new_id()
    path = str(tmp_path / PROJECT / f"{session_id}.jsonl")
    good = [entry(), entry()]
    batcher.enqueue(path, good[:1])
    with pytest.raises(error, match=match) as raised:
        batcher.enqueue(path, entries)  # type: ignore[arg-type]  # the wrong type under test
    assert path in str(raised.value)
    batcher.enqueue(path, good[1:])
    await batcher.close()
    assert await store.load(main_key(session_id)) == good
    assert errors == []
