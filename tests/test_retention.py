"""Retention: ``prune_sessions``, the stores' ``list_projects`` / ``prune_project`` and ``session-store prune``.

Every adapter of the project runs against its real server (``tests/servers.py``): memory, SQLite, PostgreSQL,
Redis, Redis Cluster, S3. Besides what is deleted and kept, each adapter is checked for the race retention
must survive: an append that lands after a session was listed as old keeps the session whole. The range
queries are shown to use their index (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``), and the CLI
runs as a subprocess.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from servers import new_s3_bucket, redis_test_prefix

import compat
from session_store import PrunedSession, prune_sessions
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore
from session_store.adapters.s3 import S3SessionStore
from session_store.adapters.sqlite import PRUNE_CANDIDATES_SQL
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.retention import parse_duration
from session_store.types import SessionKey, SessionStore, SessionStoreEntry, SessionStoreListEntry, store_implements

ROOT = Path(__file__).resolve().parents[1]
Store = Any  # every adapter under test (they share the retention methods, not a base class)
StoreFactory = Callable[[], Store]

# -- helpers -----------------------------------------------------------------------------------------------


def entry(number: int, **fields: Any) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": "user", "uuid": str(uuid.uuid4()), "n": number, **fields})


def key(project_key: str, session_id: str, subpath: str | None = None) -> SessionKey:
    made: SessionKey = {"project_key": project_key, "session_id": session_id}
    if subpath is not None:
        made["subpath"] = subpath
    return made


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("redis", marks=pytest.mark.servers),
        pytest.param("redis-cluster", marks=pytest.mark.servers),
        pytest.param("s3", marks=pytest.mark.servers),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    numbers = itertools.count()
    kind = request.param
    if kind == "memory":
        return InMemorySessionStore
    if kind == "sqlite":
        return lambda: SQLiteSessionStore(tmp_path / f"store-{next(numbers)}.db")
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresSessionStore(url, table=f"t_{uuid.uuid4().hex[:16]}")
    if kind == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        return lambda: RedisSessionStore(redis_url, prefix=redis_test_prefix())
    if kind == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return lambda: RedisSessionStore(cluster.url, prefix=redis_test_prefix())
    endpoint: str = request.getfixturevalue("s3_endpoint")
    return lambda: S3SessionStore(new_s3_bucket(endpoint), endpoint_url=endpoint)


def gap_seconds(store: Store) -> float:
    """Time to let pass so that two writes get distinct mtimes: S3's clock is the ``Date`` header (seconds)."""
    return 1.1 if isinstance(store, S3SessionStore) else 0.02


async def mtime_of(store: Store, project_key: str, session_id: str) -> int:
    rows = {row["session_id"]: row["mtime"] for row in await store.list_sessions(project_key)}
    return rows[session_id]


def set_candidates(store: Store, listed: list[tuple[str, int]]) -> None:
    """Make the store's next prune find exactly ``listed`` (a listing taken earlier): the append the test makes
    afterwards then lands between the listing and the delete."""
    if isinstance(store, InMemorySessionStore):
        store._prune_candidates = lambda project_key, before_ms: listed  # type: ignore[method-assign]
    else:
        store._prune_candidates_blocking = lambda project_key, before_ms: listed


async def listed_candidates(store: Store, project_key: str, before_ms: int) -> list[tuple[str, int]]:
    if isinstance(store, InMemorySessionStore):
        return store._prune_candidates(project_key, before_ms)
    found: list[tuple[str, int]] = await store._call(store._prune_candidates_blocking, project_key, before_ms)
    return found


# -- every adapter -----------------------------------------------------------------------------------------


async def test_prune_project_deletes_old_sessions_whole_and_keeps_newer_ones(make_store: StoreFactory) -> None:
    async with make_store() as store:
        assert store_implements(store, "prune_project") and store_implements(store, "list_projects")
        old, new = str(uuid.uuid4()), str(uuid.uuid4())
        await store.append(key("proj", old), [entry(1), entry(2)])
        await store.append(key("proj", old, "subagents/agent-a"), [entry(3)])
        await compat.sleep(gap_seconds(store))
        await store.append(key("proj", new), [entry(4)])
        await store.append(key("other", old), [entry(5)])  # same id, another project: untouched
        cutoff = await mtime_of(store, "proj", new)
        old_mtime = await mtime_of(store, "proj", old)

        would = await store.prune_project("proj", before_ms=cutoff, dry_run=True)
        assert [row["session_id"] for row in would] == [old]
        assert await store.load(key("proj", old)) is not None  # a dry run deletes nothing

        pruned = await store.prune_project("proj", before_ms=cutoff)
        assert pruned == [{"session_id": old, "mtime": old_mtime}]
        assert await store.load(key("proj", old)) is None
        assert await store.load(key("proj", old, "subagents/agent-a")) is None
        assert await store.list_subkeys({"project_key": "proj", "session_id": old}) == []
        assert [row["session_id"] for row in await store.list_sessions("proj")] == [new]
        assert [row["session_id"] for row in await store.list_session_summaries("proj")] == [new]
        assert await store.load(key("proj", new)) is not None
        assert await store.load(key("other", old)) is not None
        assert await store.prune_project("proj", before_ms=cutoff) == []  # nothing left to prune


async def test_list_projects_names_every_project_with_a_session(make_store: StoreFactory) -> None:
    async with make_store() as store:
        assert await store.list_projects() == []
        for project_key in ("alpha", "-home-user-repo", "beta"):
            await store.append(key(project_key, str(uuid.uuid4())), [entry(1)])
        assert sorted(await store.list_projects()) == ["-home-user-repo", "alpha", "beta"]


async def test_an_append_landing_after_the_listing_keeps_the_session_whole(make_store: StoreFactory) -> None:
    async with make_store() as store:
        session_id = str(uuid.uuid4())
        first = [entry(1), entry(2)]
        await store.append(key("proj", session_id), first)
        await compat.sleep(gap_seconds(store))
        cutoff = now_ms()
        await compat.sleep(gap_seconds(store))
        listed = await listed_candidates(store, "proj", cutoff)
        assert [session_id for session_id, _ in listed] == [session_id]  # old when listed...
        late = [entry(3)]
        await store.append(key("proj", session_id), late)  # ...appended to before the delete
        set_candidates(store, listed)
        assert await store.prune_project("proj", before_ms=cutoff) == []
        assert await store.load(key("proj", session_id)) == first + late
        assert [row["session_id"] for row in await store.list_sessions("proj")] == [session_id]


async def test_prune_sessions_prunes_one_directory_or_every_project(make_store: StoreFactory) -> None:
    here, there = "/tmp/retention-here", "/tmp/retention-there"
    async with make_store() as store:
        olds = {directory: str(uuid.uuid4()) for directory in (here, there)}
        for directory, session_id in olds.items():
            await store.append(key(project_key_for_directory(directory), session_id), [entry(1)])
        # S3's mtime is its Date header, whole seconds: a write can read up to a second older than it is
        older = max(1.0, 2 * gap_seconds(store))
        await compat.sleep(2 * older)
        fresh = str(uuid.uuid4())
        await store.append(key(project_key_for_directory(here), fresh), [entry(2)])
        older_than = timedelta(seconds=older)

        pruned = await prune_sessions(store, older_than=older_than, directory=here, dry_run=True)
        assert [(p.project_key, p.session_id) for p in pruned] == [(project_key_for_directory(here), olds[here])]
        pruned = await prune_sessions(store, older_than=older_than, directory=here)
        assert [p.session_id for p in pruned] == [olds[here]]
        assert isinstance(pruned[0], PrunedSession) and pruned[0].mtime > 0
        assert await store.load(key(project_key_for_directory(there), olds[there])) is not None

        pruned = await prune_sessions(store, older_than=older)  # every project, seconds as a number
        assert [p.session_id for p in pruned] == [olds[there]]
        assert await store.load(key(project_key_for_directory(here), fresh)) is not None
        await compat.sleep(gap_seconds(store))
        everything = await prune_sessions(store, older_than=0, dry_run=True)
        assert [(p.project_key, p.session_id) for p in everything] == [(project_key_for_directory(here), fresh)]


# -- the deeper races, where an adapter has a window after its first check ---------------------------------


@pytest.fixture(
    params=[pytest.param("redis", marks=pytest.mark.servers), pytest.param("redis-cluster", marks=pytest.mark.servers)]
)
def make_redis(request: pytest.FixtureRequest) -> StoreFactory:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
    else:
        url = request.getfixturevalue("redis_cluster").url
    return lambda: RedisSessionStore(url, prefix=redis_test_prefix())


async def test_redis_append_between_the_mark_and_the_delete_keeps_the_session_listed(make_redis: StoreFactory) -> None:
    async with make_redis() as store:
        session_id = str(uuid.uuid4())
        first, late = [entry(1)], [entry(2)]
        await store.append(key("proj", session_id), first)
        await compat.sleep(0.02)
        cutoff = now_ms()
        await compat.sleep(0.02)
        delete_session = store._delete_session

        def racing(keys: Any, *, before_ms: int | None) -> Any:
            store._append_blocking(key("proj", session_id), None, late)  # lands after the id was marked
            return delete_session(keys, before_ms=before_ms)

        store._delete_session = racing
        assert await store.prune_project("proj", before_ms=cutoff) == []
        assert await store.load(key("proj", session_id)) == first + late
        [row] = await store.list_sessions("proj")
        assert row["session_id"] == session_id and row["mtime"] >= cutoff
        [summary] = await store.list_session_summaries("proj")
        assert summary["mtime"] == row["mtime"]
        index = store._client.zrange(store._keys("proj", session_id).index, 0, -1, withscores=True)
        # the append re-marked the id in flux (the prune's mark was on it): listed through its summary, and
        # confirmed by a listing once it has been idle for the grace period
        assert [abs(score) for _, score in index] == [row["mtime"]]


@pytest.mark.servers
async def test_s3_append_between_reading_the_index_and_the_delete_keeps_the_session(s3_endpoint: str) -> None:
    async with S3SessionStore(new_s3_bucket(s3_endpoint), endpoint_url=s3_endpoint) as store:
        session_id = str(uuid.uuid4())
        first, late = [entry(1)], [entry(2)]
        await store.append(key("proj", session_id), first)
        await compat.sleep(1.1)
        cutoff = now_ms() + 60_000  # the late append is old enough too: only the ETag can keep the session
        delete_key = store._delete_key

        def racing(project_key: str, sid: str, subpath: str | None, *, if_match: str | None) -> bool:
            store._append_blocking(key(project_key, sid), None, late)  # commits a new index: new ETag
            return delete_key(project_key, sid, subpath, if_match=if_match)

        store._delete_key = racing
        assert await store.prune_project("proj", before_ms=cutoff) == []
        assert await store.load(key("proj", session_id)) == first + late


@pytest.mark.servers
async def test_postgres_prune_waits_for_an_append_in_flight_and_keeps_its_session(postgres_url: str) -> None:
    import psycopg

    table = f"t_{uuid.uuid4().hex[:16]}"
    async with PostgresSessionStore(postgres_url, table=table) as store:
        session_id = str(uuid.uuid4())
        first = [entry(1)]
        await store.append(key("proj", session_id), first)
        await compat.sleep(0.02)
        cutoff = now_ms()
        results: list[list[SessionStoreListEntry]] = []
        with psycopg.connect(postgres_url) as conn:  # an append in flight: it holds the summary row's lock
            conn.execute(
                f"SELECT mtime FROM {table}_summaries WHERE project_key = 'proj' AND session_id = %s FOR UPDATE",
                (session_id,),
            )

            async def prune() -> None:
                results.append(await store.prune_project("proj", before_ms=cutoff))

            async with compat.create_task_group() as group:
                group.start_soon(prune)
                await compat.sleep(0.5)  # the prune now waits for the row lock
                assert not results
                conn.execute(
                    f"UPDATE {table}_summaries SET mtime = %s WHERE project_key = 'proj' AND session_id = %s",
                    (cutoff + 1000, session_id),
                )
                conn.commit()
        assert results == [[]]
        assert await store.load(key("proj", session_id)) == first


# -- the range queries use their index ---------------------------------------------------------------------


def test_sqlite_prune_range_is_an_index_search(tmp_path: Path) -> None:
    async def create() -> None:
        async with SQLiteSessionStore(tmp_path / "plan.db") as store:
            await store.append(key("proj", str(uuid.uuid4())), [entry(1)])

    compat_run(create)
    with contextlib.closing(sqlite3.connect(tmp_path / "plan.db")) as conn, conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + PRUNE_CANDIDATES_SQL, ("proj", now_ms())).fetchall()
    details = " | ".join(row[3] for row in plan)
    assert details == (
        "SEARCH session_summaries USING COVERING INDEX session_summaries_by_mtime (project_key=? AND mtime<?)"
    )


def compat_run(fn: Callable[[], Any]) -> None:
    import asyncio

    asyncio.run(fn())


@pytest.mark.servers
async def test_postgres_prune_range_uses_the_mtime_index(postgres_url: str) -> None:
    import psycopg

    table = f"t_{uuid.uuid4().hex[:16]}"
    async with PostgresSessionStore(postgres_url, table=table) as store:
        await store.append(key("proj", str(uuid.uuid4())), [entry(1)])
        statement = store._sql.prune_candidates
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table would be scanned anyway: ask what serves the range
        plan = "\n".join(row[0] for row in conn.execute(psycopg.sql.SQL("EXPLAIN ") + statement, ("proj", now_ms())))
    assert f"{table}_summaries_mtime_idx" in plan
    assert "Index Cond: ((project_key = 'proj'::text) AND (mtime <" in plan


# -- prune_sessions' arguments and stores without the retention methods ------------------------------------


class ListingOnlyStore:
    """A store written against the SDK's protocol: no list_projects, no prune_project."""

    def __init__(self) -> None:
        self.inner = InMemorySessionStore()

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.inner.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.inner.load(key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return await self.inner.list_sessions(project_key)

    async def delete(self, key: SessionKey) -> None:
        await self.inner.delete(key)


async def test_a_store_without_the_retention_methods_is_pruned_through_list_sessions_and_delete() -> None:
    store = ListingOnlyStore()
    directory = "/tmp/retention-listing-only"
    session_id = str(uuid.uuid4())
    await store.append(key(project_key_for_directory(directory), session_id), [entry(1)])
    await compat.sleep(0.05)
    with pytest.raises(ValueError, match=r"ListingOnlyStore cannot list its projects .* pass directory=\.\.\."):
        await prune_sessions(cast(SessionStore, store), older_than=0)
    pruned = await prune_sessions(cast(SessionStore, store), older_than=0.01, directory=directory)
    assert [p.session_id for p in pruned] == [session_id]
    assert await store.load(key(project_key_for_directory(directory), session_id)) is None


@pytest.mark.parametrize(
    ("older_than", "error", "message"),
    [
        (-1, ValueError, r"finite, non-negative duration, got -1"),
        (timedelta(days=-1), ValueError, r"finite, non-negative duration"),
        (math.nan, ValueError, r"finite, non-negative duration, got nan"),
        (math.inf, ValueError, r"finite, non-negative duration, got inf"),
        ("30d", TypeError, r"older_than must be a datetime.timedelta or a number of seconds, got str '30d'"),
        (True, TypeError, r"got bool True"),
    ],
)
async def test_bad_older_than_is_refused_before_anything_is_deleted(older_than: Any, error: type, message: str) -> None:
    store = InMemorySessionStore()
    await store.append(key("proj", str(uuid.uuid4())), [entry(1)])
    with pytest.raises(error, match=message):
        await prune_sessions(store, older_than=older_than)
    assert store.size == 1


def test_parse_duration_units_and_errors() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("3600s") == timedelta(hours=1)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("30", "d", "-5d", "1.5h", "30 days", "", "٣d"):
        with pytest.raises(ValueError, match=r"is not a whole number followed by s, m, h, d or w \(e\.g\. 30d"):
            parse_duration(bad)


# -- the command line --------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "session_store", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prune_deletes_sessions_older_than_the_duration(tmp_path: Path) -> None:
    database = tmp_path / "sessions.db"
    here, there = "/tmp/retention-cli-here", "/tmp/retention-cli-there"
    ids = {"old-here": str(uuid.uuid4()), "old-there": str(uuid.uuid4()), "new-here": str(uuid.uuid4())}

    async def seed() -> None:
        async with SQLiteSessionStore(database) as store:
            await store.append(key(project_key_for_directory(here), ids["old-here"]), [entry(1)])
            await store.append(key(project_key_for_directory(there), ids["old-there"]), [entry(2)])
            await store.append(key(project_key_for_directory(here), ids["new-here"]), [entry(3)])

    compat_run(seed)
    forty_days_ms = 40 * 86_400_000
    with (
        contextlib.closing(sqlite3.connect(database)) as conn,
        conn,
    ):  # the two old sessions were last written forty days ago
        conn.execute(
            "UPDATE session_summaries SET mtime = mtime - ? WHERE session_id IN (?, ?)",
            (forty_days_ms, ids["old-here"], ids["old-there"]),
        )
    store_url = f"sqlite:///{database}"

    dry = run_cli("prune", "--older-than", "30d", "--dry-run", "--store", store_url, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert ids["old-here"] in dry.stdout and ids["old-there"] in dry.stdout and ids["new-here"] not in dry.stdout
    assert "would delete 2 session(s) not modified for 30d in every project" in dry.stdout

    one = run_cli("prune", "--older-than", "30d", "--directory", here, "--store", store_url, "--json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    report = json.loads(one.stdout)
    assert report["dry_run"] is False and report["older_than_seconds"] == 30 * 86400
    assert [row["session_id"] for row in report["sessions"]] == [ids["old-here"]]
    assert report["sessions"][0]["project_key"] == project_key_for_directory(here)

    rest = run_cli("prune", "--older-than", "720h", "--store", store_url, cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert ids["old-there"] in rest.stdout and "deleted 1 session(s) not modified for 30d" in rest.stdout
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        left = {row[0] for row in conn.execute("SELECT DISTINCT session_id FROM session_entries")}
    assert left == {ids["new-here"]}


@pytest.mark.parametrize("duration", ["30", "3x", "-1d", "1.5h"])
def test_cli_prune_refuses_a_bad_duration_with_a_usage_error(tmp_path: Path, duration: str) -> None:
    result = run_cli("prune", f"--older-than={duration}", "--store", "memory://", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"session-store: error: argument --older-than: duration '{duration}' is not a whole number followed by "
        "s, m, h, d or w (e.g. 30d, 12h, 90m, 3600s)"
    )
    assert result.stdout == ""
