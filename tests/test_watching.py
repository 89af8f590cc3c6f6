"""TranscriptFolderWatcher: which lines and sidecars of a projects folder reach the store, and when it stops.

Every async test runs under asyncio and trio. Each one writes a projects folder under tmp_path, follows it with
a real ``TranscriptMirrorBatcher`` into a store that records every append, and asserts the exact appends. These
batchers are not built on ``watcher.exactly_once_store``: the exactly-once path (positions, retries after a failed
append, the pending limits) is tested in tests/test_mirror_trust.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import compat
from session_store.batcher import TranscriptMirrorBatcher, build_mirror_batcher
from session_store.types import SessionKey, SessionStoreEntry
from session_store.watching import TranscriptFolderWatcher, TranscriptFrame

PROJECT = "-work-app"
SESSION = "11111111-2222-4333-8444-555555555555"
AGENT = "a1b2c3"
MAIN_KEY: SessionKey = {"project_key": PROJECT, "session_id": SESSION}
AGENT_KEY: SessionKey = {"project_key": PROJECT, "session_id": SESSION, "subpath": f"subagents/agent-{AGENT}"}
WAIT_LIMIT_SECONDS = 5.0  # bound on waits that must not hang a broken test


# --- factories ----------------------------------------------------------------------------------------------


def entry(text: str) -> dict[str, Any]:
    return {"type": "user", "uuid": f"uuid-{text}", "message": {"role": "user", "content": text}}


def jsonl(*entries: dict[str, Any]) -> str:
    return "".join(json.dumps(item) + "\n" for item in entries)


@dataclass
class ProjectsFolder:
    """A Claude projects folder with one session (and optionally one subagent) of the project PROJECT."""

    root: Path

    @property
    def main(self) -> Path:
        return self.root / PROJECT / f"{SESSION}.jsonl"

    @property
    def agent(self) -> Path:
        return self.root / PROJECT / SESSION / "subagents" / f"agent-{AGENT}.jsonl"

    @property
    def sidecar(self) -> Path:
        return self.agent.with_name(f"agent-{AGENT}.meta.json")

    def append(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)

    def write_sidecar(self, metadata: dict[str, Any]) -> None:
        self.sidecar.parent.mkdir(parents=True, exist_ok=True)
        self.sidecar.write_text(json.dumps(metadata), encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> ProjectsFolder:
    root = tmp_path / "projects"
    root.mkdir()
    return ProjectsFolder(root)


@dataclass
class RecordingStore:
    """Records every append, in order."""

    appends: list[tuple[SessionKey, list[SessionStoreEntry]]] = field(default_factory=list)

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.appends.append((key, list(entries)))

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None


@dataclass
class Mirror:
    """A recording store, a batcher into it and the errors the batcher reported."""

    root: Path
    store: RecordingStore = field(default_factory=RecordingStore)
    errors: list[str] = field(default_factory=list)
    batcher: TranscriptMirrorBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = build_mirror_batcher(self.store, self.root, lambda key, message: self.errors.append(message))


# --- what reaches the store ---------------------------------------------------------------------------------


async def test_from_start_sends_existing_lines_then_the_sidecar_as_agent_metadata(folder: ProjectsFolder) -> None:
    folder.append(folder.main, jsonl(entry("q1"), entry("a1")))
    folder.append(folder.agent, jsonl(entry("sub1")))
    folder.write_sidecar({"agentType": "Explore", "toolUseId": "toolu_01"})
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root, from_start=True)

    await watcher.follow(mirror.batcher, once=True)

    assert mirror.store.appends == [
        (AGENT_KEY, [entry("sub1"), {"agentType": "Explore", "toolUseId": "toolu_01", "type": "agent_metadata"}]),
        (MAIN_KEY, [entry("q1"), entry("a1")]),
    ]
    assert mirror.errors == []


async def test_without_from_start_only_lines_written_after_creation_are_sent(folder: ProjectsFolder) -> None:
    folder.append(folder.main, jsonl(entry("old")))
    folder.write_sidecar({"toolUseId": "toolu_old"})
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)

    await watcher.follow(mirror.batcher, once=True)
    nothing_yet = list(mirror.store.appends)
    folder.append(folder.main, jsonl(entry("new")))
    await watcher.follow(mirror.batcher, once=True)

    assert nothing_yet == []
    assert mirror.store.appends == [(MAIN_KEY, [entry("new")])]


async def test_a_half_written_line_waits_until_its_newline(folder: ProjectsFolder) -> None:
    folder.append(folder.main, "")
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)
    line = jsonl(entry("typed"))

    folder.append(folder.main, line[:15])
    await watcher.follow(mirror.batcher, once=True)
    before_newline = list(mirror.store.appends)
    folder.append(folder.main, line[15:])
    await watcher.follow(mirror.batcher, once=True)

    assert before_newline == []
    assert mirror.store.appends == [(MAIN_KEY, [entry("typed")])]


async def test_a_sidecar_is_sent_again_only_when_it_changes(folder: ProjectsFolder) -> None:
    folder.append(folder.agent, jsonl(entry("sub1")))
    folder.write_sidecar({"toolUseId": "toolu_01"})
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)

    await watcher.follow(mirror.batcher, once=True)
    folder.write_sidecar({"toolUseId": "toolu_01", "parentAgentId": "parent-agent"})
    await watcher.follow(mirror.batcher, once=True)
    await watcher.follow(mirror.batcher, once=True)

    assert mirror.store.appends == [
        (AGENT_KEY, [{"toolUseId": "toolu_01", "parentAgentId": "parent-agent", "type": "agent_metadata"}])
    ]


async def test_files_that_are_not_transcript_paths_are_ignored(folder: ProjectsFolder) -> None:
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)
    folder.append(folder.root / "stray.jsonl", jsonl(entry("top level")))
    folder.append(folder.root / PROJECT / SESSION / "notes.jsonl", jsonl(entry("three parts")))
    folder.append(folder.main, jsonl(entry("kept")))

    await watcher.follow(mirror.batcher, once=True)

    assert mirror.store.appends == [(MAIN_KEY, [entry("kept")])]


async def test_lines_that_are_not_entries_are_skipped_and_reported_with_file_and_line(
    folder: ProjectsFolder,
) -> None:
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)
    problems: list[str] = []
    folder.append(folder.main, jsonl(entry("one")) + "\n" + '{"torn\n' + "[1, 2]\n" + jsonl(entry("two")))

    await watcher.follow(mirror.batcher, once=True, on_problem=problems.append)

    assert mirror.store.appends == [(MAIN_KEY, [entry("one"), entry("two")])]
    assert problems == [
        f"{folder.main}:3: not a transcript entry (a JSON object with a type)",
        f"{folder.main}:4: not a transcript entry (a JSON object with a type)",
    ]
    assert watcher.problems == []


async def test_problems_are_logged_as_warnings_without_on_problem(
    folder: ProjectsFolder, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)
    folder.append(folder.main, "not json\n")

    with caplog.at_level(logging.WARNING, logger="session_store.watching"):
        await watcher.follow(mirror.batcher, once=True)

    assert [record.getMessage() for record in caplog.records] == [
        f"{folder.main}:1: not a transcript entry (a JSON object with a type)"
    ]


async def test_a_file_that_shrinks_is_read_again_from_its_start(folder: ProjectsFolder) -> None:
    folder.append(folder.main, jsonl(entry("long line before the rewrite")))
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)
    problems: list[str] = []

    folder.main.write_text(jsonl(entry("short")), encoding="utf-8")
    await watcher.follow(mirror.batcher, once=True, on_problem=problems.append)

    assert mirror.store.appends == [(MAIN_KEY, [entry("short")])]
    assert problems == [f"{folder.main} shrank; reading it again from the start"]


async def test_on_frame_sees_each_frame_transcript_lines_before_sidecars(folder: ProjectsFolder) -> None:
    folder.append(folder.main, jsonl(entry("q")))
    folder.append(folder.agent, jsonl(entry("sub")))
    folder.write_sidecar({"toolUseId": "toolu_02"})
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root, from_start=True)
    frames: list[TranscriptFrame] = []

    await watcher.follow(mirror.batcher, once=True, on_frame=frames.append)

    assert frames == [
        TranscriptFrame(folder.agent, [entry("sub")]),  # in path order: the session folder sorts before its file
        TranscriptFrame(folder.main, [entry("q")]),
        TranscriptFrame(folder.agent, [{"toolUseId": "toolu_02", "type": "agent_metadata"}]),  # sidecars last
    ]


# --- how it stops -------------------------------------------------------------------------------------------


async def test_follow_sends_lines_appended_while_it_runs_and_returns_after_duration(folder: ProjectsFolder) -> None:
    folder.append(folder.main, "")
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)

    async def write_later() -> None:
        await compat.sleep(0.05)
        folder.append(folder.main, jsonl(entry("live")))

    started = compat.current_time()
    with compat.fail_after(WAIT_LIMIT_SECONDS):
        async with compat.create_task_group() as tasks:
            tasks.start_soon(write_later)
            await watcher.follow(mirror.batcher, interval=0.01, duration=0.3)

    assert compat.current_time() - started >= 0.3
    assert mirror.store.appends == [(MAIN_KEY, [entry("live")])]


async def test_follow_without_once_or_duration_runs_until_cancelled(folder: ProjectsFolder) -> None:
    folder.append(folder.main, jsonl(entry("before")))
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root, from_start=True)

    with compat.move_on_after(0.2) as scope:
        await watcher.follow(mirror.batcher, interval=0.01)
    await mirror.batcher.close()

    assert scope.cancelled_caught
    assert mirror.store.appends == [(MAIN_KEY, [entry("before")])]


async def test_follow_returns_after_one_more_poll_once_a_stop_is_requested(folder: ProjectsFolder) -> None:
    """Lines written before the request are mirrored: the last poll starts after the request was seen."""
    folder.append(folder.main, "")
    mirror = Mirror(folder.root)
    watcher = TranscriptFolderWatcher(folder.root)
    polls_seen: list[int] = []

    def stop_requested() -> bool:
        polls_seen.append(len(polls_seen))
        if len(polls_seen) == 3:  # the third check: write, then ask to stop
            folder.append(folder.main, jsonl(entry("last words")))
            return True
        return False

    with compat.fail_after(WAIT_LIMIT_SECONDS):
        await watcher.follow(mirror.batcher, interval=0.01, stop_requested=stop_requested)

    assert len(polls_seen) == 3  # not asked again after the stop
    assert mirror.store.appends == [(MAIN_KEY, [entry("last words")])]


# --- bad input ----------------------------------------------------------------------------------------------


def test_a_missing_projects_folder_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(NotADirectoryError, match=f"projects folder {missing} does not exist"):
        TranscriptFolderWatcher(missing)


@pytest.mark.parametrize(("option", "value"), [("interval", -1.0), ("interval", float("nan")), ("duration", -0.5)])
async def test_follow_rejects_negative_or_nan_seconds(folder: ProjectsFolder, option: str, value: float) -> None:
    watcher = TranscriptFolderWatcher(folder.root)
    mirror = Mirror(folder.root)

    with pytest.raises(ValueError, match=f"{option} must be a non-negative number of seconds"):
        await watcher.follow(mirror.batcher, **{option: value})


@pytest.mark.parametrize(
    ("option", "value", "error", "message"),
    [
        ("max_pending_lines", 0, ValueError, "max_pending_lines must be at least 1, got 0"),
        ("max_pending_bytes", -5, ValueError, "max_pending_bytes must be at least 1, got -5"),
        ("max_pending_lines", True, TypeError, "max_pending_lines must be an int, got bool True"),
        ("max_pending_bytes", 1.5, TypeError, "max_pending_bytes must be an int, got float 1.5"),
    ],
)
def test_pending_limits_that_are_not_positive_ints_are_refused(
    folder: ProjectsFolder, option: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        TranscriptFolderWatcher(folder.root, **{option: value})  # type: ignore[arg-type]
