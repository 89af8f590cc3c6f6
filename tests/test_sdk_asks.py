"""The asks still open in the SDK, answered here (issue 16 item 4); every async test runs on asyncio and trio.

- Resume carries the user's ``skills/`` and the project's ``memory/`` into the temp config dir, never following a
  link, 0o700/0o600; memory written during the session comes back (SDK layer cleanup, ``memory-sync``), never
  overwriting a file the user changed meanwhile without a backup (SDK PR #1029).
- A fork is atomic: a concurrent reader sees no fork or all of it, and a failed fork leaves nothing (SDK PR #960).
- A transcript path with an empty component maps to no key and is reported (SDK PR #1070).
- A subagent id is checked before it becomes part of a key or a path (the Ruby SDK's issue #79).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import processes
import pytest
from faulty import FaultyStore, InjectedFailure
from temp_dirs import leftovers
from transcript_factories import agent_metadata, conversation, key_for, new_id, seed

import compat
from session_store.adapters.sqlite import SQLiteSessionStore
from session_store.batcher import build_mirror_batcher
from session_store.keys import file_path_to_session_key, path_has_empty_component, project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.mutations import fork_session_via_store
from session_store.reading import get_subagent_messages_from_store, list_subagents_from_store
from session_store.sdk import session_resume
from session_store.skills_memory import SEED_RECORD, memory_dir, seed_skills_and_memory, sync_memory
from session_store.types import SessionKey, SessionStore, SessionStoreEntry, SessionStoreListEntry

PROJECT_DIR = "/work/sdk-asks-project"
PROJECT_KEY = project_key_for_directory(PROJECT_DIR)
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes and symbolic links")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    if request.param == "memory":
        yield InMemorySessionStore()
        return
    sqlite_store = SQLiteSessionStore(tmp_path / "sessions.db")
    yield sqlite_store
    sqlite_store._close_blocking()  # the connection closed now (3.13+ warns about one left to the collector)


@dataclass
class Options:
    """The option fields the SDK's resume path reads (not the SDK's class)."""

    session_store: Any = None
    resume: str | None = None
    continue_conversation: bool = False
    cwd: str | None = PROJECT_DIR
    env: dict[str, str] = field(default_factory=dict)
    load_timeout_ms: int = 60_000


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's Claude config dir (``CLAUDE_CONFIG_DIR``) with a skill, a linked skill and project memory."""
    config = tmp_path / "user-claude"
    skill = config / "skills" / "review"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text("---\ndescription: review\n---\nReview the diff.\n")
    (skill / "scripts").mkdir()
    (skill / "scripts" / "run.sh").write_text("echo run\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not to be copied")
    (outside / "SKILL.md").write_text("a skill kept elsewhere")
    (config / "skills" / "linked").symlink_to(outside, target_is_directory=True)
    (skill / "leak.md").symlink_to(outside / "secret.txt")
    memory = memory_dir(config, PROJECT_KEY)
    memory.mkdir(parents=True)
    (memory / "MEMORY.md").write_text("- [notes](notes.md)\n")
    (memory / "notes.md").write_text("the build uses nox\n")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setattr(session_resume, "_read_keychain_credentials", lambda: None)
    return config


async def stored_session(store: SessionStore) -> str:
    session_id = new_id()
    await seed(store, PROJECT_DIR, session_id, conversation("hello", "and then?", session_id=session_id))
    return session_id


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def tree(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


# --- skills and memory (SDK PR #1029) -------------------------------------------------------------------------


@POSIX_ONLY
async def test_sdk_resume_carries_skills_and_memory_without_following_links(
    store: SessionStore, user_config: Path, temp_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await stored_session(store)
    materialized = await session_resume.materialize_resume_session(Options(session_store=store, resume=session_id))
    assert materialized is not None
    config = materialized.config_dir
    assert (config / "skills" / "review" / "SKILL.md").read_text().endswith("Review the diff.\n")
    assert (config / "skills" / "review" / "scripts" / "run.sh").read_text() == "echo run\n"
    assert (memory_dir(config, PROJECT_KEY) / "notes.md").read_text() == "the build uses nox\n"
    # neither the linked skill folder nor the linked file inside a skill is copied, and each is warned about
    for path in (config / "skills" / "linked", config / "skills" / "review" / "leak.md"):
        assert not path.is_symlink() and not path.exists()
    assert "not to be copied" not in "".join(p.read_text() for p in config.rglob("*") if p.is_file())
    warned = [record.getMessage() for record in caplog.records if "not carrying" in record.getMessage()]
    assert len(warned) == 2 and all("symbolic link" in message for message in warned)
    for path in [config / "skills", *(config / "skills").rglob("*"), *memory_dir(config, PROJECT_KEY).rglob("*")]:
        assert mode_of(path) == (0o700 if path.is_dir() else 0o600), path
    await materialized.cleanup()
    assert leftovers(temp_root) == []


async def test_sdk_resume_brings_memory_written_in_the_session_back_on_cleanup(
    store: SessionStore, user_config: Path, temp_root: Path
) -> None:
    session_id = await stored_session(store)
    materialized = await session_resume.materialize_resume_session(Options(session_store=store, resume=session_id))
    assert materialized is not None
    resumed_memory = memory_dir(materialized.config_dir, PROJECT_KEY)
    (resumed_memory / "notes.md").write_text("the build uses nox; lint with ruff\n")  # changed by the session
    (resumed_memory / "topics").mkdir()
    (resumed_memory / "topics" / "new.md").write_text("a new topic\n")  # written by the session
    await materialized.cleanup()
    user_memory = memory_dir(user_config, PROJECT_KEY)
    assert (user_memory / "notes.md").read_text() == "the build uses nox; lint with ruff\n"
    assert (user_memory / "topics" / "new.md").read_text() == "a new topic\n"
    assert (user_memory / "MEMORY.md").read_text() == "- [notes](notes.md)\n"
    assert leftovers(temp_root) == []
    await materialized.cleanup()  # a second cleanup is harmless
    assert (user_memory / "notes.md").read_text() == "the build uses nox; lint with ruff\n"


async def test_sdk_cleanup_keeps_a_memory_file_the_user_changed_meanwhile_as_a_backup(
    store: SessionStore, user_config: Path, temp_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await stored_session(store)
    materialized = await session_resume.materialize_resume_session(Options(session_store=store, resume=session_id))
    assert materialized is not None
    user_notes = memory_dir(user_config, PROJECT_KEY) / "notes.md"
    user_notes.write_text("written by another session meanwhile\n")
    (memory_dir(materialized.config_dir, PROJECT_KEY) / "notes.md").write_text("written by the resumed session\n")
    await materialized.cleanup()
    assert user_notes.read_text() == "written by the resumed session\n"
    backups = sorted(user_notes.parent.glob("notes.md.bak-*"))
    assert [path.read_text() for path in backups] == ["written by another session meanwhile\n"]
    assert any(backups[0].name in record.getMessage() for record in caplog.records)
    assert leftovers(temp_root) == []


async def test_sdk_cleanup_in_a_cancelled_scope_still_brings_memory_back_and_removes_the_dir(
    store: SessionStore, user_config: Path, temp_root: Path
) -> None:
    session_id = await stored_session(store)
    materialized = await session_resume.materialize_resume_session(Options(session_store=store, resume=session_id))
    assert materialized is not None
    (memory_dir(materialized.config_dir, PROJECT_KEY) / "late.md").write_text("written at the end\n")
    with compat.move_on_after(0) as scope:
        try:
            await compat.sleep(1)
        finally:  # on trio every await in here is cancelled again: the cleanup must work through it
            await materialized.cleanup()
    assert scope.cancelled_caught
    assert (memory_dir(user_config, PROJECT_KEY) / "late.md").read_text() == "written at the end\n"
    assert leftovers(temp_root) == []


async def test_a_resume_cancelled_while_skills_are_copied_leaks_nothing(
    store: SessionStore, user_config: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_seed = session_resume.seed_skills_and_memory

    def slow_seed(*args: Any) -> Any:
        time.sleep(0.2)  # a worker thread: the caller's cancellation arrives meanwhile
        return real_seed(*args)

    monkeypatch.setattr(session_resume, "seed_skills_and_memory", slow_seed)
    session_id = await stored_session(store)
    with compat.move_on_after(0.05) as scope:
        await session_resume.materialize_resume_session(Options(session_store=store, resume=session_id))
    assert scope.cancelled_caught
    assert leftovers(temp_root) == []
    assert sorted(path.name for path in memory_dir(user_config, PROJECT_KEY).iterdir()) == ["MEMORY.md", "notes.md"]


async def test_a_seed_callable_or_none_carries_neither_skills_nor_memory(
    store: SessionStore, user_config: Path, temp_root: Path
) -> None:
    session_id = await stored_session(store)
    materialized = await session_resume.materialize_resume_session(
        Options(session_store=store, resume=session_id), seed_config_dir=None
    )
    assert materialized is not None
    assert not (materialized.config_dir / "skills").exists()
    (materialized.projects_dir / PROJECT_KEY / "memory").mkdir()
    (memory_dir(materialized.config_dir, PROJECT_KEY) / "x.md").write_text("not brought back\n")
    await materialized.cleanup()
    assert not (memory_dir(user_config, PROJECT_KEY) / "x.md").exists()
    assert leftovers(temp_root) == []


@POSIX_ONLY
def test_seed_refuses_a_linked_memory_folder_and_records_what_it_seeded(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "MEMORY.md").write_text("elsewhere")
    (source / "projects" / PROJECT_KEY).mkdir(parents=True)
    (source / "projects" / PROJECT_KEY / "memory").symlink_to(outside, target_is_directory=True)
    target.mkdir()
    report = seed_skills_and_memory(source, target, PROJECT_KEY)
    assert report.copied == [] and len(report.skipped) == 1 and "symbolic link" in report.skipped[0]
    assert tree(target) == []
    assert not (target / SEED_RECORD).exists()  # nothing seeded into memory: nothing to record

    (source / "projects" / PROJECT_KEY / "memory").unlink()
    (source / "projects" / PROJECT_KEY / "memory").mkdir()
    (source / "projects" / PROJECT_KEY / "memory" / "MEMORY.md").write_text("here")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    seed_skills_and_memory(source, fresh, PROJECT_KEY)
    record = json.loads((fresh / SEED_RECORD).read_text())
    assert record["project_key"] == PROJECT_KEY and set(record["memory"]) == {"MEMORY.md"}
    assert mode_of(fresh / SEED_RECORD) == 0o600


@pytest.mark.parametrize("project_key", ["", ".", "..", "a/b", "a\\b", "a\x00b"])
def test_seed_and_sync_refuse_a_project_key_that_is_not_one_folder_name(tmp_path: Path, project_key: str) -> None:
    with pytest.raises(ValueError, match="project_key must be one folder name"):
        seed_skills_and_memory(tmp_path, tmp_path, project_key)
    with pytest.raises(ValueError, match="project_key must be one folder name"):
        sync_memory(tmp_path, tmp_path, project_key)


def test_sync_without_a_record_treats_any_difference_as_a_conflict(tmp_path: Path) -> None:
    resumed, user = memory_dir(tmp_path / "resumed", PROJECT_KEY), memory_dir(tmp_path / "user", PROJECT_KEY)
    resumed.mkdir(parents=True)
    user.mkdir(parents=True)
    (resumed / "MEMORY.md").write_text("session")
    (user / "MEMORY.md").write_text("user")
    (resumed / "same.md").write_text("same")
    (user / "same.md").write_text("same")
    report = sync_memory(tmp_path / "resumed", tmp_path / "user", PROJECT_KEY)
    assert report.conflicts == ["MEMORY.md"] and report.unchanged == ["same.md"] and report.backups == []
    assert (user / "MEMORY.md").read_text() == "user"


# --- atomic fork (SDK PR #960) ----------------------------------------------------------------------------------


class HalfAppendStore(InMemorySessionStore):
    """An in-memory store whose append of a new session writes half the entries, then fails (a non-atomic store)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_new_sessions = False

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if self.fail_new_sessions and await self.load(key) is None:
            await super().append(key, entries[: len(entries) // 2])
            await compat.checkpoint()
            raise InjectedFailure("connection lost halfway through the append")
        await super().append(key, entries)


class NoDeleteStore:
    """A store without ``delete``; once ``failing`` is set, its appends land and then report a failure."""

    def __init__(self) -> None:
        self.inner = InMemorySessionStore()
        self.failing = False

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.inner.append(key, entries)
        if self.failing:
            raise InjectedFailure("the append landed but its reply was lost")

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.inner.load(key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return await self.inner.list_sessions(project_key)


async def session_ids(store: SessionStore) -> set[str]:
    return {row["session_id"] for row in await store.list_sessions(PROJECT_KEY)}


async def test_a_fork_whose_append_lands_but_fails_leaves_no_fork(store: SessionStore) -> None:
    source = await stored_session(store)
    faulty = FaultyStore(store, raises={"append": lambda: InjectedFailure("reply lost")}, raise_after_landing=True)
    with pytest.raises(InjectedFailure, match="reply lost"):
        await fork_session_via_store(faulty, source, PROJECT_DIR)  # type: ignore[arg-type]
    assert faulty.outcomes("append") == ["raised"] and faulty.outcomes("delete") == ["ok"]
    assert await session_ids(store) == {source}


async def test_a_fork_cut_halfway_by_a_non_atomic_store_is_deleted() -> None:
    store = HalfAppendStore()
    source = await stored_session(store)
    store.fail_new_sessions = True
    with pytest.raises(InjectedFailure, match="halfway"):
        await fork_session_via_store(store, source, PROJECT_DIR)
    assert await session_ids(store) == {source}


async def test_a_failed_fork_on_a_store_without_delete_names_the_session_to_remove() -> None:
    store = NoDeleteStore()
    source = await stored_session(store)  # type: ignore[arg-type]
    store.failing = True
    with pytest.raises(InjectedFailure) as raised:
        await fork_session_via_store(store, source, PROJECT_DIR)  # type: ignore[arg-type]
    (fork_id,) = await session_ids(store) - {source}  # type: ignore[arg-type]
    assert any(f"the fork {fork_id} may be partly written" in note for note in raised.value.__notes__)


async def test_a_concurrent_reader_sees_no_fork_or_all_of_it(store: SessionStore) -> None:
    source = await stored_session(store)
    await seed(store, PROJECT_DIR, source, conversation(*(f"prompt {n}" for n in range(200)), session_id=source))
    first = await fork_session_via_store(store, source, PROJECT_DIR)
    complete = len(await store.load(key_for(PROJECT_DIR, first.session_id)) or [])
    known = await session_ids(store)
    seen: list[int] = []
    done = compat.Event()

    async def reader() -> None:
        while not done.is_set():
            for session_id in await session_ids(store) - known:
                seen.append(len(await store.load(key_for(PROJECT_DIR, session_id)) or []))
            await compat.checkpoint()

    async def forks() -> None:
        try:
            for _ in range(5):
                await fork_session_via_store(store, source, PROJECT_DIR)
                await compat.sleep(0.01)  # the reader runs (the in-memory store never yields inside a fork)
            failing = FaultyStore(store, raises={"append": lambda: InjectedFailure("x")}, raise_after_landing=True)
            with pytest.raises(InjectedFailure):
                await fork_session_via_store(failing, source, PROJECT_DIR)  # type: ignore[arg-type]
        finally:
            done.set()

    async with compat.create_task_group() as group:
        group.start_soon(reader)
        group.start_soon(forks)
    assert seen, "the reader never saw a fork: the test checks nothing"
    assert set(seen) <= {0, complete}, f"a reader saw a partial fork: {sorted(set(seen))} (complete: {complete})"
    assert len(await session_ids(store) - known) == 5


# --- empty path components (SDK PR #1070) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/p//proj/sid.jsonl",
        "/p/proj//sid.jsonl",
        "/p/proj/sid//subagents/agent-1.jsonl",
        "/p/proj/sid/subagents//agent-1.jsonl",
        "/p/proj/sid/subagents/agent-1/",
        "/p/proj/sid.jsonl/",
    ],
)
def test_a_path_with_an_empty_component_maps_to_no_key(path: str) -> None:
    assert path_has_empty_component(path)
    assert file_path_to_session_key(path, "/p") is None


@pytest.mark.parametrize("path", ["/p/proj/sid.jsonl", "//p/proj/sid.jsonl", "proj/sid.jsonl", "/"])
def test_a_root_or_a_plain_path_has_no_empty_component(path: str) -> None:
    assert not path_has_empty_component(path)


async def test_the_batcher_reports_a_path_with_an_empty_component_and_stores_nothing(
    store: SessionStore, tmp_path: Path
) -> None:
    projects = tmp_path / "projects"
    reported: list[tuple[SessionKey | None, str]] = []
    batcher = build_mirror_batcher(store, projects, lambda key, message: reported.append((key, message)))
    session_id = new_id()
    good = f"{projects}/{PROJECT_KEY}/{session_id}.jsonl"
    aliased = f"{projects}/{PROJECT_KEY}//{session_id}.jsonl"
    entries = conversation("hi", session_id=session_id)
    batcher.enqueue(aliased, [entries[0]])
    batcher.enqueue(good, [entries[1]])
    await batcher.close()
    assert len(reported) == 1 and reported[0][0] is None
    assert repr(aliased) in reported[0][1] and "empty path component" in reported[0][1]
    loaded = await store.load({"project_key": PROJECT_KEY, "session_id": session_id})
    assert [entry["uuid"] for entry in loaded or []] == [entries[1]["uuid"]]


# --- subagent ids (Ruby SDK issue #79) ------------------------------------------------------------------------


class NoSubkeysStore:
    """A store without ``list_subkeys`` that records every key it is asked to load."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.loaded: list[SessionKey] = []

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.inner.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        self.loaded.append(key)
        return await self.inner.load(key)


BAD_AGENT_IDS = ["../x", "a/b", "a\\b", "..", ".", "x\x00y", "x\ny", "x\udc80"]


@pytest.mark.parametrize("agent_id", BAD_AGENT_IDS)
async def test_a_subagent_id_that_is_not_one_name_is_refused_before_any_key_is_made(
    store: SessionStore, agent_id: str
) -> None:
    session_id = await stored_session(store)
    without_subkeys = NoSubkeysStore(store)
    for reader_store in (without_subkeys, store):
        with pytest.raises(ValueError, match=r"Invalid agent_id .*list_subagents_from_store") as raised:
            await get_subagent_messages_from_store(reader_store, session_id, agent_id, PROJECT_DIR)  # type: ignore[arg-type]
        assert repr(agent_id) in str(raised.value)
    assert without_subkeys.loaded == []


async def test_a_plain_subagent_id_is_read_from_a_store_without_list_subkeys(store: SessionStore) -> None:
    session_id = await stored_session(store)
    subpath = "subagents/agent-a1b2c3"
    await seed(store, PROJECT_DIR, session_id, [agent_metadata(toolUseId="toolu_1")], subpath)
    await seed(store, PROJECT_DIR, session_id, conversation("look", session_id=session_id, isSidechain=True), subpath)
    without_subkeys = NoSubkeysStore(store)
    messages = await get_subagent_messages_from_store(without_subkeys, session_id, "a1b2c3", PROJECT_DIR)  # type: ignore[arg-type]
    assert [message.parent_tool_use_id for message in messages] == ["toolu_1", "toolu_1"]
    assert [key.get("subpath") for key in without_subkeys.loaded] == [subpath]


async def test_list_subagents_skips_ids_that_could_not_be_read_back(
    store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = await stored_session(store)
    for subpath in ("subagents/agent-ok", "subagents/agent-..", "subagents/agent-a\\b", "subagents/agent-"):
        await seed(store, PROJECT_DIR, session_id, conversation("x", session_id=session_id), subpath)
    with caplog.at_level(logging.WARNING):
        agent_ids = await list_subagents_from_store(store, session_id, PROJECT_DIR)
    assert agent_ids == ["ok"]
    assert sum("skipping subagent" in record.getMessage() for record in caplog.records) == 3


# --- the command line: memory-sync ----------------------------------------------------------------------------


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return processes.run([sys.executable, "-m", "session_store", *args], cwd=cwd, env=env, text=True, timeout=120)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SESSION_STORE_URL", "CLAUDE_CONFIG_DIR"}}
    env |= {"HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO), "CLAUDE_CONFIG_DIR": str(tmp_path / "user")}
    return env


def seeded_resume_dir(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A user config dir with memory, and a resume dir seeded from it: ``(user memory, resumed memory, resumed)``."""
    user = tmp_path / "user"
    memory_dir(user, PROJECT_KEY).mkdir(parents=True)
    (memory_dir(user, PROJECT_KEY) / "MEMORY.md").write_text("index\n")
    (memory_dir(user, PROJECT_KEY) / "notes.md").write_text("notes\n")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    seed_skills_and_memory(user, resumed, PROJECT_KEY)
    return memory_dir(user, PROJECT_KEY), memory_dir(resumed, PROJECT_KEY), resumed


def test_cli_memory_sync_copies_updates_and_refuses_a_conflict(tmp_path: Path, cli_env: dict[str, str]) -> None:
    user_memory, resumed_memory, resumed = seeded_resume_dir(tmp_path)
    (resumed_memory / "MEMORY.md").write_text("index, updated by the session\n")
    (resumed_memory / "new.md").write_text("new\n")
    (resumed_memory / "notes.md").write_text("notes, by the session\n")
    (user_memory / "notes.md").write_text("notes, by the user meanwhile\n")
    project = tmp_path / "project"
    project.mkdir()
    cwd_key = project_key_for_directory(project)
    assert cwd_key != PROJECT_KEY
    result = cli("memory-sync", "--from", str(resumed), "-d", PROJECT_DIR, cwd=project, env=cli_env)
    assert result.returncode == 1, result.stderr
    assert "conflict  notes.md (changed on both sides: left as it is)" in result.stdout
    assert "rerun with --backup" in result.stdout
    assert (user_memory / "MEMORY.md").read_text() == "index, updated by the session\n"
    assert (user_memory / "new.md").read_text() == "new\n"
    assert mode_of(user_memory / "new.md") == 0o600
    assert (user_memory / "notes.md").read_text() == "notes, by the user meanwhile\n"

    result = cli(
        "memory-sync", "--from", str(resumed), "-d", PROJECT_DIR, "--backup", "--json", cwd=project, env=cli_env
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["conflicts"] == ["notes.md"] and data["unchanged"] == ["MEMORY.md", "new.md"]
    (backup,) = data["backups"]
    assert (user_memory / backup).read_text() == "notes, by the user meanwhile\n"
    assert (user_memory / "notes.md").read_text() == "notes, by the session\n"


def test_cli_memory_sync_leaves_a_file_the_session_did_not_change(tmp_path: Path, cli_env: dict[str, str]) -> None:
    user_memory, _resumed_memory, resumed = seeded_resume_dir(tmp_path)
    (user_memory / "notes.md").write_text("newer, by the user\n")
    result = cli("memory-sync", "--from", str(resumed), "-d", PROJECT_DIR, cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "nothing to bring back" in result.stdout
    assert (user_memory / "notes.md").read_text() == "newer, by the user\n"


def test_cli_memory_sync_shows_control_characters_and_reports_a_bad_folder(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    _user_memory, resumed_memory, resumed = seeded_resume_dir(tmp_path)
    (resumed_memory / "evil\x1b[2J.md").write_text("x\n")
    result = cli("memory-sync", "--from", str(resumed), "-d", PROJECT_DIR, cwd=tmp_path, env=cli_env)
    assert result.returncode == 0 and "\x1b" not in result.stdout and "evil\\x1b[2J.md" in result.stdout

    result = cli("memory-sync", "--from", str(tmp_path / "missing"), cwd=tmp_path, env=cli_env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("session-store: error: --from ") and "is not a folder" in result.stderr
    result = cli(
        "memory-sync", "--from", str(tmp_path / "user"), "--to", str(tmp_path / "user"), cwd=tmp_path, env=cli_env
    )
    assert result.returncode == 1 and "the same folder" in result.stderr


@POSIX_ONLY
def test_cli_resume_with_skills_and_memory_then_memory_sync_brings_the_session_memory_back(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    key = project_key_for_directory(project)
    user = tmp_path / "user"
    (user / "skills" / "review").mkdir(parents=True)
    (user / "skills" / "review" / "SKILL.md").write_text("review\n")
    (tmp_path / "elsewhere").mkdir()
    (user / "skills" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    memory_dir(user, key).mkdir(parents=True)
    (memory_dir(user, key) / "MEMORY.md").write_text("index\n")
    session_id = new_id()
    transcript = conversation("hello", session_id=session_id, cwd=str(project))
    (user / "projects" / key / f"{session_id}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in transcript))
    store = ["--store", "sqlite:///" + str(tmp_path / "store.db")]
    assert cli(*store, "import", cwd=project, env=cli_env).returncode == 0

    into = tmp_path / "into"
    result = cli(
        *store, "resume", session_id, "--into", str(into), "--with-skills", "--with-memory", cwd=project, env=cli_env
    )
    assert result.returncode == 0, result.stderr
    assert (into / "skills" / "review" / "SKILL.md").read_text() == "review\n"
    assert not (into / "skills" / "linked").exists() and not (into / "skills" / "linked").is_symlink()
    assert "not carried into --into" in result.stderr and "linked" in result.stderr
    assert (memory_dir(into, key) / "MEMORY.md").read_text() == "index\n"
    assert mode_of(memory_dir(into, key) / "MEMORY.md") == 0o600 and mode_of(into / "skills") == 0o700
    assert (into / SEED_RECORD).is_file()

    (memory_dir(into, key) / "MEMORY.md").write_text("index, updated in the resumed session\n")
    result = cli("memory-sync", "--from", str(into), cwd=project, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "updated   MEMORY.md" in result.stdout
    assert (memory_dir(user, key) / "MEMORY.md").read_text() == "index, updated in the resumed session\n"

    plain = tmp_path / "plain"
    assert cli(*store, "resume", session_id, "--into", str(plain), cwd=project, env=cli_env).returncode == 0
    assert not (plain / "skills").exists() and not memory_dir(plain, key).exists()
