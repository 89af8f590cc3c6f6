"""Redis listings: one round trip for the index (and the summary hash), repaired against crashes and deletes.

The index of a project marks ids in flux with negative scores (see ``session_store.adapters.redis``). These
tests leave the index in each state a crash or a race can leave it in, by running the adapter's own steps
only part of the way on a real server (single node and 3-master cluster), and check that listings show
exactly the sessions that exist, repair the index, and cost one script call (``INFO commandstats``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from servers import redis_test_prefix

from session_store.adapters.redis import IN_FLUX_GRACE_MS, RedisSessionStore
from session_store.types import SessionKey, SessionStoreEntry

pytestmark = pytest.mark.servers

PROJECT = "-srv-listing"
StoreFactory = Callable[[], RedisSessionStore]


@pytest.fixture(params=["redis", "redis-cluster"])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
    else:
        url = request.getfixturevalue("redis_cluster").url
    return lambda: RedisSessionStore(url, prefix=redis_test_prefix())


def entry(number: int, **fields: Any) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": "user", "uuid": str(uuid.uuid4()), "n": number, **fields})


def key(session_id: str) -> SessionKey:
    return {"project_key": PROJECT, "session_id": session_id}


def scores(store: RedisSessionStore) -> dict[str, float]:
    index = store._keys(PROJECT, "").index
    return {member.decode(): score for member, score in store._client.zrange(index, 0, -1, withscores=True)}


def hashed(store: RedisSessionStore) -> dict[str, Any]:
    summaries = store._keys(PROJECT, "").summaries
    return {field.decode(): json.loads(value) for field, value in store._client.hgetall(summaries).items()}


def age(store: RedisSessionStore, session_id: str) -> None:
    """Make the id's mark in flux older than the grace (a crash long ago), keeping its kind (x.5: a delete's)."""
    index = store._keys(PROJECT, "").index
    score = store._client.zscore(index, session_id)
    assert score is not None and score < 0
    store._client.zadd(index, {session_id: score + 2 * IN_FLUX_GRACE_MS})


def without_confirm(store: RedisSessionStore) -> None:
    """The process dies right after an append's EXEC: the confirming script never runs."""
    store._confirm_append = lambda keys, session_id, mtime, summary_json: None  # type: ignore[method-assign]


async def ids(store: RedisSessionStore) -> tuple[set[str], set[str]]:
    listed = {row["session_id"] for row in await store.list_sessions(PROJECT)}
    summarized = {row["session_id"] for row in await store.list_session_summaries(PROJECT)}
    return listed, summarized


async def test_appends_leave_confirmed_ids_with_their_summary_in_the_hash(make_store: StoreFactory) -> None:
    async with make_store() as store:
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        await store.append(key(first), [entry(1, customTitle="one")])
        await store.append(key(second), [entry(2)])
        await store.append(key(first), [entry(3)])
        rows = {row["session_id"]: row for row in await store.list_session_summaries(PROJECT)}
        assert scores(store) == {sid: row["mtime"] for sid, row in rows.items()}  # positive: confirmed
        assert hashed(store) == rows  # the hash's values are the rows of list_session_summaries
        assert rows[first]["data"]["custom_title"] == "one" if "custom_title" in rows[first]["data"] else True
        assert {row["session_id"]: row["mtime"] for row in await store.list_sessions(PROJECT)} == scores(store)


async def test_a_crash_after_exec_of_a_new_session_is_listed_and_repaired(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        without_confirm(store)
        await store.append(key(session_id), [entry(1)])
        assert scores(store)[session_id] < 0  # left in flux
        assert await ids(store) == ({session_id}, {session_id})
        assert scores(store)[session_id] < 0  # listed, not confirmed during the grace
        age(store, session_id)
        [row] = await store.list_sessions(PROJECT)
        assert scores(store) == {session_id: row["mtime"]}  # confirmed by the listing
        assert hashed(store)[session_id]["mtime"] == row["mtime"]


async def test_a_crash_before_exec_of_a_new_session_is_not_listed_and_goes_after_the_grace(
    make_store: StoreFactory,
) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        await store.append(key(str(uuid.uuid4())), [entry(0)])  # another session, listed throughout
        keys = store._keys(PROJECT, session_id)
        with store._client.pipeline(transaction=True) as pipe:
            pipe.watch(keys.summary)  # as in an append: commands on the watched pipe run at once
            mtime = time.time_ns() // 1_000_000
            store._register_new_session(pipe, PROJECT, keys, session_id, mtime)  # marked, then the process died
        assert session_id in scores(store)
        listed, summarized = await ids(store)
        assert session_id not in listed and session_id not in summarized
        assert session_id in scores(store)  # a creation may still be on its way: kept during the grace
        age(store, session_id)
        await store.list_sessions(PROJECT)
        assert session_id not in scores(store)


async def test_a_delete_that_died_after_marking_leaves_the_session_listed(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        await store.append(key(session_id), [entry(1)])
        keys = store._keys(PROJECT, session_id)
        assert store._mark_in_flux(keys, session_id) is not None  # then the process died: nothing deleted
        assert await ids(store) == ({session_id}, {session_id})
        assert scores(store)[session_id] < 0  # the delete may still be under way: left alone
        age(store, session_id)
        assert await ids(store) == ({session_id}, {session_id})
        assert scores(store)[session_id] > 0  # confirmed once the delete is surely dead


async def test_a_listing_during_a_delete_does_not_bring_the_session_back(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        await store.append(key(session_id), [entry(1)])
        keys = store._keys(PROJECT, session_id)
        mark = store._mark_in_flux(keys, session_id)  # a delete under way...
        assert mark is not None
        assert await ids(store) == ({session_id}, {session_id})  # ...a listing meanwhile still sees the session
        store._delete_session(keys, before_ms=None)
        assert store._repair(keys, session_id, mark, None)  # the delete's mark was left alone: the id goes
        assert await ids(store) == (set(), set())
        assert session_id not in scores(store)


async def test_a_delete_that_died_before_removing_the_id_is_not_listed(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        await store.append(key(session_id), [entry(1)])
        keys = store._keys(PROJECT, session_id)
        mark = store._mark_in_flux(keys, session_id)
        assert mark is not None
        store._delete_session(keys, before_ms=None)  # then the process died before removing the id
        assert await ids(store) == (set(), set())
        assert await store.load(key(session_id)) is None
        age(store, session_id)
        await store.list_sessions(PROJECT)
        assert session_id not in scores(store)


async def test_an_append_recreating_a_session_while_it_is_deleted_stays_listed(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        await store.append(key(session_id), [entry(1)])
        keys = store._keys(PROJECT, session_id)
        mark = store._mark_in_flux(keys, session_id)
        assert mark is not None
        store._delete_session(keys, before_ms=None)
        late = [entry(2)]
        await store.append(key(session_id), late)  # recreates the session before the delete removes the id
        store._repair(keys, session_id, mark, None)  # the delete's last step: the mark is gone, so it does nothing
        assert await ids(store) == ({session_id}, {session_id})
        assert await store.load(key(session_id)) == late


async def test_a_delete_between_exec_and_confirm_of_a_creation_leaves_nothing_listed(
    make_store: StoreFactory,
) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        confirm = store._confirm_append
        calls: list[tuple[Any, ...]] = []
        store._confirm_append = lambda *args: calls.append(args)  # type: ignore[method-assign]
        await store.append(key(session_id), [entry(1)])
        store._confirm_append = confirm  # type: ignore[method-assign]
        await store.delete(key(session_id))  # runs whole between the creation's EXEC and its confirmation
        confirm(*calls[0])  # the late confirmation re-adds the id, in flux, for listing to check
        assert await ids(store) == (set(), set())
        assert await store.load(key(session_id)) is None
        age(store, session_id)
        await store.list_sessions(PROJECT)
        assert session_id not in scores(store)


async def test_ids_indexed_by_an_earlier_version_get_their_summary_into_the_hash(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        await store.append(key(session_id), [entry(1)])
        store._client.hdel(store._keys(PROJECT, "").summaries, session_id)  # the index of an earlier version
        [summary] = await store.list_session_summaries(PROJECT)
        assert summary["session_id"] == session_id
        assert hashed(store)[session_id]["mtime"] == summary["mtime"]


async def test_listing_a_project_is_one_script_call_and_no_per_session_command(redis_url: str) -> None:
    async with RedisSessionStore(redis_url, prefix=redis_test_prefix()) as store:
        for number in range(50):
            await store.append(key(str(uuid.uuid4())), [entry(number)])
        await store.list_sessions(PROJECT)  # loads the scripts
        await store.list_session_summaries(PROJECT)

        def counts() -> dict[str, int]:
            stats = store._client.info("commandstats")
            return {name: int(value["calls"]) for name, value in stats.items()}

        before = counts()
        assert len(await store.list_sessions(PROJECT)) == 50
        assert len(await store.list_session_summaries(PROJECT)) == 50
        after = counts()
        changed = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
        changed.pop("cmdstat_info", None)
        # the scripts' own commands are counted too: list_sessions reads the (empty) range of ids in flux and
        # the listing log, list_session_summaries (one MULTI) the same range, two counts and the hash's values;
        # nothing runs per session
        assert changed == {
            "cmdstat_evalsha": 2,
            "cmdstat_multi": 1,
            "cmdstat_exec": 1,
            "cmdstat_get": 2,
            "cmdstat_zrangebyscore": 2,
            "cmdstat_zcard": 1,
            "cmdstat_hlen": 1,
            "cmdstat_hvals": 1,
        }


async def test_an_id_holding_a_newline_is_listed_through_the_escaped_path(make_store: StoreFactory) -> None:
    async with make_store() as store:
        odd, plain = "line\nbreak", str(uuid.uuid4())
        await store.append(key(odd), [entry(1)])
        await store.append(key(plain), [entry(2)])
        assert await ids(store) == ({odd, plain}, {odd, plain})


async def test_the_listing_log_stays_bounded_and_is_rebuilt_when_missing(make_store: StoreFactory) -> None:
    async with make_store() as store:
        kept, gone = str(uuid.uuid4()), str(uuid.uuid4())
        await store.append(key(gone), [entry(0)])
        for number in range(150):  # 150 confirmations of one session: the log is rewritten on the way
            await store.append(key(kept), [entry(number)])
        await store.delete(key(gone))
        project = store._keys(PROJECT, "")
        lines = int(store._client.get(project.log_lines))
        assert 0 < lines <= 2 * 1 + 64 + 1
        assert len(store._client.get(project.log).split(b"\n")) == 2 * lines + 1
        [row] = await store.list_sessions(PROJECT)
        assert row == {"session_id": kept, "mtime": scores(store)[kept]}
        store._client.delete(project.log, project.log_lines)  # an index written before the log existed
        assert await store.list_sessions(PROJECT) == [row]
        assert int(store._client.get(project.log_lines)) == 1
