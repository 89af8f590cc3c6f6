"""InMemorySessionStore (reference §4.1-§4.2, §16.5; SPEC §4 decisions 2 and 8)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from session_store.memory import InMemorySessionStore
from session_store.types import SessionKey, SessionStoreEntry

MAIN: SessionKey = {"project_key": "proj", "session_id": "sess"}


def sub(number: int, session_id: str = "sess") -> SessionKey:
    return {"project_key": "proj", "session_id": session_id, "subpath": f"subagents/agent-{number}"}


def entry(uuid: str | None = None, **fields: Any) -> SessionStoreEntry:
    data: dict[str, Any] = {"type": "x", **fields}
    if uuid is not None:
        data["uuid"] = uuid
    return cast(SessionStoreEntry, data)


# -- round trip and copies --


async def test_load_returns_appended_entries_in_order() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("b"), entry("a")])
    await store.append(MAIN, [entry("c")])
    assert await store.load(MAIN) == [entry("b"), entry("a"), entry("c")]


async def test_load_of_a_never_written_key_is_none() -> None:
    assert await InMemorySessionStore().load(MAIN) is None


async def test_load_returns_a_copy_the_caller_may_change() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a", nested={"n": 1})])
    loaded = await store.load(MAIN)
    assert loaded is not None
    loaded.append(entry("intruder"))
    cast(dict[str, Any], loaded[0])["nested"]["n"] = 2
    assert await store.load(MAIN) == [entry("a", nested={"n": 1})]


async def test_append_copies_entries_so_later_caller_changes_do_not_leak_in() -> None:
    store = InMemorySessionStore()
    mine = entry("a", nested={"n": 1})
    await store.append(MAIN, [mine])
    cast(dict[str, Any], mine)["nested"]["n"] = 99
    assert await store.load(MAIN) == [entry("a", nested={"n": 1})]


async def test_get_entries_returns_a_copy_and_an_empty_list_when_absent() -> None:
    store = InMemorySessionStore()
    assert store.get_entries(MAIN) == []
    await store.append(MAIN, [entry("a")])
    copied = store.get_entries(MAIN)
    copied.clear()
    assert store.get_entries(MAIN) == [entry("a")]


# -- decision 2: empty subpath, empty append --


async def test_empty_append_creates_nothing() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [])
    await store.append(sub(1), [])
    assert await store.load(MAIN) is None
    assert await store.list_sessions("proj") == []
    assert await store.list_session_summaries("proj") == []
    assert await store.list_subkeys({"project_key": "proj", "session_id": "sess"}) == []
    assert store.size == 0


async def test_empty_append_to_an_existing_key_changes_neither_entries_nor_mtime() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a")])
    before = await store.list_sessions("proj")
    await store.append(MAIN, [])
    assert await store.list_sessions("proj") == before
    assert await store.load(MAIN) == [entry("a")]


@pytest.mark.parametrize("method", ["append", "load", "delete"])
async def test_an_empty_subpath_is_rejected_with_a_value_error_naming_the_fix(method: str) -> None:
    store = InMemorySessionStore()
    bad: SessionKey = {"project_key": "proj", "session_id": "sess", "subpath": ""}
    arguments: tuple[Any, ...] = (bad, [entry("a")]) if method == "append" else (bad,)
    with pytest.raises(ValueError, match="omit the subpath field for the main transcript"):
        await getattr(store, method)(*arguments)
    assert await store.load(MAIN) is None


def test_get_entries_rejects_an_empty_subpath_too() -> None:
    with pytest.raises(ValueError, match="subpath must be non-empty"):
        InMemorySessionStore().get_entries({"project_key": "p", "session_id": "s", "subpath": ""})


# -- decision 8: dedupe by uuid --


async def test_an_entry_with_a_known_uuid_is_ignored() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a", n=1), entry("b")])
    await store.append(MAIN, [entry("b"), entry("a", n=2), entry("c")])
    assert await store.load(MAIN) == [entry("a", n=1), entry("b"), entry("c")]


async def test_a_uuid_repeated_within_one_batch_is_kept_once() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a"), entry("a")])
    assert await store.load(MAIN) == [entry("a")]


async def test_entries_without_uuid_are_always_appended() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry(customTitle="t")])
    await store.append(MAIN, [entry(customTitle="t")])
    assert await store.load(MAIN) == [entry(customTitle="t"), entry(customTitle="t")]


async def test_uuids_are_deduplicated_per_key() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a")])
    await store.append(sub(1), [entry("a")])
    assert await store.load(sub(1)) == [entry("a")]


async def test_a_fully_duplicate_batch_does_not_touch_mtime_or_summary() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a", customTitle="first")])
    listed, summaries = await store.list_sessions("proj"), await store.list_session_summaries("proj")
    await store.append(MAIN, [entry("a", customTitle="changed")])
    assert await store.list_sessions("proj") == listed
    assert await store.list_session_summaries("proj") == summaries


async def test_a_uuid_may_return_after_its_key_was_deleted() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a", n=1)])
    await store.delete(MAIN)
    await store.append(MAIN, [entry("a", n=2)])
    assert await store.load(MAIN) == [entry("a", n=2)]


# -- mtime clock --


async def test_mtimes_are_epoch_ms_and_strictly_increasing() -> None:
    store = InMemorySessionStore()
    before_ms = time.time() * 1000
    for session in range(5):
        await store.append({"project_key": "proj", "session_id": f"s{session}"}, [entry()])
    mtimes = [row["mtime"] for row in await store.list_sessions("proj")]
    assert mtimes == sorted(set(mtimes))
    assert mtimes[0] >= int(before_ms)
    assert mtimes[-1] <= time.time() * 1000 + len(mtimes)


async def test_a_subagent_append_updates_only_its_own_mtime() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("m")])
    before = await store.list_sessions("proj")
    await store.append(sub(1), [entry("s")])
    assert await store.list_sessions("proj") == before


async def test_the_summary_is_stamped_with_the_listing_mtime() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("m", customTitle="t")])
    await store.append(MAIN, [entry("n")])
    [row] = await store.list_sessions("proj")
    [summary] = await store.list_session_summaries("proj")
    assert summary["mtime"] == row["mtime"]


# -- listing --


async def test_list_sessions_lists_main_transcripts_of_one_project_in_insertion_order() -> None:
    store = InMemorySessionStore()
    await store.append({"project_key": "proj", "session_id": "b"}, [entry()])
    await store.append({"project_key": "proj", "session_id": "a"}, [entry()])
    await store.append({"project_key": "other", "session_id": "c"}, [entry()])
    await store.append(sub(1, session_id="subagent-only"), [entry()])
    assert [row["session_id"] for row in await store.list_sessions("proj")] == ["b", "a"]


async def test_project_keys_containing_slashes_do_not_collide() -> None:
    store = InMemorySessionStore()
    await store.append({"project_key": "a/b", "session_id": "c"}, [entry("1")])
    await store.append({"project_key": "a", "session_id": "b", "subpath": "c"}, [entry("2")])
    assert [row["session_id"] for row in await store.list_sessions("a/b")] == ["c"]
    assert await store.list_sessions("a") == []
    assert await store.load({"project_key": "a/b", "session_id": "c"}) == [entry("1")]


async def test_list_subkeys_lists_subpaths_in_insertion_order() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry()])
    await store.append(sub(2), [entry()])
    await store.append(sub(1), [entry()])
    await store.append(sub(3, session_id="other"), [entry()])
    subkeys = await store.list_subkeys({"project_key": "proj", "session_id": "sess"})
    assert subkeys == ["subagents/agent-2", "subagents/agent-1"]


# -- delete --


async def test_deleting_the_main_key_cascades_to_subkeys_and_summary() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("m")])
    await store.append(sub(1), [entry("s1")])
    await store.append(sub(1, session_id="neighbour"), [entry("n")])
    await store.delete(MAIN)
    assert (await store.load(MAIN), await store.load(sub(1))) == (None, None)
    assert await store.list_session_summaries("proj") == []
    assert await store.load(sub(1, session_id="neighbour")) == [entry("n")]


async def test_deleting_a_subpath_leaves_the_main_key_and_summary() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("m", customTitle="t")])
    await store.append(sub(1), [entry("s1")])
    await store.delete(sub(1))
    assert await store.load(sub(1)) is None
    assert await store.load(MAIN) == [entry("m", customTitle="t")]
    assert len(await store.list_session_summaries("proj")) == 1


async def test_deleting_an_unknown_key_is_silent() -> None:
    store = InMemorySessionStore()
    await store.delete(MAIN)
    await store.delete(sub(1))
    assert store.size == 0


# -- test helpers --


async def test_size_counts_main_transcripts_only() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry()])
    await store.append(sub(1), [entry()])
    await store.append(sub(2), [entry()])
    await store.append({"project_key": "other", "session_id": "x"}, [entry()])
    assert store.size == 2


async def test_clear_forgets_entries_summaries_and_known_uuids() -> None:
    store = InMemorySessionStore()
    await store.append(MAIN, [entry("a")])
    await store.append(sub(1), [entry("b")])
    store.clear()
    assert (store.size, await store.load(MAIN), await store.list_session_summaries("proj")) == (0, None, [])
    await store.append(MAIN, [entry("a")])  # uuids are forgotten too
    assert await store.load(MAIN) == [entry("a")]


async def test_memory_store_closes_like_the_adapters() -> None:
    async with InMemorySessionStore() as store:
        await store.append({"project_key": "p", "session_id": "s"}, [{"type": "user", "uuid": "u1"}])
        assert await store.load({"project_key": "p", "session_id": "s"}) == [{"type": "user", "uuid": "u1"}]
    await store.close()  # closing twice is harmless
