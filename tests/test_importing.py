"""Importing local transcripts into a store (reference §11, §16.7, SPEC §4 decision 7)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from session_store.importing import ImportResult, import_session_to_store
from session_store.keys import file_path_to_session_key, project_key_for_directory, sanitize_path
from session_store.reading import get_subagent_messages_from_store, list_subagents_from_store
from session_store.sdk.session_import import import_session_to_store as sdk_import_session_to_store
from session_store.types import SessionKey
from tests.transcript_factories import (
    AppendSpyStore,
    Entry,
    RecordingStore,
    conversation,
    linked,
    new_id,
    user,
    write_jsonl,
)

PROJECT_DIRECTORY = "/home/me/project"  # need not exist: only its project key matters
PROJECT = project_key_for_directory(PROJECT_DIRECTORY)


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    return tmp_path / "projects"


def write_session(projects: Path, session_id: str, entries: list[Entry], project: str = PROJECT) -> Path:
    return write_jsonl(projects / project / f"{session_id}.jsonl", entries)


def write_subagent(projects: Path, session_id: str, subpath: str, entries: list[Entry]) -> Path:
    return write_jsonl(projects / PROJECT / session_id / f"{subpath}.jsonl", entries)


def main_key(session_id: str, project: str = PROJECT) -> SessionKey:
    return {"project_key": project, "session_id": session_id}


# --- main transcript -------------------------------------------------------------------------------------------


async def test_import_copies_the_main_transcript(projects: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = conversation("hello", "again", session_id=session_id)
    write_session(projects, session_id, entries)
    result = await import_session_to_store(session_id, store, projects_dir=projects)
    assert await store.load(main_key(session_id)) == entries
    assert result == ImportResult(session_id=session_id, project_key=PROJECT, transcripts=1, entries=4, stored=4)


async def test_import_in_sdk_order_appends_in_batches_of_batch_size(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    entries = [user(f"m{i}") for i in range(5)]
    write_session(projects, session_id, entries)
    await sdk_import_session_to_store(session_id, store, projects_dir=projects, batch_size=2)
    assert store.appends == [
        (main_key(session_id), entries[0:2]),
        (main_key(session_id), entries[2:4]),
        (main_key(session_id), entries[4:5]),
    ]


async def test_import_writes_the_main_transcript_in_one_call_whatever_the_batch_size(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    entries = [user(f"m{i}") for i in range(5)]
    write_session(projects, session_id, entries)
    await import_session_to_store(session_id, store, projects_dir=projects, batch_size=2)
    assert store.appends == [(main_key(session_id), entries)]


async def test_import_writes_subagents_in_batches_before_the_main_transcript(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    main = [user(f"m{i}") for i in range(3)]
    write_session(projects, session_id, main)
    sub = linked(user("a"), user("b"), user("c"))
    write_subagent(projects, session_id, "subagents/agent-a", sub)
    await import_session_to_store(session_id, store, projects_dir=projects, batch_size=2)
    sub_key: SessionKey = {**main_key(session_id), "subpath": "subagents/agent-a"}
    assert store.appends == [(sub_key, sub[0:2]), (sub_key, sub[2:3]), (main_key(session_id), main)]


@pytest.mark.parametrize("batch_size", [0, -3])
async def test_import_batch_size_of_zero_or_less_uses_the_default(projects: Path, batch_size: int) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    write_session(projects, session_id, [user(f"m{i}") for i in range(5)])
    await sdk_import_session_to_store(session_id, store, projects_dir=projects, batch_size=batch_size)
    assert [len(entries) for _, entries in store.appends] == [5]


async def test_import_flushes_a_batch_at_one_mebibyte_of_lines(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    write_session(projects, session_id, [user("x" * 600_000) for _ in range(3)])
    await sdk_import_session_to_store(session_id, store, projects_dir=projects)
    assert [len(entries) for _, entries in store.appends] == [2, 1]


async def test_import_skips_blank_lines(projects: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = conversation("q")
    path = projects / PROJECT / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n" + json.dumps(entries[0]) + "\r\n\n" + json.dumps(entries[1]), encoding="utf-8")
    result = await import_session_to_store(session_id, store, projects_dir=projects)
    assert await store.load(main_key(session_id)) == entries
    assert result.skipped_lines == []


async def test_reimporting_a_session_duplicates_nothing(projects: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = conversation("q", "r")
    write_session(projects, session_id, entries)
    write_subagent(projects, session_id, "subagents/agent-a", linked(user("task")))
    for _ in range(2):
        await import_session_to_store(session_id, store, projects_dir=projects)
    assert await store.load(main_key(session_id)) == entries
    assert len(await get_subagent_messages_from_store(store, session_id, "a", PROJECT_DIRECTORY)) == 1


# --- invalid lines (SPEC §4 decision 7) ----------------------------------------------------------------------------


def write_with_bad_line(projects: Path, session_id: str, bad: bytes) -> tuple[Path, list[Entry]]:
    good = conversation("one", "two")
    path = projects / PROJECT / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True)
    lines = [json.dumps(good[0]).encode(), json.dumps(good[1]).encode(), bad, json.dumps(good[2]).encode()]
    lines.append(json.dumps(good[3]).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, good


BAD_LINES = pytest.mark.parametrize(
    "bad",
    [b'{"type": "user", "uuid": ', b"[1, 2]", b'"just a string"', b"  ", b'{"type":"user","text":"\xff\xfe"}'],
    ids=["truncated", "array", "string", "whitespace", "not-utf8"],
)


@BAD_LINES
async def test_an_invalid_line_raises_value_error_naming_file_and_line(projects: Path, bad: bytes) -> None:
    store = RecordingStore()
    session_id = new_id()
    path, _ = write_with_bad_line(projects, session_id, bad)
    with pytest.raises(ValueError, match="skip_invalid_lines=True") as caught:
        await import_session_to_store(session_id, store, projects_dir=projects)
    assert str(caught.value).startswith(f"{path}:3: invalid transcript line")


@BAD_LINES
async def test_skip_invalid_lines_imports_the_rest_and_reports_what_it_skipped(projects: Path, bad: bytes) -> None:
    store = RecordingStore()
    session_id = new_id()
    path, good = write_with_bad_line(projects, session_id, bad)
    result = await import_session_to_store(session_id, store, projects_dir=projects, skip_invalid_lines=True)
    assert await store.load(main_key(session_id)) == good
    [skipped] = result.skipped_lines
    assert (skipped.path, skipped.line_number) == (path, 3)
    assert str(skipped).startswith(f"{path}:3: invalid transcript line")
    assert result.entries == 4


async def test_an_invalid_line_leaves_the_store_unchanged_and_a_fixed_reimport_completes(projects: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    _, good = write_with_bad_line(projects, session_id, b"{oops")
    with pytest.raises(ValueError, match=":3:"):
        await import_session_to_store(session_id, store, projects_dir=projects, batch_size=1)
    assert await store.load(main_key(session_id)) is None  # every line is checked before the first append
    write_session(projects, session_id, good)
    await import_session_to_store(session_id, store, projects_dir=projects, batch_size=1)
    assert await store.load(main_key(session_id)) == good


# --- subagents -----------------------------------------------------------------------------------------------------


async def test_import_writes_subagents_under_their_subpath(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    write_session(projects, session_id, conversation("main"))
    agent = linked(user("task"), user("more"))
    write_subagent(projects, session_id, "subagents/workflows/run-1/agent-def", agent)
    write_subagent(projects, session_id, "subagents/agent-abc", agent)
    result = await import_session_to_store(session_id, store, projects_dir=projects)
    assert [key.get("subpath") for key, _ in store.appends] == [
        None,
        "subagents/agent-abc",
        "subagents/workflows/run-1/agent-def",
    ]
    assert await list_subagents_from_store(store, session_id, PROJECT_DIRECTORY) == ["abc", "def"]
    assert result.transcripts == 3


async def test_import_turns_the_meta_sidecar_into_an_agent_metadata_entry(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    write_session(projects, session_id, conversation("main"))
    path = write_subagent(projects, session_id, "subagents/agent-abc", linked(user("task")))
    path.with_name("agent-abc.meta.json").write_text(
        json.dumps({"type": "stray", "toolUseId": "toolu_1", "agentType": "explore"}), encoding="utf-8"
    )
    await import_session_to_store(session_id, store, projects_dir=projects)
    key, [metadata] = store.appends[-1]
    assert key == {**main_key(session_id), "subpath": "subagents/agent-abc"}
    assert metadata == {"type": "agent_metadata", "toolUseId": "toolu_1", "agentType": "explore"}
    [message] = await get_subagent_messages_from_store(store, session_id, "abc", PROJECT_DIRECTORY)
    assert message.parent_tool_use_id == "toolu_1"


@pytest.mark.parametrize("sidecar", ["not json {", "[1, 2]", "42"], ids=["corrupt", "array", "number"])
async def test_import_treats_an_unusable_sidecar_as_absent(projects: Path, sidecar: str) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    write_session(projects, session_id, conversation("main"))
    path = write_subagent(projects, session_id, "subagents/agent-abc", linked(user("task")))
    path.with_name("agent-abc.meta.json").write_text(sidecar, encoding="utf-8")
    await import_session_to_store(session_id, store, projects_dir=projects)
    assert len(store.appends) == 2
    assert all(entry["type"] != "agent_metadata" for _, entries in store.appends for entry in entries)


async def test_import_without_subagents_leaves_them_out(projects: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    write_session(projects, session_id, conversation("main"))
    write_subagent(projects, session_id, "subagents/agent-abc", linked(user("task")))
    result = await import_session_to_store(session_id, store, projects_dir=projects, include_subagents=False)
    assert await store.list_subkeys(main_key(session_id)) == []
    assert result.transcripts == 1


async def test_import_without_a_subagents_folder_imports_only_the_main_transcript(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    write_session(projects, session_id, conversation("main"))
    (projects / PROJECT / session_id).mkdir()
    await import_session_to_store(session_id, store, projects_dir=projects)
    assert [key for key, _ in store.appends] == [main_key(session_id)]


# --- validation and lookup -----------------------------------------------------------------------------------------


async def test_import_rejects_an_invalid_session_id(projects: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("Invalid session_id: ../../etc")):
        await import_session_to_store("../../etc", RecordingStore(), projects_dir=projects)


async def test_import_of_a_missing_or_empty_session_raises_file_not_found(projects: Path) -> None:
    session_id = new_id()
    with pytest.raises(FileNotFoundError, match=f"Session {session_id} not found"):
        await import_session_to_store(session_id, RecordingStore(), projects_dir=projects)
    (projects / PROJECT).mkdir(parents=True)
    (projects / PROJECT / f"{session_id}.jsonl").touch()
    with pytest.raises(FileNotFoundError, match=f"Session {session_id} not found"):
        await import_session_to_store(session_id, RecordingStore(), projects_dir=projects)


async def test_import_keys_match_the_mirror_keys(projects: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    main = write_session(projects, session_id, conversation("main"))
    sub = write_subagent(projects, session_id, "subagents/workflows/run-1/agent-x", linked(user("task")))
    await import_session_to_store(session_id, store, projects_dir=projects)
    assert [key for key, _ in store.appends] == [
        file_path_to_session_key(main, projects),
        file_path_to_session_key(sub, projects),
    ]


async def test_import_without_directory_keys_by_the_folder_found_not_the_cwd(
    projects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RecordingStore()
    session_id = new_id()
    write_session(projects, session_id, conversation("main"), project="-somewhere-else")
    (tmp_path / "unrelated").mkdir()
    monkeypatch.chdir(tmp_path / "unrelated")
    result = await import_session_to_store(session_id, store, projects_dir=projects)
    assert result.project_key == "-somewhere-else" != project_key_for_directory(None)
    assert await store.load(main_key(session_id, "-somewhere-else")) is not None


async def test_import_with_directory_looks_only_in_that_project(projects: Path, tmp_path: Path) -> None:
    session_id = new_id()
    write_session(projects, session_id, conversation("elsewhere"), project="-other")
    with pytest.raises(FileNotFoundError, match="the project of"):
        await import_session_to_store(session_id, RecordingStore(), directory=tmp_path, projects_dir=projects)
    write_session(projects, session_id, conversation("here"), project=project_key_for_directory(tmp_path))
    result = await import_session_to_store(session_id, RecordingStore(), directory=tmp_path, projects_dir=projects)
    assert result.project_key == project_key_for_directory(tmp_path)


async def test_import_finds_a_long_project_folder_by_its_prefix(projects: Path) -> None:
    directory = "/" + "deep/" * 50 + "project"
    sanitized = sanitize_path(directory)
    assert len(sanitized) > 200
    folder = sanitized[:200] + "-hashfromanotherimplementation"
    session_id = new_id()
    write_session(projects, session_id, conversation("q"), project=folder)
    result = await import_session_to_store(session_id, RecordingStore(), directory=directory, projects_dir=projects)
    assert result.project_key == folder


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
async def test_import_finds_a_session_in_a_git_worktree_of_the_directory(projects: Path, tmp_path: Path) -> None:
    repo, worktree = tmp_path / "repo", tmp_path / "worktree"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init")
    git("worktree", "add", "-q", str(worktree))
    session_id = new_id()
    write_session(projects, session_id, conversation("q"), project=project_key_for_directory(worktree))
    result = await import_session_to_store(session_id, RecordingStore(), directory=repo, projects_dir=projects)
    assert result.project_key == project_key_for_directory(worktree)


async def test_import_defaults_to_the_claude_config_projects_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "config"))
    session_id = new_id()
    write_session(tmp_path / "config" / "projects", session_id, conversation("q"))
    store = RecordingStore()
    await import_session_to_store(session_id, store)
    assert await store.load(main_key(session_id)) is not None
