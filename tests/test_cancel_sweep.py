"""Cancellation sweep (issue 10, suite 1): cancel every operation at each checkpoint it reaches, in four ways.

For each operation, one uncancelled run counts the instrumented checkpoints (store calls before and after,
``compat.run_sync``/``sleep``/``checkpoint``, lock and limiter entry: see ``tests/checkpoints.py``); then a fresh
instance is cancelled at checkpoint k, for k sampled over the whole run (all of them under ``nox -s soak``):

- an outer native cancel scope, ``task.cancel()`` (trio: the nursery's scope, cancelled from another task) and a
  compat deadline (``fail_after`` / ``move_on_after``), on asyncio and trio (the harness runs each test twice);
- an ``anyio.CancelScope`` under ``anyio.run`` on both backends.

After the cancelled run the case settles (the batcher is closed, an import or a read is retried) and checks its
guarantee: every mirrored entry is in the store exactly once and in order; resume leaves no temp dir; a read
gives what an uncancelled read gives. Every run must leave no task running (asyncio tasks, trio system tasks,
detached flushes) and raise no warning, ``never awaited`` included.
"""

from __future__ import annotations

import functools
import itertools
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from checkpoints import MODES, Case, Checkpoints, CheckpointStore, Outcome, no_warnings, sweep
from property_support import BACKEND_PARAMS
from soak import scaled
from transcript_factories import RecordingStore, agent_metadata, conversation, key_for, new_id, seed, write_jsonl

import compat
from session_store import batcher as batcher_module
from session_store.adapters import SQLiteSessionStore
from session_store.batcher import TranscriptMirrorBatcher, build_mirror_batcher
from session_store.importing import import_session_to_store
from session_store.memory import InMemorySessionStore
from session_store.mutations import (
    delete_session_via_store,
    fork_session_via_store,
    rename_session_via_store,
    tag_session_via_store,
)
from session_store.reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from session_store.resume import materialize_resume_session
from session_store.types import SessionKey, SessionStore, SessionStoreEntry

SWEEP_LIMIT = scaled(4, 10_000)
"""Checkpoints cancelled at per operation and way: a spread sample in the default run, every one under soak."""

SQLITE_SWEEP_LIMIT = scaled(2, 10_000)

PROJECT_DIR = "/work/sweep-project"
PROJECTS_DIR = "/home/user/.claude/projects"
SUBAGENT = "subagents/agent-a1"
SECOND_SUBAGENT = "subagents/agent-b2"

CaseBuilder = Callable[[Checkpoints, Path], Callable[[], Awaitable[Case]]]


# --- the batcher ---------------------------------------------------------------------------------------------


def mirror_path(session: str, project: str = "proj") -> str:
    return f"{PROJECTS_DIR}/{project}/{session}.jsonl"


def numbered(*ids: int) -> list[SessionStoreEntry]:
    return [{"type": "user", "uuid": f"u{i}"} for i in ids]


class FlakyMemoryStore(InMemorySessionStore):
    """Fails its first ``failures`` appends (before storing anything), so flushes retry and back off."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("transient store failure")
        await super().append(key, entries)


class Reports:
    """An async ``on_error`` that is itself a checkpoint and records what it was told."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, key: SessionKey | None, message: str) -> None:
        self.messages.append(message)
        await compat.checkpoint()


FRAMES: list[tuple[str, list[int]]] = [("s1", [1, 2]), ("s2", [3]), ("s1", [4]), ("s2", [5, 6]), ("s1", [7])]
LATE_FRAME = ("s1", [8])


def expected_by_session(frames: list[tuple[str, list[int]]]) -> dict[str, list[SessionStoreEntry]]:
    expected: dict[str, list[SessionStoreEntry]] = {}
    for session, ids in frames:
        expected.setdefault(session, []).extend(numbered(*ids))
    return expected


class BatcherCase:
    """A batcher over a checkpointed store, the frames it was given, and the check that all arrived once."""

    def __init__(self, checkpoints: Checkpoints, inner: SessionStore, batcher_of: Callable[..., Any]) -> None:
        self.inner = inner
        self.reports = Reports()
        self.batcher: TranscriptMirrorBatcher = batcher_of(CheckpointStore(inner, checkpoints), self.reports)
        self.given: list[tuple[str, list[int]]] = []

    def enqueue(self, session: str, ids: list[int]) -> None:
        self.batcher.enqueue(mirror_path(session), numbered(*ids))
        self.given.append((session, ids))

    async def close_and_check(self, outcome: Outcome) -> None:
        await self.batcher.close()
        assert self.batcher.background_flushes == 0
        for session, entries in expected_by_session(self.given).items():
            stored = await self.inner.load({"project_key": "proj", "session_id": session})
            assert stored == entries, f"{session}: {[e['uuid'] for e in stored or []]}"
        assert self.reports.messages == []
        await close_if_sqlite(self.inner)


async def close_if_sqlite(store: SessionStore) -> None:
    if isinstance(store, SQLiteSessionStore):
        await store.close()


def batched(store: SessionStore, on_error: Any) -> TranscriptMirrorBatcher:
    return TranscriptMirrorBatcher(store=store, projects_dir=PROJECTS_DIR, on_error=on_error)


def eager(store: SessionStore, on_error: Any) -> TranscriptMirrorBatcher:
    return build_mirror_batcher(store, PROJECTS_DIR, on_error, flush_mode="eager")


def small_threshold(store: SessionStore, on_error: Any) -> TranscriptMirrorBatcher:
    return TranscriptMirrorBatcher(store=store, projects_dir=PROJECTS_DIR, on_error=on_error, max_pending_entries=3)


def memory_store(tmp_path: Path) -> SessionStore:
    return FlakyMemoryStore(failures=1)  # one failed attempt: the sweep covers the retry and its backoff sleep


_databases = itertools.count()


def sqlite_store(tmp_path: Path) -> SessionStore:
    return SQLiteSessionStore(tmp_path / f"sweep-{next(_databases)}.db")


def flush_case(make_store: Callable[[Path], SessionStore]) -> CaseBuilder:
    """``flush()`` of five frames for two transcripts (the first append fails once); then close with one more."""

    def builder(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
        async def make() -> Case:
            case = BatcherCase(checkpoints, make_store(tmp_path), batched)
            for frame in FRAMES:
                case.enqueue(*frame)

            async def settle(outcome: Outcome) -> None:
                case.enqueue(*LATE_FRAME)
                await case.close_and_check(outcome)

            return Case(case.batcher.flush, settle)

        return make

    return builder


def eager_case(make_store: Callable[[Path], SessionStore]) -> CaseBuilder:
    """Eager mode: every frame starts a background flush; the caller yields between frames, then flushes."""

    def builder(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
        async def make() -> Case:
            case = BatcherCase(checkpoints, make_store(tmp_path), eager)

            async def operate() -> None:
                for frame in FRAMES:
                    case.enqueue(*frame)
                    await compat.checkpoint()
                await case.batcher.flush()

            async def settle(outcome: Outcome) -> None:
                if not outcome.returned:  # the caller was cancelled part-way: the rest of the stream comes later
                    for frame in FRAMES[len(case.given) :]:
                        case.enqueue(*frame)
                await case.close_and_check(outcome)

            return Case(operate, settle)

        return make

    return builder


def given_up_case(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
    """``flush()`` whose first batch fails every attempt, so it is reported through ``on_error`` (itself a
    checkpoint); cancelled during the retries instead, the batch is given back and lands at close."""

    async def make() -> Case:
        case = BatcherCase(checkpoints, FlakyMemoryStore(failures=3), batched)
        for frame in FRAMES:
            case.enqueue(*frame)

        async def settle(outcome: Outcome) -> None:
            case.enqueue(*LATE_FRAME)
            await case.batcher.close()
            expected = expected_by_session(case.given)
            s1 = await case.inner.load({"project_key": "proj", "session_id": "s1"})
            if case.reports.messages:  # given up: reported once (a cancelled on_error is not called again)
                assert len(case.reports.messages) == 1 and "after 3 of 3 attempts" in case.reports.messages[0]
                # given up by the flush (the late frame lands at close) or, cancelled before it sent, by close
                assert s1 in (numbered(*LATE_FRAME[1]), None)
            else:
                assert s1 == expected["s1"]
            assert await case.inner.load({"project_key": "proj", "session_id": "s2"}) == expected["s2"]
            assert case.batcher.background_flushes == 0

        return Case(case.batcher.flush, settle)

    return make


def close_case(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
    """``close()`` with a background flush running (threshold 3 entries) and frames still pending."""

    async def make() -> Case:
        case = BatcherCase(checkpoints, memory_store(tmp_path), small_threshold)
        for frame in FRAMES:
            case.enqueue(*frame)

        async def settle(outcome: Outcome) -> None:
            # close() finishes its work even when its caller is cancelled, and then re-raises the cancellation
            if outcome.fired and not outcome.fired_in_detached:
                assert outcome.cancelled, "a cancelled close() must re-raise the cancellation"
            for session, entries in expected_by_session(case.given).items():
                assert await case.inner.load({"project_key": "proj", "session_id": session}) == entries
            await case.close_and_check(outcome)

        return Case(case.batcher.close, settle)

    return make


# --- resume ----------------------------------------------------------------------------------------------------

RESUME_ID = "11111111-2222-4333-8444-555555555555"
OLDER_ID = "66666666-7777-4888-9999-aaaaaaaaaaaa"


async def seeded_resume_store(store: SessionStore) -> SessionStore:
    await seed(store, PROJECT_DIR, OLDER_ID, conversation("older", session_id=OLDER_ID))
    await seed(store, PROJECT_DIR, RESUME_ID, conversation("hello", "again", session_id=RESUME_ID))
    await seed(store, PROJECT_DIR, RESUME_ID, [agent_metadata(toolUseId="t1"), *conversation("sub")], SUBAGENT)
    await seed(store, PROJECT_DIR, RESUME_ID, conversation("second sub"), SECOND_SUBAGENT)
    return store


def temp_dirs() -> list[str]:
    return sorted(path.name for path in Path(tempfile.gettempdir()).iterdir())


def resume_case(
    make_store: Callable[[Path], SessionStore] = lambda _: InMemorySessionStore(), **options: Any
) -> CaseBuilder:
    def builder(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
        async def make() -> Case:
            inner = await seeded_resume_store(make_store(tmp_path))
            store = CheckpointStore(inner, checkpoints)
            before = temp_dirs()

            async def seed_config_dir(config_dir: Path) -> None:
                await compat.checkpoint()
                (config_dir / "settings.json").write_text("{}")

            async def operate() -> Any:
                return await materialize_resume_session(
                    store, cwd=PROJECT_DIR, seed_config_dir=seed_config_dir, **options
                )

            async def settle(outcome: Outcome) -> None:
                if outcome.returned:
                    materialized = outcome.result
                    assert materialized.resume_session_id == RESUME_ID
                    project = materialized.projects_dir / key_for(PROJECT_DIR, RESUME_ID)["project_key"]
                    lines = (project / f"{RESUME_ID}.jsonl").read_text().splitlines()
                    assert [json.loads(line) for line in lines] == await inner.load(key_for(PROJECT_DIR, RESUME_ID))
                    assert (project / RESUME_ID / f"{SECOND_SUBAGENT}.jsonl").is_file()
                    await materialized.cleanup()
                assert temp_dirs() == before, "a temp dir outlived the resume"
                await close_if_sqlite(inner)

            return Case(operate, settle)

        return make

    return builder


# --- import ----------------------------------------------------------------------------------------------------


def import_case(make_store: Callable[[Path], SessionStore]) -> CaseBuilder:
    def builder(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
        return import_cases(checkpoints, tmp_path, make_store)

    return builder


def import_cases(
    checkpoints: Checkpoints, tmp_path: Path, make_store: Callable[[Path], SessionStore]
) -> Callable[[], Awaitable[Case]]:
    """A main transcript of 7 entries and one subagent with a sidecar, imported in batches of 3."""
    projects = tmp_path / "projects"
    session_id = RESUME_ID
    project = key_for(PROJECT_DIR, session_id)["project_key"]
    main = conversation("a", "b", "c", session_id=session_id) + conversation("d")[:1]
    sub = conversation("sub one", "sub two")
    write_jsonl(projects / project / f"{session_id}.jsonl", main)
    write_jsonl(projects / project / session_id / f"{SUBAGENT}.jsonl", sub)
    (projects / project / session_id / "subagents" / "agent-a1.meta.json").write_text('{"toolUseId": "t9"}')

    async def make() -> Case:
        inner = make_store(tmp_path)
        store = CheckpointStore(inner, checkpoints)

        async def operate() -> Any:
            return await import_session_to_store(session_id, store, projects_dir=projects, batch_size=3)

        async def settle(outcome: Outcome) -> None:
            if not outcome.returned:
                await import_session_to_store(session_id, inner, projects_dir=projects, batch_size=3)  # the retry
            assert await inner.load(key_for(PROJECT_DIR, session_id)) == main
            stored_sub = await inner.load(key_for(PROJECT_DIR, session_id, SUBAGENT)) or []
            assert [entry for entry in stored_sub if entry["type"] != "agent_metadata"] == sub
            markers = [entry for entry in stored_sub if entry["type"] == "agent_metadata"]
            # the marker has no uuid, so a retry after it landed appends it again; the last one wins, same value
            assert 1 <= len(markers) <= 2 and markers[-1] == {"type": "agent_metadata", "toolUseId": "t9"}
            await close_if_sqlite(inner)

        return Case(operate, settle)

    return make


# --- readers ---------------------------------------------------------------------------------------------------


async def seeded_reading_store() -> tuple[RecordingStore, list[str]]:
    store = RecordingStore()
    ids = [new_id() for _ in range(3)]
    for index, session_id in enumerate(ids):
        await seed(
            store, PROJECT_DIR, session_id, conversation(f"prompt {index}", session_id=session_id, start_at=index)
        )
    await seed(store, PROJECT_DIR, ids[0], [agent_metadata(toolUseId="t1"), *conversation("sub")], SUBAGENT)
    store.hidden_summaries = {ids[1]}  # the fast path gap-fills this one with a load
    return store, ids


ReadCall = Callable[[SessionStore, list[str]], Awaitable[Any]]

READS: dict[str, tuple[ReadCall, tuple[str, ...]]] = {
    "list_sessions (summaries + gap-fill)": (lambda s, ids: list_sessions_from_store(s, PROJECT_DIR), ()),
    "list_sessions (one load per session)": (
        lambda s, ids: list_sessions_from_store(s, PROJECT_DIR),
        ("list_session_summaries",),
    ),
    "get_session_info": (lambda s, ids: get_session_info_from_store(s, ids[0], PROJECT_DIR), ()),
    "get_session_messages": (lambda s, ids: get_session_messages_from_store(s, ids[0], PROJECT_DIR), ()),
    "list_subagents": (lambda s, ids: list_subagents_from_store(s, ids[0], PROJECT_DIR), ()),
    "get_subagent_messages": (lambda s, ids: get_subagent_messages_from_store(s, ids[0], "a1", PROJECT_DIR), ()),
}


def read_case(name: str) -> CaseBuilder:
    read, hide = READS[name]

    def builder(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
        async def make() -> Case:
            inner, ids = await seeded_reading_store()
            store = CheckpointStore(inner, checkpoints, hide=hide)
            plain = CheckpointStore(inner, Checkpoints(), hide=hide)  # same methods, never cancelled
            expected = await read(plain, ids)
            assert expected, f"{name} reads nothing: the case checks nothing"

            async def settle(outcome: Outcome) -> None:
                assert inner.in_flight == 0, "a load outlived the read"
                result = outcome.result if outcome.returned else await read(plain, ids)
                assert result == expected

            return Case(lambda: read(store, ids), settle)

        return make

    return builder


# --- mutations -------------------------------------------------------------------------------------------------


def mutation_case(name: str) -> CaseBuilder:
    def builder(checkpoints: Checkpoints, tmp_path: Path) -> Callable[[], Awaitable[Case]]:
        async def make() -> Case:
            inner, ids = await seeded_reading_store()
            store = CheckpointStore(inner, checkpoints)
            session_id = ids[2]
            calls: dict[str, Callable[[SessionStore], Awaitable[Any]]] = {
                "rename": lambda s: rename_session_via_store(s, session_id, "Swept", PROJECT_DIR),
                "tag": lambda s: tag_session_via_store(s, session_id, "swept", PROJECT_DIR),
                "delete": lambda s: delete_session_via_store(s, session_id, PROJECT_DIR),
                "fork": lambda s: fork_session_via_store(s, session_id, PROJECT_DIR),
            }
            call = calls[name]

            async def settle(outcome: Outcome) -> None:
                if not outcome.returned:
                    await call(inner)  # the retry
                info = await get_session_info_from_store(inner, session_id, PROJECT_DIR)
                listed = await list_sessions_from_store(inner, PROJECT_DIR)
                if name == "rename":
                    assert info is not None and info.custom_title == "Swept"
                elif name == "tag":
                    assert info is not None and info.tag == "swept"
                elif name == "delete":
                    assert info is None and len(listed) == 2
                else:  # a cancelled fork is deleted even when its one append landed: only the retry's is left
                    forks = [row for row in listed if row.custom_title and row.custom_title.endswith("(fork)")]
                    assert len(forks) == 1 and len(listed) == 4

            return Case(lambda: call(store), settle)

        return make

    return builder


OPERATIONS: dict[str, CaseBuilder] = {
    "batcher.flush": flush_case(memory_store),
    "batcher.eager": eager_case(memory_store),
    "batcher.flush (batch given up)": given_up_case,
    "batcher.close": close_case,
    "resume (resume=id)": resume_case(resume=RESUME_ID),
    "resume (continue)": resume_case(continue_conversation=True),
    "import": import_case(lambda _: InMemorySessionStore()),
    **{f"read: {name}": read_case(name) for name in READS},
    **{f"mutation: {name}": mutation_case(name) for name in ("rename", "tag", "delete", "fork")},
}

SQLITE_OPERATIONS: dict[str, CaseBuilder] = {
    "batcher.flush (SQLite)": flush_case(sqlite_store),
    "batcher.eager (SQLite)": eager_case(sqlite_store),
    "resume (SQLite)": resume_case(sqlite_store, resume=RESUME_ID),
    "import (SQLite)": import_case(sqlite_store),
}


@pytest.fixture
def checkpoints(monkeypatch: pytest.MonkeyPatch, temp_root: Path) -> Checkpoints:
    """Checkpoints instrumented, short retry backoff, and temp dirs under ``temp_root`` (what ``temp_dirs()`` lists)."""
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_BACKOFF_S", (0.001, 0.001))
    instrumented = Checkpoints()
    instrumented.install(monkeypatch)
    return instrumented


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", OPERATIONS)
async def test_cancelling_at_any_checkpoint_loses_nothing_and_leaves_nothing_behind(
    operation: str, mode: str, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    with no_warnings():
        report = await sweep(checkpoints, OPERATIONS[operation](checkpoints, tmp_path), mode, SWEEP_LIMIT)
    assert report.count >= 2 and report.swept[-1] == report.count


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", SQLITE_OPERATIONS)
async def test_cancelling_a_mirror_into_sqlite_at_any_checkpoint_loses_nothing(
    operation: str, mode: str, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    with no_warnings():
        report = await sweep(checkpoints, SQLITE_OPERATIONS[operation](checkpoints, tmp_path), mode, SQLITE_SWEEP_LIMIT)
    assert report.count >= 2


async def _anyio_sweep(operation: str, checkpoints: Checkpoints, tmp_path: Path) -> None:
    with no_warnings():
        report = await sweep(checkpoints, OPERATIONS[operation](checkpoints, tmp_path), "anyio", SWEEP_LIMIT)
    assert report.count >= 2


@BACKEND_PARAMS
@pytest.mark.parametrize("operation", OPERATIONS)
def test_cancelling_in_an_anyio_scope_at_any_checkpoint_loses_nothing(
    operation: str, backend: str, checkpoints: Checkpoints, tmp_path: Path
) -> None:
    anyio.run(functools.partial(_anyio_sweep, operation, checkpoints, tmp_path), backend=backend)


def test_the_sweep_reaches_every_kind_of_checkpoint(checkpoints: Checkpoints, tmp_path: Path) -> None:
    """The counting itself: each operation reaches the awaits it is known to have, so a sweep cannot be empty."""
    seen: dict[str, list[str]] = {}

    async def count(name: str) -> None:
        case = await OPERATIONS[name](checkpoints, tmp_path)()
        checkpoints.arm(None)
        result = await case.operate()
        seen[name] = list(checkpoints.labels)
        await case.settle(Outcome(returned=True, result=result))

    async def main() -> None:
        for name in ("batcher.flush", "batcher.eager", "resume (resume=id)", "import"):
            await count(name)

    anyio.run(main, backend="asyncio")
    assert {"Lock", "append:before", "append:after", "sleep(0.001)"} <= set(seen["batcher.flush"])
    assert any(label.endswith("(detached)") for label in seen["batcher.eager"])
    assert {"load:before", "list_subkeys:after", "checkpoint"} <= set(seen["resume (resume=id)"])
    assert "run_sync(_write_transcript)" in seen["resume (resume=id)"]
    assert (
        "run_sync(_read_whole_transcript)" in seen["import"] and seen["import"].count("append:before") == 4
    )  # the subagent's 2 batches and its marker first, then the main transcript in one append (exactly-once import)
