"""Real stores under load and faults: many sessions, each mirroring through its own batcher (issue 10, suite 5).

Sizes from :func:`soak.scaled`: a bounded sample in the default run, many more entries under ``nox -s soak``.
Every async test runs on asyncio and trio (the children of the multi-process test on the test's backend).

- **One process, 200 concurrent sessions** into SQLite, PostgreSQL, Redis and the 3-master Redis Cluster, for
  a warm-up round and :data:`ROUNDS` more: every entry arrives exactly once and in order, no ``on_error``.
  Memory is flat: after the warm-up (pools and thread caches full), the memory blocks the interpreter holds
  (``sys.getallocatedblocks()`` after ``gc.collect()``) grow by less than :data:`BLOCK_GROWTH_LIMIT` over the
  measured rounds but the one that grew most (keeping the entries of a round, or each session's closed batcher,
  adds about 4000 in every round), and the resident set (``/proc/self/statm``) by less than
  :data:`RSS_GROWTH_LIMIT_KIB` (native leaks, e.g. connections never freed). Counting blocks costs nothing while
  the rounds run; ``tracemalloc`` made them about twice as slow, and its byte totals jumped by megabytes whenever
  one driver buffer grew. Peak RSS (``VmHWM``) is printed.
- **Several processes on one store**: :data:`WORKERS` children (``tests/load_worker.py``, started through
  ``tests/processes.py``, on the test's backend) each mirror their share of the 200 sessions into one SQLite
  file, one PostgreSQL table, one Redis prefix or one Redis Cluster prefix, half of them eager, half batched
  with a ``flush()`` per turn; all connect first and start writing together. The parent loads every session
  back (each entry once, in order), checks that every session is listed, that no child reported an
  ``on_error`` or wrote to stderr, and prints each child's peak RSS.
- **A server stopped mid-stream** under several concurrent sessions, each with its own batcher: Redis
  (SIGKILL), PostgreSQL (``pg_ctl stop -m immediate``) and the Redis Cluster master serving some of the
  sessions (SIGKILL). What was flushed before is still there; the batch each session sent during the outage is
  reported through ``on_error`` exactly once and is not in the store (on the cluster, sessions served by the
  other masters are either stored or, once the cluster state is ``fail``, reported once and not stored); after
  the restart the same batchers and the same store (its pool reconnecting) append again without error.

Figures (seconds, entries per second, RSS) are printed on ``load:`` lines; run with ``-s`` to see them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import processes
import pytest
from load_worker import PROJECT, load_entry, open_store_from_spec, peak_rss_kib, rss_kib, session_path
from servers import PostgresServer, RedisClusterServers, RedisServer, new_s3_bucket, redis_test_prefix
from soak import scaled

import compat
from session_store.adapters import PostgresSessionStore, RedisSessionStore
from session_store.adapters.redis import RedisKeys
from session_store.batcher import TranscriptMirrorBatcher, build_mirror_batcher
from session_store.types import SessionKey, SessionStore, SessionStoreEntry

SESSIONS = 200
ENTRIES_PER_SESSION = scaled(5, 200)
ROUNDS = scaled(2, 5)
"""Measured rounds of the one-process test, after a warm-up round of the same size."""
BLOCK_GROWTH_LIMIT = 1000
"""Bound on the blocks the one-process test may gain over its measured rounds, the round that grew most left out.

A pool may still grow after the warm-up: redis-py's cluster client opens a connection (about 35 blocks) whenever
more calls than before meet on one node, up to 725 blocks in one round. With that round left out: at most 155
(the cluster), under 60 for the other stores. Keeping a round's 1000 entries (a dict, its keys, two strings
each) adds about 4000 blocks every round; keeping each session's closed batcher, as many."""
RSS_GROWTH_LIMIT_KIB = 16 * 1024
WORKERS = 3
WORKER_SCRIPT = Path(__file__).with_name("load_worker.py")
WORKER_TIMEOUT_SECONDS = scaled(120, 1200)
OUTAGE_SESSIONS = scaled(6, 40)
OUTAGE_BATCH = scaled(3, 30)
"""Entries each session of an outage test sends before the outage, during it (one fewer) and after it."""
PG_POOL_TIMEOUT_SECONDS = 0.5
"""``PostgresSessionStore(timeout=...)`` in the outage test: how long one append waits for a connection."""


def key_of(session_id: str) -> SessionKey:
    return {"project_key": PROJECT, "session_id": session_id}


def entry(session_id: str, label: str) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": "user", "uuid": f"{session_id}-{label}", "label": label})


async def each(items: Iterable[Any], work: Callable[[Any], Awaitable[None]]) -> None:
    """``await work(item)`` for every item at once."""
    async with compat.create_task_group() as tg:
        for item in items:
            tg.start_soon(work, item)


async def load_all(store: SessionStore, session_ids: list[str]) -> dict[str, list[SessionStoreEntry] | None]:
    """``store.load`` of every session's main transcript, concurrently."""
    loaded: dict[str, list[SessionStoreEntry] | None] = {}

    async def load(session_id: str) -> None:
        loaded[session_id] = await store.load(key_of(session_id))

    await each(session_ids, load)
    return loaded


# -------------------------------------------------------------------------------------------------- stores


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("redis", marks=pytest.mark.servers),
        pytest.param("redis-cluster", marks=pytest.mark.servers),
        pytest.param("s3", marks=pytest.mark.servers),
    ]
)
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """A fresh store (file, table or prefix) as :func:`load_worker.open_store_from_spec` opens it."""
    if request.param == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "load.db")}
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return {"kind": "postgres", "url": url, "table": f"t_{uuid.uuid4().hex[:16]}"}
    if request.param == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        return {"kind": "redis", "url": redis_url, "prefix": redis_test_prefix()}
    if request.param == "s3":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        return {"kind": "s3", "url": endpoint, "bucket": new_s3_bucket(endpoint)}
    cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
    return {"kind": "redis", "url": cluster.url, "prefix": redis_test_prefix()}


# ------------------------------------------------------------------------------------------- one process


async def mirror_round(store: SessionStore, projects_dir: Path) -> None:
    errors: list[Any] = []
    sessions = [str(uuid.uuid4()) for _ in range(SESSIONS)]
    sent: dict[str, list[SessionStoreEntry]] = {sid: [] for sid in sessions}

    async def one_session(session_id: str) -> None:
        batcher = build_mirror_batcher(store, projects_dir, lambda key, message: errors.append(message), "eager")
        path = session_path(str(projects_dir), session_id)
        for number in range(ENTRIES_PER_SESSION):
            line = entry(session_id, str(number))
            sent[session_id].append(line)
            batcher.enqueue(path, [line])
            await compat.sleep(0)
        await batcher.close()

    await each(sessions, one_session)
    assert errors == []
    loaded = await load_all(store, sessions)
    assert loaded == sent


def settled_memory() -> tuple[int, int]:
    """Memory blocks the interpreter has allocated (``sys.getallocatedblocks``) and the resident set in KiB,
    after a full collection."""
    gc.collect()
    return sys.getallocatedblocks(), rss_kib()


async def test_concurrent_sessions_each_arrive_once_in_order_with_flat_memory(
    store_spec: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    projects_dir = tmp_path / "projects"
    async with open_store_from_spec(store_spec) as store:
        started = time.monotonic()
        await mirror_round(store, projects_dir)  # warm-up: pools and thread caches fill, code paths run once
        blocks, rss_before = settled_memory()
        block_growth = []  # per measured round
        for _ in range(ROUNDS):
            await mirror_round(store, projects_dir)
            blocks_now, rss_after = settled_memory()
            block_growth.append(blocks_now - blocks)
            blocks = blocks_now
        seconds = time.monotonic() - started
    entries = (1 + ROUNDS) * SESSIONS * ENTRIES_PER_SESSION
    steady_growth = sum(block_growth) - max(block_growth)
    print(
        f"load: one-process {request.node.callspec.id} sessions={SESSIONS} rounds=1+{ROUNDS} entries={entries} "
        f"seconds={seconds:.2f} entries_per_s={entries / seconds:.0f} block_growth={block_growth} "
        f"rss_kib={rss_after} rss_growth_kib={rss_after - rss_before} peak_rss_kib={peak_rss_kib()}"
    )
    assert steady_growth < BLOCK_GROWTH_LIMIT, block_growth
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_KIB


# --------------------------------------------------------------------------------------- several processes


@dataclass
class LoadWorker:
    """One running ``tests/load_worker.py`` child: its stdin/stdout protocol, its stderr in a file."""

    process: subprocess.Popen[str]
    stderr_file: Path

    @classmethod
    def start(cls, stack: contextlib.ExitStack, job: dict[str, Any], stderr_file: Path) -> LoadWorker:
        stderr = stack.enter_context(stderr_file.open("w"))
        command: list[str | os.PathLike[str]] = [sys.executable, "-W", "error", WORKER_SCRIPT]
        process = stack.enter_context(  # own process group, default signals, killed with its group at the end
            processes.started(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        )
        worker = cls(process, stderr_file)
        worker.tell(json.dumps(job))
        return worker

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        return self.stderr_file.read_text()

    async def message(self) -> dict[str, Any]:
        """The next JSON line the worker writes (the test fails with its stderr if it exits or stalls instead)."""
        assert self.process.stdout is not None
        try:
            with compat.fail_after(WORKER_TIMEOUT_SECONDS):
                line = await compat.run_sync(self.process.stdout.readline, abandon_on_cancel=True)
        except TimeoutError:
            pytest.fail(f"load worker sent nothing for {WORKER_TIMEOUT_SECONDS} s; stderr:\n{self.stderr()}")
        if not line:
            returncode = await self.exit_code()
            pytest.fail(f"load worker exited with {returncode} before answering; stderr:\n{self.stderr()}")
        message: dict[str, Any] = json.loads(line)
        return message

    async def exit_code(self) -> int:
        returncode: int = await compat.run_sync(self.process.wait, WORKER_TIMEOUT_SECONDS)
        return returncode


async def test_several_processes_mirror_into_one_store_each_entry_once_in_order(
    store_spec: dict[str, str], backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    projects_dir = str(tmp_path / "projects")
    sessions = [str(uuid.uuid4()) for _ in range(SESSIONS)]
    jobs: list[dict[str, Any]] = [
        {
            "backend": backend,
            "store": store_spec,
            "projects_dir": projects_dir,
            "sessions": sessions[number::WORKERS],
            "entries": ENTRIES_PER_SESSION,
            "worker": number,
            "flush_mode": "eager" if number % 2 == 0 else "batched",
        }
        for number in range(WORKERS)
    ]
    with contextlib.ExitStack() as stack:
        workers = [LoadWorker.start(stack, job, tmp_path / f"worker-{job['worker']}.stderr") for job in jobs]
        for worker in workers:
            assert await worker.message() == {"ready": True}
        started = time.monotonic()
        for worker in workers:
            worker.tell("go")  # all are connected: their writes overlap
        reports = [await worker.message() for worker in workers]
        seconds = time.monotonic() - started
        exit_codes = [await worker.exit_code() for worker in workers]
        stderrs = [worker.stderr() for worker in workers]
    assert exit_codes == [0] * WORKERS, stderrs
    assert stderrs == [""] * WORKERS  # no warning, no log line
    assert [report["errors"] for report in reports] == [[]] * WORKERS  # no on_error in any child
    assert sum(report["entries"] for report in reports) == SESSIONS * ENTRIES_PER_SESSION

    expected = {
        session_id: [load_entry(job["worker"], session_id, number) for number in range(ENTRIES_PER_SESSION)]
        for job in jobs
        for session_id in job["sessions"]
    }
    async with open_store_from_spec(store_spec) as store:
        loaded = await load_all(store, sessions)
        listed = [row["session_id"] for row in await store.list_sessions(PROJECT)]
    assert loaded == expected
    assert sorted(listed) == sorted(sessions)

    entries = SESSIONS * ENTRIES_PER_SESSION
    print(
        f"load: processes {request.node.callspec.id} workers={WORKERS} sessions={SESSIONS} entries={entries} "
        f"seconds={seconds:.2f} entries_per_s={entries / seconds:.0f} "
        f"worker_seconds={[round(report['seconds'], 2) for report in reports]} "
        f"worker_peak_rss_kib={[report['peak_rss_kib'] for report in reports]} "
        f"worker_rss_kib={[report['rss_kib'] for report in reports]}"
    )


# ---------------------------------------------------------------------------------------- server outages


@dataclass
class MirroredSession:
    """One session mirrored through its own batcher, with what it sent in each phase of an outage test."""

    session_id: str
    batcher: TranscriptMirrorBatcher
    path: str
    errors: list[tuple[SessionKey | None, str]] = field(default_factory=list)
    sent: dict[str, list[SessionStoreEntry]] = field(default_factory=dict)

    async def send(self, phase: str, count: int, *, close: bool = False) -> None:
        """Enqueue ``count`` entries labelled ``phase`` as one frame each, then ``flush()`` (or ``close()``)."""
        self.sent[phase] = [entry(self.session_id, f"{phase}-{number}") for number in range(count)]
        for line in self.sent[phase]:
            self.batcher.enqueue(self.path, [line])
        await (self.batcher.close() if close else self.batcher.flush())


def mirrored_sessions(store: SessionStore, projects_dir: Path, session_ids: list[str]) -> list[MirroredSession]:
    sessions = []
    for session_id in session_ids:
        errors: list[tuple[SessionKey | None, str]] = []
        batcher = build_mirror_batcher(store, projects_dir, functools.partial(record_error, errors))
        session = MirroredSession(session_id, batcher, session_path(str(projects_dir), session_id), errors)
        sessions.append(session)
    return sessions


def record_error(errors: list[tuple[SessionKey | None, str]], key: SessionKey | None, message: str) -> None:
    errors.append((key, message))


async def run_outage(
    store: SessionStore,
    sessions: list[MirroredSession],
    stop: Callable[[], object],
    start: Callable[[], object],
) -> dict[str, int]:
    """Flush a batch per session, ``stop()`` the server, flush another, ``start()`` it, then send and close.

    Checks that nothing failed before the outage and nothing after it; returns how many ``on_error`` reports
    each session got for its batch sent during the outage.
    """
    await each(sessions, lambda session: session.send("before", OUTAGE_BATCH))
    assert [session.errors for session in sessions] == [[]] * len(sessions)
    await compat.run_sync(stop)
    try:
        await each(sessions, lambda session: session.send("during", OUTAGE_BATCH - 1))
    finally:
        await compat.run_sync(start)
    reported = {session.session_id: len(session.errors) for session in sessions}
    for session in sessions:
        for key, message in session.errors:
            assert key == key_of(session.session_id)
            assert session.path in message
    await each(sessions, lambda session: session.send("after", OUTAGE_BATCH, close=True))
    assert {session.session_id: len(session.errors) for session in sessions} == reported  # none after the restart
    return reported


async def assert_outage_outcome(store: SessionStore, sessions: list[MirroredSession], reported: dict[str, int]) -> None:
    """Each session holds before + after, and its outage batch exactly when that batch was not reported."""
    for session in sessions:
        landed = session.sent["during"] if reported[session.session_id] == 0 else []
        expected = session.sent["before"] + landed + session.sent["after"]
        assert await store.load(key_of(session.session_id)) == expected, session.errors


@pytest.mark.servers
async def test_redis_killed_mid_stream_keeps_commits_reports_each_lost_batch_once_and_recovers(
    restartable_redis: RedisServer, tmp_path: Path
) -> None:
    server = restartable_redis
    async with RedisSessionStore(server.url, prefix=redis_test_prefix()) as store:
        session_ids = [str(uuid.uuid4()) for _ in range(OUTAGE_SESSIONS)]
        sessions = mirrored_sessions(store, tmp_path / "projects", session_ids)
        started = time.monotonic()
        reported = await run_outage(store, sessions, lambda: server.stop(crash=True), server.start)
        seconds = time.monotonic() - started
        assert reported == dict.fromkeys(session_ids, 1)
        await assert_outage_outcome(store, sessions, reported)
    print(f"load: redis-outage sessions={OUTAGE_SESSIONS} seconds={seconds:.2f}")


@pytest.mark.servers
async def test_postgres_stopped_mid_stream_keeps_commits_reports_each_lost_batch_once_and_recovers(
    restartable_postgres: PostgresServer, tmp_path: Path
) -> None:
    server = restartable_postgres
    table = f"t_{uuid.uuid4().hex[:16]}"
    async with PostgresSessionStore(server.url, table=table, timeout=PG_POOL_TIMEOUT_SECONDS) as store:
        session_ids = [str(uuid.uuid4()) for _ in range(OUTAGE_SESSIONS)]
        sessions = mirrored_sessions(store, tmp_path / "projects", session_ids)
        started = time.monotonic()
        reported = await run_outage(store, sessions, lambda: server.stop("immediate"), server.start)
        seconds = time.monotonic() - started
        assert reported == dict.fromkeys(session_ids, 1)
        await assert_outage_outcome(store, sessions, reported)
    print(f"load: postgres-outage sessions={OUTAGE_SESSIONS} seconds={seconds:.2f}")


def sessions_on_each_master(cluster: RedisClusterServers, per_master: int) -> dict[int, list[str]]:
    """Port of each master -> ``per_master`` new session ids whose keys (one hash tag) that master serves."""
    ranges = cluster.slot_ranges()
    chosen: dict[int, list[str]] = {port: [] for port in ranges}
    while any(len(ids) < per_master for ids in chosen.values()):
        session_id = str(uuid.uuid4())
        port = cluster.node_serving(RedisKeys("", PROJECT, session_id).summary).port
        if len(chosen[port]) < per_master:
            chosen[port].append(session_id)
    return chosen


def quickly_retrying_cluster_client(cluster: RedisClusterServers) -> Any:
    """A cluster client that retries a failed command twice, 50 ms apart.

    redis-py's default (3 retries, exponential backoff from 1 s) makes each append attempt to a dead master take
    seconds, so the batcher's three attempts would cost 10-15 s; what is tested here is the same either way.
    """
    from redis.backoff import ConstantBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    nodes = [ClusterNode("127.0.0.1", node.port) for node in cluster.nodes]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes, retry=Retry(ConstantBackoff(0.05), 2))


@pytest.mark.servers
async def test_redis_cluster_master_restarted_mid_stream_keeps_commits_reports_lost_batches_and_recovers(
    redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    by_master = await compat.run_sync(sessions_on_each_master, redis_cluster, OUTAGE_SESSIONS // 3)
    victim_port = min(by_master)
    [victim] = [node for node in redis_cluster.nodes if node.port == victim_port]
    session_ids = [session_id for ids in by_master.values() for session_id in ids]

    def restart() -> None:
        victim.start()
        redis_cluster.wait_until_ok()

    client = await compat.run_sync(quickly_retrying_cluster_client, redis_cluster)
    try:
        async with RedisSessionStore(client, prefix=redis_test_prefix()) as store:
            sessions = mirrored_sessions(store, tmp_path / "projects", session_ids)
            started = time.monotonic()
            reported = await run_outage(store, sessions, lambda: victim.stop(crash=True), restart)
            seconds = time.monotonic() - started
            for session_id in by_master[victim_port]:
                assert reported[session_id] == 1  # its master was down for every attempt
            # The other masters serve until the cluster marks the victim failed (cluster_state:fail); either
            # way a batch is reported at most once, and it is in the store exactly when it was not reported.
            assert set(reported.values()) <= {0, 1}
            await assert_outage_outcome(store, sessions, reported)
    finally:
        client.close()
    print(
        f"load: redis-cluster-outage sessions={len(session_ids)} seconds={seconds:.2f} "
        f"reported={sorted(reported.values())}"
    )
