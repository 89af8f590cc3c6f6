"""The shapes of real Claude Code transcripts, without the corpus (issue 7; :mod:`tests.transcript_shapes`).

Every shape found in ``../shared/corpus/real-transcripts`` gets a small synthetic transcript written as a
projects folder, imported with :func:`import_session_to_store` into the memory and SQLite stores (on both
backends), read back and resumed: parallel tool calls (main and subagent), compactions, old-style summary
lines, inline sidechains, a file whose lines carry two session ids, a file without a final newline, a 1 MiB
image line, and the progress / file-history-snapshot / queue-operation / pr-link entries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from session_store.adapters.sqlite import SQLiteSessionStore
from session_store.importing import import_session_to_store
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
)
from session_store.resume import materialize_resume_session
from tests.transcript_factories import Entry, assistant, jsonl, linked, new_id, user
from tests.transcript_shapes import (
    between_messages,
    compacted_session,
    image_prompt,
    old_style_summary,
    parallel_session,
    two_session_ids,
    with_inline_sidechain,
)

Store = InMemorySessionStore | SQLiteSessionStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A new store, not yet entered: each test uses it as ``async with store:`` (fixtures are sync here)."""
    return InMemorySessionStore() if request.param == "memory" else SQLiteSessionStore(tmp_path / "s.db")


class Projects:
    """A projects folder with one project (the folder of :attr:`directory`), written file by file."""

    def __init__(self, root: Path) -> None:
        self.root = root / "projects"
        self.directory = str(root / "work")
        self.project_dir = self.root / project_key_for_directory(self.directory)

    def write(
        self, session_id: str, entries: list[Entry], *, subpath: str | None = None, final_newline: bool = True
    ) -> Path:
        path = self.project_dir / (f"{session_id}/{subpath}.jsonl" if subpath else f"{session_id}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = jsonl(entries)
        path.write_text(text if final_newline else text.removesuffix("\n"), encoding="utf-8")
        return path

    async def import_and_resume(self, store: Store, session_id: str) -> dict[str, list[Any]]:
        """Import the session, then resume it: the lines of every file resume wrote, by path under the session."""
        await import_session_to_store(session_id, store, projects_dir=self.root)
        materialized = await materialize_resume_session(store, resume=session_id, cwd=self.directory)
        assert materialized is not None
        try:
            written = materialized.projects_dir / self.project_dir.name
            return {
                path.relative_to(written).as_posix(): [json.loads(line) for line in path.read_text().splitlines()]
                for path in sorted(written.rglob("*.jsonl"))
            }
        finally:
            await materialized.cleanup()


@pytest.fixture
def projects(tmp_path: Path) -> Projects:
    return Projects(tmp_path)


async def message_uuids(store: Store, session_id: str, directory: str) -> list[str]:
    return [message.uuid for message in await get_session_messages_from_store(store, session_id, directory)]


async def test_a_parallel_turn_read_from_disk_comes_back_whole(store: Store, projects: Projects) -> None:
    async with store:
        session_id = new_id()
        entries = parallel_session(3, [1, 2, 0], continue_from=0, sessionId=session_id)
        projects.write(session_id, entries)
        sub = parallel_session(2, [0, 1], continue_from=0, prefix="s-", sessionId=session_id, isSidechain=True)
        projects.write(session_id, sub, subpath="subagents/agent-abc")
        assert await projects.import_and_resume(store, session_id) == {
            f"{session_id}.jsonl": entries,
            f"{session_id}/subagents/agent-abc.jsonl": sub,
        }
        expected = ["prompt", "call-0", "call-1", "call-2", "result-1", "result-2", "result-0", "answer"]
        assert await message_uuids(store, session_id, projects.directory) == expected
        sub_messages = await get_subagent_messages_from_store(store, session_id, "abc", projects.directory)
        assert [m.uuid for m in sub_messages] == [
            "s-prompt",
            "s-call-0",
            "s-call-1",
            "s-result-1",
            "s-result-0",
            "s-answer",
        ]


async def test_after_a_compaction_the_summary_and_what_follows_are_the_conversation(
    store: Store, projects: Projects
) -> None:
    async with store:
        session_id = new_id()
        entries = compacted_session(session_id)
        projects.write(session_id, entries)
        assert await projects.import_and_resume(store, session_id) == {f"{session_id}.jsonl": entries}
        summary, after = entries[-2:]
        assert await message_uuids(store, session_id, projects.directory) == [summary["uuid"], after["uuid"]]
        info = await get_session_info_from_store(store, session_id, projects.directory)
        assert info is not None and info.first_prompt == "first question"  # the compact summary is not a prompt


async def test_old_style_summary_lines_are_kept_and_name_the_session(store: Store, projects: Projects) -> None:
    async with store:
        session_id = new_id()
        chat = linked(user("what is up", session_id=session_id), assistant("not much", session_id=session_id, at=1))
        entries = [old_style_summary(chat[-1]["uuid"], "an older title"), *chat, old_style_summary(chat[-1]["uuid"])]
        projects.write(session_id, entries)
        assert await projects.import_and_resume(store, session_id) == {f"{session_id}.jsonl": entries}
        assert await message_uuids(store, session_id, projects.directory) == [item["uuid"] for item in chat]
        [row] = await list_sessions_from_store(store, projects.directory)
        assert (row.summary, row.first_prompt) == ("An old-style session summary", "what is up")


async def test_inline_sidechain_lines_stay_stored_but_out_of_the_conversation(store: Store, projects: Projects) -> None:
    async with store:
        session_id = new_id()
        main_1, main_2, side_1, side_2, final = with_inline_sidechain(session_id)
        entries = [main_1, main_2, final, side_1, side_2]  # the sidechain written last: still not the leaf
        projects.write(session_id, entries)
        assert await projects.import_and_resume(store, session_id) == {f"{session_id}.jsonl": entries}
        assert await message_uuids(store, session_id, projects.directory) == [
            main_1["uuid"],
            main_2["uuid"],
            final["uuid"],
        ]


async def test_a_file_with_two_session_ids_is_one_session_under_its_file_name(store: Store, projects: Projects) -> None:
    async with store:
        file_id, other_id = new_id(), new_id()
        entries = two_session_ids(file_id, other_id)
        projects.write(file_id, entries)
        assert await projects.import_and_resume(store, file_id) == {f"{file_id}.jsonl": entries}
        messages = await get_session_messages_from_store(store, file_id, projects.directory)
        assert [m.session_id for m in messages] == [file_id, file_id, other_id, other_id]
        assert await get_session_messages_from_store(store, other_id, projects.directory) == []


async def test_a_file_without_a_final_newline_loses_no_line(store: Store, projects: Projects) -> None:
    async with store:
        session_id = new_id()
        entries = linked(*[user(f"line {index}", session_id=session_id, at=index) for index in range(3)])
        path = projects.write(session_id, entries, final_newline=False)
        assert not path.read_bytes().endswith(b"\n")
        assert await projects.import_and_resume(store, session_id) == {f"{session_id}.jsonl": entries}


async def test_a_one_mebibyte_image_line_round_trips(store: Store, projects: Projects) -> None:
    async with store:
        session_id = new_id()
        image = image_prompt(session_id, at=0)
        entries = linked(image, assistant("a cat", session_id=session_id, at=1))
        projects.write(session_id, entries)
        assert len(json.dumps(image)) > 1 << 20
        assert await projects.import_and_resume(store, session_id) == {f"{session_id}.jsonl": entries}
        [row] = await list_sessions_from_store(store, projects.directory)
        assert row.first_prompt == "what is in this picture?"


async def test_entries_between_messages_are_stored_and_not_shown(store: Store, projects: Projects) -> None:
    async with store:
        session_id = new_id()
        chat = linked(user("hello", session_id=session_id), assistant("hi", session_id=session_id, at=1))
        extras = between_messages(session_id, chat[-1]["uuid"])
        reply = assistant("anything else?", parent=extras[0]["uuid"], session_id=session_id, at=12)
        entries = [*chat, *extras, reply]
        projects.write(session_id, entries)
        assert await projects.import_and_resume(store, session_id) == {f"{session_id}.jsonl": entries}
        expected = [chat[0]["uuid"], chat[1]["uuid"], reply["uuid"]]  # through the progress line, not showing it
        assert await message_uuids(store, session_id, projects.directory) == expected
