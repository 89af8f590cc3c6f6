"""One child process of the multi-process load test (``tests/test_load.py``): mirror a share of the sessions.

Run as ``python tests/load_worker.py`` (started through ``tests/processes.py``). The protocol on stdin/stdout,
one JSON object per line:

1. The parent writes the job: ``{"backend": "asyncio" | "trio", "store": <spec>, "projects_dir": ...,
   "sessions": [session ids], "entries": per session, "worker": n, "flush_mode": "eager" | "batched"}``.
   ``<spec>`` is what :func:`open_store_from_spec` takes.
2. The child opens the store, makes one call so its connection (and the schema) is ready, and answers
   ``{"ready": true}``.
3. The parent writes ``go`` to every child once all are ready, so their writes overlap.
4. The child mirrors every session of its share concurrently, each through its own batcher (``eager``: one
   background flush per frame; ``batched``: an explicit ``flush()`` every :data:`TURN` entries, as a caller
   does on ``result``), closes them, and answers ``{"worker": n, "errors": [...], "entries": ..., "seconds": ...,
   "peak_rss_kib": ..., "rss_kib": ...}``: every ``on_error`` report, how many entries it enqueued, the seconds
   from ``go`` to the last ``close()``, its peak RSS (``VmHWM``) and its RSS at the end.

The entries are a pure function of (worker, session, number) (:func:`load_entry`), so the parent knows what each
session must hold without being told.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, cast

import compat
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore
from session_store.batcher import build_mirror_batcher
from session_store.types import SessionStore, SessionStoreEntry

PROJECT = "proj"
TURN = 3
"""Entries between two ``flush()`` calls of a session in ``batched`` mode."""


def load_entry(worker: int, session_id: str, number: int) -> SessionStoreEntry:
    """Entry ``number`` of ``session_id`` as worker ``worker`` mirrors it (the parent rebuilds the same)."""
    return cast(
        SessionStoreEntry,
        {"type": "user", "uuid": f"{session_id}-{number}", "n": number, "worker": worker, "text": "x" * (number % 7)},
    )


def open_store_from_spec(spec: dict[str, str]) -> SessionStore:
    """``{"kind": "sqlite", "path": ...}``, ``{"kind": "postgres", "url": ..., "table": ...}``, ``{"kind":
    "redis", "url": ..., "prefix": ...}`` (a ``redis+cluster://`` URL for a cluster), ``{"kind": "s3", "url":
    endpoint, "bucket": ...}``."""
    kind = spec["kind"]
    if kind == "sqlite":
        return SQLiteSessionStore(spec["path"])
    if kind == "postgres":
        return PostgresSessionStore(spec["url"], table=spec["table"])
    if kind == "redis":
        return RedisSessionStore(spec["url"], prefix=spec["prefix"])
    if kind == "s3":
        from session_store.adapters.s3 import S3SessionStore

        return S3SessionStore(spec["bucket"], endpoint_url=spec["url"])
    raise ValueError(f"unknown store kind {kind!r}")


def session_path(projects_dir: str, session_id: str) -> str:
    return str(Path(projects_dir) / PROJECT / f"{session_id}.jsonl")


def rss_kib() -> int:
    """Resident set size now (``/proc/self/statm``), in KiB."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * resource.getpagesize() // 1024


def peak_rss_kib() -> int:
    """Peak resident set size of this process image (``VmHWM`` in ``/proc/self/status``), in KiB.

    Not ``ru_maxrss``: that one survives ``exec`` on Linux, so a child would report the peak of the test process
    it was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def mirror_share(store: SessionStore, job: dict[str, Any], errors: list[str]) -> int:
    worker: int = job["worker"]
    count: int = job["entries"]
    eager = job["flush_mode"] == "eager"

    async def one_session(session_id: str) -> None:
        batcher = build_mirror_batcher(
            store,
            job["projects_dir"],
            lambda key, message: errors.append(f"{key}: {message}"),
            "eager" if eager else "batched",
        )
        path = session_path(job["projects_dir"], session_id)
        for number in range(count):
            batcher.enqueue(path, [load_entry(worker, session_id, number)])
            if not eager and number % TURN == TURN - 1:
                await batcher.flush()
            await compat.sleep(0)
        await batcher.close()

    async with compat.create_task_group() as tg:
        for session_id in job["sessions"]:
            tg.start_soon(one_session, session_id)
    return count * len(job["sessions"])


async def main(job: dict[str, Any]) -> None:
    errors: list[str] = []
    async with open_store_from_spec(job["store"]) as store:
        await store.list_sessions(PROJECT)  # connected, schema created: the parent's "go" starts writes only
        say({"ready": True})
        go = await compat.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if go.strip() != "go":
            raise SystemExit(f"load_worker: expected 'go' on stdin, got {go!r}")
        started = time.monotonic()
        entries = await mirror_share(store, job, errors)
        seconds = time.monotonic() - started
    say(
        {
            "worker": job["worker"],
            "errors": errors,
            "entries": entries,
            "seconds": seconds,
            "peak_rss_kib": peak_rss_kib(),
            "rss_kib": rss_kib(),
        }
    )


def run(job: dict[str, Any]) -> None:
    if job["backend"] == "trio":
        import trio

        trio.run(main, job)
    else:
        import asyncio

        asyncio.run(main(job))


if __name__ == "__main__":
    run(json.loads(sys.stdin.readline()))
