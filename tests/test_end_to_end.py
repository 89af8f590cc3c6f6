"""End to end: a session the CLI wrote to disk, mirrored through the batcher into each real adapter, resumed back.

Each test runs once per adapter (ids carry ``sqlite`` / ``postgres`` / ``redis``; the last two use the servers
of ``tests/servers.py``) and, through the harness, once per backend. The session comes from
``tests/e2e_factories.py``: a main transcript with tool use and a sidechain line, two subagents with
``.meta.json`` sidecars and a nested one without. Its lines reach the batcher as ``transcript_mirror`` frames
of 1-3 lines interleaved across the files (sidecars as ``agent_metadata`` entries, as ``session-store mirror``
sends them), and are compared after ``materialize_resume_session`` file by file, line by line, as parsed JSON.

- Mirror then resume: both flush modes; nothing reported to ``on_error``; the temp dir is gone after cleanup.
- Outage: the storage goes away between two turns and comes back (PostgreSQL and Redis servers stopped and
  restarted; for SQLite another connection holds the write lock past the busy timeout). The batches of the
  outage are reported, ``flush``/``close`` never raise, and the store holds exactly everything else.
- Cancellation: a flush cancelled while its append waits, or after the append landed but before it returned,
  loses nothing, and the resend the second case causes duplicates nothing (stores deduplicate by uuid).
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_factories import Frame, SessionOnDisk, mirror_frames, read_jsonl, read_tree, write_session
from servers import PostgresServer, RedisServer, redis_test_prefix

import compat
import session_store.batcher as batcher_module
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore, ThreadedSessionStore
from session_store.adapters import sqlite as sqlite_adapter
from session_store.batcher import TranscriptMirrorBatcher, build_mirror_batcher
from session_store.keys import file_path_to_session_key
from session_store.resume import materialize_resume_session
from session_store.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreFlushMode,
)

StoreFactory = Callable[[], ThreadedSessionStore]
KeyId = tuple[str, str, str | None]

ADAPTERS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.servers),
    pytest.param("redis", marks=pytest.mark.servers),
]


def unique_table() -> str:
    return f"e2e_{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=ADAPTERS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds a fresh, empty store of one adapter (its own file, table or key prefix)."""
    if request.param == "sqlite":
        return lambda: SQLiteSessionStore(tmp_path / "sessions.db")
    if request.param == "postgres":
        postgres_url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresSessionStore(postgres_url, table=unique_table())
    redis_url: str = request.getfixturevalue("redis_url")
    return lambda: RedisSessionStore(redis_url, prefix=redis_test_prefix())


# -- helpers -------------------------------------------------------------------------------------------------


@dataclass
class ErrorLog:
    """An ``on_error`` callback that records ``(key, message)``; :meth:`take` returns and forgets the reports."""

    reports: list[tuple[SessionKey | None, str]] = field(default_factory=list)

    def __call__(self, key: SessionKey | None, message: str) -> None:
        self.reports.append((key, message))

    def take(self) -> list[tuple[SessionKey | None, str]]:
        taken, self.reports = self.reports, []
        return taken


def key_id(key: SessionKey | None) -> KeyId:
    assert key is not None
    return key["project_key"], key["session_id"], key.get("subpath")


def key_of(session: SessionOnDisk, path: str | Path) -> SessionKey:
    key = file_path_to_session_key(path, session.projects_dir)
    assert key is not None, path
    return key


def enqueue_all(batcher: TranscriptMirrorBatcher, frames: list[Frame]) -> None:
    for path, entries in frames:
        batcher.enqueue(path, entries)


async def resume_and_read(store: SessionStore, session: SessionOnDisk) -> dict[str, Any]:
    """Materialize the session from ``store`` as ``--resume`` does, read back every file, clean up."""
    materialized = await materialize_resume_session(store, resume=session.session_id, cwd=session.cwd)
    assert materialized is not None
    assert materialized.resume_session_id == session.session_id
    try:
        assert [path.name for path in materialized.projects_dir.iterdir()] == [session.project_key]
        tree = await compat.run_sync(read_tree, materialized.projects_dir / session.project_key)
    finally:
        await materialized.cleanup()
    assert not materialized.config_dir.exists()
    return tree


def test_mirror_frames_interleave_every_file_in_small_chunks(tmp_path: Path) -> None:
    session = write_session(tmp_path)
    frames = mirror_frames(session)
    paths = [path for path, _ in frames]
    assert sorted(set(paths)) == sorted(str(path) for path in session.transcripts())
    assert len(session.transcripts()) == 4 and all(paths.count(path) >= 2 for path in set(paths))
    assert all(1 <= len(entries) <= 3 for _, entries in frames)
    assert sum(first != second for first, second in itertools.pairwise(paths)) > len(frames) // 2
    for transcript in session.transcripts():
        sent = [entry for path, entries in frames if path == str(transcript) for entry in entries]
        lines = [entry for entry in sent if entry["type"] != "agent_metadata"]
        assert lines == read_jsonl(transcript)
    assert any(entry.get("isSidechain") is True for entry in read_jsonl(session.transcripts()[0]))


# -- 1. mirror, then resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flush_mode", ["batched", "eager"])
async def test_a_mirrored_session_resumes_as_the_files_the_cli_wrote(
    make_store: StoreFactory, tmp_path: Path, flush_mode: SessionStoreFlushMode
) -> None:
    session = write_session(tmp_path)
    frames = mirror_frames(session)
    errors = ErrorLog()
    async with make_store() as store:
        batcher = build_mirror_batcher(store, session.projects_dir, errors, flush_mode)
        for number, (path, entries) in enumerate(frames, 1):
            batcher.enqueue(path, entries)
            if number % 5 == 0:  # the end of a turn
                await batcher.flush()
        await batcher.close()
        assert errors.reports == []
        resumed = await resume_and_read(store, session)
    on_disk = read_tree(session.project_dir)
    assert sorted(resumed) == session.files  # every transcript and both sidecars, nothing else
    assert resumed == on_disk


# -- 2. storage outage in the middle of a stream --------------------------------------------------------------


@dataclass
class Outage:
    """A store and a way to take its storage away (``begin``) and give it back (``end``); both blocking."""

    store: ThreadedSessionStore
    begin_blocking: Callable[[], None]
    end_blocking: Callable[[], None]
    active: bool = False

    async def begin(self) -> None:
        await compat.run_sync(self.begin_blocking)
        self.active = True

    async def end(self) -> None:
        await compat.run_sync(self.end_blocking)
        self.active = False


def sqlite_write_lock_outage(path: Path, monkeypatch: pytest.MonkeyPatch) -> Outage:
    """Another connection holds the write lock; the store gives up after a short busy timeout."""
    monkeypatch.setattr(sqlite_adapter, "BUSY_TIMEOUT_SECONDS", 0.1)  # read when the store connects
    holders: list[sqlite3.Connection] = []

    def take_write_lock() -> None:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holders.append(holder)

    def release_write_lock() -> None:
        holder = holders.pop()
        holder.execute("ROLLBACK")
        holder.close()

    return Outage(SQLiteSessionStore(path), take_write_lock, release_write_lock)


@pytest.fixture(params=ADAPTERS)
def outage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outage]:
    """A store of one adapter whose storage can fail and recover; restored afterwards if a test stops midway."""
    if request.param == "sqlite":
        made = sqlite_write_lock_outage(tmp_path / "sessions.db", monkeypatch)
    elif request.param == "postgres":
        postgres: PostgresServer = request.getfixturevalue("restartable_postgres")
        # timeout: how long an append waits for a connection while the server is down
        postgres_store = PostgresSessionStore(postgres.url, table=unique_table(), timeout=0.2)
        made = Outage(postgres_store, lambda: postgres.stop("immediate"), postgres.start)
    else:
        redis: RedisServer = request.getfixturevalue("restartable_redis")
        redis_store = RedisSessionStore(redis.url, prefix=redis_test_prefix())
        made = Outage(redis_store, lambda: redis.stop(crash=True), redis.start)
    yield made
    if made.active:
        made.end_blocking()


async def test_batches_lost_to_a_storage_outage_are_reported_and_everything_else_is_kept(
    outage: Outage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_BACKOFF_S", (0.01, 0.02))
    session = write_session(tmp_path)
    frames = mirror_frames(session)
    turns = [frames[start : start + 3] for start in range(0, len(frames), 3)]
    down = {2, 3}  # the storage is gone during these turns
    assert len(turns) > max(down) + 1
    errors = ErrorLog()
    reports: dict[int, list[tuple[SessionKey | None, str]]] = {}
    async with outage.store as store:
        batcher = build_mirror_batcher(store, session.projects_dir, errors, "batched")
        batcher.send_timeout = 10.0  # longer than any failure takes: every lost batch is an error, not a timeout
        for turn, frames_of_turn in enumerate(turns):
            if turn == min(down):
                await outage.begin()
            elif turn == max(down) + 1:
                await outage.end()
            enqueue_all(batcher, frames_of_turn)
            await batcher.flush()  # never raises
            reports[turn] = errors.take()
        await batcher.close()
        assert errors.reports == []

        for turn, frames_of_turn in enumerate(turns):
            reported = [key_id(key) for key, _ in reports[turn]]
            if turn in down:  # one report per transcript of the turn
                assert sorted(reported, key=str) == sorted(
                    {key_id(key_of(session, p)) for p, _ in frames_of_turn}, key=str
                )
            else:
                assert reported == []
        paths = {key_id(key_of(session, path)): str(path) for path in session.transcripts()}
        for key, message in (report for turn in down for report in reports[turn]):
            assert message.startswith("SessionStore.append() failed for ") and paths[key_id(key)] in message

        for transcript in session.transcripts():
            key = key_of(session, transcript)
            kept: list[SessionStoreEntry] = [
                entry
                for turn, frames_of_turn in enumerate(turns)
                if turn not in down
                for path, entries in frames_of_turn
                if path == str(transcript)
                for entry in entries
            ]
            loaded = await store.load(key) or []
            assert loaded == kept, transcript.name
            lost = {
                entry["uuid"]
                for turn in down
                for path, entries in turns[turn]
                if path == str(transcript)
                for entry in entries
                if "uuid" in entry
            }
            uuids = [entry["uuid"] for entry in loaded if "uuid" in entry]
            all_uuids = {line["uuid"] for line in read_jsonl(transcript) if "uuid" in line}
            assert len(uuids) == len(set(uuids)) and set(uuids) == all_uuids - lost


# -- 3. cancellation -----------------------------------------------------------------------------------------


class SlowStore(SessionStore):
    """Delegates to a real store; an append first sleeps ``delay_before_s``, then, once the real write has
    landed (recorded in ``landed``), sleeps ``delay_after_s`` before returning."""

    def __init__(self, inner: ThreadedSessionStore) -> None:
        self.inner = inner
        self.delay_before_s = 0.0
        self.delay_after_s = 0.0
        self.landed: list[KeyId] = []

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await compat.sleep(self.delay_before_s)
        await self.inner.append(key, entries)
        self.landed.append(key_id(key))
        await compat.sleep(self.delay_after_s)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.inner.load(key)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return await self.inner.list_subkeys(key)


async def connected(store: ThreadedSessionStore) -> ThreadedSessionStore:
    """``store`` after one call, so connecting and creating the schema happen before a test's deadline."""
    await store.list_sessions("warm-up")
    return store


async def test_a_flush_cancelled_before_its_append_started_is_sent_once_by_close(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    session = write_session(tmp_path)
    errors = ErrorLog()
    async with make_store() as real:
        store = SlowStore(await connected(real))
        batcher = build_mirror_batcher(store, session.projects_dir, errors, "batched")
        enqueue_all(batcher, mirror_frames(session))
        store.delay_before_s = 30.0
        with compat.move_on_after(0.2) as scope:
            await batcher.flush()
        assert scope.cancelled_caught and store.landed == []
        store.delay_before_s = 0.0
        await batcher.close()
        assert errors.reports == []
        assert Counter(store.landed) == {key_id(key_of(session, path)): 1 for path in session.transcripts()}
        resumed = await resume_and_read(store, session)
    assert resumed == read_tree(session.project_dir)


async def test_a_flush_cancelled_after_its_append_landed_resends_it_without_duplicates(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    session = write_session(tmp_path)
    frames = mirror_frames(session)
    first_turn, second_turn = frames[: len(frames) // 2], frames[len(frames) // 2 :]
    interrupted = key_id(key_of(session, first_turn[0][0]))
    resent = [entry for path, entries in first_turn if path == first_turn[0][0] for entry in entries]
    assert all("uuid" in entry for entry in resent)  # only uuids make a resend idempotent
    errors = ErrorLog()
    async with make_store() as real:
        store = SlowStore(await connected(real))
        batcher = build_mirror_batcher(store, session.projects_dir, errors, "batched")
        enqueue_all(batcher, first_turn)
        store.delay_after_s = 30.0
        with compat.move_on_after(0.5) as scope:
            await batcher.flush()
        assert scope.cancelled_caught and store.landed == [interrupted]
        store.delay_after_s = 0.0
        enqueue_all(batcher, second_turn)
        await batcher.close()
        assert errors.reports == []
        expected = Counter({key_id(key_of(session, path)): 1 for path in session.transcripts()})
        expected[interrupted] += 1
        assert Counter(store.landed) == expected
        resumed = await resume_and_read(store, session)
    assert resumed == read_tree(session.project_dir)


async def test_send_timeout_bounds_an_append_to_a_server_that_stopped_answering(
    restartable_redis: RedisServer,
) -> None:
    """The adapters abandon a timed-out driver call, so ``send_timeout`` holds even against a frozen server."""
    import os
    import signal

    errors: list[tuple[SessionKey | None, str]] = []
    store = RedisSessionStore(restartable_redis.url, prefix=redis_test_prefix())
    batcher = TranscriptMirrorBatcher(store, "/p", lambda key, message: errors.append((key, message)), send_timeout=0.3)
    batcher.enqueue("/p/proj/11111111-1111-4111-8111-111111111111.jsonl", [{"type": "user", "uuid": "before"}])
    await batcher.flush()
    process = restartable_redis._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        started = compat.current_time()
        batcher.enqueue("/p/proj/11111111-1111-4111-8111-111111111111.jsonl", [{"type": "user", "uuid": "frozen"}])
        await batcher.flush()
        elapsed = compat.current_time() - started
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert elapsed < 2.0, f"flush took {elapsed:.1f} s although send_timeout is 0.3 s"
    assert len(errors) == 1
    assert "timed out after 0.3s" in errors[0][1]
    await batcher.close()
    await store.close()
