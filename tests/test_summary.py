"""Summary folding and conversion to SessionInfo (reference §5, §16.8; SPEC §4 decision 6)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, cast

import pytest

from session_store.memory import InMemorySessionStore
from session_store.summary import (
    classify_prompt_text,
    fold_session_summary,
    iso_to_epoch_ms,
    summary_entry_to_session_info,
)
from session_store.types import SessionInfo, SessionKey, SessionStoreEntry, SessionSummaryEntry

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}
SUBAGENT_KEY: SessionKey = {"project_key": "proj", "session_id": "sess", "subpath": "subagents/agent-1"}


def entry(type_: str = "x", **fields: Any) -> SessionStoreEntry:
    return cast(SessionStoreEntry, {"type": type_, **fields})


def user(content: Any, **fields: Any) -> SessionStoreEntry:
    return entry("user", message={"role": "user", "content": content}, **fields)


def text_block(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def fold(*entries: SessionStoreEntry, prev: SessionSummaryEntry | None = None) -> dict[str, Any]:
    return fold_session_summary(prev, KEY, list(entries))["data"]


def summary(mtime: int = 1_700_000_000_000, **data: Any) -> SessionSummaryEntry:
    return {"session_id": "sess", "mtime": mtime, "data": data}


# -- iso_to_epoch_ms --


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2024-01-01T00:00:00.000Z", 1_704_067_200_000),
        ("2024-01-01T00:00:00.001Z", 1_704_067_200_001),
        ("2024-01-01T00:00:00.0019Z", 1_704_067_200_001),  # sub-millisecond digits are truncated
        ("2024-01-01T02:00:00+02:00", 1_704_067_200_000),
    ],
)
def test_iso_to_epoch_ms_parses_offsets_and_truncates_to_milliseconds(text: str, expected: int) -> None:
    assert iso_to_epoch_ms(text) == expected


def test_iso_to_epoch_ms_reads_a_naive_timestamp_as_local_time() -> None:
    naive = "2024-06-01T12:00:00"
    assert iso_to_epoch_ms(naive) == int(datetime.fromisoformat(naive).timestamp()) * 1000


@pytest.mark.parametrize("value", ["yesterday", "", None, 1_704_067_200_000, ["2024-01-01"]])
def test_iso_to_epoch_ms_gives_none_for_anything_but_an_iso_string(value: object) -> None:
    assert iso_to_epoch_ms(value) is None


# -- fold: structure and mtime --


def test_fold_from_nothing_starts_an_empty_summary_with_a_zero_mtime() -> None:
    result = fold_session_summary(None, KEY, [])
    assert result == {"session_id": "sess", "mtime": 0, "data": {}}


def test_fold_never_derives_mtime_from_entries_and_keeps_the_previous_one() -> None:
    stamped = summary(mtime=42)
    result = fold_session_summary(stamped, KEY, [entry(timestamp="2030-01-01T00:00:00Z")])
    assert result["mtime"] == 42
    assert fold_session_summary(None, KEY, [entry(timestamp="2030-01-01T00:00:00Z")])["mtime"] == 0


def test_fold_does_not_mutate_prev() -> None:
    prev = summary(custom_title="old", is_sidechain=False)
    before = copy.deepcopy(prev)
    result = fold_session_summary(prev, KEY, [entry(customTitle="new")])
    assert prev == before
    assert result["data"]["custom_title"] == "new"


# -- fold: set-once and last-wins fields --


def test_set_once_fields_keep_their_first_value() -> None:
    data = fold(
        entry(timestamp="not a time", cwd=""),
        entry(timestamp="2024-01-01T00:00:00Z", cwd="/first"),
        entry(timestamp="2025-01-01T00:00:00Z", cwd="/second"),
    )
    assert data["created_at"] == 1_704_067_200_000
    assert data["cwd"] == "/first"


def test_set_once_fields_survive_later_batches() -> None:
    first = fold_session_summary(None, KEY, [entry(timestamp="2024-01-01T00:00:00Z", cwd="/a")])
    data = fold(entry(timestamp="2025-01-01T00:00:00Z", cwd="/b"), prev=first)
    assert (data["created_at"], data["cwd"]) == (1_704_067_200_000, "/a")


@pytest.mark.parametrize(
    ("entry_field", "data_field"),
    [
        ("customTitle", "custom_title"),
        ("aiTitle", "ai_title"),
        ("lastPrompt", "last_prompt"),
        ("summary", "summary_hint"),
        ("gitBranch", "git_branch"),
    ],
)
def test_last_wins_fields_take_the_latest_string_even_empty(entry_field: str, data_field: str) -> None:
    def with_field(value: object, type_: str = "x") -> SessionStoreEntry:
        return cast(SessionStoreEntry, {"type": type_, entry_field: value})

    assert fold(with_field("one"), with_field("two", "assistant"))[data_field] == "two"
    assert fold(with_field("one"), with_field(""))[data_field] == ""
    assert fold(with_field("one"), with_field(7))[data_field] == "one"


# -- fold: tag --


def test_a_tag_entry_sets_and_an_empty_tag_entry_clears_the_tag() -> None:
    assert fold(entry("tag", tag="wip"))["tag"] == "wip"
    assert "tag" not in fold(entry("tag", tag="wip"), entry("tag", tag=""))
    assert "tag" not in fold(entry("tag", tag="wip"), entry("tag"))
    assert "tag" not in fold(entry("tag", tag="wip"), entry("tag", tag=3))


def test_a_tag_field_on_another_entry_type_is_ignored() -> None:
    assert fold(entry("tag", tag="wip"), entry("user", tag="other"))["tag"] == "wip"
    assert "tag" not in fold(entry("user", tag="other"))


# -- fold: sidechain --


def test_sidechain_is_decided_by_the_first_entry() -> None:
    assert fold(entry(isSidechain=True), entry(isSidechain=False))["is_sidechain"] is True
    assert fold(entry(), entry(isSidechain=True))["is_sidechain"] is False


def test_sidechain_latch_holds_when_the_first_entry_has_no_timestamp() -> None:
    data = fold(entry(), entry(isSidechain=True, timestamp="2024-01-01T00:00:00Z"))
    assert data["is_sidechain"] is False
    assert data["created_at"] == 1_704_067_200_000


def test_sidechain_needs_a_literal_true() -> None:
    assert fold(entry(isSidechain="true"))["is_sidechain"] is False


# -- fold: first prompt --


def test_first_prompt_skips_meta_compact_and_tool_result_entries() -> None:
    data = fold(
        user("meta text", isMeta=True),
        user("compacted", isCompactSummary=True),
        user([{"type": "tool_result", "content": "out"}, text_block("with a tool result")]),
        entry("assistant", message={"content": "not a user"}),
        user([text_block("the real one")]),
    )
    assert data["first_prompt"] == "the real one"
    assert data["first_prompt_locked"] is True


def test_first_prompt_locks_on_the_first_real_prompt() -> None:
    data = fold(user("first"), user("second"))
    assert data["first_prompt"] == "first"


def test_first_prompt_joins_lines_and_strips() -> None:
    assert fold(user("  line one\nline two  "))["first_prompt"] == "line one line two"


def test_command_fallback_is_kept_until_a_real_prompt_locks() -> None:
    only_command = fold(user("<command-name>/review</command-name>"), user("<command-name>/other</command-name>"))
    assert only_command["command_fallback"] == "/review"
    assert "first_prompt_locked" not in only_command
    data = fold(user("<command-name>/review</command-name>"), user("please review"))
    assert (data["command_fallback"], data["first_prompt"]) == ("/review", "please review")


@pytest.mark.parametrize(
    "text",
    [
        "<local-command-stdout>done</local-command-stdout>",
        "<session-start-hook>x",
        "<tick>",
        "<goal>ship it",
        "[Request interrupted by user for tool use]",
        "<ide_opened_file>a.py</ide_opened_file>",
        "  <ide_selection>x = 1</ide_selection>  ",
        "   \n  ",
    ],
)
def test_generated_messages_never_become_the_first_prompt(text: str) -> None:
    data = fold(user(text), user("human words"))
    assert data["first_prompt"] == "human words"


def test_first_prompt_is_cut_to_200_characters_with_an_ellipsis() -> None:
    prompt = fold(user("word " * 100))["first_prompt"]
    assert prompt.endswith("\u2026")
    assert len(prompt) <= 201
    assert prompt[:-1] == ("word " * 100)[:200].rstrip()


def test_a_prompt_of_exactly_200_characters_is_kept_whole() -> None:
    assert fold(user("p" * 200))["first_prompt"] == "p" * 200


def test_classify_prompt_text_tells_commands_prompts_and_noise_apart() -> None:
    assert classify_prompt_text("<command-name>/x</command-name>") == ("command", "/x")
    assert classify_prompt_text("hello\nthere") == ("prompt", "hello there")
    assert classify_prompt_text("<tick>") is None


# -- summary -> SessionInfo --


def test_a_sidechain_summary_gives_no_row() -> None:
    assert summary_entry_to_session_info(summary(is_sidechain=True, custom_title="t"), None) is None


def test_a_summary_with_nothing_to_show_gives_no_row() -> None:
    assert summary_entry_to_session_info(summary(is_sidechain=False, cwd="/x"), None) is None
    assert summary_entry_to_session_info(summary(custom_title=""), None) is None


@pytest.mark.parametrize(
    ("data", "expected_summary"),
    [
        (
            {
                "custom_title": "custom",
                "ai_title": "ai",
                "last_prompt": "last",
                "summary_hint": "hint",
                "first_prompt": "first",
                "first_prompt_locked": True,
            },
            "custom",
        ),
        (
            {
                "ai_title": "ai",
                "last_prompt": "last",
                "summary_hint": "hint",
                "first_prompt": "first",
                "first_prompt_locked": True,
            },
            "ai",
        ),
        (
            {"last_prompt": "last", "summary_hint": "hint", "first_prompt": "first", "first_prompt_locked": True},
            "last",
        ),
        ({"summary_hint": "hint", "first_prompt": "first", "first_prompt_locked": True}, "hint"),
        ({"first_prompt": "first", "first_prompt_locked": True, "command_fallback": "/cmd"}, "first"),
        ({"command_fallback": "/cmd"}, "/cmd"),
    ],
)
def test_summary_precedence_chain(data: dict[str, Any], expected_summary: str) -> None:
    info = summary_entry_to_session_info(summary(**data), None)
    assert info is not None
    assert info.summary == expected_summary


def test_an_unlocked_first_prompt_is_ignored_in_favour_of_the_command_fallback() -> None:
    info = summary_entry_to_session_info(summary(first_prompt="stale", command_fallback="/cmd"), None)
    assert info is not None
    assert info.first_prompt == "/cmd"


def test_cwd_falls_back_to_the_project_path() -> None:
    with_cwd = summary_entry_to_session_info(summary(custom_title="t", cwd="/own"), "/project")
    without_cwd = summary_entry_to_session_info(summary(custom_title="t"), "/project")
    neither = summary_entry_to_session_info(summary(custom_title="t"), None)
    assert (with_cwd and with_cwd.cwd, without_cwd and without_cwd.cwd, neither and neither.cwd) == (
        "/own",
        "/project",
        None,
    )


def test_fields_pass_through_and_file_size_is_none() -> None:
    data = {
        "ai_title": "ai",
        "first_prompt": "first",
        "first_prompt_locked": True,
        "git_branch": "main",
        "cwd": "/w",
        "tag": "wip",
        "created_at": 1_600_000_000_000,
    }
    info = summary_entry_to_session_info(summary(mtime=1_700_000_000_123, **data), "/ignored")
    assert info == SessionInfo(
        session_id="sess",
        summary="ai",
        last_modified=1_700_000_000_123,
        file_size=None,
        custom_title="ai",
        first_prompt="first",
        git_branch="main",
        cwd="/w",
        tag="wip",
        created_at=1_600_000_000_000,
    )


def test_empty_strings_become_none() -> None:
    info = summary_entry_to_session_info(summary(custom_title="t", git_branch="", tag=""), None)
    assert info is not None
    assert (info.git_branch, info.tag, info.first_prompt) == (None, None, None)


def test_fold_then_convert_gives_the_row_of_a_realistic_stream() -> None:
    data = fold(
        user("<command-name>/init</command-name>", timestamp="2024-01-01T00:00:00Z", cwd="/repo"),
        user("fix the bug", gitBranch="dev"),
        entry("assistant", message={"content": "ok"}),
        entry("tag", tag="urgent"),
        entry("x", lastPrompt="and the tests"),
    )
    info = summary_entry_to_session_info({"session_id": "sess", "mtime": 5, "data": data}, None)
    assert info == SessionInfo(
        "sess", "and the tests", 5, None, None, "fix the bug", "dev", "/repo", "urgent", 1_704_067_200_000
    )


# -- summaries kept by InMemorySessionStore --


async def test_in_memory_summaries_follow_appends() -> None:
    store = InMemorySessionStore()
    await store.append(KEY, [user("hello", timestamp="2024-01-01T00:00:00Z")])
    await store.append(KEY, [entry(customTitle="named")])
    [only] = await store.list_session_summaries("proj")
    assert only["data"]["custom_title"] == "named"
    assert only["data"]["first_prompt"] == "hello"
    assert only["mtime"] == (await store.list_sessions("proj"))[0]["mtime"]


async def test_in_memory_summaries_ignore_subpath_appends() -> None:
    store = InMemorySessionStore()
    await store.append(KEY, [entry(customTitle="main")])
    before = await store.list_session_summaries("proj")
    await store.append(SUBAGENT_KEY, [entry(customTitle="subagent", isSidechain=True)])
    assert await store.list_session_summaries("proj") == before


async def test_in_memory_delete_drops_the_summary() -> None:
    store = InMemorySessionStore()
    await store.append(KEY, [entry(customTitle="main")])
    await store.delete(KEY)
    assert await store.list_session_summaries("proj") == []


async def test_in_memory_summaries_are_scoped_to_their_project() -> None:
    store = InMemorySessionStore()
    await store.append(KEY, [entry(customTitle="in proj")])
    await store.append({"project_key": "other", "session_id": "sess"}, [entry(customTitle="in other")])
    [in_proj] = await store.list_session_summaries("proj")
    [in_other] = await store.list_session_summaries("other")
    assert (in_proj["data"]["custom_title"], in_other["data"]["custom_title"]) == ("in proj", "in other")
