"""TranscriptMirrorBatcher and build_mirror_batcher (reference §6, §16.2; SPEC §4 decisions 4 and 5).

Every async test runs under asyncio and trio. Stores here are small fakes that record what reaches them and can
fail, block on a ``compat.Event`` or take time, so each await inside a flush can be cancelled on purpose.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import compat
from session_store import batcher as batcher_module
from session_store.batcher import (
    MAX_PENDING_BYTES,
    MAX_PENDING_ENTRIES,
    MIRROR_APPEND_BACKOFF_S,
    MIRROR_APPEND_MAX_ATTEMPTS,
    SEND_TIMEOUT_SECONDS,
    TranscriptMirrorBatcher,
    build_mirror_batcher,
)
from session_store.types import SessionKey, SessionStoreEntry

PROJECTS_DIR = "/home/user/.claude/projects"
WAIT_LIMIT_S = 5.0  # generous bound on waits that must not hang a broken test


# --- factories --------------------------------------------------------------------------------------------------


def transcript_path(session: str = "sid-1", project: str = "proj", subpath: str | None = None) -> str:
    if subpath is None:
        return f"{PROJECTS_DIR}/{project}/{session}.jsonl"
    return f"{PROJECTS_DIR}/{project}/{session}/{subpath}.jsonl"


def entries(*ids: int) -> list[SessionStoreEntry]:
    return [{"type": "user", "uuid": f"u{i}"} for i in ids]


def ids_of(batch: list[SessionStoreEntry]) -> list[int]:
    return [int(entry["uuid"][1:]) for entry in batch]


def main_key(session: str = "sid-1", project: str = "proj") -> SessionKey:
    return {"project_key": project, "session_id": session}


class FakeStore:
    """Records successful appends; can fail the first calls, block until ``gate`` is set, or take ``delay_s``."""

    def __init__(
        self,
        *,
        failures: int = 0,
        error: Exception | None = None,
        gate: compat.Event | None = None,
        block_first_only: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.failures = failures
        self.error = error or RuntimeError("boom")
        self.gate = gate
        self.block_first_only = block_first_only
        self.delay_s = delay_s
        self.appends: list[tuple[SessionKey, list[SessionStoreEntry]]] = []
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = compat.Event()  # set once the first append has begun

    async def append(self, key: SessionKey, batch: list[SessionStoreEntry]) -> None:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.set()
        try:
            if self.gate is not None and not (self.block_first_only and self.calls > 1):
                await self.gate.wait()
            if self.delay_s:
                await compat.sleep(self.delay_s)
            if self.failures:
                self.failures -= 1
                raise self.error
            self.appends.append((key, list(batch)))
        finally:
            self.in_flight -= 1

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None

    def appended_ids(self) -> list[int]:
        return [i for _, batch in self.appends for i in ids_of(batch)]


class ErrorLog:
    """An async ``on_error`` that records ``(key, message)``."""

    def __init__(self) -> None:
        self.reports: list[tuple[SessionKey | None, str]] = []

    async def __call__(self, key: SessionKey | None, message: str) -> None:
        self.reports.append((key, message))


def make_batcher(store: Any, on_error: Any = None, **settings: Any) -> TranscriptMirrorBatcher:
    return TranscriptMirrorBatcher(store=store, projects_dir=PROJECTS_DIR, on_error=on_error or ErrorLog(), **settings)


def make_eager_batcher(store: Any, on_error: Any = None) -> TranscriptMirrorBatcher:
    return build_mirror_batcher(store, PROJECTS_DIR, on_error or ErrorLog(), flush_mode="eager")


async def eager_batcher_sending_1(gate: compat.Event) -> tuple[FakeStore, TranscriptMirrorBatcher]:
    """An eager batcher whose background flush of ``entries(1)`` is inside ``store.append()`` when this returns,
    held there until ``gate`` is set (later appends do not block)."""
    store = FakeStore(gate=gate, block_first_only=True)
    batcher = make_eager_batcher(store)
    batcher.enqueue(transcript_path(), entries(1))
    with compat.fail_after(WAIT_LIMIT_S):
        await store.started.wait()
    return store, batcher


async def wait_until(condition: Callable[[], bool]) -> None:
    with compat.fail_after(WAIT_LIMIT_S):
        while not condition():
            await compat.sleep(0.001)


@pytest.fixture
def recorded_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps the batcher asks for; they are not actually slept (the test keeps the default values)."""
    asked: list[float] = []
    real_sleep = compat.sleep

    def recording_sleep(seconds: float) -> Awaitable[None]:
        asked.append(seconds)
        return real_sleep(0)

    monkeypatch.setattr(compat, "sleep", recording_sleep)
    return asked


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_BACKOFF_S", (0.0, 0.0))


# --- module constants and construction -----------------------------------------------------------------------


def test_module_constants_match_the_reference() -> None:
    assert MAX_PENDING_ENTRIES == 500
    assert MAX_PENDING_BYTES == 1 << 20
    assert SEND_TIMEOUT_SECONDS == 60.0
    assert MIRROR_APPEND_MAX_ATTEMPTS == 3
    assert MIRROR_APPEND_BACKOFF_S == (0.2, 0.8)
    assert len(MIRROR_APPEND_BACKOFF_S) == MIRROR_APPEND_MAX_ATTEMPTS - 1


def test_batcher_defaults_are_500_entries_1_mib_and_60_s() -> None:
    batcher = make_batcher(FakeStore())
    assert (batcher.max_pending_entries, batcher.max_pending_bytes) == (500, 1 << 20)
    assert batcher.send_timeout == 60.0


@pytest.mark.parametrize(
    ("mode", "thresholds"),
    [(None, (500, 1 << 20)), ("batched", (500, 1 << 20)), ("eager", (0, 0))],
)
def test_build_mirror_batcher_sets_thresholds_per_flush_mode(mode: str | None, thresholds: tuple[int, int]) -> None:
    store, on_error = FakeStore(), ErrorLog()
    if mode is None:
        batcher = build_mirror_batcher(store, Path(PROJECTS_DIR), on_error)
    else:
        batcher = build_mirror_batcher(store, Path(PROJECTS_DIR), on_error, flush_mode=mode)  # type: ignore[arg-type]  # str from parametrize
    assert (batcher.max_pending_entries, batcher.max_pending_bytes) == thresholds
    assert batcher.projects_dir == PROJECTS_DIR
    assert batcher.store is store and batcher.on_error is on_error
    assert batcher.send_timeout == SEND_TIMEOUT_SECONDS


def test_build_mirror_batcher_rejects_an_unknown_flush_mode() -> None:
    with pytest.raises(ValueError, match="flush_mode must be 'batched' or 'eager', got 'sometimes'"):
        build_mirror_batcher(FakeStore(), PROJECTS_DIR, ErrorLog(), flush_mode="sometimes")  # type: ignore[arg-type]  # invalid on purpose


def test_enqueue_crossing_a_threshold_outside_an_event_loop_says_so() -> None:
    batcher = make_eager_batcher(FakeStore())
    with pytest.raises(compat.UnsupportedBackendError):
        batcher.enqueue(transcript_path(), entries(1))
    gc.collect()  # a leaked, never-awaited _drain() coroutine would warn here (warnings are errors)


# --- flushing --------------------------------------------------------------------------------------------------


async def test_flush_sends_one_coalesced_append_with_key_and_entries() -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(), entries(1, 2))
    batcher.enqueue(transcript_path(), entries(3))
    await batcher.flush()
    assert store.appends == [(main_key(), entries(1, 2, 3))]


async def test_flush_maps_subagent_paths_to_subpath_keys() -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(subpath="subagents/agent-7"), entries(1))
    await batcher.flush()
    assert store.appends == [
        ({"project_key": "proj", "session_id": "sid-1", "subpath": "subagents/agent-7"}, entries(1))
    ]


async def test_flush_of_empty_frames_sends_nothing() -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    await batcher.flush()
    batcher.enqueue(transcript_path(), [])
    await batcher.flush()
    assert store.calls == 0


async def test_coalescing_groups_frames_per_path_in_first_seen_order() -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path("a"), entries(1))
    batcher.enqueue(transcript_path("b"), entries(2))
    batcher.enqueue(transcript_path("a"), entries(3))
    await batcher.flush()
    assert store.appends == [(main_key("a"), entries(1, 3)), (main_key("b"), entries(2))]


async def test_enqueue_keeps_its_own_copy_of_the_frame_list() -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    frame = entries(1)
    batcher.enqueue(transcript_path(), frame)
    frame.append({"type": "user", "uuid": "u99"})
    await batcher.flush()
    assert store.appended_ids() == [1]


async def test_a_pathlike_and_a_str_path_of_one_file_share_one_buffer() -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    batcher.enqueue(Path(transcript_path()), entries(1))  # type: ignore[arg-type]  # PathLike on purpose
    batcher.enqueue(transcript_path(), entries(2))
    batcher.enqueue(Path(transcript_path()), entries(3))  # type: ignore[arg-type]
    await batcher.flush()
    assert store.appends == [(main_key(), entries(1, 2, 3))]


@pytest.mark.parametrize(
    ("file_path", "named", "fix"),
    [
        (f"{PROJECTS_DIR}/proj/sid-1.jsonl".encode(), "bytes", "os.fsdecode()"),
        (7, "int", "str or os.PathLike path of str"),
        (None, "NoneType", "str or os.PathLike path of str"),
    ],
)
async def test_enqueue_refuses_a_path_that_is_not_a_str_path_naming_it(file_path: Any, named: str, fix: str) -> None:
    store = FakeStore()
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(), entries(1))
    with pytest.raises(TypeError, match="file_path") as raised:
        batcher.enqueue(file_path, entries(2))
    assert repr(file_path) in str(raised.value) and named in str(raised.value) and fix in str(raised.value)
    await batcher.close()  # a bytes path used to be buffered and sink the whole flush, good paths included
    assert store.appends == [(main_key(), entries(1))]


class KeepingStore:
    """Keeps the very list objects it is given (as a store that stores rows by reference would); the first call
    blocks until cancelled."""

    def __init__(self) -> None:
        self.given: list[list[SessionStoreEntry]] = []
        self.kept: list[list[SessionStoreEntry]] = []
        self.started = compat.Event()

    async def append(self, key: SessionKey, batch: list[SessionStoreEntry]) -> None:
        self.given.append(batch)
        if len(self.given) == 1:
            self.started.set()
            await compat.Event().wait()  # never set: only a cancellation gets out
        self.kept.append(batch)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None


async def test_lists_handed_to_the_store_never_change_afterwards() -> None:
    store = KeepingStore()
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(), entries(1, 2))
    batcher.enqueue(transcript_path("other"), entries(9))
    flushing = compat.spawn_detached(batcher.flush())
    with compat.fail_after(WAIT_LIMIT_S):
        await store.started.wait()
    flushing.cancel()  # cancelled inside the first append, which still holds its list
    await flushing.wait()
    assert store.kept == [] and batcher._detached == {
        transcript_path(): entries(1, 2),
        transcript_path("other"): entries(9),
    }
    batcher.enqueue(transcript_path(), entries(3))  # same path: extends the batcher's own list, not the store's
    await batcher.flush()
    batcher.enqueue(transcript_path(), entries(4))  # after a success: a new list, not the one the store kept
    await batcher.close()
    assert [ids_of(batch) for batch in store.given] == [[1, 2], [1, 2, 3], [9], [4]]
    assert len({id(batch) for batch in store.given}) == 4


async def test_crossing_the_entry_threshold_starts_a_background_flush() -> None:
    store = FakeStore()
    batcher = make_batcher(store, max_pending_entries=5)
    batcher.enqueue(transcript_path(), entries(1, 2, 3, 4, 5))  # exactly at the threshold: no flush
    await compat.sleep(0.01)
    assert store.calls == 0
    batcher.enqueue(transcript_path(), entries(6))
    await wait_until(lambda: store.calls == 1)
    assert store.appended_ids() == [1, 2, 3, 4, 5, 6]
    await batcher.close()


async def test_crossing_the_byte_threshold_starts_a_background_flush() -> None:
    store = FakeStore()
    batcher = make_batcher(store, max_pending_bytes=100)
    batcher.enqueue(transcript_path(), [{"type": "user", "uuid": "u1", "text": "x" * 120}])
    await wait_until(lambda: store.calls == 1)
    assert len(store.appends) == 1
    await batcher.close()


async def test_eager_mode_appends_once_per_frame() -> None:
    store = FakeStore()
    batcher = make_eager_batcher(store)
    for i in (1, 2, 3):
        batcher.enqueue(transcript_path(), entries(i))
        await wait_until(lambda i=i: store.calls == i)  # type: ignore[misc]  # loop variable bound on purpose
    assert [ids_of(batch) for _, batch in store.appends] == [[1], [2], [3]]
    await batcher.close()
    assert batcher.background_flushes == 0


async def test_background_flushes_never_interleave_or_duplicate() -> None:
    store = FakeStore(delay_s=0.01)
    batcher = make_eager_batcher(store)
    for i in range(1, 6):
        batcher.enqueue(transcript_path(), entries(i))
        await compat.sleep(0.003)
    await batcher.close()
    assert store.max_in_flight == 1
    assert store.appended_ids() == [1, 2, 3, 4, 5]


async def test_explicit_flush_waits_for_a_background_flush_in_progress() -> None:
    gate = compat.Event()
    store, batcher = await eager_batcher_sending_1(gate)
    batcher.enqueue(transcript_path(), entries(2))
    batcher.enqueue(transcript_path(), entries(3))
    async with compat.create_task_group() as tg:
        tg.start_soon(batcher.flush)
        await compat.sleep(0.02)
        assert store.appended_ids() == []  # the explicit flush is queued behind the lock
        gate.set()
    assert store.appended_ids() == [1, 2, 3]
    assert store.max_in_flight == 1
    await batcher.close()


# --- failures, retries and timeouts ------------------------------------------------------------------------------


async def test_append_error_is_reported_once_with_key_and_message(no_backoff: None) -> None:
    on_error = ErrorLog()
    store = FakeStore(failures=3)
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()  # does not raise
    assert store.calls == 3
    [(key, message)] = on_error.reports
    assert key == main_key()
    assert "boom" in message and "3 of 3 attempts" in message and transcript_path() in message


async def test_two_failures_then_success_delivers_after_backing_off_0_2_then_0_8(
    recorded_backoff: list[float],
) -> None:
    on_error = ErrorLog()
    store = FakeStore(failures=2)
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    assert store.appends == [(main_key(), entries(1))]
    assert recorded_backoff == [0.2, 0.8]
    assert on_error.reports == []


async def test_backoff_and_attempts_follow_the_module_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_MAX_ATTEMPTS", 2)
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_BACKOFF_S", (0.001,))
    on_error = ErrorLog()
    store = FakeStore(failures=5)
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    assert store.calls == 2
    assert len(on_error.reports) == 1


async def test_timeout_is_not_retried_and_reports_what_timed_out_and_after_how_long(
    recorded_backoff: list[float],
) -> None:
    on_error = ErrorLog()
    store = FakeStore(gate=compat.Event())  # never set: append hangs
    batcher = make_batcher(store, on_error, send_timeout=0.05)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    assert store.calls == 1
    assert recorded_backoff == []
    [(key, message)] = on_error.reports
    assert key == main_key()
    assert "SessionStore.append()" in message and "timed out after 0.05s" in message  # SPEC §4 decision 4
    assert transcript_path() in message


async def test_a_timeout_raised_by_the_adapter_itself_is_not_retried_and_keeps_its_text() -> None:
    on_error = ErrorLog()
    store = FakeStore(failures=1, error=TimeoutError("socket read timed out"))
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    assert store.calls == 1
    [(_, message)] = on_error.reports
    assert "raised TimeoutError" in message and "socket read timed out" in message


class ThreadBoundStore:
    """An adapter whose append runs blocking I/O in a thread that a timeout cannot stop."""

    def __init__(self, io_seconds: float) -> None:
        self.io_seconds = io_seconds
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def _blocking_append(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.io_seconds)
        with self._lock:
            self.in_flight -= 1
        self.finished.set()

    async def append(self, key: SessionKey, batch: list[SessionStoreEntry]) -> None:
        self.calls += 1
        await compat.run_sync(self._blocking_append, abandon_on_cancel=True)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None


async def test_a_timed_out_append_never_runs_beside_a_retry() -> None:
    on_error = ErrorLog()
    store = ThreadBoundStore(io_seconds=0.2)
    batcher = make_batcher(store, on_error, send_timeout=0.02)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    await compat.run_sync(store.finished.wait, WAIT_LIMIT_S)
    assert store.calls == 1
    assert store.max_in_flight == 1
    assert len(on_error.reports) == 1


async def test_a_path_outside_projects_dir_is_reported_with_no_key() -> None:
    on_error = ErrorLog()
    store = FakeStore()
    batcher = make_batcher(store, on_error)
    batcher.enqueue("/elsewhere/proj/sid-1.jsonl", entries(1))
    batcher.enqueue(transcript_path(), entries(2))
    await batcher.flush()
    assert store.appends == [(main_key(), entries(2))]  # the mapped path still goes through
    [(key, message)] = on_error.reports  # SPEC §4 decision 5
    assert key is None
    assert "/elsewhere/proj/sid-1.jsonl" in message and PROJECTS_DIR in message


async def test_a_failure_on_one_path_does_not_stop_the_others(no_backoff: None) -> None:
    on_error = ErrorLog()
    store = FakeStore(failures=3)
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path("a"), entries(1))
    batcher.enqueue(transcript_path("b"), entries(2))
    await batcher.flush()
    assert store.appends == [(main_key("b"), entries(2))]
    assert [key for key, _ in on_error.reports] == [main_key("a")]


async def test_flush_swallows_an_unexpected_error_inside_the_send(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    batcher = make_batcher(FakeStore())

    async def broken_send() -> None:
        raise RuntimeError("internal bug")

    monkeypatch.setattr(batcher, "_send_detached", broken_send)
    batcher.enqueue(transcript_path(), entries(1))
    with caplog.at_level(logging.ERROR, logger="session_store.batcher"):
        await batcher.flush()
        await batcher.close()
    assert "internal bug" in caplog.text


async def test_a_path_the_send_cannot_handle_is_reported_and_the_other_paths_still_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = batcher_module.file_path_to_session_key

    def breaks_on_b(file_path: str, projects_dir: str) -> SessionKey | None:
        if "/b.jsonl" in file_path:
            raise RuntimeError("internal bug on b")
        return real(file_path, projects_dir)

    monkeypatch.setattr(batcher_module, "file_path_to_session_key", breaks_on_b)
    on_error = ErrorLog()
    store = FakeStore()
    batcher = make_batcher(store, on_error)
    for session, i in (("a", 1), ("b", 2), ("c", 3)):
        batcher.enqueue(transcript_path(session), entries(i))
    await batcher.flush()
    assert store.appends == [(main_key("a"), entries(1)), (main_key("c"), entries(3))]
    [(key, message)] = on_error.reports  # not silently lost: the dropped frame is reported
    assert key is None
    assert "1 entries" in message and transcript_path("b") in message and "internal bug on b" in message


async def test_close_flushes_and_never_raises(no_backoff: None) -> None:
    store = FakeStore(failures=3)
    on_error = ErrorLog()
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.close()
    assert store.calls == 3 and len(on_error.reports) == 1
    ok_store = FakeStore()
    ok_batcher = make_batcher(ok_store)
    ok_batcher.enqueue(transcript_path(), entries(2))
    await ok_batcher.close()
    await ok_batcher.close()  # a second close finds nothing to do
    assert ok_store.appends == [(main_key(), entries(2))]


# --- on_error ---------------------------------------------------------------------------------------------------


async def test_on_error_runs_after_the_lock_is_released(no_backoff: None) -> None:
    store = FakeStore(failures=3)
    batcher: TranscriptMirrorBatcher

    async def on_error(key: SessionKey | None, message: str) -> None:
        # Flushing from the callback would deadlock (or, on trio, raise) if the lock were still held.
        batcher.enqueue(transcript_path("later"), entries(9))
        with compat.fail_after(WAIT_LIMIT_S):
            await batcher.flush()

    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    assert store.appends == [(main_key("later"), entries(9))]


async def test_on_error_may_be_a_plain_function(no_backoff: None) -> None:
    reports: list[tuple[SessionKey | None, str]] = []
    batcher = make_batcher(FakeStore(failures=3), lambda key, message: reports.append((key, message)))
    batcher.enqueue(transcript_path(), entries(1))
    await batcher.flush()
    assert [key for key, _ in reports] == [main_key()]


async def test_an_on_error_callback_that_raises_is_logged_and_swallowed(
    no_backoff: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_error(key: SessionKey | None, message: str) -> None:
        raise ValueError("callback broke")

    batcher = make_batcher(FakeStore(failures=3), on_error)
    batcher.enqueue(transcript_path(), entries(1))
    with caplog.at_level(logging.ERROR, logger="session_store.batcher"):
        await batcher.flush()
    assert "callback broke" in caplog.text


# --- cancellation at each await ------------------------------------------------------------------------------------


async def test_flush_cancelled_inside_append_loses_nothing_after_close() -> None:
    store = FakeStore(gate=compat.Event(), block_first_only=True)
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(), entries(1, 2))
    with compat.move_on_after(0.05) as scope:
        await batcher.flush()
    assert scope.cancelled_caught
    assert store.appends == []
    batcher.enqueue(transcript_path(), entries(3))
    await batcher.close()
    assert store.appends == [(main_key(), entries(1, 2, 3))]
    assert store.in_flight == 0


async def test_flush_cancelled_while_waiting_for_the_lock_keeps_order_after_close() -> None:
    gate = compat.Event()
    store = FakeStore(gate=gate, block_first_only=True)
    batcher = make_batcher(store, max_pending_entries=0)
    batcher.enqueue(transcript_path(), entries(1))  # background flush, blocked in append
    with compat.fail_after(WAIT_LIMIT_S):
        await store.started.wait()
    batcher.max_pending_entries = MAX_PENDING_ENTRIES
    batcher.enqueue(transcript_path(), entries(2))
    with compat.move_on_after(0.05) as scope:
        await batcher.flush()  # waits for the lock held by the background flush
    assert scope.cancelled_caught
    gate.set()
    await batcher.close()
    assert store.appended_ids() == [1, 2]
    assert batcher.background_flushes == 0


async def test_flush_cancelled_during_backoff_loses_nothing_after_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher_module, "MIRROR_APPEND_BACKOFF_S", (60.0, 60.0))
    on_error = ErrorLog()
    store = FakeStore(failures=1)
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    with compat.move_on_after(0.05) as scope:
        await batcher.flush()  # first attempt fails, then sleeps 60 s
    assert scope.cancelled_caught
    await batcher.close()  # the store works now: the batch is sent afresh
    assert store.appends == [(main_key(), entries(1))]
    assert store.calls == 2
    assert on_error.reports == []


async def test_flush_cancelled_inside_on_error_leaves_the_batcher_usable(no_backoff: None) -> None:
    reported: list[str] = []
    release = compat.Event()

    async def on_error(key: SessionKey | None, message: str) -> None:
        reported.append(message)
        await release.wait()

    store = FakeStore(failures=3)
    batcher = make_batcher(store, on_error)
    batcher.enqueue(transcript_path(), entries(1))
    with compat.move_on_after(0.05) as scope:
        await batcher.flush()
    assert scope.cancelled_caught
    assert len(reported) == 1
    batcher.enqueue(transcript_path(), entries(2))
    await batcher.close()
    assert store.appends == [(main_key(), entries(2))]
    assert len(reported) == 1  # the failure was reported once, not again at close


async def test_cancelled_background_flush_gives_its_frames_back_to_close() -> None:
    store, batcher = await eager_batcher_sending_1(compat.Event())
    [handle] = batcher._background  # the one background flush, blocked in append()
    handle.cancel()
    await handle.wait()
    await batcher.close()
    assert store.appends == [(main_key(), entries(1))]


async def test_close_in_an_already_cancelled_scope_still_flushes() -> None:
    store = FakeStore(delay_s=0.01)  # append yields, so an unshielded flush would be cancelled
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(), entries(1))
    with compat.move_on_after(0) as scope:
        # The deadline has passed on entry: trio cancels every unshielded checkpoint from here on; asyncio has the
        # cancellation pending and delivers it at the first await that yields, i.e. inside close().
        await batcher.close()
        await compat.checkpoint()
    assert scope.cancelled_caught
    assert store.appends == [(main_key(), entries(1))]


async def test_close_completes_the_final_flush_when_the_caller_is_cancelled_meanwhile() -> None:
    store = FakeStore(delay_s=0.15)
    batcher = make_batcher(store)
    batcher.enqueue(transcript_path(), entries(1))
    started = compat.current_time()
    with compat.move_on_after(0.02) as scope:
        await batcher.close()
        await compat.checkpoint()
    assert scope.cancelled_caught
    assert compat.current_time() - started >= 0.15
    assert store.appends == [(main_key(), entries(1))]


async def test_close_waits_for_background_flushes_and_leaves_no_task_behind() -> None:
    store = FakeStore(delay_s=0.02)
    batcher = make_eager_batcher(store)
    batcher.enqueue(transcript_path(), entries(1))
    await wait_until(lambda: store.in_flight == 1)  # the first flush is sending
    for i in (2, 3):
        batcher.enqueue(transcript_path(), entries(i))
    assert batcher.background_flushes == 2  # one sending, one waiting (3 rode along with 2)
    await batcher.close()
    assert batcher.background_flushes == 0
    assert store.appended_ids() == [1, 2, 3]
    assert store.in_flight == 0


# --- eager coalescing: at most one waiting background flush ------------------------------------------------------


async def test_eager_frames_enqueued_in_one_tick_cost_one_flush_and_one_append() -> None:
    store = FakeStore()
    batcher = make_eager_batcher(store)
    for i in range(1, 51):
        batcher.enqueue(transcript_path(), entries(i))
    assert batcher.background_flushes == 1
    await wait_until(lambda: batcher.background_flushes == 0)
    assert [ids_of(batch) for _, batch in store.appends] == [list(range(1, 51))]
    await batcher.close()
    assert store.calls == 1


async def test_eager_frames_of_one_tick_for_two_paths_cost_one_append_per_path() -> None:
    store = FakeStore()
    batcher = make_eager_batcher(store)
    for i in range(1, 11):
        batcher.enqueue(transcript_path(subpath="subagents/agent-1" if i % 2 else None), entries(i))
    await batcher.close()
    assert [(key.get("subpath"), ids_of(batch)) for key, batch in store.appends] == [
        ("subagents/agent-1", [1, 3, 5, 7, 9]),
        (None, [2, 4, 6, 8, 10]),
    ]


async def test_behind_a_slow_store_one_flush_sends_one_waits_and_order_holds() -> None:
    store = FakeStore(delay_s=0.01)
    batcher = make_eager_batcher(store)
    most_flushes = 0
    for i in range(1, 101):
        batcher.enqueue(transcript_path(), entries(i))
        most_flushes = max(most_flushes, batcher.background_flushes)
        await compat.sleep(0.0005 if i % 3 else 0)
    await batcher.close()
    assert store.appended_ids() == list(range(1, 101))
    assert store.max_in_flight == 1
    assert most_flushes <= 2
    assert store.calls < 50  # frames rode along with the waiting flush instead of one append each


async def test_an_explicit_flush_behind_a_waiting_background_flush_keeps_enqueue_order() -> None:
    gate = compat.Event()
    store, batcher = await eager_batcher_sending_1(gate)  # the next flush will wait for the lock
    batcher.enqueue(transcript_path(), entries(2))
    async with compat.create_task_group() as tg:
        tg.start_soon(batcher.flush)  # takes [2] (and whatever else it finds under the lock)
        await compat.sleep(0.01)
        batcher.enqueue(transcript_path(), entries(3))
        batcher.enqueue(transcript_path(), entries(4))
        gate.set()
    await batcher.close()
    assert store.appended_ids() == [1, 2, 3, 4]
    assert store.max_in_flight == 1


async def test_a_waiting_background_flush_cancelled_loses_nothing_and_frees_its_slot() -> None:
    gate = compat.Event()
    store, batcher = await eager_batcher_sending_1(gate)
    [sending] = list(batcher._background)
    batcher.enqueue(transcript_path(), entries(2))
    batcher.enqueue(transcript_path(), entries(3))  # rides along with the waiting flush of [2]
    [waiting] = [handle for handle in batcher._background if handle is not sending]
    await compat.sleep(0.01)  # the waiting flush has started and is queued on the lock
    waiting.cancel()
    await waiting.wait()
    batcher.enqueue(transcript_path(), entries(4))  # the slot is free again: a new flush is started
    assert batcher.background_flushes == 2
    gate.set()
    await batcher.close()
    assert store.appended_ids() == [1, 2, 3, 4]
    assert batcher.background_flushes == 0


async def test_a_background_flush_cancelled_before_it_started_frees_its_slot() -> None:
    store = FakeStore()
    batcher = make_eager_batcher(store)
    batcher.enqueue(transcript_path(), entries(1))
    [handle] = list(batcher._background)
    handle.cancel()  # before the task ever ran
    await handle.wait()
    assert store.calls == 0
    batcher.enqueue(transcript_path(), entries(2))
    await wait_until(lambda: store.calls == 1)  # a new background flush ran: nothing was stuck in the slot
    assert store.appended_ids() == [1, 2]
    await batcher.close()
    assert batcher.background_flushes == 0
