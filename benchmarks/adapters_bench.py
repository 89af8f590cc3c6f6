"""Storage adapters on asyncio and trio: append throughput, loading one big session, listing many sessions.

For each adapter and each backend (a fresh store object inside one ``asyncio.run`` / ``trio.run``):

- **append x1**: ``APPENDS`` appends of one entry each to one session, one after the other: appends/s;
- **append x100**: ``BATCHES`` appends of 100 entries each: entries/s;
- **load 10k**: ``load`` of a session of ``LOAD_ENTRIES`` entries (median of the rounds);
- **list_sessions** / **list_session_summaries** over a project of ``LIST_SESSIONS`` sessions (median).

The data for load and listing is written once per adapter (before the first backend, not timed) and read by
both backends. Adapters:

- ``SQLiteSessionStore`` always (a file in a temp dir);
- ``PostgresSessionStore`` with ``$SESSION_STORE_BENCH_POSTGRES_URL``, else a throwaway server started through
  ``tests/servers.py`` when PostgreSQL is installed (a private table, dropped at the end);
- ``RedisSessionStore`` with ``$SESSION_STORE_BENCH_REDIS_URL``, else a throwaway ``redis-server`` (a private key
  prefix, deleted at the end).

``SESSION_STORE_BENCH_SERVERS=0`` skips starting servers (only URLs from the environment are used).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

from session_store.adapters import PostgresSessionStore, RedisSessionStore, S3SessionStore, SQLiteSessionStore
from session_store.types import SessionKey, SessionStore

from ._data import new_id, transcript
from ._report import Table, run_meta, write_results

SUITE = "adapters"
POSTGRES_URL_ENV = "SESSION_STORE_BENCH_POSTGRES_URL"
REDIS_URL_ENV = "SESSION_STORE_BENCH_REDIS_URL"
SERVERS_ENV = "SESSION_STORE_BENCH_SERVERS"
SERVERS_MODULE = Path(__file__).resolve().parent.parent / "tests" / "servers.py"
PROJECT = "-tmp-session-store-bench"


@dataclass(frozen=True)
class Config:
    appends: int
    batches: int
    batch_size: int
    load_entries: int
    list_sessions: int
    rounds: int


FULL = Config(appends=2_000, batches=100, batch_size=100, load_entries=10_000, list_sessions=5_000, rounds=5)
QUICK = Config(appends=50, batches=5, batch_size=100, load_entries=500, list_sessions=100, rounds=1)


@dataclass
class Adapter:
    """How to open one adapter's store, and how to remove what the benchmark wrote."""

    name: str
    open: Callable[[], SessionStore]
    cleanup: Callable[[], None]
    max_size: int | None = None  # the scale benchmark stops there (None: every size)
    rounds_above_10k: int | None = None  # the scale benchmark's rounds beyond 10,000 (None: the configured rounds)


def run_on(backend: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    if backend == "trio":
        return trio.run(fn, *args)
    return asyncio.run(fn(*args))


async def close(store: SessionStore) -> None:
    closer = getattr(store, "close", None)
    if closer is not None:
        await closer()


# -------------------------------------------------------------------------------------------------- servers
def _servers_module() -> ModuleType | None:
    """tests/servers.py (the adapters helper's throwaway-server code), loaded without pytest's plugin machinery."""
    if not SERVERS_MODULE.exists():
        return None
    spec = importlib.util.spec_from_file_location("_session_store_bench_servers", SERVERS_MODULE)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:
        return None
    return module


@contextlib.contextmanager
def server_urls(notes: list[str], *, cluster: bool = False, s3_only: bool = False) -> Iterator[dict[str, str]]:
    """URLs of PostgreSQL, Redis, S3 and (with ``cluster``) a Redis Cluster: from the environment, else
    throwaway servers (stopped on exit). ``s3_only``: the S3 server alone."""
    urls: dict[str, str] = {}
    started: list[Any] = []
    allow_start = os.environ.get(SERVERS_ENV, "1") != "0"
    servers = _servers_module() if allow_start else None
    try:
        if s3_only:
            pass
        elif os.environ.get(POSTGRES_URL_ENV):
            urls["postgres"] = os.environ[POSTGRES_URL_ENV]
        elif servers is not None and (bin_dir := servers.find_postgres_bin_dir()) is not None:
            try:
                server = servers.PostgresServer(bin_dir)
                started.append(server)
                server.start()
                urls["postgres"] = server.url
                notes.append(f"PostgreSQL: throwaway server from {bin_dir}")
            except Exception as exc:
                notes.append(f"PostgreSQL skipped: could not start a throwaway server: {exc}")
        else:
            notes.append(f"PostgreSQL skipped: set {POSTGRES_URL_ENV} or install PostgreSQL")
        if s3_only:
            pass
        elif os.environ.get(REDIS_URL_ENV):
            urls["redis"] = os.environ[REDIS_URL_ENV]
        elif servers is not None and (executable := shutil.which("redis-server")) is not None:
            try:
                server = servers.RedisServer(executable, durable=False)
                started.append(server)
                server.start()
                urls["redis"] = server.url
                notes.append("Redis: throwaway redis-server (no persistence)")
            except Exception as exc:
                notes.append(f"Redis skipped: could not start a throwaway server: {exc}")
        else:
            notes.append(f"Redis skipped: set {REDIS_URL_ENV} or install redis-server")
        if cluster and os.environ.get(REDIS_CLUSTER_URL_ENV):
            urls["redis-cluster"] = os.environ[REDIS_CLUSTER_URL_ENV]
        elif cluster and servers is not None:
            executable, cli = shutil.which("redis-server"), shutil.which("redis-cli")
            if executable is not None and cli is not None:
                try:
                    nodes = servers.RedisClusterServers(executable, cli)
                    started.append(nodes)
                    nodes.start()
                    urls["redis-cluster"] = nodes.url
                    notes.append(
                        "Redis Cluster: three throwaway masters on loopback (append-only files, as in the tests)"
                    )
                except Exception as exc:
                    notes.append(f"Redis Cluster skipped: could not start three throwaway masters: {exc}")
            else:
                notes.append(
                    f"Redis Cluster skipped: set {REDIS_CLUSTER_URL_ENV} or install redis-server and redis-cli"
                )
        if servers is not None and importlib.util.find_spec("moto") is not None:
            try:
                for name, value in servers.S3_TEST_CREDENTIALS.items():
                    os.environ.setdefault(name, value)
                s3 = servers.S3Server()
                started.append(s3)
                s3.start()
                urls["s3"] = s3.endpoint_url
                notes.append("S3: throwaway moto S3 server (tests/s3_server.py, one request at a time)")
            except Exception as exc:
                notes.append(f"S3 skipped: could not start the test S3 server: {exc}")
        else:
            notes.append("S3 skipped: install moto[s3], flask and flask-cors (the bench extra)")
        yield urls
    finally:
        for server in started:
            with contextlib.suppress(Exception):
                server.destroy()


def adapters(urls: dict[str, str], workdir: Path) -> list[Adapter]:
    tag = uuid.uuid4().hex[:10]
    sqlite_path = workdir / "bench.db"
    found = [
        Adapter(
            "sqlite",
            lambda: SQLiteSessionStore(sqlite_path),
            lambda: None,  # the temp dir goes as a whole
        )
    ]
    if "postgres" in urls:
        found.append(postgres_adapter(urls["postgres"], f"bench_{tag}"))
    if "redis" in urls:
        found.append(redis_adapter(urls["redis"], f"ssbench-{tag}"))
    if "redis-cluster" in urls:
        found.append(redis_adapter(urls["redis-cluster"], f"ssbench-{tag}", name="redis-cluster"))
    if "s3" in urls:
        found.append(s3_adapter(urls["s3"], f"ssbench-{tag}"))
    chosen = os.environ.get(ADAPTERS_ENV)
    if chosen:
        names = {name.strip() for name in chosen.split(",")}
        found = [adapter for adapter in found if adapter.name in names]
    return found


ADAPTERS_ENV = "SESSION_STORE_BENCH_ADAPTERS"
"""Comma-separated adapter names (sqlite, postgres, redis, s3) to run; all by default."""


REDIS_CLUSTER_URL_ENV = "SESSION_STORE_BENCH_REDIS_CLUSTER_URL"
"""A ``redis+cluster://`` URL for the scale benchmark's Redis Cluster rows; else it starts three masters."""

S3_MAX_SIZE_ENV = "SESSION_STORE_BENCH_S3_MAX"


def s3_adapter(endpoint: str, bucket: str) -> Adapter:
    """S3 on the test server; the scale benchmark stops at ``$SESSION_STORE_BENCH_S3_MAX`` (default 100,000:
    seeding that many sessions through moto, a Python server taking one request at a time, takes a while)."""
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    max_size = int(os.environ.get(S3_MAX_SIZE_ENV, "100000"))
    # One round beyond 10k: the test server scans every key it holds for each 1,000-key LIST page (0.6 s a page at
    # 200,000 objects), so a 100k listing takes minutes there; a real S3 endpoint answers a page in constant time.
    return Adapter("s3", lambda: S3SessionStore(bucket, endpoint_url=endpoint), lambda: None, max_size, 1)


def postgres_adapter(url: str, table: str) -> Adapter:
    def drop_tables() -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_summaries"'.encode())

    return Adapter("postgres", lambda: PostgresSessionStore(url, table=table), drop_tables)


def redis_adapter(url: str, prefix: str, *, name: str = "redis") -> Adapter:
    def delete_keys() -> None:
        import redis

        from session_store.adapters.redis import cluster_client

        client: Any = cluster_client(url, max_connections=4) if "+cluster" in url else redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()

    return Adapter(name, lambda: RedisSessionStore(url, prefix=prefix), delete_keys)


# -------------------------------------------------------------------------------------------------- measure
@dataclass(frozen=True)
class Seeded:
    load_key: SessionKey
    list_project: str


async def seed(adapter: Adapter, cfg: Config) -> Seeded:
    """Write the load session and the listing project once (untimed)."""
    store = adapter.open()
    try:
        session_id = new_id()
        load_key: SessionKey = {"project_key": PROJECT + "-load", "session_id": session_id}
        entries = transcript(session_id, cfg.load_entries)
        for start in range(0, len(entries), 1000):
            await store.append(load_key, entries[start : start + 1000])
        list_project = PROJECT + "-list"
        for index in range(cfg.list_sessions):
            sid = new_id()
            await store.append({"project_key": list_project, "session_id": sid}, transcript(sid, 2, start=float(index)))
    finally:
        await close(store)
    return Seeded(load_key, list_project)


async def measure(adapter: Adapter, cfg: Config, seeded: Seeded) -> dict[str, Any]:
    store = adapter.open()
    try:
        session_id = new_id()
        key: SessionKey = {"project_key": PROJECT + "-append", "session_id": session_id}
        singles = transcript(session_id, cfg.appends + 1)
        await store.append(key, singles[:1])  # connect, create the schema, warm the thread pool
        started = time.perf_counter()
        for entry in singles[1:]:
            await store.append(key, [entry])
        append_one_s = time.perf_counter() - started

        batch_session = new_id()
        batch_key: SessionKey = {"project_key": PROJECT + "-append", "session_id": batch_session}
        batch_entries = transcript(batch_session, cfg.batches * cfg.batch_size)
        started = time.perf_counter()
        for start in range(0, len(batch_entries), cfg.batch_size):
            await store.append(batch_key, batch_entries[start : start + cfg.batch_size])
        append_batch_s = time.perf_counter() - started

        load_samples, list_samples, summary_samples = [], [], []
        loaded = listed = summarized = 0
        for _ in range(max(cfg.rounds, 3)):
            started = time.perf_counter()
            loaded = len(await store.load(seeded.load_key) or [])
            load_samples.append(time.perf_counter() - started)
            started = time.perf_counter()
            listed = len(await store.list_sessions(seeded.list_project))
            list_samples.append(time.perf_counter() - started)
            started = time.perf_counter()
            summarized = len(await store.list_session_summaries(seeded.list_project))
            summary_samples.append(time.perf_counter() - started)
    finally:
        await close(store)
    return {
        "appends_per_s": cfg.appends / append_one_s,
        "batch_entries_per_s": len(batch_entries) / append_batch_s,
        "load_s": statistics.median(load_samples),
        "load_entries_per_s": loaded / statistics.median(load_samples) if loaded else None,
        "list_sessions_s": statistics.median(list_samples),
        "list_session_summaries_s": statistics.median(summary_samples),
        "checks": {
            "loaded": loaded,
            "listed": listed,
            "summaries": summarized,
            "ok": loaded == cfg.load_entries and listed == cfg.list_sessions and summarized == cfg.list_sessions,
        },
    }


def main(*, quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    notes: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="session-store-bench-"))
    try:
        with server_urls(notes) as urls:
            for adapter in adapters(urls, workdir):
                results[adapter.name] = {}
                try:
                    print(f"  {adapter.name}: seeding ...", file=sys.stderr, flush=True)
                    seeded = run_on(backends[0], seed, adapter, cfg)
                    for backend in backends:
                        print(f"  {adapter.name}: {backend} ...", file=sys.stderr, flush=True)
                        results[adapter.name][backend] = run_on(backend, measure, adapter, cfg, seeded)
                except Exception as exc:  # one broken adapter must not hide the others
                    notes.append(f"{adapter.name} failed: {type(exc).__name__}: {exc}")
                finally:
                    with contextlib.suppress(Exception):
                        adapter.cleanup()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [
        [
            name,
            backend,
            result["appends_per_s"],
            result["batch_entries_per_s"],
            result["load_s"] * 1000,
            result["list_sessions_s"] * 1000,
            result["list_session_summaries_s"] * 1000,
            "ok" if result["checks"]["ok"] else f"WRONG {result['checks']}",
        ]
        for name, per_backend in results.items()
        for backend, result in per_backend.items()
    ]
    table = Table(
        title=f"adapters: append x1 ({cfg.appends:,} appends), append x{cfg.batch_size} ({cfg.batches:,} batches), "
        f"load {cfg.load_entries:,} entries, listings over {cfg.list_sessions:,} sessions (median of {cfg.rounds})",
        columns=[
            "adapter",
            "backend",
            "appends/s (x1)",
            f"entries/s (x{cfg.batch_size})",
            f"load {cfg.load_entries:,} ms",
            "list_sessions ms",
            "list_session_summaries ms",
            "data",
        ],
        rows=rows,
        kinds=["", "", "", "", "ms", "ms", "ms", ""],
    )
    chart = {
        backend: {
            name: {
                "appends/s x1 (k)": per_backend[backend]["appends_per_s"] / 1000,
                f"entries/s x{cfg.batch_size} (k)": per_backend[backend]["batch_entries_per_s"] / 1000,
            }
            for name, per_backend in results.items()
            if backend in per_backend
        }
        for backend in backends
    }
    write_results(
        SUITE,
        meta=run_meta(started, quick, config=cfg.__dict__),
        data={"adapters": results},
        tables=[table],
        targets=[],
        chart=chart,
        chart_title="append throughput, thousands per second",
        notes=notes,
        out_dir=out_dir,
    )
    return 0
