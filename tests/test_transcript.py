"""The pure transcript machinery: lite parse, chain building, visibility and paging (reference §8)."""

from __future__ import annotations

import json
import time

import pytest

from session_store.summary import fold_session_summary, summary_entry_to_session_info
from session_store.transcript import (
    LITE_READ_BUF_SIZE_BYTES,
    build_conversation_chain,
    build_subagent_chain,
    entries_to_jsonl,
    entries_to_session_messages,
    extract_first_prompt_from_head,
    extract_json_string_field,
    extract_last_json_string_field,
    filter_transcript_entries,
    is_visible_message,
    jsonl_to_lite,
    mtime_from_jsonl_tail,
    paginate,
    parse_session_info_from_lite,
    to_session_message,
)
from session_store.types import SessionInfo, SessionKey, SessionSummaryEntry
from tests.transcript_factories import (
    agent_metadata,
    assistant,
    conversation,
    custom_title,
    entry,
    epoch_ms,
    linked,
    progress,
    tag,
    tool_result,
    user,
)

SID = "11111111-2222-3333-4444-555555555555"


def uuids(entries: list[dict[str, object]]) -> list[object]:
    return [item["uuid"] for item in entries]


# --- entries_to_jsonl / jsonl_to_lite / mtime --------------------------------------------------------------


def test_entries_to_jsonl_hoists_type_to_the_first_key() -> None:
    reordered = {"sessionId": SID, "tag": "x", "type": "tag"}
    text = entries_to_jsonl([reordered])
    assert text == '{"type":"tag","sessionId":"' + SID + '","tag":"x"}\n'


def test_entries_to_jsonl_writes_one_compact_ascii_line_per_entry() -> None:
    text = entries_to_jsonl([{"type": "user", "text": "café"}, ["not", "a", "dict"]])
    assert text.splitlines() == ['{"type":"user","text":"caf\\u00e9"}', '["not","a","dict"]']
    assert text.endswith("\n")


def test_jsonl_to_lite_uses_the_whole_text_as_head_and_tail_when_small() -> None:
    lite = jsonl_to_lite("héllo\n", mtime=7)
    assert (lite.mtime, lite.size, lite.head, lite.tail) == (7, 7, "héllo\n", "héllo\n")


def test_jsonl_to_lite_keeps_64_kib_head_and_tail_windows_of_a_large_text() -> None:
    text = "a" * LITE_READ_BUF_SIZE_BYTES + "middle" + "z" * LITE_READ_BUF_SIZE_BYTES
    lite = jsonl_to_lite(text, mtime=0)
    assert lite.size == len(text)
    assert lite.head == "a" * LITE_READ_BUF_SIZE_BYTES
    assert lite.tail == "z" * LITE_READ_BUF_SIZE_BYTES


def test_mtime_from_jsonl_tail_reads_the_last_entry_timestamp() -> None:
    text = entries_to_jsonl([user("a", at=1), assistant("b", at=5)]) + "\n\n"
    assert mtime_from_jsonl_tail(text) == epoch_ms(5)


def test_mtime_from_jsonl_tail_falls_back_to_now_without_a_timestamp() -> None:
    before = int(time.time() * 1000)
    assert before <= mtime_from_jsonl_tail('{"type":"tag","tag":"x"}\n') <= int(time.time() * 1000)


# --- raw-text field scanners ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"cwd":"/a","cwd":"/b"}', "/a"),
        ('{"cwd": "/spaced"}', "/spaced"),
        ('{"cwd":"say \\"hi\\""}', 'say "hi"'),
        ('{"other":1}', None),
        ('{"cwd":"truncated', None),
    ],
)
def test_extract_json_string_field_finds_the_first_value(text: str, expected: str | None) -> None:
    assert extract_json_string_field(text, "cwd") == expected


def test_extract_last_json_string_field_finds_the_last_value_on_truncated_text() -> None:
    text = '{"gitBranch":"one"}\n{"gitBranch":"two"}\n{"gitBranch":"thr'
    assert extract_last_json_string_field(text, "gitBranch") == "two"


def test_extract_last_json_string_field_prefers_a_spaced_match_over_compact_ones() -> None:
    text = '{"gitBranch": "spaced"}\n{"gitBranch":"compact-later"}'
    assert extract_last_json_string_field(text, "gitBranch") == "spaced"


# --- first prompt ------------------------------------------------------------------------------------------


def head_of(*entries: dict[str, object]) -> str:
    return entries_to_jsonl(entries)


def test_first_prompt_is_the_first_user_text() -> None:
    assert extract_first_prompt_from_head(head_of(user("hello\nthere"), user("later"))) == "hello there"


def test_first_prompt_skips_meta_compact_and_tool_result_entries() -> None:
    head = head_of(
        user("meta", isMeta=True),
        user("compacted", isCompactSummary=True),
        tool_result("toolu_1"),
        user("real"),
    )
    assert extract_first_prompt_from_head(head) == "real"


def test_first_prompt_reads_text_blocks() -> None:
    blocks = [{"type": "image", "source": {}}, {"type": "text", "text": "from a block"}]
    assert extract_first_prompt_from_head(head_of(user(blocks))) == "from a block"


def test_first_prompt_skips_generated_messages() -> None:
    head = head_of(user("<local-command-stdout>x</local-command-stdout>"), user("[Request interrupted by user]"))
    assert extract_first_prompt_from_head(head + head_of(user("typed"))) == "typed"


def test_first_prompt_falls_back_to_the_first_command_name() -> None:
    head = head_of(user("<command-name>/init</command-name>"), user("<command-name>/other</command-name>"))
    assert extract_first_prompt_from_head(head) == "/init"


def test_first_prompt_is_cut_at_200_characters_with_an_ellipsis() -> None:
    prompt = extract_first_prompt_from_head(head_of(user("word " * 100)))
    assert len(prompt) <= 201
    assert prompt.endswith("\u2026")
    assert not prompt[:-1].endswith(" ")


def test_first_prompt_is_empty_when_there_is_none() -> None:
    assert extract_first_prompt_from_head(head_of(assistant("only the model spoke"))) == ""


# --- parse_session_info_from_lite --------------------------------------------------------------------------


def lite_info(entries: list[dict[str, object]], project_path: str | None = "/project") -> SessionInfo | None:
    return parse_session_info_from_lite(SID, jsonl_to_lite(entries_to_jsonl(entries), mtime=42), project_path)


def test_lite_parse_builds_a_row_with_title_branch_cwd_tag_and_created_at() -> None:
    info = lite_info(
        [
            *conversation("first question", session_id=SID, start_at=3, cwd="/work", gitBranch="main"),
            custom_title("Named", session_id=SID),
            {"sessionId": SID, "tag": "urgent", "type": "tag"},  # key order as a JSONB store returns it
        ]
    )
    assert info is not None
    assert (info.summary, info.custom_title, info.first_prompt) == ("Named", "Named", "first question")
    assert (info.git_branch, info.cwd, info.tag) == ("main", "/work", "urgent")
    assert (info.created_at, info.last_modified) == (epoch_ms(3), 42)


def test_lite_parse_skips_sidechain_and_metadata_only_sessions() -> None:
    assert lite_info([user("side", isSidechain=True)]) is None
    assert lite_info([tag("x"), {"type": "permission-mode", "mode": "plan"}]) is None


def test_lite_parse_falls_back_to_the_project_path_for_cwd() -> None:
    info = lite_info([user("hi")], project_path="/canonical")
    assert info is not None and info.cwd == "/canonical"


def test_lite_parse_agrees_with_the_summary_fold() -> None:
    entries = [
        *conversation("<command-name>/init</command-name>", "what now", session_id=SID, cwd="/w", gitBranch="b"),
        {"type": "summary", "summary": "a summary"},
        tag("t1"),
    ]
    folded = fold_session_summary(None, {"project_key": "p", "session_id": SID}, entries)
    folded["mtime"] = 42
    from_fold = summary_entry_to_session_info(folded, "/project")
    from_lite = lite_info(entries)
    assert from_lite is not None and from_fold is not None
    from_lite.file_size = None
    assert from_fold == from_lite


# --- filter / chains ---------------------------------------------------------------------------------------


def test_filter_transcript_entries_drops_metadata_and_entries_without_uuid() -> None:
    kept = user("hi")
    entries = [kept, custom_title("t"), agent_metadata(toolUseId="x"), {"type": "user"}, "junk", progress()]
    assert filter_transcript_entries(entries) == [kept, entries[-1]]


def test_conversation_chain_of_nothing_is_empty() -> None:
    assert build_conversation_chain([]) == []


def test_conversation_chain_of_one_message_is_that_message() -> None:
    only = user("hi")
    assert build_conversation_chain([only]) == [only]


def test_conversation_chain_follows_parent_links_root_first() -> None:
    items = conversation("a", "b")
    shuffled = [items[2], items[0], items[3], items[1]]
    assert uuids(build_conversation_chain(shuffled)) == uuids(items)


def test_conversation_chain_of_progress_entries_only_is_empty() -> None:
    assert build_conversation_chain(linked(progress(), progress())) == []


def test_conversation_chain_walks_back_from_a_terminal_progress_entry() -> None:
    items = linked(user("q"), assistant("a"), progress())
    assert uuids(build_conversation_chain(items)) == uuids(items[:2])


def test_conversation_chain_prefers_the_main_leaf_over_a_later_sidechain_leaf() -> None:
    root = user("q")
    main = assistant("main", parent=root["uuid"])
    side = assistant("side", parent=root["uuid"], isSidechain=True)
    assert uuids(build_conversation_chain([root, main, side])) == [root["uuid"], main["uuid"]]


def test_conversation_chain_picks_the_latest_leaf_in_file_order() -> None:
    root = user("q")
    first = assistant("first branch", parent=root["uuid"], at=9)
    second = assistant("second branch", parent=root["uuid"], at=1)
    assert uuids(build_conversation_chain([root, first, second])) == [root["uuid"], second["uuid"]]


def test_conversation_chain_uses_all_leaves_when_none_is_on_the_main_chain() -> None:
    meta = user("meta only", isMeta=True)
    assert build_conversation_chain([meta]) == [meta]


def test_conversation_chain_survives_a_parent_cycle() -> None:
    a = user("a", uuid="a")
    b = assistant("b", uuid="b", parent="a")
    a["parentUuid"] = "b"
    leaf = user("c", uuid="c", parent="b")
    assert uuids(build_conversation_chain([a, b, leaf])) == ["a", "b", "c"]


def test_conversation_chain_stops_at_a_missing_parent() -> None:
    orphan = user("orphan", parent="gone")
    reply = assistant("reply", parent=orphan["uuid"])
    assert uuids(build_conversation_chain([orphan, reply])) == [orphan["uuid"], reply["uuid"]]


def test_conversation_chain_does_not_follow_logical_parent_links() -> None:
    before = conversation("before compaction")
    summary = user("summary of earlier", isCompactSummary=True, logicalParentUuid=before[-1]["uuid"])
    after = assistant("after", parent=summary["uuid"])
    assert uuids(build_conversation_chain([*before, summary, after])) == [summary["uuid"], after["uuid"]]


def test_subagent_chain_ends_at_the_last_user_or_assistant_entry() -> None:
    items = linked(user("task"), assistant("working"), progress())
    assert uuids(build_subagent_chain(items)) == uuids(items[:2])


def test_subagent_chain_keeps_meta_and_sidechain_messages_but_drops_other_types() -> None:
    items = linked(user("task", isSidechain=True), progress(), assistant("done", isMeta=True))
    assert uuids(build_subagent_chain(items)) == [items[0]["uuid"], items[2]["uuid"]]


def test_subagent_chain_without_messages_is_empty() -> None:
    assert build_subagent_chain(linked(progress())) == []


# --- visibility, messages, paging --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "visible"),
    [
        (user("plain"), True),
        (user("compact", isCompactSummary=True), True),
        (user("meta", isMeta=True), False),
        (assistant("side", isSidechain=True), False),
        (assistant("team", teamName="blue"), False),
        (entry("system", content="x"), False),
    ],
)
def test_visibility(item: dict[str, object], visible: bool) -> None:
    assert is_visible_message(item) is visible


def test_to_session_message_carries_ids_message_and_parents() -> None:
    item = assistant("hi", session_id=SID)
    message = to_session_message(item, "toolu_1", "agent-parent")
    assert (message.type, message.uuid, message.session_id) == ("assistant", item["uuid"], SID)
    assert message.message == item["message"]
    assert (message.parent_tool_use_id, message.parent_agent_id) == ("toolu_1", "agent-parent")


def test_entries_to_session_messages_hides_metadata_and_meta_entries() -> None:
    chain = linked(user("q"), user("meta", isMeta=True), entry("system", content="x"), assistant("a"))
    messages = entries_to_session_messages([custom_title("t"), *chain, tag("x")])
    assert [m.uuid for m in messages] == [chain[0]["uuid"], chain[3]["uuid"]]


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        (None, 0, [0, 1, 2, 3, 4]),
        (2, 0, [0, 1]),
        (2, 2, [2, 3]),
        (None, 3, [3, 4]),
        (0, 1, [1, 2, 3, 4]),
        (-1, 0, [0, 1, 2, 3, 4]),
        (2, -3, [0, 1]),
        (10, 4, [4]),
    ],
)
def test_paginate_skips_offset_then_takes_limit(limit: int | None, offset: int, expected: list[int]) -> None:
    assert paginate([0, 1, 2, 3, 4], limit, offset) == expected


def test_entries_to_jsonl_round_trips_entries() -> None:
    entries = conversation("a", "b")
    assert [json.loads(line) for line in entries_to_jsonl(entries).splitlines()] == entries


# --- coverage of reference §16.8 parity and §16.9 tag / created_at extraction (added by the coverage audit) ---


def fold_incrementally(entries: list[dict[str, object]]) -> SessionInfo | None:
    """Fold one entry at a time, as a store folds its summary append by append, then convert the summary."""
    key: SessionKey = {"project_key": "p", "session_id": SID}
    summary: SessionSummaryEntry | None = None
    for item in entries:
        summary = fold_session_summary(summary, key, [item])  # type: ignore[list-item]  # plain dict entries
    assert summary is not None
    summary["mtime"] = 42
    return summary_entry_to_session_info(summary, "/project")


PARITY_STREAMS = {
    "rich": lambda: [
        {"type": "permission-mode", "permissionMode": "plan"},
        *conversation("<command-name>/init</command-name>", "what now", session_id=SID, cwd="/w", gitBranch="b"),
        custom_title("Named", session_id=SID),
        {"type": "last-prompt", "lastPrompt": "most recent", "sessionId": SID},
        tag("t1", session_id=SID),
    ],
    "first-prompt-only": lambda: [user("just one question", session_id=SID, at=7)],
}


@pytest.mark.parametrize("stream", sorted(PARITY_STREAMS))
def test_incremental_fold_equals_the_lite_parse(stream: str) -> None:
    entries = PARITY_STREAMS[stream]()
    from_lite = lite_info(entries)
    from_fold = fold_incrementally(entries)
    assert from_lite is not None and from_fold is not None
    from_lite.file_size = None
    assert from_fold == from_lite


def test_first_prompt_only_stream_gives_a_row_with_the_prompt_as_summary() -> None:
    info = lite_info([user("just one question", session_id=SID, at=7)], project_path="/canonical")
    assert info is not None
    assert (info.summary, info.first_prompt, info.custom_title) == ("just one question",) * 2 + (None,)
    assert (info.cwd, info.git_branch, info.tag, info.created_at) == ("/canonical", None, None, epoch_ms(7))


def tool_use_with_a_tag_input(tag_value: str) -> dict[str, object]:
    block = {"type": "tool_use", "id": "toolu_1", "name": "docker_build", "input": {"tag": tag_value}}
    return entry("assistant", message={"role": "assistant", "content": [block]})


def test_lite_tag_ignores_tag_fields_inside_tool_use_inputs() -> None:
    info = lite_info([*conversation("tag v1.0"), tag("real-tag"), tool_use_with_a_tag_input("myapp:v2")])
    assert info is not None and info.tag == "real-tag"


def test_lite_tag_is_none_when_only_a_tool_use_input_has_one() -> None:
    info = lite_info([*conversation("build it"), tool_use_with_a_tag_input("prod")])
    assert info is not None and info.tag is None


def test_lite_tag_is_the_last_tag_line_and_an_empty_tag_clears_it() -> None:
    assert (info := lite_info([*conversation("q"), tag("first"), tag("second")])) is not None
    assert info.tag == "second"
    assert (cleared := lite_info([*conversation("q"), tag("first"), tag("")])) is not None
    assert cleared.tag is None


def test_lite_created_at_comes_from_a_later_head_line_when_the_first_has_no_timestamp() -> None:
    info = lite_info([{"type": "permission-mode", "permissionMode": "acceptEdits"}, user("hello", at=90)])
    assert info is not None and info.created_at == epoch_ms(90)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [("2026-01-15T10:30:00.000Z", 1_768_473_000_000), ("2026-01-15T10:30:00+00:00", 1_768_473_000_000)],
    ids=["zulu", "offset"],
)
def test_lite_created_at_parses_iso_timestamps_to_epoch_ms(timestamp: str, expected: int) -> None:
    item = user("hello")
    item["timestamp"] = timestamp
    info = lite_info([item])
    assert info is not None and info.created_at == expected
    assert isinstance(info.created_at, int)


@pytest.mark.parametrize("timestamp", [None, "not-a-valid-iso-date"], ids=["missing", "invalid"])
def test_lite_created_at_is_none_without_a_parseable_timestamp(timestamp: str | None) -> None:
    item = user("hello")
    del item["timestamp"]
    if timestamp is not None:
        item["timestamp"] = timestamp
    info = lite_info([item])
    assert info is not None and info.created_at is None
