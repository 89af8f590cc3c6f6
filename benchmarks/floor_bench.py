"""Each adapter's append against the floor: the raw driver issuing the same statements in one thread.

For SQLite (sqlite3), PostgreSQL (psycopg), Redis (redis-py) and S3 (boto3), ``BATCHES`` appends of ``BATCH_SIZE`` entries
to one fresh session, twice per round:

- **adapter**: ``store.append(key, batch)`` on each backend (a thread hop per call, the per-batch dedup, the
  summary fold and the JSON encoding included);
- **floor**: the same statements, with the same parameters, issued by the bare driver from the calling thread,
  no event loop: SQLite ``BEGIN IMMEDIATE``, one ``INSERT ... ON CONFLICT DO NOTHING`` per entry, the summary
  ``SELECT``\\ s and upsert, ``COMMIT``; PostgreSQL the adapter's own composed statements (``self._sql``) in
  one pipelined transaction; Redis ``WATCH``, ``SMISMEMBER``, ``GET``, ``TIME``, ``MULTI`` / ``RPUSH`` /
  ``SADD`` / ``SET`` / ``EXEC``, then the adapter's confirming script on the project index (``EVALSHA``). The floor encodes each entry with ``json.dumps`` (the statements
  need the text) and writes a fixed summary (the fold is the adapter's work, so it counts against it).

Rounds alternate floor and adapter; the ratio is adapter time / floor time for the same number of entries
(target: <= :data:`FLOOR_TARGET`). ``python -m benchmarks floor`` runs this alone; ``scale`` runs it too.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid as uuid_module
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store.adapters import PostgresSessionStore, RedisSessionStore, S3SessionStore, SQLiteSessionStore
from session_store.types import SessionKey, SessionStore

from ._data import new_id, transcript
from ._report import Table, run_meta, write_results
from .adapters_bench import close, run_on, server_urls

SUITE = "floor"
FLOOR_TARGET = 1.3
BATCH_SIZE = 100
PROJECT = "-tmp-session-store-floor"
SUMMARY_JSON = json.dumps({"floor": True, "firstPrompt": "question 0 about the benchmark"})


def _batches(count: int) -> tuple[str, list[list[dict[str, Any]]]]:
    session_id = new_id()
    entries = transcript(session_id, count * BATCH_SIZE)
    return session_id, [entries[i : i + BATCH_SIZE] for i in range(0, len(entries), BATCH_SIZE)]


# ------------------------------------------------------------------------------------------------ raw drivers
def sqlite_floor(path: Path, batches: list[list[dict[str, Any]]], session_id: str) -> float:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        started = time.perf_counter()
        for batch in batches:
            conn.execute("BEGIN IMMEDIATE")
            for entry in batch:
                conn.execute(
                    "INSERT INTO session_entries (project_key, session_id, subpath, uuid, entry) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (PROJECT, session_id, "", entry["uuid"], json.dumps(entry)),
                )
            conn.execute(
                "SELECT mtime, data FROM session_summaries WHERE project_key = ? AND session_id = ?",
                (PROJECT, session_id),
            ).fetchone()
            (latest,) = conn.execute(
                "SELECT max(mtime) FROM session_summaries WHERE project_key = ?", (PROJECT,)
            ).fetchone()
            conn.execute(
                "INSERT INTO session_summaries (project_key, session_id, mtime, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (project_key, session_id) DO UPDATE SET mtime = excluded.mtime, data = excluded.data",
                (PROJECT, session_id, (latest or 0) + 1, SUMMARY_JSON),
            )
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def postgres_floor(url: str, statements: Any, batches: list[list[dict[str, Any]]], session_id: str) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        for batch in batches:
            uuids, lines = [e["uuid"] for e in batch], [json.dumps(e) for e in batch]
            params = (PROJECT, session_id, "", uuids, lines, [None] * len(batch))  # no content_hash: all have uuids
            with conn.pipeline(), conn.transaction():
                conn.execute(statements.create_summary_row, (PROJECT, session_id))
                row = conn.execute(statements.lock_summary_row, (PROJECT, session_id))
                inserted = conn.execute(statements.insert_entries, params)
                inserted.fetchall()
                row.fetchone()
                conn.execute(statements.write_summary, (SUMMARY_JSON, PROJECT, session_id))
        return time.perf_counter() - started


def redis_floor(url: str, keys: Any, batches: list[list[dict[str, Any]]], session_id: str) -> float:
    import redis

    from session_store.adapters.redis import _CONFIRM_APPEND

    client = redis.Redis.from_url(url)
    confirm = client.register_script(_CONFIRM_APPEND)
    try:
        started = time.perf_counter()
        for batch in batches:
            uuids = [e["uuid"] for e in batch]
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(keys.uuids(None), keys.summary)
                pipe.smismember(keys.uuids(None), uuids)
                pipe.get(keys.summary)
                seconds, micros = pipe.time()
                mtime = int(seconds) * 1000 + int(micros) // 1000
                pipe.multi()
                pipe.rpush(keys.entries(None), *[json.dumps(e) for e in batch])
                pipe.sadd(keys.uuids(None), *uuids)
                pipe.set(keys.summary, json.dumps({"mtime": mtime, "data": SUMMARY_JSON}))
                pipe.execute()
            summary_json = json.dumps({"mtime": mtime, "data": SUMMARY_JSON})
            confirm(keys=keys.project, args=[session_id, mtime, summary_json])
        return time.perf_counter() - started
    finally:
        client.close()


def s3_floor(endpoint: str, bucket: str, batches: list[list[dict[str, Any]]], session_id: str) -> float:
    """Per batch the adapter's two requests with a warm state: ``PUT`` the part, ``PUT`` the index ``If-Match``."""
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    index_name = f"{PROJECT}/%index/{session_id}.json"
    parts: list[str] = []
    etag: str | None = None
    started = time.perf_counter()
    for number, batch in enumerate(batches):
        part = f"{PROJECT}/{session_id}/part-{number:013d}-000000-ss.jsonl"
        body = "".join(json.dumps(e) + "\n" for e in batch).encode()
        client.put_object(Bucket=bucket, Key=part, Body=body, ContentType="application/x-ndjson")
        parts.append(part)
        index = json.dumps({"v": 1, "parts": parts, "summary": SUMMARY_JSON, "mtime": number}).encode()
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        etag = client.put_object(Bucket=bucket, Key=index_name, Body=index, **condition)["ETag"]
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------- measure
async def adapter_run(open_store: Callable[[], SessionStore], batches: list[list[dict[str, Any]]], sid: str) -> float:
    store = open_store()
    try:
        await store.list_sessions(PROJECT)  # connect, create the schema, start the thread
        key: SessionKey = {"project_key": PROJECT, "session_id": sid}
        started = time.perf_counter()
        for batch in batches:
            await store.append(key, batch)
        return time.perf_counter() - started
    finally:
        await close(store)


def _floors(urls: dict[str, str], workdir: Path) -> dict[str, tuple[Callable[[], SessionStore], Callable[..., float]]]:
    """adapter name -> (open a store, run the floor for (batches, session_id))."""
    tag = uuid_module.uuid4().hex[:10]
    db = workdir / "floor.db"
    found: dict[str, tuple[Callable[[], SessionStore], Callable[..., float]]] = {
        "sqlite": (lambda: SQLiteSessionStore(db), lambda batches, sid: sqlite_floor(db, batches, sid))
    }
    if "postgres" in urls:
        url, table = urls["postgres"], f"floor_{tag}"
        statements = PostgresSessionStore(url, table=table)._sql
        found["postgres"] = (
            lambda url=url, table=table: PostgresSessionStore(url, table=table),
            lambda batches, sid, url=url: postgres_floor(url, statements, batches, sid),
        )
    if "redis" in urls:
        url, prefix = urls["redis"], f"ssfloor-{tag}"
        probe = RedisSessionStore(url, prefix=prefix)
        found["redis"] = (
            lambda url=url, prefix=prefix: RedisSessionStore(url, prefix=prefix),
            lambda batches, sid, url=url: redis_floor(url, probe._keys(PROJECT, sid), batches, sid),
        )
    if "s3" in urls:
        import boto3

        endpoint, bucket = urls["s3"], f"ssfloor-{tag}"
        boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        found["s3"] = (
            lambda endpoint=endpoint, bucket=bucket: S3SessionStore(bucket, endpoint_url=endpoint),
            lambda batches, sid, endpoint=endpoint, bucket=bucket: s3_floor(endpoint, bucket, batches, sid),
        )
    return found


def _cleanup(name: str, urls: dict[str, str], open_store: Callable[[], SessionStore]) -> None:
    store: Any = open_store()
    if name == "postgres":
        import psycopg

        with psycopg.connect(urls["postgres"], autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{store.table}", "{store.table}_summaries"'.encode())
    elif name == "redis":
        import redis

        client = redis.Redis.from_url(urls["redis"])
        try:
            for key in client.scan_iter(match=f"{store._prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()


def measure_all(
    urls: dict[str, str], workdir: Path, backends: tuple[str, ...], batches: int, rounds: int, notes: list[str]
) -> list[dict[str, Any]]:
    """Floor and adapter times per adapter and backend; rows carry the median seconds and their ratio."""
    rows = []
    for name, (open_store, floor) in _floors(urls, workdir).items():
        try:
            run_on(backends[0], adapter_run, open_store, [], new_id())  # create the schema before the floor
            floor_s: list[float] = []
            adapter_s: dict[str, list[float]] = {backend: [] for backend in backends}
            for _ in range(max(rounds, 3)):
                session_id, data = _batches(batches)
                floor_s.append(floor(data, session_id))
                for backend in backends:
                    session_id, data = _batches(batches)
                    adapter_s[backend].append(run_on(backend, adapter_run, open_store, data, session_id))
            floor_median = statistics.median(floor_s)
            for backend in backends:
                median = statistics.median(adapter_s[backend])
                rows.append(
                    {
                        "adapter": name,
                        "backend": backend,
                        "batch_size": BATCH_SIZE,
                        "batches": batches,
                        "floor_s": floor_median,
                        "adapter_s": median,
                        "ratio": median / floor_median,
                        "floor_samples_s": [round(s, 4) for s in floor_s],
                        "adapter_samples_s": [round(s, 4) for s in adapter_s[backend]],
                    }
                )
        except Exception as exc:
            notes.append(f"floor {name} failed: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                _cleanup(name, urls, open_store)
    return rows


def table(rows: list[dict[str, Any]]) -> Table:
    return Table(
        title=f"append x{BATCH_SIZE} against the raw driver issuing the same statements in one thread (median)",
        columns=["adapter", "backend", "floor entries/s", "adapter entries/s", "adapter/floor"],
        rows=[
            [
                row["adapter"],
                row["backend"],
                row["batches"] * row["batch_size"] / row["floor_s"],
                row["batches"] * row["batch_size"] / row["adapter_s"],
                row["ratio"],
            ]
            for row in rows
        ],
        kinds=["", "", "", "", "x"],
    )


def main(*, quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    batches, rounds = (5, 1) if quick else (200, 5)
    started = time.perf_counter()
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="session-store-floor-"))
    try:
        with server_urls(notes) as urls:
            print("  floor: adapters against their raw drivers ...", file=sys.stderr)
            rows = measure_all(urls, workdir, backends, batches, rounds, notes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_results(
        SUITE,
        meta=run_meta(started, quick, batches=batches, batch_size=BATCH_SIZE, rounds=rounds),
        data={"rows": rows},
        tables=[table(rows)],
        targets=[
            {
                "target": f"{row['adapter']} {row['backend']}: append x{BATCH_SIZE} within {FLOOR_TARGET}x of the floor",
                "value": row["ratio"],
                "status": "PASS" if row["ratio"] <= FLOOR_TARGET else "MISS",
            }
            for row in rows
        ],
        notes=notes,
        out_dir=out_dir,
    )
    return 0
