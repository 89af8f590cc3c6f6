"""Faulty stores (issue 10, suite 2): a real store behind :class:`faulty.FaultyStore`, each fault with its outcome.

=====================================================  ========================================================
fault                                                  documented outcome
=====================================================  ========================================================
a fraction of appends fail (seeded)                    retried (MIRROR_APPEND_MAX_ATTEMPTS in all); a batch
                                                       whose every attempt failed is reported through
                                                       ``on_error`` once; what lands is in order, once
a fraction of an import's appends fail (seeded)        the import raises the store's error; run again, the
                                                       store holds every entry with a uuid once, in order
an append hangs past ``send_timeout``                  reported through ``on_error`` (not retried); later
                                                       frames are still sent; flush and close return
a store call hangs during resume                       ``RuntimeError`` naming the call; no temp dir
a fraction of loads fail while listing                 those rows come back degraded (``summary=""``)
``KeyboardInterrupt`` / ``SystemExit`` /               a listing's loads: reaches the caller as itself (not
``GeneratorExit`` from ``load``                        a group), the other loads stopped
``KeyboardInterrupt`` / ``SystemExit`` /               propagates to the caller of ``flush()`` (explicit
``GeneratorExit`` from ``append``                      flush), or of the next ``flush()``/``close()``
                                                       (background flush); never reported through
                                                       ``on_error``; the frames stay queued; no task left
a read method returns the wrong type                   ``TypeError`` naming the method, the type received and
                                                       the type expected (``session_store.store_results``)
=====================================================  ========================================================

Every test runs on asyncio and trio, over the in-memory store and SQLite where the store matters, and under a
time limit: a fault must never turn into a hang.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from checkpoints import running_tasks
from faulty import FaultyStore, InjectedFailure
from soak import scaled
from temp_dirs import leftovers
from transcript_factories import agent_metadata, conversation, custom_title, key_for, new_id, seed, write_jsonl

import compat
from session_store import batcher as batcher_module
from session_store.adapters import SQLiteSessionStore
from session_store.batcher import MIRROR_APPEND_MAX_ATTEMPTS, TranscriptMirrorBatcher, build_mirror_batcher
from session_store.importing import import_session_to_store
from session_store.memory import InMemorySessionStore
from session_store.mutations import fork_session_via_store
from session_store.reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from session_store.resume import materialize_resume_session
from session_store.types import SessionKey, SessionStore, SessionStoreEntry, SessionStoreFlushMode

WAIT_LIMIT_S = 10.0
"""No test here may take longer: a fault that hangs the library fails the test instead of the run."""

PROJECTS_DIR = "/home/user/.claude/projects"
PROJECT_DIR = "/work/faulty-project"
SUBAGENT = "subagents/agent-a1"

_databases = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def real_store(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    if request.param == "memory":
        return InMemorySessionStore()
    return SQLiteSessionStore(tmp_path / f"faulty-{next(_databases)}.db")


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_BACKOFF_S", (0.001, 0.002))


async def close_store(store: SessionStore) -> None:
    if isinstance(store, SQLiteSessionStore):
        await store.close()


# --- the batcher -----------------------------------------------------------------------------------------------


def mirror_path(session: str) -> str:
    return f"{PROJECTS_DIR}/proj/{session}.jsonl"


def session_key(session: str) -> SessionKey:
    return {"project_key": "proj", "session_id": session}


def numbered(*ids: int) -> list[SessionStoreEntry]:
    return [{"type": "user", "uuid": f"u{i}"} for i in ids]


def ids_of(entries: list[SessionStoreEntry] | None) -> list[int]:
    return [int(entry["uuid"][1:]) for entry in entries or []]


class Reports:
    def __init__(self) -> None:
        self.reports: list[tuple[SessionKey | None, str]] = []

    def __call__(self, key: SessionKey | None, message: str) -> None:
        self.reports.append((key, message))


def given_up_batches(outcomes: list[str]) -> int:
    """How many batches failed every attempt, from the append outcomes in call order (flushes are serialized)."""
    given_up = attempts = 0
    for outcome in outcomes:
        if outcome == "ok":
            attempts = 0
        else:
            attempts += 1
            if attempts == MIRROR_APPEND_MAX_ATTEMPTS:
                given_up, attempts = given_up + 1, 0
    return given_up


@pytest.mark.parametrize("flush_mode", ["batched", "eager"])
@pytest.mark.parametrize(
    ("fail_fraction", "seed"), [(fraction, seed) for seed in range(1, 1 + scaled(1, 25)) for fraction in (0.3, 0.6)]
)
async def test_failing_appends_are_retried_and_each_batch_given_up_is_reported_once(
    real_store: SessionStore, fail_fraction: float, seed: int, flush_mode: SessionStoreFlushMode, fast_backoff: None
) -> None:
    store = FaultyStore(real_store, seed=seed, fail_fraction=fail_fraction, fail_methods=("append",))
    reports = Reports()
    batcher = build_mirror_batcher(store, PROJECTS_DIR, reports, flush_mode=flush_mode)
    sessions = ("s1", "s2", "s3")
    enqueued: dict[str, list[int]] = {session: [] for session in sessions}
    numbers = itertools.count(1)
    with compat.fail_after(WAIT_LIMIT_S):
        for _turn in range(12):
            for session in sessions:
                ids = [next(numbers), next(numbers)]
                batcher.enqueue(mirror_path(session), numbered(*ids))
                enqueued[session].extend(ids)
                if flush_mode == "eager":
                    await compat.checkpoint()  # let the background flushes run between frames
            await batcher.flush()
        await batcher.close()
    outcomes = store.outcomes("append")
    assert "failed" in outcomes and "ok" in outcomes
    assert any(a == "failed" and b == "ok" for a, b in itertools.pairwise(outcomes)), "no append was retried"
    given_up = given_up_batches(outcomes)
    assert len(reports.reports) == given_up
    missing = 0
    for session in sessions:
        stored = ids_of(await real_store.load(session_key(session)))
        assert stored == sorted(set(stored)), f"{session}: out of order or duplicated: {stored}"
        assert set(stored) <= set(enqueued[session])
        missing += len(enqueued[session]) - len(stored)
    if flush_mode == "batched":
        assert missing == 2 * given_up  # each given-up batch is one session's two entries of one turn
    else:
        assert (missing > 0) == (given_up > 0)  # eager batches coalesce a varying number of frames
    for key, message in reports.reports:
        assert key is not None and key["session_id"] in sessions
        assert f"after {MIRROR_APPEND_MAX_ATTEMPTS} of {MIRROR_APPEND_MAX_ATTEMPTS} attempts" in message
        assert InjectedFailure.__name__ in message
    await close_store(real_store)


async def test_an_append_hanging_past_the_send_timeout_is_reported_and_later_frames_still_land(
    real_store: SessionStore,
) -> None:
    await real_store.list_sessions("proj")  # open the database now: the time limit below is for the hang only
    store = FaultyStore(real_store, hang_calls={"append": 1})
    reports = Reports()
    batcher = TranscriptMirrorBatcher(store=store, projects_dir=PROJECTS_DIR, on_error=reports, send_timeout=0.2)
    with compat.fail_after(WAIT_LIMIT_S):
        batcher.enqueue(mirror_path("s1"), numbered(1, 2))
        await batcher.flush()
        batcher.enqueue(mirror_path("s1"), numbered(3))
        await batcher.close()
    assert store.outcomes("append") == ["hung", "ok"]  # a timeout is not retried: the call may still land
    [(key, message)] = reports.reports
    assert key == session_key("s1") and "timed out after 0.2s (send_timeout)" in message
    assert ids_of(await real_store.load(session_key("s1"))) == [3]
    await close_store(real_store)


async def test_close_returns_even_when_every_append_hangs(real_store: SessionStore) -> None:
    store = FaultyStore(real_store, hang_calls={"append": 1_000})
    reports = Reports()
    batcher = build_mirror_batcher(store, PROJECTS_DIR, reports, flush_mode="eager")
    batcher.send_timeout = 0.05
    with compat.fail_after(WAIT_LIMIT_S):
        for i in range(3):
            batcher.enqueue(mirror_path("s1"), numbered(i))
        await batcher.close()
    assert batcher.background_flushes == 0
    assert reports.reports and all("timed out" in message for _, message in reports.reports)
    await close_store(real_store)


INTERRUPTIONS = [KeyboardInterrupt, SystemExit, GeneratorExit]


def raising(exc_type: type[BaseException]) -> Callable[[], BaseException]:
    return lambda: exc_type("raised by the store")


@pytest.mark.parametrize("exc_type", INTERRUPTIONS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("landed", [False, True], ids=["before-landing", "after-landing"])
async def test_an_interruption_from_append_in_flush_reaches_the_caller_and_loses_nothing(
    real_store: SessionStore, exc_type: type[BaseException], landed: bool
) -> None:
    store = FaultyStore(real_store, raises={"append": raising(exc_type)}, raise_after_landing=landed)
    reports = Reports()
    batcher = TranscriptMirrorBatcher(store=store, projects_dir=PROJECTS_DIR, on_error=reports)
    batcher.enqueue(mirror_path("s1"), numbered(1, 2))
    with compat.fail_after(WAIT_LIMIT_S):
        with pytest.raises(exc_type):
            await batcher.flush()
        assert store.outcomes("append") == ["raised"]  # not retried: it is not an error of the store call
        store.raises.clear()
        batcher.enqueue(mirror_path("s1"), numbered(3))
        await batcher.close()
    assert reports.reports == []
    assert ids_of(await real_store.load(session_key("s1"))) == [1, 2, 3]
    await close_store(real_store)


@pytest.mark.parametrize("exc_type", INTERRUPTIONS, ids=lambda t: t.__name__)
async def test_an_interruption_from_append_in_a_background_flush_reaches_the_next_flush(
    real_store: SessionStore, exc_type: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyStore(real_store, raises={"append": raising(exc_type)})
    reports = Reports()
    batcher = build_mirror_batcher(store, PROJECTS_DIR, reports, flush_mode="eager")
    with caplog.at_level(logging.WARNING), compat.fail_after(WAIT_LIMIT_S):
        batcher.enqueue(mirror_path("s1"), numbered(1))
        while batcher.background_flushes:
            await compat.sleep(0.001)
        assert store.outcomes("append") == ["raised"]
        store.raises.clear()
        batcher.enqueue(mirror_path("s1"), numbered(2))
        with pytest.raises(exc_type):
            await batcher.flush()  # sends everything first, then re-raises what the background flush met
        assert ids_of(await real_store.load(session_key("s1"))) == [1, 2]
        await batcher.close()  # raised once only
    assert batcher.background_flushes == 0
    assert reports.reports == []
    assert caplog.records == [], "the interruption was logged as unhandled instead of reaching the caller"
    await close_store(real_store)


class SlowFirstAppend(InMemorySessionStore):
    """The first append takes a while, so a second background flush queues up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.appends += 1
        if self.appends == 1:
            await compat.sleep(0.05)
        await super().append(key, entries)


@pytest.mark.parametrize("exc_type", INTERRUPTIONS, ids=lambda t: t.__name__)
async def test_an_interruption_in_close_leaves_no_background_flush_running(
    exc_type: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    inner = SlowFirstAppend()
    store = FaultyStore(inner, raises={"append": raising(exc_type)}, skip_calls={"append": 1})
    batcher = build_mirror_batcher(store, PROJECTS_DIR, Reports(), flush_mode="eager")
    with caplog.at_level(logging.WARNING), compat.fail_after(WAIT_LIMIT_S):
        batcher.enqueue(mirror_path("s1"), numbered(1))  # lands, slowly
        while inner.appends == 0:
            await compat.sleep(0.001)
        batcher.enqueue(mirror_path("s1"), numbered(2))  # its flush waits for the lock, then the store raises
        with pytest.raises(exc_type):
            await batcher.close()
        assert batcher.background_flushes == 0
        store.raises.clear()
        await batcher.close()  # frame 2 was kept: a later close sends it
    assert ids_of(await inner.load(session_key("s1"))) == [1, 2]
    assert caplog.records == []


# --- wrong types from read methods -----------------------------------------------------------------------------

SID = "11111111-2222-4333-8444-555555555555"


async def seeded(inner: SessionStore) -> SessionStore:
    await seed(inner, PROJECT_DIR, SID, conversation("hello", session_id=SID))
    await seed(inner, PROJECT_DIR, SID, [agent_metadata(toolUseId="t1"), *conversation("sub")], SUBAGENT)
    return inner


class NoSummaries:
    """``inner`` without ``list_session_summaries``: the slow listing path."""

    def __init__(self, inner: SessionStore) -> None:
        self.append = inner.append
        self.load = inner.load
        self.list_sessions = inner.list_sessions
        self.list_subkeys = inner.list_subkeys


ReadCall = Callable[[Any], Awaitable[Any]]

WRONG_RESULTS: list[Any] = [
    pytest.param("load", {"type": "user"}, "dict", lambda s: get_session_info_from_store(s, SID, PROJECT_DIR), id="load-info"),
    pytest.param("load", {"a": 1}, "dict", lambda s: get_session_messages_from_store(s, SID, PROJECT_DIR), id="load-messages"),
    pytest.param("load", "text", "str", lambda s: get_subagent_messages_from_store(s, SID, "a1", PROJECT_DIR), id="load-subagent"),
    pytest.param("load", {"a": 1}, "dict", lambda s: fork_session_via_store(s, SID, PROJECT_DIR), id="load-fork"),
    pytest.param("load", {"a": 1}, "dict", lambda s: list_sessions_from_store(NoSummaries(s), PROJECT_DIR), id="load-slow-list"),
    pytest.param("load", ("tuple",), "tuple", lambda s: materialize_resume_session(s, resume=SID, cwd=PROJECT_DIR), id="load-resume"),
    pytest.param("load", [1, "x"], "int", lambda s: get_session_info_from_store(s, SID, PROJECT_DIR), id="load-items-info"),
    pytest.param("load", [None], "NoneType", lambda s: get_session_messages_from_store(s, SID, PROJECT_DIR), id="load-items-messages"),
    pytest.param("load", [["user"]], "list", lambda s: materialize_resume_session(s, resume=SID, cwd=PROJECT_DIR), id="load-items-resume"),
    pytest.param("list_sessions", None, "NoneType", lambda s: list_sessions_from_store(NoSummaries(s), PROJECT_DIR), id="list_sessions-slow"),
    pytest.param("list_sessions", None, "NoneType", lambda s: list_sessions_from_store(s, PROJECT_DIR), id="list_sessions-fast"),
    pytest.param("list_sessions", None, "NoneType", lambda s: materialize_resume_session(s, continue_conversation=True, cwd=PROJECT_DIR), id="list_sessions-continue"),
    pytest.param("list_sessions", [{"session_id": 7}], "int", lambda s: list_sessions_from_store(NoSummaries(s), PROJECT_DIR), id="list_sessions-row"),
    pytest.param("list_subkeys", "subagents/agent-a1", "str", lambda s: list_subagents_from_store(s, SID, PROJECT_DIR), id="list_subkeys-list"),
    pytest.param("list_subkeys", "subagents/agent-a1", "str", lambda s: get_subagent_messages_from_store(s, SID, "a1", PROJECT_DIR), id="list_subkeys-messages"),
    pytest.param("list_subkeys", [None], "NoneType", lambda s: list_subagents_from_store(s, SID, PROJECT_DIR), id="list_subkeys-item"),
    pytest.param("list_subkeys", "ab", "str", lambda s: materialize_resume_session(s, resume=SID, cwd=PROJECT_DIR), id="list_subkeys-resume"),
    pytest.param("list_session_summaries", [1, "junk"], "int", lambda s: list_sessions_from_store(s, PROJECT_DIR), id="summaries-junk"),
    pytest.param("list_session_summaries", [{"session_id": SID, "mtime": 1}], "NoneType", lambda s: list_sessions_from_store(s, PROJECT_DIR), id="summaries-no-data"),
    pytest.param("list_session_summaries", {"x": 1}, "dict", lambda s: list_sessions_from_store(s, PROJECT_DIR), id="summaries-dict"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "returned", "type_name", "read"), WRONG_RESULTS)
async def test_a_read_method_returning_the_wrong_type_is_a_type_error_naming_it(
    real_store: SessionStore, method: str, returned: object, type_name: str, read: ReadCall, temp_root: Path
) -> None:
    store = FaultyStore(await seeded(real_store), returns={method: returned})
    with compat.fail_after(WAIT_LIMIT_S), pytest.raises(TypeError) as caught:
        await read(store)
    message = str(caught.value)
    assert f"SessionStore.{method}() returned" in message and type_name in message and "expected a list" in message
    assert leftovers(temp_root) == []  # resume removed its temp dir
    await close_store(real_store)


# --- reads under failing and hanging stores --------------------------------------------------------------------


async def test_a_fraction_of_failing_loads_gives_degraded_rows_for_exactly_those_sessions(
    real_store: SessionStore,
) -> None:
    ids = [new_id() for _ in range(20)]
    for index, session_id in enumerate(ids):
        await seed(real_store, PROJECT_DIR, session_id, conversation(f"prompt {index}", session_id=session_id))
    failed: list[str] = []

    class Loads:
        """Records which sessions' loads the faulty store failed."""

        def __init__(self, store: FaultyStore) -> None:
            self.store = store
            self.append = store.append  # type: ignore[attr-defined]  # set per instance by FaultyStore
            self.list_sessions = store.list_sessions  # type: ignore[attr-defined]

        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            try:
                return await self.store.load(key)  # type: ignore[attr-defined, no-any-return]
            except InjectedFailure:
                failed.append(key["session_id"])
                raise

    store = FaultyStore(real_store, seed=5, fail_fraction=0.4, fail_methods=("load",))
    with compat.fail_after(WAIT_LIMIT_S):
        rows = await list_sessions_from_store(Loads(store), PROJECT_DIR)
    assert sorted(row.session_id for row in rows) == sorted(ids)  # every session listed
    assert failed and len(failed) < len(ids)
    degraded = {row.session_id for row in rows if row.summary == ""}
    assert degraded == set(failed)
    await close_store(real_store)


@pytest.mark.parametrize("method", ["load", "list_subkeys", "list_sessions"])
async def test_a_store_call_hanging_during_resume_is_a_runtime_error_and_leaves_no_temp_dir(
    real_store: SessionStore, method: str, temp_root: Path
) -> None:
    store = FaultyStore(await seeded(real_store), hang_calls={method: 1})
    options: dict[str, Any] = {"continue_conversation": True} if method == "list_sessions" else {"resume": SID}
    with compat.fail_after(WAIT_LIMIT_S), pytest.raises(RuntimeError, match=rf"SessionStore.{method}\(\).*timed out"):
        await materialize_resume_session(store, cwd=PROJECT_DIR, load_timeout_ms=200, **options)
    assert leftovers(temp_root) == []
    await close_store(real_store)


async def test_a_resume_load_failing_is_a_runtime_error_naming_the_call(
    real_store: SessionStore, temp_root: Path
) -> None:
    store = FaultyStore(await seeded(real_store), fail_fraction=1.0, fail_methods=("load",))
    with compat.fail_after(WAIT_LIMIT_S), pytest.raises(RuntimeError, match=r"SessionStore.load\(\).*InjectedFailure"):
        await materialize_resume_session(store, resume=SID, cwd=PROJECT_DIR)
    assert leftovers(temp_root) == []
    await close_store(real_store)


@pytest.mark.parametrize("exc_type", INTERRUPTIONS, ids=lambda t: t.__name__)
async def test_an_interruption_from_a_load_stops_a_listing_and_reaches_the_caller_as_itself(
    real_store: SessionStore, exc_type: type[BaseException]
) -> None:
    for index in range(20):
        session_id = new_id()
        await seed(real_store, PROJECT_DIR, session_id, conversation(f"prompt {index}", session_id=session_id))
    store = FaultyStore(real_store, raises={"load": raising(exc_type)}, skip_calls={"load": 5})
    before = running_tasks()
    with compat.fail_after(WAIT_LIMIT_S), pytest.raises(exc_type):  # not a group, and the loop keeps running
        await list_sessions_from_store(NoSummaries(store), PROJECT_DIR)  # type: ignore[arg-type]  # duck-typed
    assert running_tasks() <= before  # the task group stopped every other load
    assert "raised" in store.outcomes("load")
    await close_store(real_store)


# --- import under a failing store ------------------------------------------------------------------------------


async def test_an_import_failing_part_way_can_be_rerun_and_then_holds_every_entry_once_in_order(
    real_store: SessionStore, tmp_path: Path
) -> None:
    projects = tmp_path / "projects"
    project = key_for(PROJECT_DIR, SID)["project_key"]
    main = [*conversation("one", "two", session_id=SID), custom_title("Imported"), *conversation("three")]
    sub = conversation("sub one", "sub two")
    write_jsonl(projects / project / f"{SID}.jsonl", main)
    write_jsonl(projects / project / SID / f"{SUBAGENT}.jsonl", sub)
    store = FaultyStore(real_store, seed=3, fail_fraction=0.4, fail_methods=("append",))
    runs = 0
    with compat.fail_after(WAIT_LIMIT_S):
        while True:
            runs += 1
            try:
                await import_session_to_store(SID, store, projects_dir=projects, batch_size=2)
                break
            except InjectedFailure:  # an import does not retry: the caller runs it again
                assert runs < 100
    assert runs > 1, "the seed made no import fail: the test checks nothing"
    stored = await real_store.load(key_for(PROJECT_DIR, SID)) or []
    assert [entry for entry in stored if "uuid" in entry] == [entry for entry in main if "uuid" in entry]
    # an entry without a uuid (a title, a tag, the agent_metadata marker) is appended again by each rerun that
    # gets that far: stores can only deduplicate by uuid. The last one wins, so the session reads the same.
    titles = [entry for entry in stored if entry["type"] == "custom-title"]
    assert 1 <= len(titles) <= runs and all(title == custom_title("Imported") for title in titles)
    assert await real_store.load(key_for(PROJECT_DIR, SID, SUBAGENT)) == sub
    await close_store(real_store)
