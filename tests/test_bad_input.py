"""Bad input at every public door (issue 10, suite 4): a clear error naming the value, and the store unchanged.

The decisions (see ``session_store/validation.py``): an entry is stored exactly when JSON can carry it, so NaN,
Infinity and non-JSON values are rejected by every adapter alike, with the whole batch; lone surrogates and
``\\u0000`` round-trip; an entry of 10 MiB round-trips. Keys, ids, titles, tags, timeouts and store URLs of the
wrong type or form are refused before any store call. "Unchanged" is checked by dumping everything the store
holds (listing, summaries, every transcript and subkey) before and after.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from property_support import BACKEND_PARAMS, property_settings, run_on
from servers import redis_test_prefix

import compat
from session_store import (
    InMemorySessionStore,
    TranscriptMirrorBatcher,
    delete_session_via_store,
    fork_session_via_store,
    get_session_info_from_store,
    get_session_messages_from_store,
    import_session_to_store,
    list_sessions_from_store,
    list_subagents_from_store,
    materialize_resume_session,
    open_store,
    rename_session_via_store,
    tag_session_via_store,
)
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore
from session_store.keys import file_path_to_session_key, project_key_for_directory
from session_store.types import SessionKey, SessionStore, SessionStoreEntry
from session_store.watching import TranscriptFolderWatcher

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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
unstorable_values = st.sampled_from([math.nan, math.inf, -math.inf, {1}, b"x", datetime(2024, 1, 1)]).flatmap(
    lambda bad: st.sampled_from([bad, [bad], {"deep": [0, {"er": bad}]}])
)


async def rejected_batch_scenario(store_kind: str, tmp: Path, good: list[Any], bad: object, at: int) -> None:
    store: SessionStore = InMemorySessionStore() if store_kind == "memory" else SQLiteSessionStore(tmp / "s.db")
    session_id = new_id()
    await store.append(main_key(session_id), [entry(seed=True)])
    before = await dump(store)
    batch = [entry(value=value) for value in good]
    batch.insert(at % (len(batch) + 1), entry(value=bad))
    with pytest.raises((TypeError, ValueError)):
        await store.append(main_key(session_id), batch)
    assert await dump(store) == before
    good_entries = [item for item in batch if item["value"] is not bad]
    await store.append(main_key(session_id), good_entries)  # none of their uuids was remembered
    assert (await store.load(main_key(session_id)) or [])[1:] == json.loads(json.dumps(good_entries))
    await close(store)


@BACKEND_PARAMS
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@property_settings(default_run=25, soak=400)
@given(good=st.lists(json_values, max_size=6), bad=unstorable_values, at=st.integers(0, 10))
def test_any_batch_holding_one_unstorable_value_leaves_the_store_unchanged_and_remembers_none_of_it(
    backend: str, store_kind: str, good: list[Any], bad: object, at: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_on(backend, rejected_batch_scenario, store_kind, Path(tmp), good, bad, at)


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
        lambda: store.load(key),  # type: ignore[arg-type]  # the wrong type under test
        lambda: store.delete(key),  # type: ignore[arg-type]  # the wrong type under test
    ]
    if not (isinstance(key, dict) and "subpath" in key):
        calls.append(lambda: store.list_subkeys(key))  # type: ignore[arg-type]  # the wrong type under test
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


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("make_bad", "match"),
    [
        pytest.param(lambda bad: bad.__setitem__("self", bad), "cycles", id="cycle"),
        pytest.param(lambda bad: bad.__setitem__("inner", {"deep": {"value": math.inf}}), "Infinity", id="inf"),
        pytest.param(lambda bad: bad.__setitem__("deep", _nested(100_000)), "nested too deeply", id="deep"),
    ],
)
async def test_an_entry_refused_half_way_through_its_encoding_goes_through_once_mended(
    tmp_path: Path, make_bad: Callable[[dict[str, Any]], None], match: str
) -> None:
    """The batcher's size encoder keeps a cycle table between frames: a failed encode must not leave it stale."""
    store = InMemorySessionStore()
    batcher = TranscriptMirrorBatcher(store, str(tmp_path), lambda key, message: pytest.fail(message))
    session_id = new_id()
    path = str(tmp_path / PROJECT / f"{session_id}.jsonl")
    bad = cast(dict[str, Any], entry())
    make_bad(bad)
    with pytest.raises(ValueError, match=match) as raised:
        batcher.enqueue(path, [cast(SessionStoreEntry, bad)])
    assert path in str(raised.value)
    for name in ("self", "inner", "deep"):
        bad.pop(name, None)
    bad["inner"] = {"mended": True}  # the same dict objects, now plain JSON
    batcher.enqueue(path, [cast(SessionStoreEntry, bad)])
    await batcher.close()
    assert await store.load(main_key(session_id)) == [bad]


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        pytest.param({"send_timeout": math.nan}, ValueError, "send_timeout.*NaN", id="nan-timeout"),
        pytest.param({"send_timeout": 0}, ValueError, "send_timeout must be a positive", id="zero-timeout"),
        pytest.param({"send_timeout": -1.0}, ValueError, "send_timeout must be a positive", id="negative"),
        pytest.param({"send_timeout": "60"}, TypeError, "send_timeout.*str", id="str-timeout"),
        pytest.param({"max_pending_entries": "5"}, TypeError, "max_pending_entries must be an int", id="str-max"),
        pytest.param({"max_pending_bytes": -1}, ValueError, "max_pending_bytes must be >= 0", id="negative-max"),
        pytest.param({"projects_dir": 5}, TypeError, "projects_dir must be a str or os.PathLike", id="int-dir"),
        pytest.param({"on_error": None}, TypeError, "on_error must be callable", id="no-callback"),
        pytest.param({"store": object()}, TypeError, "append", id="not-a-store"),
    ],
)
def test_a_batcher_refuses_settings_every_flush_would_fail_on(
    settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"store": InMemorySessionStore(), "projects_dir": "/p", "on_error": print}
    with pytest.raises(error, match=match):
        TranscriptMirrorBatcher(**(arguments | settings))


def test_a_batcher_takes_a_path_object_for_its_projects_dir(tmp_path: Path) -> None:
    batcher = TranscriptMirrorBatcher(InMemorySessionStore(), tmp_path, print)  # type: ignore[arg-type]  # PathLike
    assert batcher.projects_dir == str(tmp_path)


# --- rename, tag, fork, delete ------------------------------------------------------------------------------------

SESSION = "123e4567-e89b-12d3-a456-426614174000"
MutationCall = Callable[[SessionStore, str], Awaitable[object]]
BAD_MUTATIONS: list[Any] = [
    pytest.param(lambda s, i: rename_session_via_store(s, "not-a-uuid", "t"), ValueError, "not-a-uuid", id="bad-id"),
    pytest.param(lambda s, i: rename_session_via_store(s, i.upper() + "0", "t"), ValueError, "Invalid", id="long-id"),
    pytest.param(lambda s, i: rename_session_via_store(s, 7, "t"), TypeError, "session_id must be a str", id="int-id"),
    pytest.param(lambda s, i: rename_session_via_store(s, i, ""), ValueError, "title must be non-empty", id="empty"),
    pytest.param(lambda s, i: rename_session_via_store(s, i, " \t\n"), ValueError, "title", id="whitespace-title"),
    pytest.param(lambda s, i: rename_session_via_store(s, i, "\u200b\ufeff "), ValueError, "visible", id="zero-width"),
    pytest.param(lambda s, i: rename_session_via_store(s, i, None), TypeError, "title must be a str", id="none-title"),
    pytest.param(lambda s, i: tag_session_via_store(s, i, "  "), ValueError, "tag must be non-empty", id="blank-tag"),
    pytest.param(lambda s, i: tag_session_via_store(s, i, "\u202e\u200d"), ValueError, "None to clear", id="bidi"),
    pytest.param(lambda s, i: tag_session_via_store(s, i, ["a"]), TypeError, "tag must be a str", id="list-tag"),
    pytest.param(lambda s, i: tag_session_via_store(s, "", "a"), ValueError, "Invalid session_id", id="empty-id"),
    pytest.param(lambda s, i: fork_session_via_store(s, i, up_to_message_id="x"), ValueError, "'?x'?", id="up-to"),
    pytest.param(lambda s, i: fork_session_via_store(s, i, title=5), TypeError, "title must be a str", id="fork-title"),
    pytest.param(lambda s, i: fork_session_via_store(s, b"id"), TypeError, "session_id must be a str", id="bytes"),
    pytest.param(lambda s, i: delete_session_via_store(s, None), TypeError, "got NoneType", id="delete-none"),
    pytest.param(lambda s, i: delete_session_via_store(s, f" {i}"), ValueError, "Invalid session_id", id="space"),
    pytest.param(lambda s, i: rename_session_via_store(s, i, "t", directory=b"/"), TypeError, "fsdecode", id="b-dir"),
    pytest.param(lambda s, i: tag_session_via_store(s, i, "t", directory=3), TypeError, "got int 3", id="int-dir"),
    pytest.param(lambda s, i: fork_session_via_store(s, i, directory=b"/"), TypeError, "directory", id="fork-b-dir"),
    pytest.param(lambda s, i: delete_session_via_store(s, i, directory=b"/"), TypeError, "b'/'", id="delete-b-dir"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_MUTATIONS)
async def test_a_mutation_with_bad_arguments_names_the_value_and_changes_nothing(
    tmp_path: Path, call: MutationCall, error: type[Exception], match: str
) -> None:
    store = SQLiteSessionStore(tmp_path / "store.db")
    project_key = project_key_for_directory(None)
    session_id = new_id()
    await store.append(main_key(session_id, project_key), [entry(message={"content": "hi"})])
    before = await dump(store, (project_key,))
    with pytest.raises(error, match=match):
        await call(store, session_id)
    assert await dump(store, (project_key,)) == before
    await store.close()


# --- reading ------------------------------------------------------------------------------------------------------

BAD_READS: list[Any] = [
    pytest.param(lambda s, i: get_session_info_from_store(s, 5), "got int 5", id="info-int-id"),
    pytest.param(lambda s, i: get_session_messages_from_store(s, uuid.UUID(i)), "got UUID", id="messages-uuid-id"),
    pytest.param(lambda s, i: get_session_messages_from_store(s, i, limit="10"), "limit must be an int", id="limit"),
    pytest.param(lambda s, i: get_session_messages_from_store(s, i, offset=1.5), "offset must be an int", id="offset"),
    pytest.param(lambda s, i: list_sessions_from_store(s, limit="3"), "limit must be an int or None", id="list-limit"),
    pytest.param(lambda s, i: list_subagents_from_store(s, None), "got NoneType", id="subagents-none"),
    pytest.param(
        lambda s, i: list_sessions_from_store(s, directory=b"/"), r"got bytes b'/'.*fsdecode", id="list-b-dir"
    ),
    pytest.param(lambda s, i: get_session_info_from_store(s, i, directory=1.5), "directory", id="info-float-dir"),
    pytest.param(lambda s, i: get_session_messages_from_store(s, i, directory=b"/"), "fsdecode", id="messages-b-dir"),
    pytest.param(lambda s, i: list_subagents_from_store(s, i, directory=b"/"), "fsdecode", id="subagents-b-dir"),
]


@pytest.mark.parametrize(("call", "match"), BAD_READS)
async def test_a_read_with_arguments_of_the_wrong_type_names_them(call: MutationCall, match: str) -> None:
    store = InMemorySessionStore()
    session_id = new_id()
    await store.append(main_key(session_id, project_key_for_directory(None)), [entry(message={"content": "hi"})])
    with pytest.raises(TypeError, match=match):
        await call(store, session_id)


# --- resume -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        pytest.param({"resume": 5}, TypeError, "resume must be a str, got int", id="int-resume"),
        pytest.param({"resume": SESSION, "load_timeout_ms": "5"}, TypeError, "load_timeout_ms", id="str-timeout"),
        pytest.param({"resume": SESSION, "load_timeout_ms": None}, TypeError, "milliseconds", id="none-timeout"),
        pytest.param({"resume": SESSION, "load_timeout_ms": math.nan}, ValueError, "math.inf", id="nan-timeout"),
        pytest.param({"resume": SESSION, "load_timeout_ms": True}, TypeError, "bool", id="bool-timeout"),
        pytest.param({"resume": SESSION, "cwd": b"/"}, TypeError, "fsdecode", id="bytes-cwd"),
        pytest.param({"continue_conversation": True, "cwd": 9}, TypeError, "got int 9", id="int-cwd"),
    ],
)
async def test_resume_with_bad_arguments_names_the_value_before_any_store_call(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    store = InMemorySessionStore()
    await store.append(main_key(SESSION, project_key_for_directory(None)), [entry()])
    with pytest.raises(error, match=match):
        await materialize_resume_session(store, **options)


async def test_resume_of_an_id_that_is_not_a_uuid_starts_without_the_store() -> None:
    store = InMemorySessionStore()
    await store.append(main_key("../escape", project_key_for_directory(None)), [entry()])
    assert await materialize_resume_session(store, resume="../escape") is None


# --- open_store ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        pytest.param(5, TypeError, "got int", id="int"),
        pytest.param(None, TypeError, "got NoneType", id="none"),
        pytest.param("ftp://host/x", ValueError, "scheme 'ftp://'", id="unknown-scheme"),
        pytest.param("sessions.db", ValueError, "no scheme", id="no-scheme"),
        pytest.param("sqlite://host/x.db", ValueError, "names a host", id="sqlite-host"),
        pytest.param("sqlite:///x.db?mode=ro", ValueError, "mode=ro", id="sqlite-query"),
        pytest.param("memory://elsewhere", ValueError, "memory://elsewhere", id="memory-rest"),
        pytest.param("postgresql://u:secret@localhost/db?table=bad-name", ValueError, "'bad-name'", id="pg-table"),
        pytest.param("postgresql://localhost/db?table=a&table=b", ValueError, "table= 2 times", id="pg-two-tables"),
        pytest.param("redis://localhost?prefix={tenant}", ValueError, "'{tenant}'", id="redis-braces"),
    ],
)
def test_a_hostile_store_url_is_refused_by_name_before_anything_is_connected(
    url: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as raised:
        open_store(url)  # type: ignore[arg-type]  # the wrong type under test
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(
            lambda p: SQLiteSessionStore(os.fsencode(p)), "SQLite database path .*fsdecode", id="sqlite-bytes"
        ),
        pytest.param(lambda p: SQLiteSessionStore(3), "SQLite database path .*got int 3", id="sqlite-int"),
        pytest.param(lambda p: file_path_to_session_key(os.fsencode(p), p), "file_path .*fsdecode", id="key-bytes"),
        pytest.param(lambda p: file_path_to_session_key(p, None), "projects_dir .*got NoneType", id="key-none-dir"),
    ],
)
def test_a_path_that_is_not_a_str_path_is_refused_by_name_and_creates_nothing(
    tmp_path: Path, call: Callable[[str], object], match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        call(str(tmp_path / "x.db"))
    assert os.listdir(tmp_path) == []  # a one-off check after the call


async def test_a_sqlite_url_naming_a_directory_says_which_file_to_name_and_creates_nothing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}")
    with pytest.raises(IsADirectoryError, match=f"{tmp_path}.*sessions.db"):
        await store.list_sessions(PROJECT)
    assert os.listdir(tmp_path) == []  # a one-off check after the call


# --- import -------------------------------------------------------------------------------------------------------


def transcript_line(**fields: Any) -> str:
    return json.dumps(entry(**fields)) + "\n"


def write_session(projects: Path, session_id: str, lines: list[str], project: str = PROJECT) -> Path:
    path = projects / project / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_subagent(projects: Path, session_id: str, lines: list[str], name: str = "agent-a1.jsonl") -> Path:
    path = projects / PROJECT / session_id / "subagents" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


GOOD = [transcript_line(message={"content": "hi"}), transcript_line()]


@pytest.mark.parametrize(
    ("bad_line", "match"),
    [
        pytest.param("{oops\n", "invalid transcript line", id="corrupt"),
        pytest.param('{"type": "user", "x": NaN}\n', "NaN is not JSON", id="nan"),
        pytest.param('{"type": "user", "x": -Infinity}\n', "-Infinity is not JSON", id="minus-infinity"),
        pytest.param("[1, 2]\n", "must be a JSON object", id="array"),
        pytest.param('"text"\n', "must be a JSON object", id="string"),
    ],
)
@pytest.mark.parametrize("where", ["main", "subagent"])
async def test_an_invalid_line_anywhere_in_the_session_is_named_and_nothing_is_imported(
    tmp_path: Path, bad_line: str, match: str, where: str
) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    lines = [*GOOD, bad_line, transcript_line()]
    write_session(projects, session_id, lines if where == "main" else GOOD)
    bad_file = write_subagent(projects, session_id, lines if where == "subagent" else GOOD)
    bad_file = bad_file if where == "subagent" else projects / PROJECT / f"{session_id}.jsonl"
    store = SQLiteSessionStore(tmp_path / "store.db")
    before = await dump(store)
    with pytest.raises(ValueError, match=match) as raised:
        await import_session_to_store(session_id, store, projects_dir=projects, batch_size=1)
    assert f"{bad_file}:3:" in str(raised.value)
    assert await dump(store) == before
    await store.close()


async def test_a_directory_named_like_a_transcript_is_named_and_nothing_is_imported(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    (projects / PROJECT / f"{session_id}.jsonl").mkdir(parents=True)
    store = InMemorySessionStore()
    with pytest.raises(ValueError, match=f"{session_id}.jsonl is a directory"):
        await import_session_to_store(session_id, store, projects_dir=projects)
    assert await dump(store) == await dump(InMemorySessionStore())


@pytest.mark.parametrize("directory", [b"/", 4])
async def test_an_import_directory_that_is_not_a_str_path_is_named_and_nothing_is_imported(
    tmp_path: Path, directory: object
) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id, GOOD)
    store = InMemorySessionStore()
    with pytest.raises(TypeError, match=f"directory must be a str .*, got {type(directory).__name__} {directory!r}"):
        await import_session_to_store(session_id, store, directory=directory, projects_dir=projects)  # type: ignore[arg-type]
    assert await dump(store) == await dump(InMemorySessionStore())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("where", ["main", "subagent"])
async def test_a_fifo_named_like_a_transcript_is_named_without_blocking_and_nothing_is_imported(
    tmp_path: Path, where: str
) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    fifo = projects / PROJECT / f"{session_id}.jsonl"
    if where == "subagent":
        write_session(projects, session_id, GOOD)
        fifo = projects / PROJECT / session_id / "subagents" / "agent-a1.jsonl"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    store = InMemorySessionStore()
    with pytest.raises(ValueError, match=f"{fifo} is a FIFO"):
        await import_session_to_store(session_id, store, projects_dir=projects)
    assert store.size == 0


@pytest.mark.parametrize("where", ["main", "subagent", "subagents-folder"])
async def test_a_symlink_out_of_the_projects_folder_is_named_and_nothing_is_imported(
    tmp_path: Path, where: str
) -> None:
    projects, elsewhere = tmp_path / "projects", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.jsonl").write_text(transcript_line(secret="yes"), encoding="utf-8")
    session_id = new_id()
    if where == "main":
        link = projects / PROJECT / f"{session_id}.jsonl"
        link.parent.mkdir(parents=True)
        link.symlink_to(elsewhere / "secret.jsonl")
    else:
        write_session(projects, session_id, GOOD)
        subagents = projects / PROJECT / session_id / "subagents"
        if where == "subagent":
            subagents.mkdir(parents=True)
            (subagents / "agent-a1.jsonl").symlink_to(elsewhere / "secret.jsonl")
        else:
            subagents.parent.mkdir(parents=True)
            subagents.symlink_to(elsewhere, target_is_directory=True)
    store = InMemorySessionStore()
    with pytest.raises(ValueError, match=f"outside the projects folder {projects}"):
        await import_session_to_store(session_id, store, projects_dir=projects)
    assert store.size == 0


async def test_a_subagent_file_name_that_is_not_utf8_is_named_and_nothing_is_imported(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id, GOOD)
    write_subagent(projects, session_id, GOOD)
    write_subagent(projects, session_id, GOOD, name=os.fsdecode(b"agent-\xff.jsonl"))
    store = InMemorySessionStore()
    with pytest.raises(ValueError, match=r"subpath 'subagents/agent-\\udcff'"):
        await import_session_to_store(session_id, store, projects_dir=projects)
    assert store.size == 0


async def test_a_symlink_loop_among_subagents_is_walked_once(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id, GOOD)
    write_subagent(projects, session_id, GOOD)
    (projects / PROJECT / session_id / "subagents" / "loop").symlink_to("..", target_is_directory=True)
    store = InMemorySessionStore()
    result = await import_session_to_store(session_id, store, projects_dir=projects)
    assert await store.list_subkeys(main_key(session_id)) == ["subagents/agent-a1"]
    assert result.transcripts == 2


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        pytest.param({"session_id": uuid.uuid4()}, "session_id must be a str, got UUID", id="uuid-object"),
        pytest.param({"batch_size": "100"}, "batch_size must be an int", id="str-batch-size"),
        pytest.param({"store": None}, "store must be a SessionStore", id="no-store"),
    ],
)
async def test_import_with_arguments_of_the_wrong_type_names_them(
    tmp_path: Path, arguments: dict[str, Any], match: str
) -> None:
    session_id = new_id()
    write_session(tmp_path, session_id, GOOD)
    call: dict[str, Any] = {"session_id": session_id, "store": InMemorySessionStore(), "projects_dir": tmp_path}
    with pytest.raises(TypeError, match=match):
        await import_session_to_store(**(call | arguments))


# --- following a projects folder -------------------------------------------------------------------------------


async def follow_once(projects: Path, store: SessionStore) -> list[str]:
    """Poll ``projects`` once from the start into ``store``; the problems the watcher described."""
    problems: list[str] = []
    watcher = await compat.run_sync(lambda: TranscriptFolderWatcher(projects, from_start=True))
    batcher = TranscriptMirrorBatcher(store, str(projects), lambda key, message: problems.append(message))
    try:
        await watcher.follow(batcher, once=True, on_problem=problems.append)
    finally:
        await batcher.close()
    return problems


async def test_the_watcher_skips_a_nan_line_as_a_problem_and_mirrors_the_rest(tmp_path: Path) -> None:
    session_id = new_id()
    path = write_session(tmp_path, session_id, [GOOD[0], '{"type": "user", "x": NaN}\n', GOOD[1]])
    store = InMemorySessionStore()
    problems = await follow_once(tmp_path, store)
    assert problems == [f"{path}:2: not a transcript entry (a JSON object with a type)"]
    assert await store.load(main_key(session_id)) == [json.loads(line) for line in GOOD]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
async def test_the_watcher_describes_a_fifo_and_a_link_out_of_the_folder_once_and_mirrors_neither(
    tmp_path: Path,
) -> None:
    projects, elsewhere = tmp_path / "projects", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.jsonl").write_text(transcript_line(secret="yes"), encoding="utf-8")
    fifo = projects / PROJECT / f"{new_id()}.jsonl"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    link = projects / PROJECT / f"{new_id()}.jsonl"
    link.symlink_to(elsewhere / "secret.jsonl")
    store = InMemorySessionStore()
    watcher = await compat.run_sync(lambda: TranscriptFolderWatcher(projects, from_start=True))
    problems: list[str] = []
    batcher = TranscriptMirrorBatcher(store, str(projects), lambda key, message: problems.append(message))
    for _ in range(2):
        await watcher.follow(batcher, once=True, on_problem=problems.append)
    await batcher.close()
    assert sorted(problems) == sorted(
        [f"{fifo} is not a file; not mirrored", f"{link} leads outside the projects folder; not mirrored"]
    )
    assert store.size == 0


# --- the command line ---------------------------------------------------------------------------------------------

CLI_TIMEOUT_SECONDS = 120


def cli(tmp_path: Path, *args: str, store: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m session_store`` with a private HOME, CLAUDE_CONFIG_DIR and default store under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k not in {"SESSION_STORE_URL", "SESSION_STORE_DB", "XDG_DATA_HOME"}}
    env |= {"HOME": str(tmp_path / "home"), "CLAUDE_CONFIG_DIR": str(tmp_path / "claude")}
    store_args = ["--store", store or f"sqlite:///{tmp_path / 'store.db'}"]
    return subprocess.run(
        [sys.executable, "-m", "session_store", *store_args, *args],
        cwd=tmp_path / "work",
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture
def cli_session(tmp_path: Path) -> str:
    """A session imported through the CLI into ``tmp_path/store.db`` for the project ``tmp_path/work``."""
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    session_id = new_id()
    project = project_key_for_directory(tmp_path / "work")
    write_session(tmp_path / "claude" / "projects", session_id, GOOD, project=project)
    imported = cli(tmp_path, "import")
    assert imported.returncode == 0, imported.stderr
    return session_id


def store_dump(tmp_path: Path) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        store = SQLiteSessionStore(tmp_path / "store.db")
        try:
            return await dump(store, (project_key_for_directory(tmp_path / "work"),))
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(("rename", "{id}", "   "), "title", id="blank-title"),
        pytest.param(("rename", "{id}", "\u200b"), "title", id="zero-width-title"),
        pytest.param(("tag", "{id}", "\u200b\u202e"), "tag", id="invisible-tag"),
        pytest.param(("rename", "not-a-uuid", "t"), "'not-a-uuid'", id="bad-id"),
        pytest.param(("fork", "{id}", "--up-to", "nope"), "nope", id="bad-up-to"),
        pytest.param(("--store", "ftp://x", "list"), "'ftp://'", id="unknown-scheme"),
        pytest.param(("--store", "sqlite:///{tmp}", "list"), "is a directory", id="sqlite-directory"),
        pytest.param(("--store", "postgresql://localhost/db?table=x;drop", "list"), "'x;drop'", id="pg-table"),
        pytest.param(("--store", "redis://localhost?prefix={a}", "list"), "'{a}'", id="redis-braces"),
        pytest.param(("--store", "sqlite:///{tmp}/s.db?mode=ro", "list"), "mode=ro", id="sqlite-query"),
    ],
)
def test_the_cli_names_a_bad_value_in_one_error_line_and_changes_nothing(
    tmp_path: Path, cli_session: str, args: tuple[str, ...], named: str
) -> None:
    before = store_dump(tmp_path)
    filled = [arg.replace("{id}", cli_session).replace("{tmp}", str(tmp_path)) for arg in args]
    store = filled[1] if filled[0] == "--store" else None
    result = cli(tmp_path, *(filled[2:] if store else filled), store=store)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("session-store: error:") and named in line, result.stderr
    assert store_dump(tmp_path) == before


def test_the_cli_import_of_a_corrupt_session_names_file_and_line_and_imports_none_of_it(
    tmp_path: Path, cli_session: str
) -> None:
    before = store_dump(tmp_path)
    project = project_key_for_directory(tmp_path / "work")
    bad = write_session(tmp_path / "claude" / "projects", new_id(), [*GOOD, "{oops\n"], project=project)
    result = cli(tmp_path, "import")
    assert result.returncode != 0
    assert f"failed {bad}:3: invalid transcript line" in result.stdout, result.stdout
    assert "--skip-invalid-lines" in result.stdout
    assert store_dump(tmp_path) == before
