"""Parallel tool turns: the chain puts back the calls and results a ``parentUuid`` walk leaves out (delta
0.2.189 §2; SPEC §4 decision 9 for subagents).

One test per row of the delta's §2.6 edge-case table and per SDK test of its §2.9, on the pure chain
functions (sync), plus the store readers on both backends for the main session and for subagents, where the
SDK does not recover and this project does.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from session_store.memory import InMemorySessionStore
from session_store.mutations import fork_session_via_store
from session_store.reading import get_session_messages_from_store, get_subagent_messages_from_store
from session_store.transcript import (
    build_conversation_chain,
    build_subagent_chain,
    entries_to_session_messages,
    filter_transcript_entries,
    recover_parallel_tool_results,
)
from tests.transcript_factories import Entry, agent_metadata, assistant, entry, key_for, new_id, seed, user
from tests.transcript_shapes import parallel_session, parallel_tool_turn, tool_result_for, tool_use, uuids


def chain_uuids(entries: list[Entry]) -> list[str]:
    return uuids(build_conversation_chain(filter_transcript_entries(entries)))


def block_ids(messages: list[Any], block_type: str, field: str) -> list[str]:
    """``field`` of every ``block_type`` block across ``messages`` (SessionMessage objects), in order."""
    found = []
    for message in messages:
        content = message.message.get("content") if isinstance(message.message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == block_type:
                found.append(block[field])
    return found


# --- the SDK's tests (delta §2.9), on the chain and the message readers ---------------------------------------


@pytest.mark.parametrize("result_order", [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]])
def test_parallel_turn_keeps_every_call_and_result(result_order: list[int]) -> None:
    entries = parallel_session(3, result_order, continue_from=result_order[-1])
    messages = entries_to_session_messages(entries)
    assert block_ids(messages, "tool_use", "id") == ["toolu_0", "toolu_1", "toolu_2"]
    assert sorted(block_ids(messages, "tool_result", "tool_use_id")) == ["toolu_0", "toolu_1", "toolu_2"]
    assert len({message.uuid for message in messages}) == len(messages) == 8
    assert [message.type for message in messages] == ["user"] + ["assistant"] * 3 + ["user"] * 3 + ["assistant"]


def test_parallel_turn_as_the_last_turn_recovers_the_other_results() -> None:
    entries = parallel_session(2, [1, 0], continue_from=None)
    assert chain_uuids(entries) == ["prompt", "call-0", "call-1", "result-1", "result-0"]


def test_paging_counts_recovered_messages() -> None:
    entries = parallel_session(3, [0, 1, 2], continue_from=2)
    page = entries_to_session_messages(entries, limit=3, offset=4)
    assert [message.uuid for message in page] == ["result-0", "result-1", "result-2"]


def test_recovers_sibling_calls_the_walk_dropped() -> None:
    entries = parallel_session(3, [1, 2, 0], continue_from=0)
    expected = ["prompt", "call-0", "call-1", "call-2", "result-1", "result-2", "result-0", "answer"]
    assert chain_uuids(entries) == expected


def test_recovered_results_come_in_completion_order_before_the_on_chain_result() -> None:
    entries = parallel_session(3, [1, 0, 2], continue_from=2)
    assert chain_uuids(entries)[3:] == ["call-2", "result-1", "result-0", "result-2", "answer"]


def test_recovered_calls_come_in_timestamp_order() -> None:
    entries = parallel_session(3, [0, 1, 2], continue_from=0)
    prompt, call_0, call_1, call_2, *rest = entries
    assert chain_uuids([prompt, call_0, call_2, call_1, *rest])[1:4] == ["call-0", "call-1", "call-2"]


def test_sequential_tool_calls_are_unchanged() -> None:
    prompt = user("go", uuid="prompt", at=0)
    call_0 = tool_use("toolu_0", message_id="msg", parent="prompt", uuid="call-0", at=1)
    result_0 = tool_result_for("toolu_0", parent="call-0", uuid="result-0", at=2)
    call_1 = tool_use("toolu_1", message_id="msg", parent="result-0", uuid="call-1", at=3)
    result_1 = tool_result_for("toolu_1", parent="call-1", uuid="result-1", at=4)
    entries = [prompt, call_0, result_0, call_1, result_1]
    assert build_conversation_chain(entries) == entries


def test_an_abandoned_retry_is_not_recovered() -> None:
    prompt = user("go", uuid="prompt", at=0)
    abandoned = tool_use("toolu_x", message_id="msg_abandoned", parent="prompt", uuid="abandoned", at=0.5)
    abandoned_result = tool_result_for("toolu_x", parent="abandoned", uuid="abandoned-result", at=0.6)
    calls, results = parallel_tool_turn("prompt", 2, [0, 1])
    answer = assistant("done", uuid="answer", parent="result-1", at=3)
    entries = [prompt, abandoned, abandoned_result, *calls, *results, answer]
    assert chain_uuids(entries) == ["prompt", "call-0", "call-1", "result-0", "result-1", "answer"]


def test_recovers_a_result_whose_parent_is_outside_the_turn_by_its_tool_use_id() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    result_0["parentUuid"] = "missing"
    del result_0["sourceToolAssistantUUID"]
    assert chain_uuids(entries) == ["prompt", "call-0", "call-1", "result-0", "result-1", "answer"]


def test_a_second_result_for_an_answered_call_parented_elsewhere_is_left_out() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    copy_1 = tool_result_for("toolu_1", parent="elsewhere", uuid="copy-1", at=2.5)
    assert chain_uuids([*entries[:-1], copy_1, entries[-1]]) == [
        "prompt",
        "call-0",
        "call-1",
        "result-0",
        "result-1",
        "answer",
    ]


def test_does_not_pull_in_another_agents_result() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    result_0.update(parentUuid="sidechain-call", isSidechain=True, agentId="agent-1")
    assert chain_uuids(entries) == ["prompt", "call-0", "call-1", "result-1", "answer"]


def test_recovery_tolerates_malformed_entries() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    entries[-1]["parentUuid"] = "result-1"
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    result_0["timestamp"] = 17  # not a str: sorts first
    no_message = entry("assistant", uuid="no-message", parent="answer", at=4)
    odd = entry(
        "assistant",
        uuid="odd",
        parent="no-message",
        at=5,
        message={"id": 7, "content": ["text", None, {"type": "tool_use"}]},
    )
    odd_result = entry(
        "user",
        uuid="odd-result",
        parent="odd",
        at=6,
        message={"content": [{"type": "tool_result", "tool_use_id": 3}]},
    )
    chain = chain_uuids([*entries, no_message, odd, odd_result])
    assert chain == ["prompt", "call-0", "call-1", "result-0", "result-1", "answer", "no-message", "odd", "odd-result"]


# --- the rest of the edge-case table (delta §2.6) -------------------------------------------------------------


def test_a_chain_without_response_ids_is_returned_as_the_same_object() -> None:
    no_assistant = [user("only a prompt", uuid="p")]
    chain = [user("q", uuid="q"), entry("assistant", uuid="a", parent="q", message={"content": []})]
    for entries in (no_assistant, chain):
        by_uuid = {item["uuid"]: item for item in entries}
        assert recover_parallel_tool_results(by_uuid, entries, set(by_uuid)) is entries


def test_nothing_to_recover_returns_the_same_chain_and_recovery_marks_what_it_took() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    by_uuid = {item["uuid"]: item for item in entries}
    walked = [by_uuid[uuid] for uuid in ("prompt", "call-0", "call-1", "result-1", "answer")]
    seen = set(uuids(walked))
    recovered = recover_parallel_tool_results(by_uuid, walked, seen)
    assert uuids(recovered) == ["prompt", "call-0", "call-1", "result-0", "result-1", "answer"]
    assert "result-0" in seen
    full = list(recovered)
    assert recover_parallel_tool_results(by_uuid, full, set(uuids(full))) is full


def test_a_result_parented_on_a_hook_entry_is_recovered_through_its_source_call() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    hook = entry("attachment", uuid="hook", parent="call-0", at=1.5, attachment={"type": "hook"})
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    result_0["parentUuid"] = "hook"  # sourceToolAssistantUUID still names call-0
    assert chain_uuids([*entries, hook]) == ["prompt", "call-0", "call-1", "result-0", "result-1", "answer"]


def test_a_source_call_of_another_writer_does_not_place_a_stray() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    result_0.update(parentUuid="hook", agentId="agent-9")
    assert chain_uuids(entries) == ["prompt", "call-0", "call-1", "result-1", "answer"]


def test_a_second_result_parented_on_the_call_itself_is_kept_as_the_sdk_keeps_it() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    duplicate = tool_result_for("toolu_1", parent="call-1", uuid="again-1", at=2.5)
    chain = chain_uuids([*entries[:-1], duplicate, entries[-1]])  # the answer stays the leaf
    assert chain == ["prompt", "call-0", "call-1", "result-0", "again-1", "result-1", "answer"]


def test_a_stray_answering_two_calls_marks_both_answered() -> None:
    prompt = user("go", uuid="prompt", at=0)
    calls, _ = parallel_tool_turn("prompt", 3, [])
    result_2 = tool_result_for("toolu_2", parent="call-2", uuid="result-2", at=2.9)
    both = entry(
        "user",
        uuid="both",
        parent="elsewhere",
        at=2.1,
        message={
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_0"},
                {"type": "tool_result", "tool_use_id": "toolu_1"},
            ]
        },
    )
    late_1 = tool_result_for("toolu_1", parent="elsewhere", uuid="late-1", at=2.2)
    answer = assistant("done", uuid="answer", parent="result-2", at=3)
    chain = chain_uuids([prompt, *calls, both, late_1, result_2, answer])
    assert chain == ["prompt", "call-0", "call-1", "call-2", "both", "result-2", "answer"]


def test_another_writers_result_parented_on_a_call_is_on_the_chain_but_not_shown() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    result_0.update(isSidechain=True, agentId="agent-1")
    assert "result-0" in chain_uuids(entries)
    assert "result-0" not in [message.uuid for message in entries_to_session_messages(entries)]


def test_an_ambiguous_tool_use_id_places_no_stray_but_keeps_results_parented_on_a_call() -> None:
    entries = parallel_session(2, [0, 1], continue_from=1)
    other = tool_use("toolu_0", message_id="msg_other", parent=None, uuid="other", at=0.1)
    result_0 = next(item for item in entries if item["uuid"] == "result-0")
    stray = {**result_0, "parentUuid": "hook"}  # sourceToolAssistantUUID still names call-0
    assert chain_uuids([other, *[stray if item is result_0 else item for item in entries]]) == [
        "prompt",
        "call-0",
        "call-1",
        "result-1",
        "answer",
    ]
    assert chain_uuids([other, *entries]) == ["prompt", "call-0", "call-1", "result-0", "result-1", "answer"]


def test_a_tool_use_id_repeated_in_one_response_belongs_to_its_later_entry() -> None:
    prompt = user("go", uuid="prompt", at=0)
    calls, results = parallel_tool_turn("prompt", 2, [0, 1], with_source=False)
    repeat = tool_use("toolu_0", message_id="msg_parallel", parent="call-1", uuid="repeat", at=1.5)
    result_0 = next(item for item in results if item["uuid"] == "result-0")
    result_0["parentUuid"] = "elsewhere"
    answer = assistant("done", uuid="answer", parent="result-1", at=3)
    chain = chain_uuids([prompt, *calls, repeat, *results, answer])
    assert chain == ["prompt", "call-0", "call-1", "repeat", "result-0", "result-1", "answer"]


def test_two_parallel_turns_each_get_their_block_after_their_own_anchor() -> None:
    prompt = user("go", uuid="prompt", at=0)
    calls_a, results_a = parallel_tool_turn("prompt", 2, [0, 1], prefix="a-", message_id="msg_a")
    calls_b, results_b = parallel_tool_turn(
        "a-result-0", 2, [1, 0], prefix="b-", message_id="msg_b", calls_at=4, results_at=5
    )
    answer = assistant("done", uuid="answer", parent="b-result-0", at=6)
    chain = chain_uuids([prompt, *calls_a, *results_a, *calls_b, *results_b, answer])
    assert chain == [
        *["prompt", "a-call-0", "a-call-1", "a-result-1", "a-result-0"],
        *["b-call-0", "b-call-1", "b-result-1", "b-result-0", "answer"],
    ]


def test_duplicate_uuids_recover_from_the_last_copy_at_its_first_position() -> None:
    entries = parallel_session(2, [0, 1], continue_from=0)
    stale = copy.deepcopy(next(item for item in entries if item["uuid"] == "call-1"))
    newer = {**stale, "message": {**stale["message"], "content": [{"type": "text", "text": "rewritten"}]}}
    chain = build_conversation_chain([*entries[:2], stale, *entries[2:], newer])
    assert uuids(chain) == ["prompt", "call-0", "call-1", "result-1", "result-0", "answer"]
    assert chain[2]["message"]["content"][0]["text"] == "rewritten"


def test_a_forked_turn_without_source_links_is_recovered_by_parent_and_tool_use_id() -> None:
    entries = parallel_session(3, [2, 0, 1], continue_from=1, with_source=False)
    assert chain_uuids(entries) == [
        "prompt",
        "call-0",
        "call-1",
        "call-2",
        "result-2",
        "result-0",
        "result-1",
        "answer",
    ]


# --- subagents: recovered here, not in the SDK (SPEC §4 decision 9) -------------------------------------------


def subagent_session(**fields: Any) -> list[Entry]:
    return parallel_session(2, [0, 1], continue_from=0, isSidechain=True, agentId="abc", **fields)


def test_a_subagent_chain_recovers_its_parallel_turn() -> None:
    chain = build_subagent_chain(filter_transcript_entries(subagent_session()))
    assert uuids(chain) == ["prompt", "call-0", "call-1", "result-1", "result-0", "answer"]


def test_a_subagent_chain_orders_recovered_entries_as_the_main_chain_does() -> None:
    for order, leaf in (([1, 2, 0], 0), ([1, 0, 2], 2), ([0, 2, 1], 1)):
        plain = parallel_session(3, order, continue_from=leaf)
        sidechain = parallel_session(3, order, continue_from=leaf, isSidechain=True, agentId="abc")
        assert uuids(build_subagent_chain(sidechain)) == chain_uuids(plain)


def test_a_subagent_chain_keeps_only_messages_around_recovered_entries() -> None:
    entries = subagent_session()
    hook = entry("progress", uuid="hook", parent="call-1", at=1.5, isSidechain=True, agentId="abc")
    answer = entries[-1]
    answer["parentUuid"] = "result-0"
    chain = build_subagent_chain([*entries[:-1], hook, answer])
    assert uuids(chain) == ["prompt", "call-0", "call-1", "result-1", "result-0", "answer"]


# --- the store readers, on both backends ----------------------------------------------------------------------


async def test_store_reader_returns_the_whole_parallel_turn(tmp_path: Path) -> None:
    store = InMemorySessionStore()
    session_id = new_id()
    prompt = user("go", uuid="prompt", session_id=session_id, at=0)
    calls, results = parallel_tool_turn("prompt", 3, [0, 1, 2], with_source=False, sessionId=session_id)
    for result in results:
        result["timestamp"] = results[0]["timestamp"]  # ties: the SDK's store test shares one timestamp
    answer = assistant("done", uuid="answer", parent="result-0", session_id=session_id, at=3)
    await seed(store, tmp_path, session_id, [prompt, *calls, *results, answer])
    messages = await get_session_messages_from_store(store, session_id, str(tmp_path))
    expected = ["prompt", "call-0", "call-1", "call-2", "result-1", "result-2", "result-0", "answer"]
    assert [message.uuid for message in messages] == expected
    page = await get_session_messages_from_store(store, session_id, str(tmp_path), limit=2, offset=4)
    assert [message.uuid for message in page] == ["result-1", "result-2"]


async def test_subagent_store_reader_returns_the_whole_parallel_turn(tmp_path: Path) -> None:
    store = InMemorySessionStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, [user("main prompt", session_id=session_id)])
    transcript = subagent_session(sessionId=session_id)
    metadata = agent_metadata(toolUseId="toolu_task", parentAgentId=None)
    await seed(store, tmp_path, session_id, [*transcript, metadata], subpath="subagents/agent-abc")
    messages = await get_subagent_messages_from_store(store, session_id, "abc", str(tmp_path))
    assert [message.uuid for message in messages] == ["prompt", "call-0", "call-1", "result-1", "result-0", "answer"]
    assert {message.parent_tool_use_id for message in messages} == {"toolu_task"}
    assert block_ids(messages, "tool_result", "tool_use_id") == ["toolu_1", "toolu_0"]


async def test_a_forked_parallel_turn_is_still_returned_whole(tmp_path: Path) -> None:
    """The fork drops ``sourceToolAssistantUUID`` and renames every uuid; parent links and tool ids remain."""
    store = InMemorySessionStore()
    session_id = new_id()
    entries = parallel_session(3, [1, 2, 0], continue_from=0, sessionId=session_id)
    renamed = {item["uuid"]: new_id() for item in entries}  # fork_session_via_store wants UUID message ids
    for item in entries:
        item["uuid"] = renamed[item["uuid"]]
        item["parentUuid"] = renamed.get(item["parentUuid"])
        if "sourceToolAssistantUUID" in item:
            item["sourceToolAssistantUUID"] = renamed[item["sourceToolAssistantUUID"]]
    await seed(store, tmp_path, session_id, entries)
    fork = await fork_session_via_store(store, session_id, str(tmp_path))
    copied = await store.load(key_for(tmp_path, fork.session_id)) or []
    assert [item for item in copied if "sourceToolAssistantUUID" in item] == []
    forked = await get_session_messages_from_store(store, fork.session_id, str(tmp_path))
    original = await get_session_messages_from_store(store, session_id, str(tmp_path))
    assert len(forked) == len(original) == 8
    assert [m.message for m in forked] == [m.message for m in original]
    assert block_ids(forked, "tool_result", "tool_use_id") == ["toolu_1", "toolu_2", "toolu_0"]
