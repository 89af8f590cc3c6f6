"""The storage adapters (SQLite, PostgreSQL, Redis) against real databases, and ``open_store``.

Contracts every adapter keeps run once per adapter (ids carry ``sqlite`` / ``postgres`` / ``redis``); the
PostgreSQL and Redis cases use the throwaway servers of ``tests/servers.py`` (marker ``servers``). Each async
test runs under asyncio and trio. Adapter-specific behaviour (SQLite files and processes, PostgreSQL table
names and schema, Redis key layout and clock) follows, then outages, then ``open_store``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from servers import PostgresServer, RedisServer, new_s3_bucket, redis_test_prefix

import compat
from session_store.adapters import (
    SUPPORTED_SCHEMES,
    MissingDriverError,
    PostgresSessionStore,
    RedisSessionStore,
    SQLiteSessionStore,
    ThreadedSessionStore,
    default_database_path,
    open_store,
)
from session_store.adapters.s3 import S3SessionStore
from session_store.conformance import run_session_store_conformance
from session_store.memory import InMemorySessionStore
from session_store.summary import fold_session_summary
from session_store.types import SessionKey, SessionStoreEntry

StoreFactory = Callable[[], ThreadedSessionStore]

# -- factories ---------------------------------------------------------------------------------------------


def entry(uuid_: str | None = None, **fields: Any) -> SessionStoreEntry:
    """A transcript line of type ``user`` with the given uuid (None: no uuid) and extra fields."""
    line: dict[str, Any] = {"type": "user", **fields}
    if uuid_ is not None:
        line["uuid"] = uuid_
    return cast(SessionStoreEntry, line)


def session_key(project_key: str = "proj", session_id: str | None = None, subpath: str | None = None) -> SessionKey:
    key: SessionKey = {"project_key": project_key, "session_id": session_id or str(uuid.uuid4())}
    if subpath is not None:
        key["subpath"] = subpath
    return key


def unique_table() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def sqlite_factory(directory: Path) -> StoreFactory:
    numbers = itertools.count()
    return lambda: SQLiteSessionStore(directory / f"store-{next(numbers)}.db")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("redis", marks=pytest.mark.servers),
        pytest.param("s3", marks=pytest.mark.servers),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds fresh, empty stores of one adapter (a new file, table or key prefix each time)."""
    if request.param == "sqlite":
        return sqlite_factory(tmp_path)
    if request.param == "postgres":
        postgres_url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresSessionStore(postgres_url, table=unique_table())
    if request.param == "s3":
        s3_endpoint: str = request.getfixturevalue("s3_endpoint")
        return lambda: S3SessionStore(new_s3_bucket(s3_endpoint), endpoint_url=s3_endpoint)
    redis_url: str = request.getfixturevalue("redis_url")
    return lambda: RedisSessionStore(redis_url, prefix=redis_test_prefix())


# -- contracts every adapter keeps -------------------------------------------------------------------------


async def test_adapter_passes_the_conformance_suite(make_store: StoreFactory) -> None:
    await run_session_store_conformance(make_store)


async def test_repeated_batch_changes_neither_entries_nor_mtime(make_store: StoreFactory) -> None:
    key = session_key()
    batch = [entry("a", customTitle="one"), entry("b")]
    async with make_store() as store:
        await store.append(key, batch)
        [before] = await store.list_sessions("proj")
        await store.append(key, batch)  # a retry after a lost acknowledgement
        assert await store.load(key) == batch
        assert await store.list_sessions("proj") == [before]
        [summary] = await store.list_session_summaries("proj")
        assert summary["mtime"] == before["mtime"]


async def test_every_append_advances_the_session_mtime(make_store: StoreFactory) -> None:
    key = session_key()
    mtimes = []
    async with make_store() as store:
        for number in range(5):  # faster than one per millisecond: the clock is forced forward
            await store.append(key, [entry(f"e{number}")])
            [row] = await store.list_sessions("proj")
            mtimes.append(row["mtime"])
    assert mtimes == sorted(set(mtimes))


async def test_summary_equals_a_fold_of_the_stored_transcript_after_racing_appends(
    make_store: StoreFactory,
) -> None:
    key = session_key()

    async def writer(task: int) -> None:
        for number in range(4):
            await store.append(key, [entry(f"{task}-{number}", customTitle=f"{task}-{number}", lastPrompt=str(task))])

    async with make_store() as store:
        async with compat.create_task_group() as tg:
            for task in range(6):
                tg.start_soon(writer, task)
        loaded = await store.load(key)
        [summary] = await store.list_session_summaries("proj")
    assert loaded is not None and len(loaded) == 24
    assert summary["data"] == fold_session_summary(None, key, loaded)["data"]


async def test_keys_with_separators_and_quotes_never_collide(make_store: StoreFactory) -> None:
    tricky = [
        session_key("a:b", "c"),
        session_key("a", "b:c"),
        session_key("a", "b", "c"),
        session_key("{a}", "b}{c"),
        session_key("it's", "'; DROP TABLE session_entries; --"),
        session_key("%3A", "x"),
        session_key(":", "x"),
    ]
    async with make_store() as store:
        for number, key in enumerate(tricky):
            await store.append(key, [entry(f"u{number}", n=number)])
        for number, key in enumerate(tricky):
            assert await store.load(key) == [entry(f"u{number}", n=number)], key
        assert await store.list_subkeys({"project_key": "a", "session_id": "b"}) == ["c"]
        assert [row["session_id"] for row in await store.list_sessions("a")] == ["b:c"]


async def test_an_append_cancelled_in_flight_is_all_or_nothing(make_store: StoreFactory) -> None:
    key = session_key()
    first = [entry("first")]
    batch = [entry(f"b{number}", text="x" * 1000) for number in range(300)]
    async with make_store() as store:
        await store.append(key, first)  # connected before the deadline starts
        with compat.move_on_after(0.002):
            await store.append(key, batch)
        assert await store.load(key) in (first, first + batch)


async def test_a_closed_store_refuses_further_calls(make_store: StoreFactory) -> None:
    store = make_store()
    async with store:
        await store.append(session_key(), [entry("a")])
    await store.close()  # closing twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        await store.load(session_key())


# -- SQLite --------------------------------------------------------------------------------------------------


def test_sqlite_default_path_follows_session_store_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SESSION_STORE_DB", str(tmp_path / "chosen.db"))
    assert default_database_path() == tmp_path / "chosen.db"
    assert SQLiteSessionStore().path == str(tmp_path / "chosen.db")


def test_sqlite_default_path_is_under_local_share(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SESSION_STORE_DB", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_database_path() == tmp_path / ".local" / "share" / "session-store" / "sessions.db"


async def test_sqlite_creates_missing_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "sessions.db"
    async with SQLiteSessionStore(path) as store:
        await store.append(session_key(), [entry("a")])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_data_outlives_the_store_object(tmp_path: Path) -> None:
    key = session_key(subpath="subagents/agent-1")
    async with SQLiteSessionStore(tmp_path / "s.db") as store:
        await store.append(key, [entry("a"), entry(None, customTitle="t")])
    async with SQLiteSessionStore(tmp_path / "s.db") as reopened:
        assert await reopened.load(key) == [entry("a"), entry(None, customTitle="t")]


async def test_sqlite_refuses_a_database_from_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    async with SQLiteSessionStore(path) as store:
        with pytest.raises(RuntimeError, match=r"schema version 99.*upgrade the package"):
            await store.load(session_key())


_WRITER_SCRIPT = """
import sys, time
import {library}
from session_store.adapters import SQLiteSessionStore

path, name, count, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
key = {{"project_key": "proj", "session_id": "shared"}}

async def main():
    store = SQLiteSessionStore(path)
    while time.time() < start_at:
        time.sleep(0.001)
    for number in range(count):
        batch = [{{"type": "user", "uuid": f"{{name}}-{{number}}", "writer": name, "n": number,
                  "customTitle": f"{{name}}-{{number}}"}}]
        if number % 10 == 0:  # a retried batch, and a line without uuid
            batch += [batch[0], {{"type": "tag", "tag": name, "writer": name, "n": number}}]
        await store.append(key, batch)
    await store.close()

{library}.run(main{extra})
"""


def test_sqlite_two_processes_appending_to_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # created by the race itself: schema and WAL switch are contended too
    count = 150
    start_at = time.time() + 1.0
    writers = {"asyncio": ("asyncio", "()"), "trio": ("trio", "")}
    processes = []
    for name, (library, extra) in writers.items():
        script = tmp_path / f"writer_{name}.py"
        script.write_text(_WRITER_SCRIPT.format(library=library, extra=extra))
        processes.append(subprocess.Popen([sys.executable, str(script), str(path), name, str(count), str(start_at)]))
    for process in processes:
        assert process.wait(timeout=120) == 0

    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = [json.loads(text) for (text,) in conn.execute("SELECT entry FROM session_entries ORDER BY seq")]
        [(data,)] = conn.execute("SELECT data FROM session_summaries").fetchall()
    for name in writers:
        mine = [row for row in rows if row["writer"] == name]
        assert [row["n"] for row in mine if "uuid" in row] == list(range(count))  # none lost, none doubled
        assert [row["n"] for row in mine if "uuid" not in row] == list(range(0, count, 10))
    key = session_key("proj", "shared")
    assert json.loads(data) == fold_session_summary(None, key, rows)["data"]  # folded in storage order


# -- PostgreSQL ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    ["", "1table", "session-entries", "entries; DROP TABLE x", 'quo"te', "white space", "a" * 41, "tablé"],
)
def test_postgres_rejects_unsafe_table_names(table: str) -> None:
    with pytest.raises(ValueError, match=r"table name .* is not allowed: use 1-40 characters from \[A-Za-z0-9_\]"):
        PostgresSessionStore("postgresql://localhost/db", table=table)


def test_postgres_accepts_plain_identifiers() -> None:
    assert PostgresSessionStore("postgresql://localhost/db", table="_Sessions_2").table == "_Sessions_2"


@pytest.mark.servers
async def test_postgres_create_schema_is_idempotent(postgres_url: str) -> None:
    async with PostgresSessionStore(postgres_url, table=unique_table(), ensure_schema=False) as store:
        await store.create_schema()
        await store.create_schema()
        await store.append(session_key(), [entry("a")])
        assert await store.list_sessions("proj") != []


@pytest.mark.servers
async def test_postgres_without_schema_fails_until_create_schema(postgres_url: str) -> None:
    import psycopg

    key = session_key()
    async with PostgresSessionStore(postgres_url, table=unique_table(), ensure_schema=False) as store:
        with pytest.raises(psycopg.errors.UndefinedTable):
            await store.append(key, [entry("a")])
        await store.create_schema()
        await store.append(key, [entry("a")])
        assert await store.load(key) == [entry("a")]


@pytest.mark.servers
async def test_postgres_mtime_comes_from_the_server_clock(postgres_url: str) -> None:
    import psycopg

    def server_ms() -> int:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()
            assert row is not None
            return int(row[0])

    async with PostgresSessionStore(postgres_url, table=unique_table()) as store:
        await store.create_schema()
        before = await compat.run_sync(server_ms)
        await store.append(session_key(), [entry("a")])
        after = await compat.run_sync(server_ms)
        [row] = await store.list_sessions("proj")
    assert before <= row["mtime"] <= after


@pytest.mark.servers
async def test_postgres_loads_are_exact_json_not_reordered(postgres_url: str) -> None:
    line = entry("a", zeta=1, alpha={"y": 2, "b": 1}, number=1.0, nul="\u0000")
    key = session_key()
    async with PostgresSessionStore(postgres_url, table=unique_table()) as store:
        await store.append(key, [line])
        [loaded] = await store.load(key) or []
    assert json.dumps(loaded) == json.dumps(line)


# -- Redis ---------------------------------------------------------------------------------------------------


@pytest.mark.servers
async def test_redis_keys_of_one_session_share_a_hash_slot(redis_url: str) -> None:
    import redis
    from redis.crc import key_slot

    prefix = redis_test_prefix()
    key = session_key("project:x", "{session}")
    async with RedisSessionStore(redis_url, prefix=prefix) as store:
        await store.append(key, [entry("a")])
        await store.append({**key, "subpath": "subagents/agent-1"}, [entry("b")])
    client = redis.Redis.from_url(redis_url)
    try:
        every = list(client.scan_iter(match=f"{prefix}*"))
    finally:
        client.close()
    project = [name for name in every if name.endswith((b":sessions", b":summaries", b":log", b":log-lines"))]
    names = [name for name in every if name not in project and name != f"{prefix}:projects".encode()]
    assert len(names) >= 6  # main, sub, two uuid sets, subkeys, summary
    assert len({key_slot(name) for name in names}) == 1
    assert len(project) == 4 and len({key_slot(name) for name in project}) == 1  # the project's own slot


@pytest.mark.servers
async def test_redis_mtime_comes_from_the_server_clock(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)

    def server_ms() -> int:
        seconds, microseconds = client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    try:
        async with RedisSessionStore(redis_url, prefix=redis_test_prefix()) as store:
            before = await compat.run_sync(server_ms)
            await store.append(session_key(), [entry("a")])
            after = await compat.run_sync(server_ms)
            [row] = await store.list_sessions("proj")
            [summary] = await store.list_session_summaries("proj")
    finally:
        client.close()
    assert before <= row["mtime"] == summary["mtime"] <= after


@pytest.mark.servers
async def test_redis_listing_skips_indexed_sessions_whose_data_is_gone(redis_url: str) -> None:
    import redis

    prefix = redis_test_prefix()
    async with RedisSessionStore(redis_url, prefix=prefix) as store:
        await store.append(session_key(session_id="kept"), [entry("a")])
        client = redis.Redis.from_url(redis_url)
        try:  # what a crash between the index write and the session's transaction leaves behind (an id in
            # flux), and what an earlier version's index could hold (a confirmed-looking id with no session)
            client.zadd(f"{prefix}:{{proj}}:sessions", {"ghost": -1, "legacy-ghost": 1})
        finally:
            client.close()
        assert [row["session_id"] for row in await store.list_session_summaries("proj")] == ["kept"]
        assert [row["session_id"] for row in await store.list_sessions("proj")] == ["kept"]


@pytest.mark.servers
async def test_redis_accepts_a_client_that_decodes_responses(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = session_key(subpath="subagents/agent-1")
    try:
        async with RedisSessionStore(client, prefix=redis_test_prefix()) as store:
            await store.append(key, [entry("a")])
            await store.append(session_key(session_id=key["session_id"]), [entry("b")])
            assert await store.load(key) == [entry("a")]
            assert await store.list_subkeys(key) == ["subagents/agent-1"]
            assert [row["session_id"] for row in await store.list_session_summaries("proj")] == [key["session_id"]]
        assert client.ping()  # a client we passed in stays open
    finally:
        client.close()


def test_redis_prefix_must_not_break_hash_tags() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        RedisSessionStore("redis://localhost", prefix="bad{prefix}")


# -- outages -------------------------------------------------------------------------------------------------


async def append_through_an_outage(
    store: ThreadedSessionStore, stop: Callable[[], None], start: Callable[[], None], error: type[Exception]
) -> None:
    """Append a stream of batches while the server goes away and comes back; check what survived."""
    key = session_key()
    before = [entry(f"before-{number}", customTitle=f"t{number}") for number in range(5)]
    after = [entry(f"after-{number}") for number in range(5)]
    for line in before:
        await store.append(key, [line])
    await compat.run_sync(stop)
    try:
        for number in range(2):
            with pytest.raises(error):
                await store.append(key, [entry(f"during-{number}")])
    finally:
        await compat.run_sync(start)
    for line in after:
        await store.append(key, [line])
    assert await store.load(key) == before + after
    [summary] = await store.list_session_summaries("proj")
    assert summary["data"]["custom_title"] == "t4"


@pytest.mark.servers
async def test_postgres_appends_fail_during_a_restart_and_resume_after_it(restartable_postgres: PostgresServer) -> None:
    import psycopg

    server = restartable_postgres
    async with PostgresSessionStore(server.url, table=unique_table(), timeout=2.0) as store:
        await append_through_an_outage(
            store, stop=lambda: server.stop("immediate"), start=server.start, error=psycopg.OperationalError
        )


@pytest.mark.servers
async def test_redis_appends_fail_during_a_restart_and_resume_after_it(restartable_redis: RedisServer) -> None:
    import redis

    server = restartable_redis
    async with RedisSessionStore(server.url, prefix=redis_test_prefix()) as store:
        await append_through_an_outage(
            store, stop=lambda: server.stop(crash=True), start=server.start, error=redis.ConnectionError
        )


# -- open_store ----------------------------------------------------------------------------------------------


@pytest.fixture
def in_tmp_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_open_store_memory_gives_an_in_memory_store() -> None:
    assert isinstance(open_store("memory://"), InMemorySessionStore)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///dir/with%20space.db", "dir/with space.db"),
        ("sqlite:////absolute/path.db", "/absolute/path.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_open_store_sqlite_paths(url: str, expected: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteSessionStore)
    assert store.path == expected


def test_open_store_sqlite_without_path_uses_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SESSION_STORE_DB", str(tmp_path / "default.db"))
    store = open_store("sqlite://")
    assert isinstance(store, SQLiteSessionStore)
    assert store.path == str(tmp_path / "default.db")


async def test_open_store_sqlite_store_works(in_tmp_dir: Path) -> None:
    store = open_store("sqlite:///nested/sessions.db")
    assert isinstance(store, SQLiteSessionStore)
    async with store:
        await store.append(session_key(), [entry("a")])
    assert (in_tmp_dir / "nested" / "sessions.db").exists()


@pytest.mark.parametrize("url", ["postgresql://u:p@db.example/app?sslmode=require", "postgres://db.example/app"])
def test_open_store_postgres_urls(url: str) -> None:
    store = open_store(url, table="custom_table")
    assert isinstance(store, PostgresSessionStore)
    assert (store.dsn, store.table) == (url, "custom_table")


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://user:secret@cache.example:6380/1"])
async def test_open_store_redis_urls(url: str) -> None:
    store = open_store(url, prefix="app")
    assert isinstance(store, RedisSessionStore)
    await store.close()


@pytest.mark.parametrize("url", ["mysql://user:secret@host/db", "sessions.db", "gs://bucket/prefix"])
def test_open_store_rejects_unknown_schemes_listing_the_supported_ones(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported store URL") as caught:
        open_store(url)
    message = str(caught.value)
    assert all(f"{scheme}://" in message for scheme in SUPPORTED_SCHEMES)
    assert "secret" not in message


def test_open_store_passes_options_to_the_store() -> None:
    with pytest.raises(ValueError, match="table name 'bad-name'"):
        open_store("postgresql://localhost/db", table="bad-name")


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("postgresql://localhost/db", "psycopg", "postgres"), ("redis://localhost", "redis", "redis")],
)
def test_open_store_names_the_extra_when_the_driver_is_missing(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingDriverError, match=rf"pip install 'session-store-compat\[{extra}\]'"):
        open_store(url)
    assert issubclass(MissingDriverError, ImportError)


def test_importing_the_adapters_imports_no_driver() -> None:
    code = (
        "import sys, session_store.adapters; "
        "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'redis') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


async def test_sqlite_lists_a_project_in_commit_order_even_within_one_millisecond(tmp_path: Path) -> None:
    async with SQLiteSessionStore(tmp_path / "order.db") as store:
        ids = [f"session-{number:03d}" for number in range(50)]
        for session_id in ids:  # far faster than one append per millisecond
            await store.append({"project_key": "p", "session_id": session_id}, [entry(f"u-{session_id}")])
        rows = await store.list_sessions("p")
    assert [row["session_id"] for row in sorted(rows, key=lambda row: row["mtime"])] == ids
    assert len({row["mtime"] for row in rows}) == 50


def test_open_store_takes_table_and_prefix_from_the_url_and_hides_them_from_the_driver() -> None:
    postgres = open_store("postgresql://user@127.0.0.1:5/db?table=tenant_a&sslmode=disable")
    assert isinstance(postgres, PostgresSessionStore)
    assert postgres.table == "tenant_a"
    assert postgres.dsn == "postgresql://user@127.0.0.1:5/db?sslmode=disable"
    redis_store = open_store("redis://127.0.0.1:6/0?prefix=tenant-b")
    assert isinstance(redis_store, RedisSessionStore)
    assert "tenant-b" in repr(redis_store)
    with pytest.raises(ValueError, match="table= 2 times"):
        open_store("postgresql://127.0.0.1/db?table=a&table=b")
    with pytest.raises(ValueError, match="table name"):
        open_store("postgresql://127.0.0.1/db?table=bad;name")
