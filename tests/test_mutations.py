"""Store-backed rename, tag, delete and fork, the fork transform and the tag sanitizer (reference §10, §16.4,
§16.9)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from session_store.mutations import (
    build_fork_entries,
    delete_session_via_store,
    fork_session_via_store,
    rename_session_via_store,
    sanitize_unicode,
    tag_session_via_store,
)
from session_store.reading import get_session_info_from_store, get_session_messages_from_store
from session_store.types import SessionStore
from tests.transcript_factories import (
    AppendSpyStore,
    Entry,
    MinimalStore,
    RecordingStore,
    assistant,
    conversation,
    custom_title,
    key_for,
    linked,
    new_id,
    progress,
    seed,
    user,
)

ISO_MICROSECONDS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def minimal() -> SessionStore:
    return MinimalStore()  # type: ignore[return-value]  # duck-typed: only append and load


# --- rename --------------------------------------------------------------------------------------------------------


async def test_rename_appends_a_custom_title_entry(tmp_path: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    await rename_session_via_store(store, session_id, "  New name  ", str(tmp_path))
    [(key, [entry])] = store.appends
    assert key == key_for(tmp_path, session_id)
    assert {k: entry[k] for k in ("type", "customTitle", "sessionId")} == {
        "type": "custom-title",
        "customTitle": "New name",
        "sessionId": session_id,
    }
    assert re.fullmatch(r"[0-9a-f-]{36}", entry["uuid"])
    assert ISO_MICROSECONDS_Z.match(entry["timestamp"])


async def test_rename_shows_in_the_session_info(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("q"))
    await rename_session_via_store(store, session_id, "Renamed", str(tmp_path))
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None and (info.summary, info.custom_title) == ("Renamed", "Renamed")


@pytest.mark.parametrize(
    ("session_id", "title", "message"),
    [("not-a-uuid", "ok", "Invalid session_id: not-a-uuid"), (new_id(), " \t\n", "title must be non-empty")],
)
async def test_rename_rejects_bad_input_before_calling_the_store(
    tmp_path: Path, session_id: str, title: str, message: str
) -> None:
    store = MinimalStore()
    with pytest.raises(ValueError, match=message):
        await rename_session_via_store(store, session_id, title, str(tmp_path))  # type: ignore[arg-type]
    assert store.calls == []


# --- tag -----------------------------------------------------------------------------------------------------------


async def test_tag_appends_a_sanitized_tag_entry(tmp_path: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    await tag_session_via_store(store, session_id, " re\u200blease\u202e ", str(tmp_path))
    [(_, [entry])] = store.appends
    assert (entry["type"], entry["tag"], entry["sessionId"]) == ("tag", "release", session_id)
    assert entry["uuid"] and ISO_MICROSECONDS_Z.match(entry["timestamp"])


async def test_tag_none_clears_the_tag(tmp_path: Path) -> None:
    store = AppendSpyStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("q"))
    await tag_session_via_store(store, session_id, "urgent", str(tmp_path))
    await tag_session_via_store(store, session_id, None, str(tmp_path))
    assert store.appends[-1][1][0]["tag"] == ""
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None and info.tag is None


async def test_tag_shows_in_the_session_info(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("q"))
    await tag_session_via_store(store, session_id, "urgent", str(tmp_path))
    info = await get_session_info_from_store(store, session_id, str(tmp_path))
    assert info is not None and info.tag == "urgent"


@pytest.mark.parametrize(
    ("session_id", "tag", "message"),
    [
        ("not-a-uuid", "ok", "Invalid session_id"),
        (new_id(), "   ", "tag must be non-empty"),
        (new_id(), "\u200b\ufeff\u2066", "use None to clear"),
    ],
)
async def test_tag_rejects_bad_input_before_calling_the_store(
    tmp_path: Path, session_id: str, tag: str, message: str
) -> None:
    store = MinimalStore()
    with pytest.raises(ValueError, match=message):
        await tag_session_via_store(store, session_id, tag, str(tmp_path))  # type: ignore[arg-type]
    assert store.calls == []


# --- sanitize_unicode ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain tag-1", "plain tag-1"),
        ("zero\u200bwidth\u200d", "zerowidth"),
        ("\u202aembedded\u202c \u2067isolated\u2069", "embedded isolated"),
        ("\ufeffbom", "bom"),
        ("private\ue000\uf8ff", "private"),
        ("unassigned\u0378", "unassigned"),
        ("\uff46\uff55\uff4c\uff4c\ufb01", "fullfi"),  # fullwidth letters and a ligature fold under NFKC
        ("caf\u0065\u0301", "caf\u00e9"),
        ("emoji \U0001f680 stays", "emoji \U0001f680 stays"),
    ],
)
def test_sanitize_unicode(raw: str, clean: str) -> None:
    assert sanitize_unicode(raw) == clean


def test_sanitize_unicode_reaches_a_fixed_point() -> None:
    raw = "\u2126\u00c5\u1e9b\u0323\u200b\U000e0041\u2060x"
    once = sanitize_unicode(raw)
    assert sanitize_unicode(once) == once
    assert all(unicodedata.category(char) not in {"Cf", "Co", "Cn"} for char in once)


# --- delete --------------------------------------------------------------------------------------------------------


async def test_delete_removes_the_session_and_its_subagents(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("q"))
    await seed(store, tmp_path, session_id, conversation("sub"), subpath="subagents/agent-a")
    await delete_session_via_store(store, session_id, str(tmp_path))
    assert store.size == 0
    assert await store.load(key_for(tmp_path, session_id)) is None
    assert await store.load(key_for(tmp_path, session_id, "subagents/agent-a")) is None


async def test_delete_is_a_no_op_for_a_store_without_delete(tmp_path: Path) -> None:
    store = MinimalStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("q"))  # type: ignore[arg-type]
    await delete_session_via_store(store, session_id, str(tmp_path))  # type: ignore[arg-type]
    assert await store.load(key_for(tmp_path, session_id)) is not None
    assert store.calls == ["append", "load"]


async def test_delete_rejects_a_non_uuid_without_touching_the_store(tmp_path: Path) -> None:
    store = RecordingStore()
    session_id = new_id()
    await seed(store, tmp_path, session_id, conversation("q"))
    with pytest.raises(ValueError, match="Invalid session_id"):
        await delete_session_via_store(store, "*", str(tmp_path))
    assert store.size == 1


# --- fork through the store ----------------------------------------------------------------------------------------


async def fork_source(store: RecordingStore, directory: Path, entries: list[Entry]) -> str:
    session_id = new_id()
    for item in entries:
        if item.get("type") in ("user", "assistant", "progress", "system", "attachment"):
            item["sessionId"] = session_id
    await seed(store, directory, session_id, entries)
    return session_id


async def load_fork(store: RecordingStore, directory: Path, session_id: str) -> list[dict[str, Any]]:
    loaded = await store.load(key_for(directory, session_id))
    assert loaded is not None
    return [dict(item) for item in loaded]


async def test_fork_remaps_uuids_and_keeps_the_chain(tmp_path: Path) -> None:
    store = RecordingStore()
    source = conversation("one", "two")
    source_id = await fork_source(store, tmp_path, source)
    result = await fork_session_via_store(store, source_id, str(tmp_path))
    forked = await load_fork(store, tmp_path, result.session_id)
    messages, trailer = forked[:-1], forked[-1]
    assert result.session_id != source_id
    assert [m["forkedFrom"] for m in messages] == [{"sessionId": source_id, "messageUuid": s["uuid"]} for s in source]
    assert {m["uuid"] for m in messages}.isdisjoint(s["uuid"] for s in source)
    assert [m["parentUuid"] for m in messages] == [None] + [m["uuid"] for m in messages[:-1]]
    assert {(m["sessionId"], m["isSidechain"]) for m in messages} == {(result.session_id, False)}
    assert [m["message"] for m in messages] == [s["message"] for s in source]
    assert trailer["type"] == "custom-title" and trailer["uuid"] and ISO_MICROSECONDS_Z.match(trailer["timestamp"])


async def test_fork_leaves_the_source_untouched(tmp_path: Path) -> None:
    store = RecordingStore()
    source_id = await fork_source(store, tmp_path, conversation("one"))
    before = await load_fork(store, tmp_path, source_id)
    await fork_session_via_store(store, source_id, str(tmp_path))
    assert await load_fork(store, tmp_path, source_id) == before


async def test_fork_is_written_in_one_append_to_the_new_key(tmp_path: Path) -> None:
    store = AppendSpyStore()
    source_id = await fork_source(store, tmp_path, conversation("one", "two", "three"))
    store.appends.clear()
    result = await fork_session_via_store(store, source_id, str(tmp_path))
    [(key, entries)] = store.appends
    assert key == key_for(tmp_path, result.session_id)
    assert len(entries) == 7


async def test_fork_is_readable_as_messages(tmp_path: Path) -> None:
    store = RecordingStore()
    source_id = await fork_source(store, tmp_path, conversation("one", "two"))
    result = await fork_session_via_store(store, source_id, str(tmp_path))
    original = await get_session_messages_from_store(store, source_id, str(tmp_path))
    forked = await get_session_messages_from_store(store, result.session_id, str(tmp_path))
    assert [(m.type, m.message) for m in forked] == [(m.type, m.message) for m in original]
    assert {m.session_id for m in forked} == {result.session_id}


@pytest.mark.parametrize(
    ("extra", "title", "expected"),
    [
        ([custom_title("Old"), custom_title("My Title")], None, "My Title (fork)"),
        ([{"type": "ai-title", "aiTitle": "Generated"}], None, "Generated (fork)"),
        ([custom_title("Mine"), {"type": "ai-title", "aiTitle": "Generated"}], None, "Mine (fork)"),
        ([], None, "first question (fork)"),
        ([custom_title("Ignored")], "  Explicit  ", "Explicit"),
    ],
)
async def test_fork_title(tmp_path: Path, extra: list[Entry], title: str | None, expected: str) -> None:
    store = RecordingStore()
    source_id = await fork_source(store, tmp_path, [*conversation("first question"), *extra])
    result = await fork_session_via_store(store, source_id, str(tmp_path), title=title)
    forked = await load_fork(store, tmp_path, result.session_id)
    assert forked[-1]["customTitle"] == expected
    info = await get_session_info_from_store(store, result.session_id, str(tmp_path))
    assert info is not None and info.summary == expected


async def test_fork_without_any_prompt_is_titled_forked_session(tmp_path: Path) -> None:
    store = RecordingStore()
    source_id = await fork_source(store, tmp_path, linked(assistant("the model spoke first")))
    result = await fork_session_via_store(store, source_id, str(tmp_path))
    assert (await load_fork(store, tmp_path, result.session_id))[-1]["customTitle"] == "Forked session (fork)"


async def test_fork_carries_the_source_content_replacements(tmp_path: Path) -> None:
    store = RecordingStore()
    source_id = new_id()
    entries: list[Entry] = conversation("q", session_id=source_id)
    entries += [
        {"type": "content-replacement", "sessionId": source_id, "replacements": [{"id": 1}]},
        {"type": "content-replacement", "sessionId": "someone-else", "replacements": [{"id": 2}]},
        {"type": "content-replacement", "sessionId": source_id, "replacements": "not a list"},
        {"type": "content-replacement", "sessionId": source_id, "replacements": [{"id": 3}]},
    ]
    await seed(store, tmp_path, source_id, entries)
    result = await fork_session_via_store(store, source_id, str(tmp_path))
    [replacement] = [
        e for e in await load_fork(store, tmp_path, result.session_id) if e["type"] == "content-replacement"
    ]
    assert replacement["replacements"] == [{"id": 1}, {"id": 3}]
    assert replacement["sessionId"] == result.session_id
    assert replacement["uuid"] and ISO_MICROSECONDS_Z.match(replacement["timestamp"])


async def test_fork_up_to_a_message_keeps_that_message(tmp_path: Path) -> None:
    store = RecordingStore()
    source = conversation("one", "two", "three")
    source_id = await fork_source(store, tmp_path, source)
    result = await fork_session_via_store(store, source_id, str(tmp_path), up_to_message_id=source[2]["uuid"])
    forked = await load_fork(store, tmp_path, result.session_id)
    assert [e["forkedFrom"]["messageUuid"] for e in forked[:-1]] == [s["uuid"] for s in source[:3]]


@pytest.mark.parametrize(
    ("session_id", "up_to", "message"),
    [
        ("nope", None, "Invalid session_id: nope"),
        (new_id(), "not-a-message-uuid", "Invalid up_to_message_id: not-a-message-uuid"),
    ],
)
async def test_fork_rejects_non_uuid_ids_before_calling_the_store(
    tmp_path: Path, session_id: str, up_to: str | None, message: str
) -> None:
    store = MinimalStore()
    with pytest.raises(ValueError, match=message):
        await fork_session_via_store(store, session_id, str(tmp_path), up_to_message_id=up_to)  # type: ignore[arg-type]
    assert store.calls == []


async def test_fork_of_an_unknown_session_raises_file_not_found(tmp_path: Path) -> None:
    session_id = new_id()
    with pytest.raises(FileNotFoundError, match=f"Session {session_id} not found"):
        await fork_session_via_store(RecordingStore(), session_id, str(tmp_path))


async def test_fork_up_to_an_unknown_message_raises(tmp_path: Path) -> None:
    store = RecordingStore()
    source_id = await fork_source(store, tmp_path, conversation("q"))
    missing = new_id()
    with pytest.raises(ValueError, match=f"Message {missing} not found in session {source_id}"):
        await fork_session_via_store(store, source_id, str(tmp_path), up_to_message_id=missing)


# --- the fork transform ----------------------------------------------------------------------------------------------


def fork(transcript: list[Entry], **kwargs: Any) -> tuple[str, list[dict[str, Any]]]:
    options: dict[str, Any] = {"up_to_message_id": None, "title": None, "content_replacements": []}
    options.update(kwargs)
    return build_fork_entries(
        transcript,
        options["content_replacements"],
        "source-session",
        options["up_to_message_id"],
        options["title"],
        lambda: "derived",
    )


def test_fork_transform_skips_progress_entries_and_links_past_them() -> None:
    question, tick, answer = linked(user("q"), progress(), assistant("a"))
    _, forked = fork([question, tick, answer])
    assert [e["forkedFrom"]["messageUuid"] for e in forked[:-1]] == [question["uuid"], answer["uuid"]]
    assert forked[1]["parentUuid"] == forked[0]["uuid"]


def test_fork_transform_drops_sidechain_entries() -> None:
    main = conversation("main")
    side = user("side", isSidechain=True, parent=main[0]["uuid"])
    _, forked = fork([main[0], side, main[1]])
    assert [e["forkedFrom"]["messageUuid"] for e in forked[:-1]] == [m["uuid"] for m in main]


@pytest.mark.parametrize(
    "transcript",
    [[], [user("only a sidechain", isSidechain=True)], linked(progress(), progress())],
    ids=["empty", "sidechains-only", "progress-only"],
)
def test_fork_transform_refuses_a_session_without_messages(transcript: list[Entry]) -> None:
    with pytest.raises(ValueError, match="Session source-session has no messages to fork"):
        fork(transcript)


def test_fork_transform_removes_fields_of_the_source_session() -> None:
    leaky = {"teamName": "t", "agentName": "a", "slug": "s", "sourceToolAssistantUUID": "u", "isSidechain": None}
    _, forked = fork([user("q", **leaky)])
    assert not {"teamName", "agentName", "slug", "sourceToolAssistantUUID"} & forked[0].keys()
    assert forked[0]["isSidechain"] is False


def test_fork_transform_stamps_only_the_last_entry_with_now() -> None:
    source = conversation("one", "two", start_at=10)
    del source[1]["timestamp"]
    _, forked = fork(source)
    now = forked[-1]["timestamp"]
    assert [e["timestamp"] for e in forked[:-1]] == [source[0]["timestamp"], now, source[2]["timestamp"], now]


def test_fork_transform_remaps_logical_parent_links() -> None:
    before = user("before")
    compacted = user("summary", isCompactSummary=True, logicalParentUuid=before["uuid"])
    dangling = assistant("a", parent=compacted["uuid"], logicalParentUuid="outside-the-fork")
    _, forked = fork([before, compacted, dangling])
    assert forked[0]["logicalParentUuid"] is None
    assert forked[1]["logicalParentUuid"] == forked[0]["uuid"]
    assert forked[2]["logicalParentUuid"] is None


def test_fork_transform_parent_outside_the_fork_becomes_none() -> None:
    _, forked = fork([assistant("orphan", parent="not-in-the-fork")])
    assert forked[0]["parentUuid"] is None


def test_fork_transform_title_comes_from_the_deriver_with_a_suffix() -> None:
    _, forked = fork(conversation("q"))
    assert forked[-1] | {"uuid": "-", "timestamp": "-"} == {
        "type": "custom-title",
        "sessionId": forked[0]["sessionId"],
        "customTitle": "derived (fork)",
        "uuid": "-",
        "timestamp": "-",
    }


def test_fork_transform_does_not_derive_a_title_when_one_is_given() -> None:
    def must_not_run() -> str:
        raise AssertionError("derive_title called although a title was given")

    _, forked = build_fork_entries(conversation("q"), [], "source-session", None, "Given", must_not_run)
    assert forked[-1]["customTitle"] == "Given"
