"""session_store.exactly_once: canonical identity, occurrences, and append_once (native and fallback)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from session_store.exactly_once import (
    OccurrenceCounter,
    append_once,
    canonical_json,
    content_hash,
    occurrences,
)
from session_store.memory import InMemorySessionStore
from session_store.types import SessionKey, SessionStore, SessionStoreEntry, store_implements

MAIN: SessionKey = {"project_key": "proj", "session_id": "sess"}


def entry(uuid: str | None = None, **fields: Any) -> SessionStoreEntry:
    data: dict[str, Any] = {"type": "x", **fields}
    if uuid is not None:
        data["uuid"] = uuid
    return cast(SessionStoreEntry, data)


class PlainStore:
    """A store with only ``append`` and ``load`` (over an in-memory one): append_once takes the fallback."""

    def __init__(self) -> None:
        self.inner = InMemorySessionStore()
        self.appends = 0

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.appends += 1
        await self.inner.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.inner.load(key)


def make_store(kind: str) -> SessionStore:
    return InMemorySessionStore() if kind == "native" else cast(SessionStore, PlainStore())


KINDS = ["native", "fallback"]

# -- identity --


def test_canonical_json_ignores_key_order_and_keeps_non_ascii() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == canonical_json({"a": "é", "b": 1}) == '{"a":"é","b":1}'


def test_canonical_json_tells_int_float_and_string_apart() -> None:
    assert len({canonical_json({"v": 1}), canonical_json({"v": 1.0}), canonical_json({"v": "1"})}) == 3


def test_canonical_json_of_mixed_key_types_is_that_of_the_json_copy() -> None:
    assert canonical_json(cast(dict[str, Any], {1: "a", "b": 2})) == '{"1":"a","b":2}'


def test_content_hash_hashes_lone_surrogates() -> None:
    assert content_hash({"t": "\ud83d"}) != content_hash({"t": "\ud83e"})


def test_occurrences_counts_equal_uuidless_entries_and_skips_uuids() -> None:
    tag = entry(tag="a")
    assert occurrences([tag, entry("u1"), entry(tag="b"), dict(tag), entry("u1"), dict(tag)]) == [
        0,
        None,
        0,
        1,
        None,
        2,
    ]


def test_a_non_string_uuid_is_counted_by_content() -> None:
    assert occurrences([entry(uuid=None), cast(SessionStoreEntry, {"type": "x", "uuid": 5})]) == [0, 0]


def test_occurrence_counter_state_round_trips() -> None:
    counter = OccurrenceCounter()
    counter.next(entry(tag="a"))
    restored = OccurrenceCounter.from_state(counter.state())
    assert restored.next(entry(tag="a")) == 1
    assert counter.next(entry(tag="a")) == 1


def test_occurrence_counter_refuses_a_bad_state() -> None:
    with pytest.raises(ValueError, match="counts >= 0"):
        OccurrenceCounter.from_state({"x": -1})


def test_memory_store_implements_append_once_and_the_plain_store_does_not() -> None:
    assert store_implements(InMemorySessionStore(), "append_once")
    assert not store_implements(PlainStore(), "append_once")


# -- append_once, on the native method and on the fallback --


@pytest.mark.parametrize("kind", KINDS)
async def test_resending_a_file_stores_nothing_twice(kind: str) -> None:
    store = make_store(kind)
    lines = [entry("u1"), entry(tag="a"), entry(tag="a"), entry("u2"), entry(tag="b")]
    assert await append_once(store, MAIN, lines, occurrences(lines)) == 5
    assert await append_once(store, MAIN, lines, occurrences(lines)) == 0
    assert await store.load(MAIN) == lines


@pytest.mark.parametrize("kind", KINDS)
async def test_a_prefix_then_the_whole_file_stores_the_rest_once(kind: str) -> None:
    store = make_store(kind)
    lines = [entry(tag="a"), entry("u1"), entry(tag="a"), entry(tag="a")]
    counts = occurrences(lines)
    assert await append_once(store, MAIN, lines[:2], counts[:2]) == 2
    assert await append_once(store, MAIN, lines, counts) == 2
    assert await store.load(MAIN) == lines


@pytest.mark.parametrize("kind", KINDS)
async def test_entries_stored_by_plain_append_count(kind: str) -> None:
    store = make_store(kind)
    await store.append(MAIN, [entry(tag="a"), entry("u1")])
    lines = [entry(tag="a"), entry("u1"), entry(tag="a")]
    assert await append_once(store, MAIN, lines, occurrences(lines)) == 1
    assert await store.load(MAIN) == [entry(tag="a"), entry("u1"), entry(tag="a")]


@pytest.mark.parametrize("kind", KINDS)
async def test_key_order_does_not_make_a_new_entry(kind: str) -> None:
    store = make_store(kind)
    await store.append(MAIN, [cast(SessionStoreEntry, {"tag": "a", "type": "x"})])
    assert await append_once(store, MAIN, [entry(tag="a")], [0]) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_an_empty_call_stores_nothing(kind: str) -> None:
    store = make_store(kind)
    assert await append_once(store, MAIN, [], []) == 0
    assert await store.load(MAIN) is None


@pytest.mark.parametrize("kind", KINDS)
async def test_an_empty_subpath_is_refused(kind: str) -> None:
    store = make_store(kind)
    with pytest.raises(ValueError, match="subpath"):
        await append_once(store, {**MAIN, "subpath": ""}, [entry("u1")], [None])


async def test_occurrences_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="one per entry"):
        await append_once(InMemorySessionStore(), MAIN, [entry("u1")], [])


async def test_a_negative_occurrence_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        await append_once(InMemorySessionStore(), MAIN, [entry(tag="a")], [-1])


async def test_an_entry_json_cannot_carry_leaves_the_memory_store_unchanged() -> None:
    store = InMemorySessionStore()
    with pytest.raises(ValueError, match="NaN"):
        await store.append_once(MAIN, [entry(tag="a"), entry(v=float("nan"))], [0, 0])
    assert await store.load(MAIN) is None
    assert await store.append_once(MAIN, [entry(tag="a")], [0]) == 1


async def test_memory_append_once_folds_the_summary_of_what_it_stored() -> None:
    store = InMemorySessionStore()
    title = cast(SessionStoreEntry, {"type": "custom-title", "customTitle": "T"})
    assert await store.append_once(MAIN, [title, title], [0, 0]) == 1
    summaries = await store.list_session_summaries("proj")
    assert len(summaries) == 1
    assert await store.load(MAIN) == [title]


async def test_memory_delete_forgets_the_counts() -> None:
    store = InMemorySessionStore()
    await store.append_once(MAIN, [entry(tag="a")], [0])
    await store.delete(MAIN)
    assert await store.append_once(MAIN, [entry(tag="a")], [0]) == 1
