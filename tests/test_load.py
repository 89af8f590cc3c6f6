"""Many concurrent sessions, each mirroring through its own batcher into one real store (in one process).

Sizes from :func:`soak.scaled`: a bounded sample in the default run, many more entries under ``nox -s soak``.
Every entry must arrive exactly once and in order; peak RSS (``VmHWM``) is printed in a ``load:`` results line
and must stay flat over a second equal round. Multi-process variants and kill-mid-stream under load are not
here yet (see issue 10).
"""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from servers import RedisClusterServers, redis_test_prefix
from soak import scaled

import compat
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore
from session_store.batcher import build_mirror_batcher
from session_store.types import SessionStore, SessionStoreEntry

SESSIONS = 200
ENTRIES_PER_SESSION = scaled(5, 200)
RSS_GROWTH_LIMIT_KIB = 64 * 1024


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def entry(session: int, number: int) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": "user", "uuid": f"{session}-{number}-{uuid.uuid4().hex[:6]}", "n": number})


async def mirror_round(store: SessionStore, projects_dir: Path) -> None:
    errors: list[Any] = []
    sessions = [str(uuid.uuid4()) for _ in range(SESSIONS)]
    sent: dict[str, list[SessionStoreEntry]] = {sid: [] for sid in sessions}

    async def one_session(index: int, session_id: str) -> None:
        batcher = build_mirror_batcher(store, projects_dir, lambda key, message: errors.append(message), "eager")
        path = str(projects_dir / "proj" / f"{session_id}.jsonl")
        for number in range(ENTRIES_PER_SESSION):
            line = entry(index, number)
            sent[session_id].append(line)
            batcher.enqueue(path, [line])
            await compat.sleep(0)
        await batcher.close()

    async with compat.create_task_group() as tg:
        for index, session_id in enumerate(sessions):
            tg.start_soon(one_session, index, session_id)
    assert errors == []
    for session_id in sessions:
        assert await store.load({"project_key": "proj", "session_id": session_id}) == sent[session_id]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("redis", marks=pytest.mark.servers),
        pytest.param("redis-cluster", marks=pytest.mark.servers),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    if request.param == "sqlite":
        return lambda: SQLiteSessionStore(tmp_path / "load.db")
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresSessionStore(url, table=f"t_{uuid.uuid4().hex[:16]}")
    if request.param == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        return lambda: RedisSessionStore(redis_url, prefix=redis_test_prefix())
    cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
    return lambda: RedisSessionStore(cluster.url, prefix=redis_test_prefix())


async def test_concurrent_sessions_each_arrive_once_in_order_with_flat_memory(
    make_store: Callable[[], Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with make_store() as store:
        started = time.monotonic()
        await mirror_round(store, tmp_path / "projects")
        first_kib = peak_rss_kib()
        await mirror_round(store, tmp_path / "projects")
        second_kib = peak_rss_kib()
        seconds = time.monotonic() - started
    print(
        f"load: {request.node.callspec.id} sessions={SESSIONS} entries={2 * SESSIONS * ENTRIES_PER_SESSION} "
        f"seconds={seconds:.2f} peak_rss_kib={second_kib} growth_kib={second_kib - first_kib}"
    )
    assert second_kib - first_kib < RSS_GROWTH_LIMIT_KIB


@pytest.mark.servers
async def test_redis_killed_mid_stream_keeps_commits_reports_the_rest_and_recovers(
    restartable_redis: Any, tmp_path: Path
) -> None:
    server = restartable_redis
    errors: list[str] = []
    projects_dir = tmp_path / "projects"
    session_id = str(uuid.uuid4())
    path = str(projects_dir / "proj" / f"{session_id}.jsonl")
    key = {"project_key": "proj", "session_id": session_id}
    async with RedisSessionStore(server.url, prefix=redis_test_prefix()) as store:
        batcher = build_mirror_batcher(store, projects_dir, lambda _key, message: errors.append(message))
        before = [entry(0, number) for number in range(3)]
        batcher.enqueue(path, before)
        await batcher.flush()
        await compat.run_sync(lambda: server.stop(crash=True))
        try:
            batcher.enqueue(path, [entry(1, 0)])
            await batcher.flush()
        finally:
            await compat.run_sync(server.start)
        assert len(errors) == 1
        after = [entry(2, number) for number in range(3)]
        batcher.enqueue(path, after)
        await batcher.close()
        assert await store.load(cast(Any, key)) == before + after
    assert len(errors) == 1
