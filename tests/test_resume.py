"""materialize_resume_session, with_timeout and remove_tree (reference §7, §16.3; SPEC §4 decision 3).

The Claude-CLI specific copying of credentials and settings (§7.10) and the client wiring (§7.11) are not part of
this project; ``seed_config_dir`` is the hook that replaces them. Every async test runs under asyncio and trio.
Temp dirs are created under a per-test folder (the ``temp_root`` fixture of ``tests/temp_dirs.py`` points
``tempfile.tempdir`` there), so "nothing leaked" is "that folder is empty".
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from temp_dirs import leftovers

import compat
from session_store import resume as resume_module
from session_store.keys import project_key_for_directory
from session_store.resume import MaterializedResume, materialize_resume_session, remove_tree, with_timeout
from session_store.types import SessionKey, SessionListSubkeysKey, SessionStoreEntry, SessionStoreListEntry

SID = "11111111-2222-4333-8444-555555555555"
OTHER_SID = "66666666-7777-4888-9999-aaaaaaaaaaaa"
THIRD_SID = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
PROJECT_DIR = "/work/some-project"
PROJECT_KEY = project_key_for_directory(PROJECT_DIR)
WAIT_LIMIT_S = 5.0
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


# --- factories --------------------------------------------------------------------------------------------------


def transcript(*texts: str, sidechain: bool = False) -> list[SessionStoreEntry]:
    return [
        {"type": "user", "uuid": f"u-{text}", "message": {"content": text}, "isSidechain": sidechain} for text in texts
    ]


def agent_metadata(**fields: Any) -> SessionStoreEntry:
    return {"type": "agent_metadata", **fields}  # type: ignore[typeddict-item]  # opaque extra fields


class FakeStore:
    """A duck-typed store over a dict; records every call and can hang or fail on a chosen method.

    ``hang_on`` names a method ("list_sessions", "load", "load_subpath", "list_subkeys") that then waits on an
    Event nobody sets; ``fail_on`` maps such a name to the exception to raise.
    """

    def __init__(
        self,
        sessions: dict[str, list[SessionStoreEntry]] | None = None,
        *,
        subkeys: dict[str, list[SessionStoreEntry]] | None = None,
        listing: list[SessionStoreListEntry] | None = None,
        hang_on: str | None = None,
        fail_on: dict[str, BaseException] | None = None,
    ) -> None:
        self.sessions = sessions or {}
        self.subkeys = subkeys or {}
        self.listing = listing
        self.hang_on = hang_on
        self.fail_on = fail_on or {}
        self.calls: list[tuple[str, Any]] = []
        self._never = compat.Event()

    async def _behave(self, name: str, argument: Any) -> None:
        self.calls.append((name, argument))
        if name == self.hang_on:
            await self._never.wait()
        if name in self.fail_on:
            raise self.fail_on[name]

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        raise AssertionError("resume never appends")

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        subpath = key.get("subpath")
        if subpath is None:
            await self._behave("load", key["session_id"])
            return self.sessions.get(key["session_id"])
        await self._behave("load_subpath", subpath)
        return self.subkeys.get(subpath)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        await self._behave("list_sessions", project_key)
        if self.listing is not None:
            return self.listing
        return [{"session_id": sid, "mtime": 1000 + n} for n, sid in enumerate(self.sessions)]

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        await self._behave("list_subkeys", key["session_id"])
        return list(self.subkeys)

    def loaded_subpaths(self) -> list[str]:
        return [argument for name, argument in self.calls if name == "load_subpath"]


class MinimalStore:
    """Only the two required methods."""

    def __init__(self, sessions: dict[str, list[SessionStoreEntry]]) -> None:
        self.sessions = sessions

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        raise AssertionError("resume never appends")

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return self.sessions.get(key["session_id"])


async def materialize(store: Any, **options: Any) -> MaterializedResume | None:
    options.setdefault("cwd", PROJECT_DIR)
    return await materialize_resume_session(store, **options)


async def materialize_ok(store: Any, **options: Any) -> MaterializedResume:
    materialized = await materialize(store, **options)
    assert materialized is not None
    return materialized


def main_file(materialized: MaterializedResume) -> Path:
    return materialized.projects_dir / PROJECT_KEY / f"{materialized.resume_session_id}.jsonl"


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- when there is nothing to materialize ---------------------------------------------------------------------------


async def test_returns_none_without_a_store(temp_root: Path) -> None:
    assert await materialize(None, resume=SID) is None


async def test_returns_none_without_resume_or_continue(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")})
    assert await materialize(store) is None
    assert store.calls == []


async def test_returns_none_for_a_resume_id_that_is_not_a_uuid(temp_root: Path) -> None:
    store = FakeStore({"../../etc/passwd": transcript("hi")})
    assert await materialize(store, resume="../../etc/passwd") is None
    assert store.calls == []
    assert leftovers(temp_root) == []


@pytest.mark.parametrize("stored", [None, []], ids=["none", "empty"])
async def test_returns_none_when_the_session_loads_as(stored: list[SessionStoreEntry] | None, temp_root: Path) -> None:
    store = FakeStore({SID: stored} if stored is not None else {})
    assert await materialize(store, resume=SID) is None
    assert leftovers(temp_root) == []


async def test_continue_returns_none_for_an_empty_listing(temp_root: Path) -> None:
    assert await materialize(FakeStore(), continue_conversation=True) is None


async def test_continue_without_list_sessions_is_a_value_error(temp_root: Path) -> None:
    with pytest.raises(ValueError, match="requires the store to implement list_sessions"):
        await materialize(MinimalStore({SID: transcript("hi")}), continue_conversation=True)


# --- the happy path -------------------------------------------------------------------------------------------------


async def test_writes_the_session_in_the_claude_layout_and_cleanup_removes_it(temp_root: Path) -> None:
    entries = transcript("first", "second")
    materialized = await materialize_ok(FakeStore({SID: entries}), resume=SID)
    assert materialized.resume_session_id == SID
    assert materialized.config_dir.parent == temp_root
    assert materialized.config_dir.name.startswith("claude-resume-")
    assert materialized.projects_dir == materialized.config_dir / "projects"
    assert read_jsonl(main_file(materialized)) == entries
    await materialized.cleanup()
    assert not materialized.config_dir.exists()
    await materialized.cleanup()  # a second cleanup is harmless


async def test_the_project_key_comes_from_cwd(tmp_path: Path, temp_root: Path) -> None:
    workdir = tmp_path / "my project!"
    workdir.mkdir()
    materialized = await materialize_ok(FakeStore({SID: transcript("hi")}), resume=SID, cwd=workdir)
    assert (materialized.projects_dir / project_key_for_directory(workdir) / f"{SID}.jsonl").is_file()
    await materialized.cleanup()


async def test_without_cwd_the_process_cwd_is_the_project(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")})
    materialized = await materialize_resume_session(store, resume=SID)
    assert materialized is not None
    assert (materialized.projects_dir / project_key_for_directory(Path.cwd()) / f"{SID}.jsonl").is_file()
    await materialized.cleanup()


async def test_an_explicit_resume_wins_over_continue(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("old"), OTHER_SID: transcript("new")})
    materialized = await materialize_ok(store, resume=SID, continue_conversation=True)
    assert materialized.resume_session_id == SID
    assert [name for name, _ in store.calls] == ["load", "list_subkeys"]
    await materialized.cleanup()


@POSIX_ONLY
async def test_directories_are_0o700_and_files_0o600(temp_root: Path) -> None:
    store = FakeStore(
        {SID: transcript("hi")},
        subkeys={"subagents/agent-1": [*transcript("sub"), agent_metadata(toolUseId="t1")]},
    )
    materialized = await materialize_ok(store, resume=SID)
    config_dir = materialized.config_dir
    directories = [config_dir, *(path for path in config_dir.rglob("*") if path.is_dir())]
    files = [path for path in config_dir.rglob("*") if path.is_file()]
    assert len(directories) == 5  # config, projects, <project>, <session>, subagents
    assert {mode_of(path) for path in directories} == {0o700}
    assert len(files) == 3  # main transcript, subagent transcript, its sidecar
    assert {mode_of(path) for path in files} == {0o600}
    await materialized.cleanup()


async def test_the_jsonl_is_compact_one_entry_per_line_and_round_trips(temp_root: Path) -> None:
    entries: list[SessionStoreEntry] = [
        {"type": "user", "uuid": f"u{i}", "message": {"content": f"héllo {i}", "n": [i, None, True]}}
        for i in range(100)
    ]
    materialized = await materialize_ok(FakeStore({SID: entries}), resume=SID)
    expected = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries)
    assert main_file(materialized).read_bytes() == expected.encode("ascii")  # non-ASCII stays escaped
    assert read_jsonl(main_file(materialized)) == entries
    await materialized.cleanup()


async def test_continue_picks_the_most_recently_modified_session(temp_root: Path) -> None:
    listing: list[SessionStoreListEntry] = [
        {"session_id": SID, "mtime": 100},
        {"session_id": OTHER_SID, "mtime": 300},
        {"session_id": THIRD_SID, "mtime": 200},
    ]
    store = FakeStore({SID: transcript("a"), OTHER_SID: transcript("b"), THIRD_SID: transcript("c")}, listing=listing)
    materialized = await materialize_ok(store, continue_conversation=True)
    assert materialized.resume_session_id == OTHER_SID
    assert read_jsonl(main_file(materialized)) == transcript("b")
    await materialized.cleanup()


async def test_continue_skips_sidechains_non_uuids_and_empty_sessions(temp_root: Path) -> None:
    listing: list[SessionStoreListEntry] = [
        {"session_id": "not-a-uuid", "mtime": 500},
        {"session_id": OTHER_SID, "mtime": 400},
        {"session_id": THIRD_SID, "mtime": 300},
        {"session_id": SID, "mtime": 100},
    ]
    sessions = {
        "not-a-uuid": transcript("x"),
        OTHER_SID: transcript("agent work", sidechain=True),
        THIRD_SID: [],
        SID: transcript("the conversation"),
    }
    store = FakeStore(sessions, listing=listing)
    materialized = await materialize_ok(store, continue_conversation=True)
    assert materialized.resume_session_id == SID
    loaded = [argument for name, argument in store.calls if name == "load"]
    assert loaded == [OTHER_SID, THIRD_SID, SID]  # the non-UUID id is never loaded
    await materialized.cleanup()


async def test_continue_returns_none_when_only_sidechains_exist(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("a", sidechain=True), OTHER_SID: transcript("b", sidechain=True)})
    assert await materialize(store, continue_conversation=True) is None
    assert leftovers(temp_root) == []


async def test_continue_breaks_mtime_ties_by_listing_order_every_time(temp_root: Path) -> None:
    listing: list[SessionStoreListEntry] = [
        {"session_id": SID, "mtime": 100},
        {"session_id": OTHER_SID, "mtime": 500},
        {"session_id": THIRD_SID, "mtime": 500},
    ]
    store = FakeStore({SID: transcript("a"), OTHER_SID: transcript("b"), THIRD_SID: transcript("c")}, listing=listing)
    for _ in range(3):
        materialized = await materialize_ok(store, continue_conversation=True)
        assert materialized.resume_session_id == OTHER_SID
        await materialized.cleanup()


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_seed_config_dir_can_add_the_callers_files(hook_kind: str, temp_root: Path) -> None:
    seen: list[Path] = []

    def seed(config_dir: Path) -> None:
        seen.append(config_dir)
        assert (config_dir / "projects" / PROJECT_KEY / f"{SID}.jsonl").is_file()  # the transcript comes first
        (config_dir / "settings.json").write_text("{}")

    async def seed_async(config_dir: Path) -> None:
        await compat.checkpoint()
        seed(config_dir)

    hook: Callable[[Path], Any] = seed if hook_kind == "sync" else seed_async
    materialized = await materialize_ok(FakeStore({SID: transcript("hi")}), resume=SID, seed_config_dir=hook)
    assert seen == [materialized.config_dir]
    assert (materialized.config_dir / "settings.json").read_text() == "{}"
    await materialized.cleanup()


async def test_a_failing_seed_hook_propagates_and_removes_the_temp_dir(temp_root: Path) -> None:
    def seed(config_dir: Path) -> None:
        raise PermissionError("cannot read ~/.claude/settings.json")

    with pytest.raises(PermissionError, match=r"settings\.json"):
        await materialize(FakeStore({SID: transcript("hi")}), resume=SID, seed_config_dir=seed)
    assert leftovers(temp_root) == []


def test_materialized_resume_has_the_reference_fields() -> None:
    assert [field.name for field in fields(MaterializedResume)] == ["config_dir", "resume_session_id", "cleanup"]


# --- subagent transcripts -------------------------------------------------------------------------------------------


async def test_subagent_transcripts_and_metadata_sidecars_are_written(temp_root: Path) -> None:
    subkeys = {
        "subagents/agent-1": [
            agent_metadata(toolUseId="old"),
            *transcript("sub one"),
            agent_metadata(toolUseId="t1", parentAgentId="p1"),
        ],
        "subagents/agent-2": [agent_metadata(toolUseId="t2")],  # metadata only: no transcript file
        "subagents/agent-3": [],  # empty: nothing written
    }
    materialized = await materialize_ok(FakeStore({SID: transcript("hi")}, subkeys=subkeys), resume=SID)
    agents = materialized.projects_dir / PROJECT_KEY / SID / "subagents"
    assert read_jsonl(agents / "agent-1.jsonl") == transcript("sub one")
    sidecar = (agents / "agent-1.meta.json").read_text(encoding="utf-8")
    assert sidecar == json.dumps({"toolUseId": "t1", "parentAgentId": "p1"})  # last wins, no "type", not compact
    assert not (agents / "agent-2.jsonl").exists()
    assert json.loads((agents / "agent-2.meta.json").read_text()) == {"toolUseId": "t2"}
    assert sorted(path.name for path in agents.iterdir()) == ["agent-1.jsonl", "agent-1.meta.json", "agent-2.meta.json"]
    await materialized.cleanup()


UNSAFE_SUBPATHS = [
    "",
    ".",
    "./",
    "a/.",
    "subagents/.",
    "/etc/passwd",
    "../escape",
    "a/../b",
    "C:escape",
    "C:\\abs",
    "subagents/agent\x00x",
    "\\\\server\\share\\x",
    "subagents\\..\\..\\escape",
]


@pytest.mark.parametrize("unsafe", UNSAFE_SUBPATHS)
async def test_unsafe_subpaths_are_skipped_and_never_loaded(unsafe: str, temp_root: Path) -> None:
    subkeys = {unsafe: transcript("evil"), "subagents/agent-ok": transcript("fine")}
    store = FakeStore({SID: transcript("hi")}, subkeys=subkeys)
    materialized = await materialize_ok(store, resume=SID)
    assert store.loaded_subpaths() == ["subagents/agent-ok"]
    session_dir = materialized.projects_dir / PROJECT_KEY / SID
    written = {path for path in materialized.config_dir.rglob("*") if path.is_file()}
    assert written == {main_file(materialized), session_dir / "subagents" / "agent-ok.jsonl"}
    assert read_jsonl(main_file(materialized)) == transcript("hi")
    assert [path.name for path in temp_root.parent.iterdir()] == ["tmp"]  # nothing escaped the temp root
    await materialized.cleanup()


async def test_a_store_without_list_subkeys_gets_only_the_main_transcript(temp_root: Path) -> None:
    materialized = await materialize_ok(MinimalStore({SID: transcript("hi")}), resume=SID)
    assert [path.name for path in (materialized.projects_dir / PROJECT_KEY).iterdir()] == [f"{SID}.jsonl"]
    await materialized.cleanup()


# --- timeouts and errors ----------------------------------------------------------------------------------------------


async def test_a_load_timeout_is_a_runtime_error_and_creates_nothing(temp_root: Path) -> None:
    with pytest.raises(RuntimeError, match=rf"SessionStore.load\(\) for session {SID} timed out after 50ms"):
        await materialize(FakeStore({SID: transcript("hi")}, hang_on="load"), resume=SID, load_timeout_ms=50)
    assert leftovers(temp_root) == []


async def test_a_list_sessions_timeout_on_the_continue_path(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")}, hang_on="list_sessions")
    with pytest.raises(RuntimeError, match=r"SessionStore.list_sessions\(\) timed out after 30ms"):
        await materialize(store, continue_conversation=True, load_timeout_ms=30)


@pytest.mark.parametrize("hang_on", ["list_subkeys", "load_subpath"])
async def test_a_timeout_after_the_temp_dir_exists_removes_it(hang_on: str, temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")}, subkeys={"subagents/agent-1": transcript("x")}, hang_on=hang_on)
    with pytest.raises(RuntimeError, match="timed out after 40ms during resume materialization"):
        await materialize(store, resume=SID, load_timeout_ms=40)
    assert leftovers(temp_root) == []


@pytest.mark.parametrize("load_timeout_ms", [0, -5])
async def test_a_timeout_of_zero_or_less_fails_at_once_without_calling_the_store(
    load_timeout_ms: int, temp_root: Path
) -> None:
    store = FakeStore({SID: transcript("hi")})
    with pytest.raises(RuntimeError, match=rf"SessionStore.load\(\) for session {SID} timed out after"):
        await materialize(store, resume=SID, load_timeout_ms=load_timeout_ms)
    assert store.calls == []  # SPEC §4 decision 3
    assert leftovers(temp_root) == []


async def test_a_nan_timeout_is_a_value_error(temp_root: Path) -> None:
    with pytest.raises(ValueError, match="load_timeout_ms must be a number"):
        await materialize(FakeStore({SID: transcript("hi")}), resume=SID, load_timeout_ms=float("nan"))


async def test_an_infinite_timeout_means_no_limit(temp_root: Path) -> None:
    materialized = await materialize_ok(FakeStore({SID: transcript("hi")}), resume=SID, load_timeout_ms=float("inf"))
    await materialized.cleanup()


async def test_a_load_error_is_wrapped_and_keeps_its_message(temp_root: Path) -> None:
    error = OSError("network down")
    store = FakeStore({SID: transcript("hi")}, fail_on={"load": error})
    with pytest.raises(RuntimeError, match="failed during resume materialization: OSError: network down") as caught:
        await materialize(store, resume=SID)
    assert caught.value.__cause__ is error


async def test_a_timeout_error_raised_by_the_store_itself_is_a_failure_not_our_timeout(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")}, fail_on={"load": TimeoutError("socket timed out")})
    with pytest.raises(RuntimeError, match="failed during resume materialization: TimeoutError: socket timed out"):
        await materialize(store, resume=SID)


async def test_a_list_subkeys_failure_after_mkdir_removes_the_temp_dir(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")}, fail_on={"list_subkeys": ConnectionError("reset")})
    with pytest.raises(RuntimeError, match=r"list_subkeys\(\) for session .* failed .*reset"):
        await materialize(store, resume=SID)
    assert leftovers(temp_root) == []


async def test_entries_that_are_not_json_raise_type_error_and_remove_the_temp_dir(temp_root: Path) -> None:
    entries: list[Any] = [{"type": "user", "uuid": "u1", "when": object()}]
    with pytest.raises(TypeError, match="not JSON serializable"):
        await materialize(FakeStore({SID: entries}), resume=SID)
    assert leftovers(temp_root) == []


# --- cancellation at each await ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hang_on", ["list_sessions", "load", "list_subkeys", "load_subpath"])
async def test_cancellation_during_a_store_call_leaks_no_temp_dir(hang_on: str, temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")}, subkeys={"subagents/agent-1": transcript("x")}, hang_on=hang_on)
    with compat.move_on_after(0.05) as scope:
        await materialize(store, continue_conversation=True)
    assert scope.cancelled_caught
    assert store.calls[-1][0] == hang_on
    assert leftovers(temp_root) == []


async def test_cancellation_inside_the_seed_hook_leaks_no_temp_dir(temp_root: Path) -> None:
    never = compat.Event()

    async def seed(config_dir: Path) -> None:
        await never.wait()

    with compat.move_on_after(0.05) as scope:
        await materialize(FakeStore({SID: transcript("hi")}), resume=SID, seed_config_dir=seed)
    assert scope.cancelled_caught
    assert leftovers(temp_root) == []


async def test_cancellation_while_a_file_is_being_written_leaks_no_temp_dir(
    monkeypatch: pytest.MonkeyPatch, temp_root: Path
) -> None:
    real_write = resume_module._write_transcript

    def slow_write(*args: Any) -> None:
        time.sleep(0.1)  # a worker thread: the caller's cancellation arrives meanwhile
        real_write(*args)

    monkeypatch.setattr(resume_module, "_write_transcript", slow_write)
    with compat.move_on_after(0.02) as scope:
        await materialize(MinimalStore({SID: transcript("hi")}), resume=SID)
    assert scope.cancelled_caught
    assert leftovers(temp_root) == []


async def test_materializing_in_an_already_cancelled_scope_leaks_nothing(temp_root: Path) -> None:
    store = FakeStore({SID: transcript("hi")}, subkeys={"subagents/agent-1": transcript("x")})
    with compat.move_on_after(0) as scope:
        await materialize(store, resume=SID)
    assert scope.cancelled_caught
    assert leftovers(temp_root) == []


# --- with_timeout -------------------------------------------------------------------------------------------------


async def test_with_timeout_returns_the_result() -> None:
    async def answer() -> int:
        await compat.checkpoint()
        return 42

    assert await with_timeout(answer(), 1.0, "answer()") == 42


async def test_with_timeout_raises_runtime_error_naming_the_call_and_the_limit() -> None:
    with pytest.raises(RuntimeError, match=r"^slow\(\) timed out after 12ms during resume materialization$"):
        await with_timeout(compat.sleep(10), 0.0125, "slow()")


async def test_with_timeout_of_zero_closes_the_awaitable_unstarted() -> None:
    ran: list[bool] = []

    async def body() -> None:
        ran.append(True)

    with pytest.raises(RuntimeError, match="timed out after 0ms"):
        await with_timeout(body(), 0, "body()")
    assert ran == []  # and no "coroutine was never awaited" warning (warnings are errors)


async def test_with_timeout_lets_the_callers_cancellation_through() -> None:
    with compat.move_on_after(0.02) as scope:
        await with_timeout(compat.sleep(10), 5.0, "sleep()")
    assert scope.cancelled_caught


async def test_with_timeout_rejects_nan() -> None:
    async def body() -> None:
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match="NaN"):
        await with_timeout(body(), float("nan"), "body()")


# --- remove_tree ----------------------------------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "file.jsonl").write_text("{}\n")
    (tree / "top.json").write_text("{}")
    return tree


def flaky_rmtree(monkeypatch: pytest.MonkeyPatch, failures: int, error_no: int = errno.EPERM) -> list[int]:
    """Make the first ``failures`` strict rmtree calls fail with ``error_no``; returns the call log."""
    real_rmtree = shutil.rmtree
    calls: list[int] = []

    def rmtree(path: Any, ignore_errors: bool = False, **kwargs: Any) -> None:
        calls.append(len(calls))
        if not ignore_errors and len(calls) <= failures:
            raise OSError(error_no, os.strerror(error_no), str(path))
        real_rmtree(path, ignore_errors=ignore_errors, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    return calls


async def test_remove_tree_removes_a_tree_and_accepts_a_missing_path(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    await remove_tree(tree)
    assert not tree.exists()
    await remove_tree(tree)
    await remove_tree(str(tmp_path / "never-existed"))


async def test_remove_tree_retries_transient_eperm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    calls = flaky_rmtree(monkeypatch, failures=2)
    await remove_tree(tree, delay=0.001)
    assert not tree.exists()
    assert len(calls) == 3


async def test_remove_tree_stops_retrying_a_permanent_error_and_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path)
    calls = flaky_rmtree(monkeypatch, failures=10, error_no=errno.EROFS)
    await remove_tree(tree, delay=0.001)
    assert len(calls) == 2  # one strict attempt, then the ignore_errors sweep (which succeeds here)
    assert not tree.exists()


async def test_remove_tree_gives_up_after_its_retries_without_raising(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path)
    calls = flaky_rmtree(monkeypatch, failures=100)
    await remove_tree(tree, retries=3, delay=0.001)
    assert len(calls) == 4  # three strict attempts and the final sweep


async def test_remove_tree_in_a_cancelled_scope_still_removes_and_reraises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path)
    flaky_rmtree(monkeypatch, failures=1)  # forces a retry sleep, which the cancellation interrupts
    with compat.move_on_after(0) as scope:
        await remove_tree(tree, delay=2)
    assert scope.cancelled_caught
    assert not tree.exists()


async def test_a_failed_materialization_retries_eperm_while_removing_its_temp_dir(
    monkeypatch: pytest.MonkeyPatch, temp_root: Path
) -> None:
    calls = flaky_rmtree(monkeypatch, failures=2)
    store = FakeStore({SID: transcript("hi")}, fail_on={"list_subkeys": ConnectionError("reset")})
    with pytest.raises(RuntimeError):
        await materialize(store, resume=SID)
    assert leftovers(temp_root) == []
    assert len(calls) == 3


async def test_cleanup_retries_eperm(monkeypatch: pytest.MonkeyPatch, temp_root: Path) -> None:
    materialized = await materialize_ok(FakeStore({SID: transcript("hi")}), resume=SID)
    calls = flaky_rmtree(monkeypatch, failures=2)
    await materialized.cleanup()
    assert leftovers(temp_root) == []
    assert len(calls) == 3


# --- coverage of reference §16.5 "options validation", as this API has it (added by the coverage audit) -----------


async def test_continue_with_an_explicit_resume_does_not_need_list_sessions(temp_root: Path) -> None:
    store = MinimalStore({SID: transcript("hi")})
    materialized = await materialize_ok(store, resume=SID, continue_conversation=True)
    assert materialized.resume_session_id == SID
    assert read_jsonl(main_file(materialized)) == transcript("hi")
    await materialized.cleanup()
    assert leftovers(temp_root) == []


async def test_continue_without_list_sessions_fails_before_touching_the_store_or_disk(temp_root: Path) -> None:
    calls: list[str] = []

    class CountingMinimalStore(MinimalStore):
        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            calls.append(key["session_id"])
            return await super().load(key)

    with pytest.raises(ValueError, match=r"pass resume=<session id> instead"):
        await materialize(CountingMinimalStore({SID: transcript("hi")}), continue_conversation=True)
    assert calls == []
    assert leftovers(temp_root) == []


async def test_remove_tree_in_an_already_cancelled_scope_removes_the_tree_without_any_failure(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    with compat.move_on_after(0) as scope:
        await remove_tree(tree)
        await compat.checkpoint()  # asyncio delivers the pending cancellation at the first await that yields
    assert scope.cancelled_caught
    assert not tree.exists()
