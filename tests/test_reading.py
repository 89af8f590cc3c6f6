"""Store-backed readers (reference §9, §16.4, the fast-path part of §16.8, SPEC §4 decision 6)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

import compat
from session_store.keys import canonicalize_path, project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.reading import (
    STORE_LIST_LOAD_CONCURRENCY,
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from session_store.types import (
    SessionInfo,
    SessionKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from tests.transcript_factories import (
    ListingOnlyStore,
    MinimalStore,
    NoSubkeysStore,
    RecordingStore,
    SummariesOnlyStore,
    agent_metadata,
    assistant,
    conversation,
    custom_title,
    epoch_ms,
    linked,
    new_id,
    progress,
    seed,
    tag,
    user,
)

PATHS = pytest.mark.parametrize("store_class", [RecordingStore, ListingOnlyStore], ids=["fast", "slow"])


async def seed_prompts(store: RecordingStore, directory: Path, count: int, **fields: object) -> list[str]:
    """``count`` sessions, one after another, whose first prompt is ``prompt <i>``; returns their ids."""
    session_ids = []
    for index in range(count):
        session_id = new_id()
        await seed(store, directory, session_id, conversation(f"prompt {index}", session_id=session_id, **fields))
        session_ids.append(session_id)
    return session_ids


async def listed_ids(store: RecordingStore, directory: Path, **kwargs: int) -> list[str]:
    return [info.session_id for info in await list_sessions_from_store(store, str(directory), **kwargs)]


# --- list_sessions_from_store: both paths ---------------------------------------------------------------------


@PATHS
async def test_list_sorts_newest_first_with_summary_and_first_prompt(
    tmp_path: Path, store_class: type[RecordingStore]
) -> None:
    store = store_class()
    ids = await seed_prompts(store, tmp_path, 3)
    infos = await list_sessions_from_store(store, str(tmp_path))
    assert [info.session_id for info in infos] == ids[::-1]
    oldest = infos[-1]
    assert (oldest.summary, oldest.first_prompt) == ("prompt 0", "prompt 0")
    assert infos[0].last_modified > infos[1].last_modified > infos[2].last_modified


@PATHS
async def test_list_applies_limit_and_offset(tmp_path: Path, store_class: type[RecordingStore]) -> None:
    store = store_class()
    ids = await seed_prompts(store, tmp_path, 4)
    assert await listed_ids(store, tmp_path, limit=2, offset=1) == [ids[2], ids[1]]


@PATHS
async def test_list_drops_sidechain_sessions_before_paging(tmp_path: Path, store_class: type[RecordingStore]) -> None:
    store = store_class()
    real = await seed_prompts(store, tmp_path, 5)
    await seed_prompts(store, tmp_path, 3, isSidechain=True)
    assert await listed_ids(store, tmp_path, limit=5) == real[::-1]
    assert len(await listed_ids(store, tmp_path, offset=2)) == 3


@PATHS
async def test_list_ignores_session_ids_that_are_not_uuids(tmp_path: Path, store_class: type[RecordingStore]) -> None:
    store = store_class()
    [real] = await seed_prompts(store, tmp_path, 1)
    await seed(store, tmp_path, "not-a-uuid", conversation("hidden"))
    assert await listed_ids(store, tmp_path) == [real]
    assert "not-a-uuid" not in store.loaded


@PATHS
async def test_list_rows_have_no_file_size(tmp_path: Path, store_class: type[RecordingStore]) -> None:
    store = store_class()
    await seed_prompts(store, tmp_path, 2)
    assert [info.file_size for info in await list_sessions_from_store(store, str(tmp_path))] == [None, None]


@PATHS
async def test_list_sees_only_the_directory_project(tmp_path: Path, store_class: type[RecordingStore]) -> None:
    store = store_class()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    [in_a] = await seed_prompts(store, tmp_path / "a", 1)
    await seed_prompts(store, tmp_path / "b", 1)
    assert await listed_ids(store, tmp_path / "a") == [in_a]


class SummaryBlindView:
    """The data of ``store`` without its summaries (duck-typed): listing through it takes the slow path."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.store.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.store.load(key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return await self.store.list_sessions(project_key)


async def test_fast_and_slow_paths_give_identical_rows_for_identical_data(tmp_path: Path) -> None:
    store = RecordingStore()
    sessions = [
        conversation("plain prompt", cwd="/work", gitBranch="main"),
        [*conversation("titled"), custom_title("My title")],
        [*conversation("tagged"), tag("urgent"), tag("release")],
        [*conversation("ai"), {"type": "ai-title", "aiTitle": "Generated"}],
        conversation("<command-name>/init</command-name>", "<command-name>/next</command-name>"),
        [*conversation("first"), {"type": "last-prompt", "lastPrompt": "most recent"}],
        [*conversation("x"), {"type": "summary", "summary": "a compacted summary"}, tag("")],
        [user("q", isMeta=True), user("x" * 300, gitBranch="b1"), assistant("a", gitBranch="b2")],
        conversation("side", isSidechain=True),
        [tag("metadata only")],
        [user("<local-command-stdout>generated</local-command-stdout>")],
    ]
    for index, entries in enumerate(sessions):
        for item in entries:  # one append per entry: the sidecar is folded incrementally, the slow path at once
            await seed(store, tmp_path, f"00000000-0000-4000-8000-{index:012d}", [item])

    fast_rows = await list_sessions_from_store(store, str(tmp_path))
    assert store.loaded == []
    slow_rows = await list_sessions_from_store(SummaryBlindView(store), str(tmp_path))  # type: ignore[arg-type]
    assert len(store.loaded) == len(sessions)

    assert fast_rows == slow_rows
    assert [row.summary for row in fast_rows][::-1] == [
        "plain prompt",
        "My title",
        "tagged",
        "Generated",
        "/init",
        "most recent",
        "a compacted summary",
        "x" * 200 + "\u2026",
    ]


# --- slow path ---------------------------------------------------------------------------------------------------


async def test_list_raises_when_the_store_cannot_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="list_sessions"):
        await list_sessions_from_store(MinimalStore(), str(tmp_path))  # type: ignore[arg-type]  # duck-typed


async def test_list_does_not_mutate_the_adapter_listing(tmp_path: Path) -> None:
    returned: list[list[SessionStoreListEntry]] = []

    class KeepsItsListingStore(ListingOnlyStore):
        async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
            returned.append(await super().list_sessions(project_key))
            return returned[-1]

    store = KeepsItsListingStore()
    ids = await seed_prompts(store, tmp_path, 3)
    assert await listed_ids(store, tmp_path) == ids[::-1]
    assert [row["session_id"] for row in returned[0]] == ids


async def test_a_failing_load_degrades_its_row(tmp_path: Path) -> None:
    store = ListingOnlyStore()
    good, bad = await seed_prompts(store, tmp_path, 2)
    store.failing_loads[bad] = RuntimeError("disk on fire")
    infos = {info.session_id: info for info in await list_sessions_from_store(store, str(tmp_path))}
    listed_mtime = {row["session_id"]: row["mtime"] for row in await store.list_sessions(store_key(tmp_path))}
    assert infos[bad] == SessionInfo(session_id=bad, summary="", last_modified=listed_mtime[bad])
    assert infos[good].summary == "prompt 0"


async def test_a_load_raising_a_base_exception_is_not_swallowed(tmp_path: Path) -> None:
    class StoreAborted(BaseException):
        pass

    store = ListingOnlyStore()
    [session_id] = await seed_prompts(store, tmp_path, 1)
    store.failing_loads[session_id] = StoreAborted()
    with pytest.raises(BaseExceptionGroup) as caught:
        await list_sessions_from_store(store, str(tmp_path))
    assert caught.group_contains(StoreAborted)


async def test_slow_path_keeps_at_most_16_loads_in_flight(tmp_path: Path) -> None:
    store = ListingOnlyStore()
    await seed_prompts(store, tmp_path, 48)
    store.load_delay_seconds = 0.01
    infos = await list_sessions_from_store(store, str(tmp_path))
    assert len(infos) == 48
    assert store.max_in_flight == STORE_LIST_LOAD_CONCURRENCY == 16


async def test_cancelling_a_listing_stops_every_load(tmp_path: Path) -> None:
    store = ListingOnlyStore()
    await seed_prompts(store, tmp_path, 40)
    store.load_delay_seconds = 60
    reached_end = False
    with compat.move_on_after(0.5) as scope:  # ample time for 16 loads to start on a busy machine
        await list_sessions_from_store(store, str(tmp_path))
        reached_end = True
    assert scope.cancelled_caught
    assert not reached_end
    assert len(store.loaded) == 16
    assert store.in_flight == 0
    assert store.finished_loads == 16


async def test_a_listing_timeout_raises_timeout_error_and_leaves_no_load_running(tmp_path: Path) -> None:
    store = RecordingStore()
    await seed_prompts(store, tmp_path, 3)
    store.hidden_summaries.update(row["session_id"] for row in await store.list_sessions(store_key(tmp_path)))
    store.load_delay_seconds = 60
    started = compat.current_time()
    with pytest.raises(TimeoutError), compat.fail_after(0.05):
        await list_sessions_from_store(store, str(tmp_path))
    assert compat.current_time() - started < 5
    assert (store.in_flight, store.finished_loads) == (0, 3)


# --- fast path -----------------------------------------------------------------------------------------------------


def store_key(directory: Path) -> str:
    return project_key_for_directory(directory)


async def test_fast_path_with_fresh_summaries_loads_nothing(tmp_path: Path) -> None:
    store = RecordingStore()
    await seed_prompts(store, tmp_path, 3)
    infos = await list_sessions_from_store(store, str(tmp_path))
    assert len(infos) == 3
    assert store.loaded == []


async def test_fast_path_falls_back_to_loading_when_summaries_are_not_implemented(tmp_path: Path) -> None:
    class RefusingSummariesStore(RecordingStore):
        async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
            raise NotImplementedError

    store = RefusingSummariesStore()
    ids = await seed_prompts(store, tmp_path, 2)
    assert await listed_ids(store, tmp_path) == ids[::-1]
    assert sorted(store.loaded) == sorted(ids)


async def test_fast_path_propagates_other_summary_errors(tmp_path: Path) -> None:
    class BrokenSummariesStore(RecordingStore):
        async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
            raise ConnectionError("summaries table unreachable")

    with pytest.raises(ConnectionError, match="unreachable"):
        await list_sessions_from_store(BrokenSummariesStore(), str(tmp_path))


async def test_fast_path_gap_fills_only_sessions_without_a_summary_on_one_clock(tmp_path: Path) -> None:
    store = RecordingStore()
    ids = await seed_prompts(store, tmp_path, 3)
    store.hidden_summaries.add(ids[1])
    infos = await list_sessions_from_store(store, str(tmp_path))
    listed = {row["session_id"]: row["mtime"] for row in await store.list_sessions(store_key(tmp_path))}
    assert store.loaded == [ids[1]]
    assert [info.session_id for info in infos] == ids[::-1]
    assert [info.last_modified for info in infos] == [listed[i] for i in ids[::-1]]
    assert infos[1].summary == "prompt 1"


async def test_fast_path_pages_before_gap_filling(tmp_path: Path) -> None:
    store = RecordingStore()
    ids = await seed_prompts(store, tmp_path, 5)
    store.hidden_summaries.update(ids)
    assert await listed_ids(store, tmp_path, limit=2, offset=1) == [ids[3], ids[2]]
    assert sorted(store.loaded) == sorted([ids[3], ids[2]])


async def test_fast_path_sidechain_summary_takes_no_page_slot(tmp_path: Path) -> None:
    store = RecordingStore()
    real = await seed_prompts(store, tmp_path, 2)
    await seed_prompts(store, tmp_path, 1, isSidechain=True)
    assert await listed_ids(store, tmp_path, limit=2) == real[::-1]
    assert store.loaded == []


async def test_fast_path_reloads_a_stale_summary_and_the_fresh_values_win(tmp_path: Path) -> None:
    store = RecordingStore()
    [session_id] = await seed_prompts(store, tmp_path, 1)
    [summary] = await InMemorySessionStore.list_session_summaries(store, store_key(tmp_path))
    stale: SessionSummaryEntry = {
        "session_id": session_id,
        "mtime": summary["mtime"] - 1,
        "data": {**summary["data"], "custom_title": "old title"},
    }
    store.replaced_summaries[session_id] = stale
    [info] = await list_sessions_from_store(store, str(tmp_path))
    assert store.loaded == [session_id]
    assert (info.summary, info.custom_title, info.last_modified) == ("prompt 0", None, summary["mtime"])


async def test_fast_path_trusts_a_summary_as_new_as_the_listing(tmp_path: Path) -> None:
    store = RecordingStore()
    [session_id] = await seed_prompts(store, tmp_path, 1)  # entries from 2024, storage clock now
    [summary] = await InMemorySessionStore.list_session_summaries(store, store_key(tmp_path))
    [row] = await store.list_sessions(store_key(tmp_path))
    assert summary["mtime"] == row["mtime"] > epoch_ms(10)
    [info] = await list_sessions_from_store(store, str(tmp_path))
    assert (info.session_id, store.loaded) == (session_id, [])


async def test_fast_path_drops_a_summary_missing_from_the_listing(tmp_path: Path) -> None:
    store = RecordingStore()
    [real] = await seed_prompts(store, tmp_path, 1)
    ghost = new_id()
    store.extra_summaries.append(
        {"session_id": ghost, "mtime": 1, "data": {"first_prompt": "ghost", "first_prompt_locked": True}}
    )
    assert await listed_ids(store, tmp_path) == [real]


async def test_fast_path_ignores_summaries_with_non_uuid_ids(tmp_path: Path) -> None:
    store = SummariesOnlyStore()
    await seed(store, tmp_path, "not-a-uuid", conversation("hidden"))
    assert await listed_ids(store, tmp_path) == []


async def test_fast_path_without_list_sessions_lists_only_summarized_sessions(tmp_path: Path) -> None:
    store = SummariesOnlyStore()
    ids = await seed_prompts(store, tmp_path, 2)
    store.hidden_summaries.add(ids[0])
    assert await listed_ids(store, tmp_path) == [ids[1]]
    assert store.loaded == []


async def test_fast_path_gap_fill_keeps_at_most_16_loads_in_flight(tmp_path: Path) -> None:
    store = RecordingStore()
    ids = await seed_prompts(store, tmp_path, 32)
    store.hidden_summaries.update(ids)
    store.load_delay_seconds = 0.01
    assert len(await listed_ids(store, tmp_path)) == 32
    assert store.max_in_flight == 16


async def test_fast_path_gap_fill_degrades_a_failing_load(tmp_path: Path) -> None:
    store = RecordingStore()
    [session_id] = await seed_prompts(store, tmp_path, 1)
    store.hidden_summaries.add(session_id)
    store.failing_loads[session_id] = OSError("gone")
    [info] = await list_sessions_from_store(store, str(tmp_path))
    assert (info.session_id, info.summary, info.first_prompt) == (session_id, "", None)


# --- get_session_info_from_store ----------------------------------------------------------------------------------


async def test_info_of_a_seeded_session(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("hello", "again", session_id=session_id, start_at=5))
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None
    assert (info.summary, info.first_prompt) == ("hello", "hello")
    assert (info.created_at, info.last_modified, info.file_size) == (epoch_ms(5), epoch_ms(8), None)


async def test_info_of_an_unknown_or_invalid_session_is_none(tmp_path: Path) -> None:
    store = RecordingStore()
    assert await get_session_info_from_store(store, new_id(), str(tmp_path)) is None
    assert await get_session_info_from_store(store, "not-a-uuid", str(tmp_path)) is None
    assert len(store.loaded) == 1


async def test_info_reflects_the_custom_title_and_tag(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, [*conversation("q"), custom_title("Renamed"), tag("urgent")])
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None
    assert (info.summary, info.custom_title, info.tag) == ("Renamed", "Renamed", "urgent")


async def test_info_tag_survives_a_store_that_reorders_keys(tmp_path: Path) -> None:
    class ReorderingStore(RecordingStore):
        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            loaded = await super().load(key)
            reordered = [dict(sorted(entry.items())) for entry in loaded or []]  # as JSONB returns them
            return cast("list[SessionStoreEntry]", reordered) if loaded is not None else None

    store = ReorderingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, [*conversation("q"), tag("kept")])
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None and info.tag == "kept"


async def test_info_cwd_falls_back_to_the_canonical_directory(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("no cwd recorded"))
    info = await get_session_info_from_store(store, session_id, str(tmp_path) + "/.")
    assert info is not None and info.cwd == canonicalize_path(str(tmp_path))


async def test_info_equals_the_listing_row_apart_from_last_modified(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, [*conversation("q", gitBranch="dev"), tag("t")])
    [listed] = await list_sessions_from_store(store, str(tmp_path))
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None
    info.last_modified = listed.last_modified
    assert info == listed


async def test_info_of_a_sidechain_session_is_none(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("side", isSidechain=True))
    assert await get_session_info_from_store(store, session_id, str(tmp_path)) is None


# --- get_session_messages_from_store ------------------------------------------------------------------------------


async def test_messages_come_back_in_chain_order(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = conversation("one", "two", session_id=session_id)
    await seed(store, tmp_path, session_id, entries)
    messages = await get_session_messages_from_store(store, session_id, str(tmp_path))
    assert [(m.type, m.uuid, m.session_id) for m in messages] == [(e["type"], e["uuid"], session_id) for e in entries]
    assert messages[0].message == {"role": "user", "content": "one"}
    assert {(m.parent_tool_use_id, m.parent_agent_id) for m in messages} == {(None, None)}


async def test_messages_ignore_rename_and_tag_entries(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = conversation("one")
    await seed(store, tmp_path, session_id, [*entries, custom_title("t"), tag("x")])
    messages = await get_session_messages_from_store(store, session_id, str(tmp_path))
    assert [m.uuid for m in messages] == [e["uuid"] for e in entries]


async def test_messages_are_paged(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = conversation("1", "2", "3")
    await seed(store, tmp_path, session_id, entries)
    messages = await get_session_messages_from_store(store, session_id, str(tmp_path), limit=2, offset=2)
    assert [m.uuid for m in messages] == [e["uuid"] for e in entries[2:4]]


async def test_messages_of_an_unknown_or_invalid_session_are_empty(tmp_path: Path) -> None:
    store = RecordingStore()
    assert await get_session_messages_from_store(store, new_id(), str(tmp_path)) == []
    assert await get_session_messages_from_store(store, "../etc/passwd", str(tmp_path)) == []
    assert len(store.loaded) == 1


# --- subagents ---------------------------------------------------------------------------------------------------


async def seed_subagent(
    store: RecordingStore, directory: Path, session_id: str, subpath: str, *extra: dict[str, object]
) -> list[dict[str, object]]:
    entries = linked(user("do the task"), progress(), assistant("done"))
    await seed(store, directory, session_id, [*entries, *extra], subpath=subpath)
    return entries


async def test_subagents_are_listed_and_read(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("main"))
    entries = await seed_subagent(store, tmp_path, session_id, "subagents/agent-abc")
    assert await list_subagents_from_store(store, session_id, str(tmp_path)) == ["abc"]
    messages = await get_subagent_messages_from_store(store, session_id, "abc", str(tmp_path))
    assert [m.uuid for m in messages] == [entries[0]["uuid"], entries[2]["uuid"]]


async def test_subagent_under_a_nested_workflow_subpath(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = await seed_subagent(store, tmp_path, session_id, "subagents/workflows/run-1/agent-nested")
    assert await list_subagents_from_store(store, session_id, str(tmp_path)) == ["nested"]
    messages = await get_subagent_messages_from_store(store, session_id, "nested", str(tmp_path))
    assert len(messages) == 2 and messages[-1].uuid == entries[-1]["uuid"]


async def test_subagent_listing_skips_non_agent_subpaths_and_deduplicates(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    for subpath in ("subagents/agent-a", "tool-results/agent-x", "subagents/notes", "subagents/wf/agent-a"):
        await seed_subagent(store, tmp_path, session_id, subpath)
    await seed_subagent(store, tmp_path, session_id, "subagents/agent-b")
    assert await list_subagents_from_store(store, session_id, str(tmp_path)) == ["a", "b"]


async def test_subagent_metadata_is_not_a_message_and_gives_no_parents_without_ids(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed_subagent(store, tmp_path, session_id, "subagents/agent-a", agent_metadata(agentType="general"))
    messages = await get_subagent_messages_from_store(store, session_id, "a", str(tmp_path))
    assert len(messages) == 2
    assert {(m.parent_tool_use_id, m.parent_agent_id) for m in messages} == {(None, None)}


async def test_subagent_parent_ids_come_from_the_last_metadata_entry(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    first = agent_metadata(toolUseId="toolu_old", parentAgentId="old")
    last = agent_metadata(toolUseId="toolu_new", parentAgentId="parent-agent")
    await seed_subagent(store, tmp_path, session_id, "subagents/agent-a", first, last)
    messages = await get_subagent_messages_from_store(store, session_id, "a", str(tmp_path))
    assert {(m.parent_tool_use_id, m.parent_agent_id) for m in messages} == {("toolu_new", "parent-agent")}


async def test_subagent_parent_ids_ignore_non_string_values(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed_subagent(
        store, tmp_path, session_id, "subagents/agent-a", agent_metadata(toolUseId=7, parentAgentId="p")
    )
    messages = await get_subagent_messages_from_store(store, session_id, "a", str(tmp_path))
    assert {(m.parent_tool_use_id, m.parent_agent_id) for m in messages} == {(None, "p")}


async def test_subagent_messages_are_paged(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    entries = await seed_subagent(store, tmp_path, session_id, "subagents/agent-a")
    messages = await get_subagent_messages_from_store(store, session_id, "a", str(tmp_path), limit=1, offset=1)
    assert [m.uuid for m in messages] == [entries[2]["uuid"]]


async def test_subagent_readers_reject_invalid_ids_without_store_calls(tmp_path: Path) -> None:
    store = RecordingStore()
    assert await list_subagents_from_store(store, "nope", str(tmp_path)) == []
    assert await list_subagents_from_store(MinimalStore(), "nope", str(tmp_path)) == []  # type: ignore[arg-type]
    assert await get_subagent_messages_from_store(store, "nope", "a", str(tmp_path)) == []
    assert await get_subagent_messages_from_store(store, new_id(), "", str(tmp_path)) == []
    assert store.loaded == []


async def test_subagent_messages_of_an_unknown_agent_are_empty(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed_subagent(store, tmp_path, session_id, "subagents/agent-a")
    assert await get_subagent_messages_from_store(store, session_id, "b", str(tmp_path)) == []
    assert store.loaded == []


async def test_listing_subagents_needs_list_subkeys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="list_subkeys"):
        await list_subagents_from_store(NoSubkeysStore(), new_id(), str(tmp_path))


async def test_subagent_messages_use_the_direct_path_without_list_subkeys(tmp_path: Path) -> None:
    store = NoSubkeysStore()
    session_id = new_id()
    await seed_subagent(store, tmp_path, session_id, "subagents/agent-direct")
    await seed_subagent(store, tmp_path, session_id, "subagents/wf/agent-nested")
    assert len(await get_subagent_messages_from_store(store, session_id, "direct", str(tmp_path))) == 2
    assert await get_subagent_messages_from_store(store, session_id, "nested", str(tmp_path)) == []


# --- coverage of reference §16.9 tag and created_at extraction, store-backed (added by the coverage audit) ---------


def tool_use_with_a_tag_input(tag_value: str, session_id: str) -> dict[str, object]:
    item = assistant("building", session_id=session_id)
    block = {"type": "tool_use", "id": "toolu_1", "name": "docker_build", "input": {"tag": tag_value}}
    item["message"] = {"role": "assistant", "content": [block]}
    return item


@PATHS
async def test_list_tag_ignores_tag_fields_inside_tool_use_inputs(
    tmp_path: Path, store_class: type[RecordingStore]
) -> None:
    store = store_class()
    tagged, untagged = new_id(), new_id()
    await seed(
        store,
        tmp_path,
        tagged,
        [*conversation("tag v1.0", session_id=tagged), tag("real-tag"), tool_use_with_a_tag_input("myapp:v2", tagged)],
    )
    await seed(
        store,
        tmp_path,
        untagged,
        [*conversation("build", session_id=untagged), tool_use_with_a_tag_input("prod", untagged)],
    )
    tags = {info.session_id: info.tag for info in await list_sessions_from_store(store, str(tmp_path))}
    assert tags == {tagged: "real-tag", untagged: None}


@PATHS
async def test_list_created_at_comes_from_the_first_entry_that_has_a_timestamp(
    tmp_path: Path, store_class: type[RecordingStore]
) -> None:
    store = store_class()
    session_id = new_id()
    mode_line = {"type": "permission-mode", "permissionMode": "acceptEdits", "sessionId": session_id}
    await seed(store, tmp_path, session_id, [mode_line, *conversation("hello", session_id=session_id, start_at=90)])
    [info] = await list_sessions_from_store(store, str(tmp_path))
    assert info.created_at == epoch_ms(90)
    assert info.created_at is not None and info.created_at <= info.last_modified
