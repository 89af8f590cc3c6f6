"""``RedisSessionStore`` on a real 3-master Redis Cluster (``redis_cluster`` fixture of ``tests/servers.py``).

The full conformance suite, one slot per session (checked with ``CLUSTER KEYSLOT`` on the cluster for every key
the store wrote, subagents included), ``open_store('redis+cluster://...')``, and a master restarted mid-stream.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from servers import RedisClusterServers, redis_test_prefix

import compat
from session_store.adapters import RedisSessionStore, open_store
from session_store.conformance import run_session_store_conformance
from session_store.types import SessionKey, SessionStoreEntry

pytestmark = pytest.mark.servers


def entry(uuid_: str, **fields: Any) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": "user", "uuid": uuid_, **fields})


def session_key(session_id: str, subpath: str | None = None) -> SessionKey:
    key: SessionKey = {"project_key": "proj", "session_id": session_id}
    if subpath is not None:
        key["subpath"] = subpath
    return key


async def test_cluster_store_passes_the_conformance_suite(redis_cluster: RedisClusterServers) -> None:
    await run_session_store_conformance(lambda: RedisSessionStore(redis_cluster.url, prefix=redis_test_prefix()))


async def test_every_key_of_a_session_is_in_one_slot_on_the_cluster(redis_cluster: RedisClusterServers) -> None:
    import redis

    prefix = redis_test_prefix()
    session_id = str(uuid.uuid4())
    async with open_store(f"{redis_cluster.url}?prefix={prefix}") as store:
        assert isinstance(store, RedisSessionStore)
        await store.append(session_key(session_id), [entry("a", customTitle="t")])
        await store.append(session_key(session_id, "subagents/agent-1"), [entry("b")])
        await store.append(session_key(session_id, "subagents/agent-2"), [entry("c")])
    cluster = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    try:
        keys = [key.decode() for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=cluster.ALL_NODES)]
        project_keys = [key for key in keys if key.endswith((":sessions", ":summaries", ":log", ":log-lines"))]
        session_keys = [key for key in keys if key not in project_keys and key != f"{prefix}:projects"]
        assert len(session_keys) == 8  # main, 2 subs, 3 uuid sets, subkeys, summary
        slots = {cluster.cluster_keyslot(key) for key in session_keys}  # CLUSTER KEYSLOT on the server
        assert len(slots) == 1, dict(zip(session_keys, slots, strict=False))
        assert len(project_keys) == 4  # the project's index, summary hash and listing log share one slot
        assert len({cluster.cluster_keyslot(key) for key in project_keys}) == 1
    finally:
        cluster.close()


async def test_a_master_restarted_mid_stream_keeps_what_was_committed(redis_cluster: RedisClusterServers) -> None:
    from redis.exceptions import RedisError

    prefix = redis_test_prefix()
    async with RedisSessionStore(redis_cluster.url, prefix=prefix) as store:
        session_id = str(uuid.uuid4())
        key = session_key(session_id)
        before = [entry(f"before-{n}") for n in range(5)]
        for line in before:
            await store.append(key, [line])
        node_port = cast(Any, store._client).get_node_from_key(store._keys("proj", session_id).summary).port
        [node] = [node for node in redis_cluster.nodes if node.port == node_port]
        await compat.run_sync(lambda: node.stop(crash=True))
        try:
            with pytest.raises(RedisError):  # ConnectionError or ClusterDownError, as redis-py sees the outage first
                await store.append(key, [entry("during")])
        finally:
            await compat.run_sync(node.start)
            await compat.run_sync(redis_cluster.wait_until_ok)
        after = [entry(f"after-{n}") for n in range(3)]
        for line in after:
            await store.append(key, [line])
        assert await store.load(key) == before + after
        assert [row["session_id"] for row in await store.list_sessions("proj")] == [session_id]


def test_cluster_url_with_a_database_other_than_0_is_refused() -> None:
    with pytest.raises(ValueError, match="database '1'"):
        open_store("redis+cluster://127.0.0.1:7000/1")


def test_cluster_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="no host"):
        open_store("redis+cluster://127.0.0.1:7000,/")


def test_open_store_connects_nothing_for_a_cluster_url() -> None:
    store = open_store("redis+cluster://127.0.0.1:1,127.0.0.1:2/?prefix=p")  # nothing listens there
    assert isinstance(store, RedisSessionStore)
