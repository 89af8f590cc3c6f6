"""``mirror`` stores every line exactly once (issue 14, items 11 and 12): across restarts, kills, outages and
two mirrors on one folder, uuid or not; its report counts only what it stored.

Two layers:

- the library (:class:`~session_store.watching.TranscriptFolderWatcher` with a batcher on its
  ``exactly_once_store``), in process, on asyncio and trio: the position file, the rewind after a failed
  append, the window between an append and the position save (a stale position file), the read limits,
  sidecars and a line too deep for the JSON parser;
- the command, ``python -m session_store mirror`` as a subprocess against real files and a real SQLite file,
  PostgreSQL or Redis server (tests/servers.py), stopped with SIGTERM, killed with SIGKILL, its server stopped
  and started again; and a hypothesis property over random schedules of those.

Transcripts mix lines with a ``uuid`` and repeated lines without one (``summary``, ``tag``, ``custom-title``),
the lines plain ``append`` would store again.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import processes
import pytest
from hypothesis import given
from hypothesis import strategies as st
from property_support import BACKEND_PARAMS, property_settings, run_on
from servers import PostgresServer, RedisServer

import compat
from session_store import watching
from session_store.adapters import open_store
from session_store.batcher import TranscriptMirrorBatcher, build_mirror_batcher
from session_store.cli.mirror import default_positions_path, store_identity
from session_store.exactly_once import append_once, occurrences
from session_store.memory import InMemorySessionStore
from session_store.types import SessionKey, SessionStore, SessionStoreEntry
from session_store.watching import POSITIONS_FORMAT, TranscriptFolderWatcher

REPO = Path(__file__).resolve().parent.parent
PROJECT = "-work-app"
AGENT = "a1b2c3"
WAIT_SECONDS = 60.0  # bound on every wait for a mirror process; far above what a healthy run needs
BACKENDS = ("asyncio", "trio")


# --- transcripts --------------------------------------------------------------------------------------------


def make_lines(session: str, start: int, count: int) -> list[dict[str, Any]]:
    """Lines ``start`` .. ``start + count - 1`` of a transcript: most with a uuid, some repeated without one."""
    lines: list[dict[str, Any]] = []
    for n in range(start, start + count):
        if n % 5 == 3:
            lines.append({"type": "summary", "summary": "Same summary every time", "leafUuid": "leaf-1"})
        elif n % 7 == 6:
            lines.append({"type": "tag", "tag": f"tag-{n % 2}", "sessionId": session})
        elif n % 11 == 10:
            lines.append({"type": "custom-title", "customTitle": "Title", "sessionId": session})
        else:
            lines.append(
                {"type": "user", "uuid": f"{session}-{n}", "message": {"role": "user", "content": f"line {n}"}}
            )
    return lines


@dataclass
class Folder:
    """A Claude projects folder: transcripts of the project PROJECT, appended to line by line."""

    root: Path
    written: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def path(self, session: str) -> Path:
        return self.root / PROJECT / f"{session}.jsonl"

    def key(self, session: str) -> SessionKey:
        return {"project_key": PROJECT, "session_id": session}

    def write(self, session: str, count: int) -> list[dict[str, Any]]:
        """Append ``count`` more lines to ``session``'s transcript (one write per line, as the CLI does)."""
        lines = make_lines(session, len(self.written.get(session, [])), count)
        path = self.path(session)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line) + "\n")
                handle.flush()
        self.written.setdefault(session, []).extend(lines)
        return lines

    def write_raw(self, session: str, text: str) -> None:
        path = self.path(session)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    root = tmp_path / "projects"
    root.mkdir()
    return Folder(root)


def new_session() -> str:
    return str(uuid.uuid4())


# --- the library, in process --------------------------------------------------------------------------------


class SwitchableStore(SessionStore):
    """A real store that can be switched off: while ``down``, every call raises ``ConnectionError``."""

    def __init__(self, inner: InMemorySessionStore) -> None:
        self.inner = inner
        self.down = False
        self.appends = 0

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store is down (test)")

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self._check()
        await self.inner.append(key, entries)

    async def append_once(
        self, key: SessionKey, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        self._check()
        self.appends += 1
        return await self.inner.append_once(key, entries, occurrences)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        self._check()
        return await self.inner.load(key)


@dataclass
class Mirror:
    """A watcher of ``folder`` with a position file, a batcher on its exactly-once store, what it reported."""

    folder: Folder
    store: SwitchableStore
    positions: Path
    from_start: bool = False
    max_pending_lines: int = watching.MAX_PENDING_LINES
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    stored: dict[Path, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    watcher: TranscriptFolderWatcher = field(init=False)
    batcher: TranscriptMirrorBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.watcher = TranscriptFolderWatcher(
            self.folder.root,
            from_start=self.from_start,
            positions=self.positions,
            max_pending_lines=self.max_pending_lines,
        )
        self.problems.extend(self.watcher.problems)
        self.watcher.problems.clear()
        self.batcher = build_mirror_batcher(
            self.watcher.exactly_once_store(self.store),
            self.folder.root,
            lambda key, message: self.errors.append(message),
        )

    async def poll(self) -> None:
        await self.watcher.follow(
            self.batcher,
            once=True,
            on_problem=self.problems.append,
            on_notice=self.notices.append,
            on_stored=lambda path, count: self.stored.__setitem__(path, self.stored.get(path, 0) + count),
        )


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed appends are retried at the next poll, and the batcher tries each batch once."""
    monkeypatch.setattr(watching, "RETRY_BACKOFF_SECONDS", (0.0,))
    monkeypatch.setattr("session_store.batcher.MIRROR_APPEND_MAX_ATTEMPTS", 1)


async def test_the_position_file_records_each_file_and_is_written_by_rename(folder: Folder, tmp_path: Path) -> None:
    session = new_session()
    folder.write(session, 4)
    positions = tmp_path / "state" / "positions.json"
    mirror = Mirror(folder, SwitchableStore(InMemorySessionStore()), positions, from_start=True)

    await mirror.poll()

    saved = json.loads(positions.read_text(encoding="utf-8"))
    status = folder.path(session).stat()
    assert saved["format"] == POSITIONS_FORMAT
    assert saved["folder"] == str(folder.root.resolve())
    assert saved["files"] == {
        f"{PROJECT}/{session}.jsonl": {
            "offset": status.st_size,
            "line": 4,
            "device": status.st_dev,
            "inode": status.st_ino,
        }
    }
    assert sorted(os.listdir(positions.parent)) == ["positions.json"]  # no temp file left behind
    assert stat.S_IMODE(positions.stat().st_mode) == 0o600
    assert mirror.stored == {folder.path(session): 4}


async def test_a_failed_append_keeps_the_lines_and_the_retry_stores_each_once(
    folder: Folder, tmp_path: Path, no_backoff: None
) -> None:
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    mirror = Mirror(folder, store, tmp_path / "positions.json")
    written = folder.write(session, 12)

    store.down = True
    await mirror.poll()
    after_failure = json.loads(mirror.positions.read_text(encoding="utf-8"))["files"]
    failing = mirror.watcher.failing_files
    store.down = False
    await mirror.poll()
    await mirror.poll()

    assert after_failure[f"{PROJECT}/{session}.jsonl"]["offset"] == 0  # not moved past unstored lines
    assert failing == 1
    assert mirror.errors and "store is down" in mirror.errors[0]
    assert await store.inner.load(folder.key(session)) == written
    assert mirror.stored == {folder.path(session): 12}  # stored entries only, each once
    assert mirror.notices == ["the store takes lines again; every pending line was stored"]
    assert mirror.watcher.failing_files == 0


async def test_a_crash_between_the_append_and_the_position_save_stores_nothing_twice(
    folder: Folder, tmp_path: Path
) -> None:
    """The position file of before a round (as a kill -9 right after the append leaves it): the next run sends
    the round again and ``append_once`` skips every line, repeated uuid-less lines included."""
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    positions = tmp_path / "positions.json"
    first = Mirror(folder, store, positions)
    folder.write(session, 10)
    await first.poll()
    stale = positions.read_bytes()
    folder.write(session, 15)
    await first.poll()
    positions.write_bytes(stale)  # the save of the last round never happened

    second = Mirror(folder, store, positions)
    await second.poll()
    folder.write(session, 5)
    await second.poll()

    assert await store.inner.load(folder.key(session)) == folder.written[session]
    assert first.stored == {folder.path(session): 25}
    assert second.stored == {folder.path(session): 5}


async def test_occurrences_count_from_the_start_of_the_file_even_when_mirror_started_later(
    folder: Folder, tmp_path: Path
) -> None:
    """A repeated uuid-less line written after mirror started is its second copy, not a duplicate of the first
    (which an import stored)."""
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    folder.write(session, 5)  # line 3 is the summary
    before = folder.written[session]
    await append_once(store.inner, folder.key(session), list(before), occurrences(before))
    mirror = Mirror(folder, store, tmp_path / "positions.json")  # not from the start: those lines count as sent

    folder.write(session, 4)  # line 8 is the same summary again
    await mirror.poll()

    stored = await store.inner.load(folder.key(session))
    assert stored == folder.written[session]
    assert [entry["type"] for entry in stored or []].count("summary") == 2


async def test_reading_stops_at_the_limit_and_catches_up_in_rounds_while_the_store_works(
    folder: Folder, tmp_path: Path
) -> None:
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    written = folder.write(session, 10)
    mirror = Mirror(folder, store, tmp_path / "positions.json", from_start=True, max_pending_lines=3)

    await mirror.poll()

    assert await store.inner.load(folder.key(session)) == written
    assert store.appends == 4  # 3 + 3 + 3 + 1 lines
    assert mirror.notices == []  # nothing to say while the store works


async def test_during_an_outage_reading_stops_at_the_limit_and_says_so_once(
    folder: Folder, tmp_path: Path, no_backoff: None
) -> None:
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    mirror = Mirror(folder, store, tmp_path / "positions.json", max_pending_lines=4)
    written = folder.write(session, 30)

    store.down = True
    for _ in range(3):
        await mirror.poll()
    failing = mirror.watcher.failing_files
    held_while_down = await store.inner.load(folder.key(session))
    store.down = False
    await mirror.poll()

    limit_notes = [note for note in mirror.notices if "stops reading" in note]
    assert len(limit_notes) == 1
    assert "limit of 4 lines" in limit_notes[0]
    assert (failing, held_while_down) == (1, None)
    assert await store.inner.load(folder.key(session)) == written


async def test_a_line_too_deep_for_the_parser_is_reported_once_and_the_others_are_stored(
    folder: Folder, tmp_path: Path, no_backoff: None
) -> None:
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    mirror = Mirror(folder, store, tmp_path / "positions.json")
    folder.write(session, 2)
    folder.write_raw(session, "[" * 100_000 + "]" * 100_000 + "\n")
    folder.write(session, 2)

    store.down = True
    await mirror.poll()  # fails after reading (and reporting) the deep line: the file is read again later
    store.down = False
    await mirror.poll()

    assert mirror.problems == [
        f"{folder.path(session)}:3: nested too deeply for the JSON parser; not a transcript entry"
    ]
    assert await store.inner.load(folder.key(session)) == folder.written[session]


async def test_a_sidecar_version_is_stored_once_and_a_change_back_is_stored_again(
    folder: Folder, tmp_path: Path
) -> None:
    session = new_session()
    agent_path = folder.root / PROJECT / session / "subagents" / f"agent-{AGENT}.jsonl"
    agent_path.parent.mkdir(parents=True)
    agent_path.write_text(json.dumps({"type": "user", "uuid": "sub-1", "message": {}}) + "\n", encoding="utf-8")
    sidecar = agent_path.with_name(f"agent-{AGENT}.meta.json")
    key: SessionKey = {"project_key": PROJECT, "session_id": session, "subpath": f"subagents/agent-{AGENT}"}
    store = SwitchableStore(InMemorySessionStore())
    positions = tmp_path / "positions.json"

    def write_sidecar(agent_type: str, mtime: int) -> None:
        sidecar.write_text(json.dumps({"agentType": agent_type}), encoding="utf-8")
        os.utime(sidecar, (mtime, mtime))

    write_sidecar("Explore", 1_700_000_001)
    await Mirror(folder, store, positions, from_start=True).poll()
    await Mirror(folder, store, positions, from_start=True).poll()  # the same version again: skipped
    restarted = Mirror(folder, store, positions)
    write_sidecar("Plan", 1_700_000_002)
    await restarted.poll()
    write_sidecar("Explore", 1_700_000_003)
    await restarted.poll()

    stored = await store.inner.load(key) or []
    assert [entry.get("agentType") for entry in stored if entry["type"] == "agent_metadata"] == [
        "Explore",
        "Plan",
        "Explore",
    ]


@pytest.mark.parametrize("how", ["renamed over", "rewritten in place"])
async def test_a_file_replaced_while_mirror_was_stopped_is_read_again_from_its_start(
    folder: Folder, tmp_path: Path, how: str
) -> None:
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    positions = tmp_path / "positions.json"
    folder.write(session, 6)
    await Mirror(folder, store, positions, from_start=True).poll()
    path = folder.path(session)
    longer = [*make_lines(session, 0, 6), {"type": "summary", "summary": "Rewritten", "leafUuid": "x" * 40}]
    text = "".join(json.dumps(line, indent=None, separators=(", ", ":  ")) + "\n" for line in longer)
    if how == "renamed over":
        (tmp_path / "new.jsonl").write_text(text, encoding="utf-8")
        os.replace(tmp_path / "new.jsonl", path)
    else:
        with path.open("r+", encoding="utf-8") as handle:  # same inode, other line ends
            handle.truncate(0)
            handle.write(text)

    again = Mirror(folder, store, positions)
    await again.poll()

    assert again.problems == [
        f"{path} was replaced or rewritten while mirror was stopped; reading it again from the start"
    ]
    assert again.stored == {path: 1}  # only the new line: the six others are held already
    assert await store.inner.load(folder.key(session)) == longer


async def test_a_position_file_of_another_folder_is_refused(folder: Folder, tmp_path: Path) -> None:
    positions = tmp_path / "positions.json"
    positions.write_text(
        json.dumps({"format": POSITIONS_FORMAT, "folder": "/elsewhere", "files": {}, "sidecars": {}}), encoding="utf-8"
    )

    with pytest.raises(ValueError, match="belongs to the folder /elsewhere"):
        await compat.run_sync(lambda: TranscriptFolderWatcher(folder.root, positions=positions))


async def test_a_damaged_position_file_is_described_and_every_file_is_read_again_without_duplicates(
    folder: Folder, tmp_path: Path
) -> None:
    session = new_session()
    store = SwitchableStore(InMemorySessionStore())
    positions = tmp_path / "positions.json"
    folder.write(session, 6)
    await Mirror(folder, store, positions, from_start=True).poll()
    positions.write_text("{torn", encoding="utf-8")

    again = Mirror(folder, store, positions)
    await again.poll()

    assert len(again.problems) == 1 and f"the position file {positions} is damaged" in again.problems[0]
    assert again.stored == {}
    assert await store.inner.load(folder.key(session)) == folder.written[session]


@pytest.mark.parametrize(
    ("url", "identity"),
    [  # ids without the password: test names reach the terminal too
        pytest.param(
            "postgresql://me:s3cret@db:5432/sessions?table=t", "postgresql://db:5432/sessions?table=t", id="user-info"
        ),
        pytest.param(
            "postgresql://db/sessions?password=s3cret&sslmode=require",
            "postgresql://db/sessions?sslmode=require",
            id="query-password",
        ),
        pytest.param("redis://:s3cret@cache:6379/0?prefix=p", "redis://cache:6379/0?prefix=p", id="password-only"),
        pytest.param("redis+cluster://u:s3cret@h1:7000,h2:7001/", "redis+cluster://h1:7000,h2:7001/", id="host-list"),
        pytest.param("rediss://u:p@ss:s3cret@h/0", "rediss://h/0", id="at-sign-in-password"),
    ],
)
def test_the_position_file_is_named_and_labelled_without_the_password(
    url: str, identity: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    without_password = url.replace("s3cret", "other")

    path = default_positions_path(url, tmp_path)

    assert store_identity(url) == identity
    assert path == default_positions_path(without_password, tmp_path)  # the same store, whatever the password
    assert path is not None and path.parent == tmp_path / "state" / "session-store" / "mirror"
    assert default_positions_path(url, tmp_path / "other") != path  # one file per folder


def test_a_memory_store_keeps_no_position_file(tmp_path: Path) -> None:
    assert default_positions_path("memory://", tmp_path) is None


# --- the command, as a subprocess ---------------------------------------------------------------------------


@dataclass
class Running:
    """A running ``mirror``: its stderr is read by a thread, line by line."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_stderr(self, text: str) -> str:
        """The first stderr line containing ``text`` (fails after WAIT_SECONDS)."""
        deadline = time.monotonic() + WAIT_SECONDS
        for line in self.seen:
            if text in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.process.poll() is None, f"mirror exited with {self.process.returncode}: {self.seen}"
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no stderr line with {text!r} within {WAIT_SECONDS}s: {self.seen}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, dict[str, Any] | None, list[str]]:
        """Send ``sig``; the exit status, the JSON report (None after SIGKILL) and every stderr line."""
        self.process.send_signal(sig)
        assert self.process.stdout is not None
        status = self.process.wait(timeout=WAIT_SECONDS)  # --json: stdout holds only the short report
        out = self.process.stdout.read()
        time.sleep(0.05)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return status, json.loads(out) if out.strip() else None, self.seen


@dataclass
class MirrorCommand:
    """``python -m session_store --store URL --json --backend B mirror FOLDER`` with a private HOME and state dir."""

    store_url: str
    folder: Folder
    home: Path
    backend: str = "asyncio"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"SESSION_STORE_URL", "XDG_STATE_HOME", "XDG_DATA_HOME"}}
        return env | {"HOME": str(self.home), "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(self.home / "state")}

    def command(self, *options: str, backend: str | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "session_store",
            "--store",
            self.store_url,
            "--json",
            "--backend",
            backend or self.backend,
            "mirror",
            str(self.folder.root),
            "--interval",
            "0.05",
            *options,
        ]

    @contextlib.contextmanager
    def started(self, *options: str, backend: str | None = None) -> Iterator[Running]:
        with processes.started(
            self.command(*options, backend=backend),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            running = Running(process)
            running.wait_for_stderr("mirroring")
            yield running

    def run(self, *options: str) -> tuple[int, dict[str, Any], str]:
        result = processes.run(self.command(*options), env=self.env, text=True, timeout=WAIT_SECONDS)
        return result.returncode, json.loads(result.stdout), result.stderr

    def stored(self, key: SessionKey) -> list[dict[str, Any]]:
        async def load() -> list[dict[str, Any]]:
            store = open_store(self.store_url)
            try:
                return [dict(entry) for entry in await store.load(key) or []]
            finally:
                closing = getattr(store, "close", None)
                if closing is not None:
                    await closing()

        result: list[dict[str, Any]] = run_on(self.backend, load)
        return result

    def wait_until_stored(self, expected: dict[str, list[dict[str, Any]]]) -> None:
        """Wait until each session's key holds at least as many entries as ``expected`` has, then compare."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            held = {session: self.stored(self.folder.key(session)) for session in expected}
            if all(len(held[session]) >= len(lines) for session, lines in expected.items()):
                break
            assert time.monotonic() < deadline, f"not stored within {WAIT_SECONDS}s: {held}"
            time.sleep(0.05)
        assert held == expected


def sqlite_command(tmp_path: Path, folder: Folder, backend: str) -> MirrorCommand:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return MirrorCommand("sqlite:///" + str(tmp_path / "store" / "sessions.db"), folder, home, backend)


@pytest.mark.parametrize("library", BACKENDS)
def test_restart_after_a_clean_stop_mirrors_the_lines_written_meanwhile_once(
    folder: Folder, tmp_path: Path, library: str
) -> None:
    mirror = sqlite_command(tmp_path, folder, library)
    session, later = new_session(), new_session()
    folder.write(session, 3)  # before the first start: not mirrored (no --from-start)

    with mirror.started() as running:
        live = folder.write(session, 6)
        mirror.wait_until_stored({session: live})
        first_status, first_report, _ = running.stop()
    while_stopped = folder.write(session, 9)
    folder.write(later, 4)  # a session that began while mirror was stopped
    with mirror.started() as running:
        mirror.wait_until_stored({session: live + while_stopped, later: folder.written[later]})
        second_status, second_report, errors = running.stop()

    assert (first_status, second_status) == (0, 0), errors
    assert first_report is not None and second_report is not None
    assert first_report["entries"] == 6
    assert second_report["entries"] == 9 + 4
    assert second_report["files"] == {f"{PROJECT}/{session}.jsonl": 9, f"{PROJECT}/{later}.jsonl": 4}
    assert Path(second_report["positions"]).is_relative_to(tmp_path / "home" / "state" / "session-store" / "mirror")


@pytest.mark.parametrize("library", BACKENDS)
def test_kill_9_mid_stream_then_a_restart_stores_every_line_once(folder: Folder, tmp_path: Path, library: str) -> None:
    mirror = sqlite_command(tmp_path, folder, library)
    session = new_session()
    folder.write(session, 1)

    with mirror.started("--from-start") as running:
        for _ in range(20):
            folder.write(session, 7)
            time.sleep(0.01)
        processes.kill_group(running.process)  # kill -9 while lines are still coming in
    held_after_kill = len(mirror.stored(folder.key(session)))
    folder.write(session, 30)
    with mirror.started() as running:
        mirror.wait_until_stored({session: folder.written[session]})
        status, report, errors = running.stop()

    assert status == 0, errors
    assert report is not None
    assert report["entries"] == len(folder.written[session]) - held_after_kill  # stored lines only


def test_two_mirrors_on_one_folder_store_each_line_once(folder: Folder, tmp_path: Path) -> None:
    mirror = sqlite_command(tmp_path, folder, "asyncio")
    sessions = [new_session(), new_session()]

    with mirror.started() as first, mirror.started(backend="trio") as second:
        for _ in range(10):
            for session in sessions:
                folder.write(session, 5)
            time.sleep(0.02)
        mirror.wait_until_stored({session: folder.written[session] for session in sessions})
        time.sleep(0.3)  # both have seen every line
        reports = [first.stop(), second.stop()]

    assert [status for status, _, _ in reports] == [0, 0], reports
    assert sum(report["entries"] for _, report, _ in reports if report is not None) == 100
    mirror.wait_until_stored({session: folder.written[session] for session in sessions})


@pytest.mark.parametrize("library", BACKENDS)
def test_lines_the_store_refused_make_exit_1_and_the_next_run_stores_them(
    folder: Folder, tmp_path: Path, library: str
) -> None:
    """A store that cannot be opened (its folder is a file), then can: the first run leaves the lines in their
    files (exit 1, counted as pending, not as mirrored), the second stores them."""
    session = new_session()
    written = folder.write(session, 8)
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "store").write_text("")
    mirror = MirrorCommand("sqlite:///" + str(tmp_path / "store" / "sessions.db"), folder, home, library)

    failed_status, failed_report, failed_err = mirror.run("--once", "--from-start")
    (tmp_path / "store").unlink()
    (tmp_path / "store").mkdir()
    status, report, _ = mirror.run("--once")

    assert failed_status == 1
    assert failed_report["entries"] == 0
    assert failed_report["pending"] == {f"{PROJECT}/{session}.jsonl": 8}
    assert len([line for line in failed_err.splitlines() if "mirror failed" in line]) == 1
    assert status == 0
    assert report["entries"] == 8
    assert mirror.stored(folder.key(session)) == written


@pytest.mark.parametrize("library", BACKENDS)
def test_a_line_too_deep_for_the_parser_is_named_once_and_mirror_goes_on(
    folder: Folder, tmp_path: Path, library: str
) -> None:
    mirror = sqlite_command(tmp_path, folder, library)
    session = new_session()
    folder.write(session, 2)
    folder.write_raw(session, "[" * 100_000 + "]" * 100_000 + "\n")
    folder.write(session, 3)

    status, report, err = mirror.run("--once", "--from-start")
    again_status, again_report, again_err = mirror.run("--once")

    assert (status, again_status) == (0, 0), err
    assert [line for line in err.splitlines() if "mirroring" not in line] == [
        f"session-store: warning: {folder.path(session)}:3: nested too deeply for the JSON parser; "
        "not a transcript entry"
    ]
    assert report["entries"] == 5
    assert again_report["entries"] == 0
    assert "nested" not in again_err
    assert mirror.stored(folder.key(session)) == folder.written[session]


# --- outages of a real server -------------------------------------------------------------------------------


@dataclass
class Server:
    """A private PostgreSQL or Redis server a test may stop and start, and a store URL of its own on it."""

    stop: Callable[[], None]
    start: Callable[[], None]
    url: str
    fails_fast: bool  # Redis refuses at once; the PostgreSQL pool waits up to 30 s for a connection first


@pytest.fixture(params=["postgres", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    tag = uuid.uuid4().hex[:10]
    if request.param == "postgres":
        postgres: PostgresServer = request.getfixturevalue("restartable_postgres")
        yield Server(postgres.stop, postgres.start, f"{postgres.url}?table=mirror_{tag}", fails_fast=False)
        return
    redis: RedisServer = request.getfixturevalue("restartable_redis")
    yield Server(redis.stop, redis.start, f"{redis.url}?prefix=sstest-mirror-{tag}", fails_fast=True)
    if not redis.running:
        redis.start()


@pytest.mark.servers
@pytest.mark.parametrize("library", BACKENDS)
def test_lines_written_while_the_server_is_down_are_stored_once_it_is_back(
    server: Server, folder: Folder, tmp_path: Path, library: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mirror = MirrorCommand(server.url, folder, home, library)
    session, other = new_session(), new_session()

    with mirror.started() as running:
        before = folder.write(session, 3)
        mirror.wait_until_stored({session: before})
        server.stop()
        try:
            folder.write(session, 5)
            folder.write(other, 2)
            if server.fails_fast:
                running.wait_for_stderr("mirror failed")
            folder.write(session, 4)
            time.sleep(1.0)  # retried (and failing, or waiting for a connection) meanwhile
        finally:
            server.start()
        if server.fails_fast:
            running.wait_for_stderr("takes lines again")
        mirror.wait_until_stored({session: folder.written[session], other: folder.written[other]})
        status, report, errors = running.stop()

    assert status == 0, errors
    assert report is not None
    assert report["entries"] == 14
    assert report["pending"] == {}
    warnings = [line for line in errors if "mirror failed" in line]
    assert len(warnings) == len(report["errors"]) == (1 if server.fails_fast else len(warnings))
    assert len(warnings) <= 1  # once per outage, not once per retry


@pytest.mark.servers
def test_past_the_pending_limit_mirror_stops_reading_says_so_once_and_resumes(
    restartable_redis: RedisServer, folder: Folder, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"{restartable_redis.url}?prefix=sstest-mirror-{uuid.uuid4().hex[:10]}"
    mirror = MirrorCommand(url, folder, home)
    session = new_session()

    with mirror.started("--max-pending", "5") as running:
        restartable_redis.stop()
        try:
            folder.write(session, 40)
            note = running.wait_for_stderr("stops reading")
            time.sleep(0.5)
        finally:
            restartable_redis.start()
        mirror.wait_until_stored({session: folder.written[session]})
        status, report, errors = running.stop()

    assert status == 0, errors
    assert "limit of 5 lines" in note
    assert len([line for line in errors if "stops reading" in line]) == 1
    assert report is not None and report["entries"] == 40


# --- the property -------------------------------------------------------------------------------------------

STEPS = st.lists(
    st.sampled_from(["write", "write", "start", "stop", "kill", "outage", "restore"]), min_size=3, max_size=8
)


@pytest.mark.servers
@BACKEND_PARAMS
@property_settings(default_run=2, soak=25)
@given(steps=STEPS, sizes=st.lists(st.integers(min_value=1, max_value=25), min_size=8, max_size=8))
def test_property_random_stops_kills_and_outages_store_every_line_exactly_once(
    restartable_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    steps: list[str],
    sizes: list[int],
) -> None:
    root = tmp_path_factory.mktemp("mirror-property")
    (root / "projects").mkdir()
    (root / "home").mkdir()
    folder = Folder(root / "projects")
    url = f"{restartable_redis.url}?prefix=sstest-mirror-{uuid.uuid4().hex[:10]}"
    mirror = MirrorCommand(url, folder, root / "home", backend)
    sessions = [new_session(), new_session()]
    folder.write(sessions[0], 2)
    stack = contextlib.ExitStack()
    running: Running | None = None
    started_before = False  # the first run reads from the start; later ones continue at the saved positions
    try:
        for index, step in enumerate(steps):
            if step == "write":
                folder.write(sessions[index % 2], sizes[index])
            elif step == "start" and running is None:
                first = () if started_before else ("--from-start",)
                running = stack.enter_context(mirror.started(*first, "--max-pending", "7"))
                started_before = True
                time.sleep(0.2)
            elif step in ("stop", "kill") and running is not None:
                time.sleep(0.1)
                if step == "stop":
                    running.stop()
                else:
                    processes.kill_group(running.process)
                stack.close()
                running = None
            elif step == "outage" and restartable_redis.running:
                restartable_redis.stop()
            elif step == "restore" and not restartable_redis.running:
                restartable_redis.start()
        if not restartable_redis.running:
            restartable_redis.start()
        if running is None:
            running = stack.enter_context(mirror.started(*(() if started_before else ("--from-start",))))
        mirror.wait_until_stored(
            {session: folder.written[session] for session in sessions if session in folder.written}
        )
        status, report, errors = running.stop()
        assert status == 0, errors
        assert report is not None and report["pending"] == {}
    finally:
        stack.close()
        if not restartable_redis.running:
            restartable_redis.start()
