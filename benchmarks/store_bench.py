"""The session_store write and read paths, on asyncio and trio, against the public SDK where it has a counterpart.

Three measurements, each on both backends (one ``asyncio.run`` / ``trio.run`` per backend), median of the rounds:

1. **Mirror batcher throughput.** ``ENTRIES`` entries sent as 1-entry ``transcript_mirror`` frames of one
   session into ``session_store.memory.InMemorySessionStore``: after each ``enqueue`` the driver awaits one native
   checkpoint (a read loop waiting for the next stdout line), and ``close()`` ends the run. Modes: *eager*
   (thresholds 0: every frame starts a background flush) and *batched* (500 entries / 1 MiB). Compared with the
   public SDK's anyio-based ``claude_agent_sdk._internal.transcript_mirror_batcher.TranscriptMirrorBatcher``
   driven with the same frames into the same kind of store. "complete" checks that the store holds every entry,
   in enqueue order, once ``close()`` returned. Each mode runs against two stores, the same for both batchers:
   ``InMemorySessionStore`` (whose append re-encodes every entry and folds the summary: in batched mode that is
   about two thirds of the time, the same for both batchers) and ``ListStore``, whose append only extends a list,
   so the figure is the batcher's own cost plus the driver's checkpoint per frame. Into ``ListStore`` each round
   also runs the *driver alone* (the same loop and checkpoints, each frame's entries put straight into the store,
   no batcher): a batcher's **own cost** per frame is its time minus the driver's, in the same round, and the
   targets compare own costs (our batcher against the SDK's: >= 1.5x in eager mode, >= 1.2x in batched mode). The
   end-to-end speed, driver included, is printed beside it: the driver's checkpoint costs as much as the batcher
   (trio's more), so the same saving is a smaller ratio there.
2. **Listing slow path.** ``list_sessions_from_store`` over ``LIST_SESSIONS`` sessions through a store wrapper
   without ``list_session_summaries`` whose ``load`` sleeps 2 ms (native sleep). With 16 loads in flight the ideal
   is ``ceil(n / 16) * 2 ms`` (125 ms for 1,000); target: within 1.3x of it. Also shown: the "native floor", the
   same n sleeps 16 at a time in bare native tasks (semaphore + task group, no session_store code), which is what
   the loop's timer granularity allows on this machine; "0-delay", the slow path with loads that do not sleep
   (its CPU cost: a task per session, the limiter, the fold), so that
   slow path ~= floor + 0-delay; the fast path (``list_session_summaries`` of the in-memory store); and the
   SDK's ``list_sessions_from_store`` on the same slow store in the same rounds.
3. **Resume materialization.** ``materialize_resume_session`` of a session of ``MAIN_ENTRIES`` entries plus
   ``SUBAGENTS`` subagent transcripts of ``SUBAGENT_ENTRIES`` entries each, then ``cleanup()``; compared with the
   SDK's ``materialize_resume_session(options)`` (its auth-file copying pointed at an empty config dir).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from session_store.batcher import MAX_PENDING_BYTES, MAX_PENDING_ENTRIES, TranscriptMirrorBatcher
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.reading import STORE_LIST_LOAD_CONCURRENCY, list_sessions_from_store
from session_store.resume import materialize_resume_session
from session_store.types import SessionKey, SessionStoreEntry, SessionStoreListEntry

from ._data import new_id, transcript
from ._report import Table, ratio, run_meta, write_results

SUITE = "store"
LIST_TARGET = 1.3
BATCHER_TARGETS = {"eager": 1.5, "batched": 1.2}
"""Own cost per frame, the SDK's batcher over ours (into ``ListStore``, driver's cost taken off)."""
DRIVER_ONLY = "driver only"
PROJECT_CWD = "/tmp/session-store-bench-project"


@dataclass(frozen=True)
class Config:
    entries: int
    list_sessions: int
    load_delay_s: float
    main_entries: int
    subagents: int
    subagent_entries: int
    rounds: int


FULL = Config(
    entries=100_000,
    list_sessions=1_000,
    load_delay_s=0.002,
    main_entries=50_000,
    subagents=20,
    subagent_entries=500,
    rounds=3,
)
QUICK = Config(
    entries=3_000, list_sessions=160, load_delay_s=0.002, main_entries=2_000, subagents=4, subagent_entries=50, rounds=1
)


def _sdk() -> dict[str, Any]:
    """The public SDK's counterparts, or {} when it is not installed."""
    try:
        from claude_agent_sdk import ClaudeAgentOptions
        from claude_agent_sdk._internal.session_resume import materialize_resume_session as sdk_materialize
        from claude_agent_sdk._internal.sessions import list_sessions_from_store as sdk_list
        from claude_agent_sdk._internal.transcript_mirror_batcher import TranscriptMirrorBatcher as SdkBatcher
    except ImportError:
        return {}
    return {"batcher": SdkBatcher, "options": ClaudeAgentOptions, "materialize": sdk_materialize, "list": sdk_list}


def native_checkpoint(backend: str) -> Callable[[], Awaitable[None]]:
    if backend == "trio":
        return trio.lowlevel.checkpoint  # type: ignore[no-any-return]
    return lambda: asyncio.sleep(0)


def native_sleep(backend: str) -> Callable[[float], Awaitable[None]]:
    return trio.sleep if backend == "trio" else asyncio.sleep


def run_on(backend: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    if backend == "trio":
        return trio.run(fn, *args)
    return asyncio.run(fn(*args))


# ----------------------------------------------------------------------------------------------------- batcher
BatcherFactory = Callable[[Any, str, Callable[..., Awaitable[None]], bool], Any]


class ListStore:
    """A store whose ``append`` only extends a list per key: measures the batcher, not the store."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str | None], list[SessionStoreEntry]] = {}

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.entries.setdefault((key["project_key"], key["session_id"], key.get("subpath")), []).extend(entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return self.entries.get((key["project_key"], key["session_id"], key.get("subpath")))

    def stored(self, key: SessionKey) -> list[SessionStoreEntry]:
        return self.entries.get((key["project_key"], key["session_id"], None), [])


class DriverOnly:
    """No batcher: each frame's entries go straight into the ``ListStore`` (the driver's own cost, for subtracting)."""

    def __init__(self, store: ListStore, key: SessionKey) -> None:
        self._entries = store.entries.setdefault((key["project_key"], key["session_id"], None), [])

    def enqueue(self, _file_path: str, entries: list[SessionStoreEntry]) -> None:
        self._entries.extend(entries)

    async def close(self) -> None:
        pass


class MemoryStore(InMemorySessionStore):
    def stored(self, key: SessionKey) -> list[SessionStoreEntry]:
        return self._entries.get((key["project_key"], key["session_id"], None), [])


BATCHER_STORES: dict[str, Callable[[], Any]] = {"InMemorySessionStore": MemoryStore, "ListStore": ListStore}


def ours(store: Any, projects_dir: str, on_error: Callable[..., Awaitable[None]], eager: bool) -> Any:
    return TranscriptMirrorBatcher(
        store=store,
        projects_dir=projects_dir,
        on_error=on_error,
        max_pending_entries=0 if eager else MAX_PENDING_ENTRIES,
        max_pending_bytes=0 if eager else MAX_PENDING_BYTES,
    )


def sdk_factory(sdk_batcher: type) -> BatcherFactory:
    def make(store: Any, projects_dir: str, on_error: Callable[..., Awaitable[None]], eager: bool) -> Any:
        return sdk_batcher(
            store=store,
            projects_dir=projects_dir,
            on_error=on_error,
            max_pending_entries=0 if eager else 500,
            max_pending_bytes=0 if eager else 1 << 20,
        )

    return make


async def batcher_run(
    make: BatcherFactory,
    frames: list[tuple[str, list[SessionStoreEntry]]],
    key: SessionKey,
    projects_dir: str,
    eager: bool,
    checkpoint: Callable[[], Awaitable[None]],
    store_factory: Callable[[], Any] = MemoryStore,
) -> dict[str, Any]:
    store = store_factory()
    errors: list[str] = []

    async def on_error(_key: SessionKey | None, message: str) -> None:
        errors.append(message)

    batcher = make(store, projects_dir, on_error, eager)
    gc.collect()
    started = time.perf_counter()
    for file_path, entries in frames:
        batcher.enqueue(file_path, entries)
        await checkpoint()
    await batcher.close()
    elapsed = time.perf_counter() - started
    stored = store.stored(key)
    expected = [entries[0]["uuid"] for _, entries in frames]
    complete = [entry["uuid"] for entry in stored] == expected
    return {"seconds": elapsed, "complete": complete, "stored": len(stored), "errors": len(errors)}


async def measure_batcher(backend: str, cfg: Config, sdk: dict[str, Any]) -> list[dict[str, Any]]:
    projects_dir = os.path.join(tempfile.gettempdir(), "session-store-bench", "projects")
    project_key = project_key_for_directory(PROJECT_CWD)
    session_id = new_id()
    key: SessionKey = {"project_key": project_key, "session_id": session_id}
    file_path = os.path.join(projects_dir, project_key, f"{session_id}.jsonl")
    frames = [(file_path, [entry]) for entry in transcript(session_id, cfg.entries)]
    checkpoint = native_checkpoint(backend)
    impls: dict[str, BatcherFactory] = {"session_store": ours}
    if sdk:
        impls["SDK (anyio)"] = sdk_factory(sdk["batcher"])
    rows = []
    for store_name, store_factory in BATCHER_STORES.items():
        store_impls = impls
        if store_factory is ListStore:
            store_impls = {**impls, DRIVER_ONLY: lambda store, _dir, _on_error, _eager: DriverOnly(store, key)}
        rows += await _measure_batcher_store(
            store_impls, frames, key, projects_dir, checkpoint, cfg, store_name, store_factory
        )
    _add_own_costs(rows, cfg.entries)
    return rows


def _add_own_costs(rows: list[dict[str, Any]], entries: int) -> None:
    """``own_us_per_frame``: a batcher's time per frame minus the driver-only run's, round by round (median)."""
    driver = {row["mode"]: row for row in rows if row["impl"] == DRIVER_ONLY and "failed" not in row}
    for row in rows:
        base = driver.get(row["mode"])
        if row["impl"] == DRIVER_ONLY or base is None or row["store"] != base["store"] or "failed" in row:
            continue
        own = [ours - alone for ours, alone in zip(row["samples_s"], base["samples_s"], strict=True)]
        row["own_us_per_frame"] = statistics.median(own) / entries * 1e6


async def _measure_batcher_store(
    impls: dict[str, BatcherFactory],
    frames: list[tuple[str, list[SessionStoreEntry]]],
    key: SessionKey,
    projects_dir: str,
    checkpoint: Callable[[], Awaitable[None]],
    cfg: Config,
    store_name: str,
    store_factory: Callable[[], Any],
) -> list[dict[str, Any]]:
    rows = []
    for mode in ("eager", "batched"):
        eager = mode == "eager"
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in impls}
        failures: dict[str, str] = {}
        for _ in range(cfg.rounds):
            for name, make in impls.items():
                if name in failures:
                    continue
                try:
                    runs[name].append(
                        await batcher_run(make, frames, key, projects_dir, eager, checkpoint, store_factory)
                    )
                except Exception as exc:  # the SDK batcher may not run on this backend: report, don't crash
                    failures[name] = f"{type(exc).__name__}: {exc}"
        for name in impls:
            if name in failures or not runs[name]:
                rows.append({"mode": mode, "store": store_name, "impl": name, "failed": failures.get(name, "no run")})
                continue
            seconds = statistics.median(run["seconds"] for run in runs[name])
            rows.append(
                {
                    "mode": mode,
                    "store": store_name,
                    "impl": name,
                    "seconds": seconds,
                    "entries_per_s": cfg.entries / seconds,
                    "complete": all(run["complete"] for run in runs[name]),
                    "stored": runs[name][-1]["stored"],
                    "errors": sum(run["errors"] for run in runs[name]),
                    "samples_s": [round(run["seconds"], 4) for run in runs[name]],
                }
            )
    return rows


# ----------------------------------------------------------------------------------------------------- listing
class SlowLoadStore:
    """A store without ``list_session_summaries`` whose ``load`` waits ``delay`` seconds first (a remote store).

    ``load`` hands back a snapshot taken when the store was wrapped (a shallow copy per call), so the time
    measured is the waiting plus the listing code, not the in-memory store's deep copy of every entry.
    """

    def __init__(self, inner: InMemorySessionStore, delay: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._inner = inner
        self._delay = delay
        self._sleep = sleep
        self._snapshot: dict[tuple[str, str], list[SessionStoreEntry]] = {}

    async def snapshot(self, project_key: str) -> None:
        for row in await self._inner.list_sessions(project_key):
            key: SessionKey = {"project_key": project_key, "session_id": row["session_id"]}
            self._snapshot[(project_key, row["session_id"])] = await self._inner.load(key) or []

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self._inner.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        await self._sleep(self._delay)
        found = self._snapshot.get((key["project_key"], key["session_id"]))
        return list(found) if found is not None else await self._inner.load(key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return await self._inner.list_sessions(project_key)


async def seed_sessions(count: int) -> InMemorySessionStore:
    store = InMemorySessionStore()
    project_key = project_key_for_directory(PROJECT_CWD)
    for index in range(count):
        session_id = new_id()
        await store.append(
            {"project_key": project_key, "session_id": session_id},
            transcript(session_id, 4, cwd=PROJECT_CWD, start=index * 10.0),
        )
    return store


async def native_floor(backend: str, count: int, delay: float) -> float:
    """Seconds for ``count`` native sleeps of ``delay``, 16 at a time, in native tasks: what the event loop's
    timer granularity and task switching allow, with no session_store code at all."""
    started = time.perf_counter()
    if backend == "trio":
        limiter = trio.CapacityLimiter(STORE_LIST_LOAD_CONCURRENCY)

        async def one_trio() -> None:
            async with limiter:
                await trio.sleep(delay)

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one_trio)
    else:
        semaphore = asyncio.Semaphore(STORE_LIST_LOAD_CONCURRENCY)

        async def one_asyncio() -> None:
            async with semaphore:
                await asyncio.sleep(delay)

        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(one_asyncio())
    return time.perf_counter() - started


async def measure_listing(
    backend: str, cfg: Config, store: InMemorySessionStore, sdk: dict[str, Any] | None = None
) -> dict[str, Any]:
    slow = SlowLoadStore(store, cfg.load_delay_s, native_sleep(backend))
    ideal = math.ceil(cfg.list_sessions / STORE_LIST_LOAD_CONCURRENCY) * cfg.load_delay_s
    instant = SlowLoadStore(store, 0.0, native_sleep(backend))
    project_key = project_key_for_directory(PROJECT_CWD)
    await slow.snapshot(project_key)
    await instant.snapshot(project_key)
    slow_samples, fast_samples, floor_samples, cpu_samples, rows_seen = [], [], [], [], set()
    sdk_samples: list[float] = []
    for _ in range(max(cfg.rounds, 3)):
        gc.collect()
        floor_samples.append(await native_floor(backend, cfg.list_sessions, cfg.load_delay_s))
        started = time.perf_counter()
        await list_sessions_from_store(instant, PROJECT_CWD)
        cpu_samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        rows = await list_sessions_from_store(slow, PROJECT_CWD)
        slow_samples.append(time.perf_counter() - started)
        rows_seen.add(len(rows))
        started = time.perf_counter()
        fast_rows = await list_sessions_from_store(store, PROJECT_CWD)
        fast_samples.append(time.perf_counter() - started)
        rows_seen.add(len(fast_rows))
        if sdk and "list" in sdk:  # the SDK's slow path on the same slow store, in the same round
            started = time.perf_counter()
            sdk_rows = await sdk["list"](slow, PROJECT_CWD)
            sdk_samples.append(time.perf_counter() - started)
            rows_seen.add(len(sdk_rows))
    slow_s = statistics.median(slow_samples)
    return {
        "sessions": cfg.list_sessions,
        "rows": sorted(rows_seen),
        "slow_path_s": slow_s,
        "ideal_s": ideal,
        "slow_over_ideal": slow_s / ideal,
        "fast_path_s": statistics.median(fast_samples),
        "native_floor_s": statistics.median(floor_samples),
        "zero_delay_s": statistics.median(cpu_samples),
        "slow_samples_s": [round(s, 4) for s in slow_samples],
        "sdk_slow_path_s": statistics.median(sdk_samples) if sdk_samples else None,
    }


# ------------------------------------------------------------------------------------------------- materialize
async def seed_resume(cfg: Config) -> tuple[InMemorySessionStore, str, int]:
    store = InMemorySessionStore()
    project_key = project_key_for_directory(PROJECT_CWD)
    session_id = new_id()
    await store.append(
        {"project_key": project_key, "session_id": session_id},
        transcript(session_id, cfg.main_entries, cwd=PROJECT_CWD),
    )
    for index in range(cfg.subagents):
        subpath = f"subagents/agent-{index:04d}"
        metadata: SessionStoreEntry = {"type": "agent_metadata", "agentType": "general-purpose", "description": "bench"}
        await store.append(
            {"project_key": project_key, "session_id": session_id, "subpath": subpath},
            [metadata, *transcript(session_id, cfg.subagent_entries, cwd=PROJECT_CWD)],
        )
    total = cfg.main_entries + cfg.subagents * (cfg.subagent_entries + 1)
    return store, session_id, total


def _count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


async def measure_materialize(
    cfg: Config, store: InMemorySessionStore, session_id: str, total: int, sdk: dict[str, Any]
) -> list[dict[str, Any]]:
    empty_config = tempfile.mkdtemp(prefix="session-store-bench-config-")

    async def run_ours() -> Any:
        return await materialize_resume_session(store, resume=session_id, cwd=PROJECT_CWD)

    async def run_sdk() -> Any:
        options = sdk["options"](
            session_store=store, resume=session_id, cwd=PROJECT_CWD, env={"CLAUDE_CONFIG_DIR": empty_config}
        )
        return await sdk["materialize"](options)

    impls: dict[str, Callable[[], Awaitable[Any]]] = {"session_store": run_ours}
    if sdk:
        impls["SDK (anyio)"] = run_sdk
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in impls}
    files: dict[str, int] = {}
    failures: dict[str, str] = {}
    try:
        for _ in range(cfg.rounds):
            for name, run in impls.items():
                if name in failures:
                    continue
                gc.collect()
                try:
                    started = time.perf_counter()
                    materialized = await run()
                    written = time.perf_counter()
                    files[name] = _count_files(materialized.config_dir)
                    await materialized.cleanup()
                    done = time.perf_counter()
                except Exception as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    continue
                samples[name].append((written - started, done - written))
    finally:
        shutil.rmtree(empty_config, ignore_errors=True)
    rows = []
    for name in impls:
        if name in failures or not samples[name]:
            rows.append({"impl": name, "failed": failures.get(name, "no run")})
            continue
        seconds = statistics.median(s for s, _ in samples[name])
        rows.append(
            {
                "impl": name,
                "entries": total,
                "materialize_s": seconds,
                "cleanup_s": statistics.median(c for _, c in samples[name]),
                "entries_per_s": total / seconds,
                "files": files[name],
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------------- run
async def measure_backend(backend: str, cfg: Config, progress: bool) -> dict[str, Any]:
    sdk = _sdk()

    def say(what: str) -> None:
        if progress:
            print(f"  {backend}: {what} ...", file=sys.stderr, flush=True)

    say(f"batcher, {cfg.entries:,} 1-entry frames")
    batcher = await measure_batcher(backend, cfg, sdk)
    say(f"list_sessions_from_store slow path, {cfg.list_sessions:,} sessions")
    listing = await measure_listing(backend, cfg, await seed_sessions(cfg.list_sessions), sdk)
    say(f"materialize_resume_session, {cfg.main_entries:,} entries + {cfg.subagents} subagents")
    store, session_id, total = await seed_resume(cfg)
    materialize = await measure_materialize(cfg, store, session_id, total, sdk)
    return {"batcher": batcher, "listing": listing, "materialize": materialize}


def _tables(results: dict[str, dict[str, Any]], cfg: Config) -> list[Table]:
    batcher_rows: list[list[Any]] = []
    for backend, result in results.items():
        by_key = {(row["mode"], row["store"], row["impl"]): row for row in result["batcher"]}
        for row in result["batcher"]:
            if "failed" in row:
                batcher_rows.append(
                    [backend, row["mode"], row["store"], row["impl"], None, None, f"failed: {row['failed']}"]
                    + [None] * 3
                )
                continue
            baseline = by_key.get((row["mode"], row["store"], "SDK (anyio)"))
            speedup = ratio(row["entries_per_s"], baseline.get("entries_per_s")) if baseline else None
            own = row.get("own_us_per_frame")
            own_speedup = ratio(baseline.get("own_us_per_frame"), own) if baseline and own else None
            batcher_rows.append(
                [
                    backend,
                    row["mode"],
                    row["store"],
                    row["impl"],
                    row["seconds"] * 1000,
                    row["entries_per_s"],
                    "yes" if row["complete"] else f"NO ({row['stored']:,})",
                    speedup,
                    own,
                    own_speedup,
                ]
            )
    listing_rows = [
        [
            backend,
            result["listing"]["sessions"],
            result["listing"]["slow_path_s"] * 1000,
            result["listing"]["ideal_s"] * 1000,
            result["listing"]["slow_over_ideal"],
            result["listing"]["native_floor_s"] * 1000,
            result["listing"]["slow_path_s"] / result["listing"]["native_floor_s"],
            result["listing"]["zero_delay_s"] * 1000,
            result["listing"]["fast_path_s"] * 1000,
            None if result["listing"]["sdk_slow_path_s"] is None else result["listing"]["sdk_slow_path_s"] * 1000,
            ratio(result["listing"]["sdk_slow_path_s"], result["listing"]["slow_path_s"]),
        ]
        for backend, result in results.items()
    ]
    materialize_rows: list[list[Any]] = []
    for backend, result in results.items():
        sdk_row = next(
            (row for row in result["materialize"] if row["impl"] == "SDK (anyio)" and "failed" not in row), None
        )
        for row in result["materialize"]:
            if "failed" in row:
                materialize_rows.append([backend, row["impl"], None, None, None, None, f"failed: {row['failed']}"])
                continue
            materialize_rows.append(
                [
                    backend,
                    row["impl"],
                    row["materialize_s"] * 1000,
                    row["cleanup_s"] * 1000,
                    row["entries_per_s"],
                    ratio(row["entries_per_s"], sdk_row["entries_per_s"]) if sdk_row else None,
                    row["files"],
                ]
            )
    return [
        Table(
            title=f"mirror batcher: {cfg.entries:,} entries as 1-entry frames, same store for both batchers "
            f"(median of {cfg.rounds})",
            columns=[
                "backend",
                "mode",
                "store",
                "batcher",
                "wall ms",
                "entries/s",
                "complete",
                "speed vs SDK",
                "own us/frame",
                "own cost, SDK/ours",
            ],
            rows=batcher_rows,
            kinds=["", "", "", "", "ms", "", "", "x", "", "x"],
        ),
        Table(
            title=f"list_sessions_from_store slow path: load sleeps {cfg.load_delay_s * 1000:g} ms, "
            f"{STORE_LIST_LOAD_CONCURRENCY} loads in flight",
            columns=[
                "backend",
                "sessions",
                "slow path ms",
                "ideal ms",
                "slow/ideal",
                "native floor ms",
                "slow/floor",
                "0-delay ms",
                "fast path ms",
                "SDK slow path ms",
                "SDK/ours",
            ],
            rows=listing_rows,
            kinds=["", "", "ms", "ms", "x", "ms", "x", "ms", "ms", "ms", "x"],
        ),
        Table(
            title=f"materialize_resume_session: {cfg.main_entries:,} main entries + {cfg.subagents} subagents x "
            f"{cfg.subagent_entries:,} (median of {cfg.rounds})",
            columns=["backend", "implementation", "materialize ms", "cleanup ms", "entries/s", "speed vs SDK", "files"],
            rows=materialize_rows,
            kinds=["", "", "ms", "ms", "", "x", ""],
        ),
    ]


def _targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    lines = []
    for backend, result in results.items():
        value = result["listing"]["slow_over_ideal"]
        lines.append(
            {
                "target": f"{backend}: list_sessions_from_store slow path within {LIST_TARGET}x of ideal",
                "value": value,
                "status": "PASS" if value <= LIST_TARGET else "MISS",
            }
        )
        by_key = {(row["mode"], row["store"], row["impl"]): row for row in result["batcher"]}
        for row in result["batcher"]:
            if row["impl"] == "session_store" and "failed" not in row:
                lines.append(
                    {
                        "target": f"{backend}: batcher ({row['mode']}, {row['store']}) delivers every entry in order",
                        "value": float(row["complete"]),
                        "status": "PASS" if row["complete"] else "MISS",
                    }
                )
                sdk = by_key.get((row["mode"], row["store"], "SDK (anyio)"), {})
                own, sdk_own = row.get("own_us_per_frame"), sdk.get("own_us_per_frame")
                if own and sdk_own:
                    goal = BATCHER_TARGETS[row["mode"]]
                    lines.append(
                        {
                            "target": f"{backend}: batcher {row['mode']} own cost per frame, SDK/ours >= {goal}",
                            "value": sdk_own / own,
                            "status": "PASS" if sdk_own / own >= goal else "MISS",
                        }
                    )
    return lines


def main(*, quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    results = {backend: run_on(backend, measure_backend, backend, cfg, not quick) for backend in backends}
    chart: dict[str, dict[str, dict[str, float | None]]] = {}
    for backend, result in results.items():
        group: dict[str, dict[str, float | None]] = {}
        for row in result["batcher"]:
            if "failed" not in row:
                group.setdefault(f"batcher {row['mode']} ({row['store']})", {})[row["impl"]] = (
                    row["entries_per_s"] / 1000
                )
        for row in result["materialize"]:
            if "failed" not in row:
                group.setdefault("materialize", {})[row["impl"]] = row["entries_per_s"] / 1000
        chart[backend] = group
    write_results(
        SUITE,
        meta=run_meta(started, quick, config=cfg.__dict__),
        data={"backends": results},
        tables=_tables(results, cfg),
        targets=_targets(results),
        chart=chart,
        chart_title="throughput, thousands of entries per second",
        out_dir=out_dir,
    )
    return 0
