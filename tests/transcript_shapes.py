"""Builders for the transcript shapes real Claude Code sessions have (issue 7), so they stay tested without the
real-transcript corpus.

Each builder returns plain dicts shaped like the CLI's lines, made from :mod:`tests.transcript_factories`:
parallel tool turns (one assistant entry per ``tool_use`` block, all sharing a ``message.id``, each result
parented on its own call), compactions, old-style ``summary`` lines, inline sidechains, a file whose lines
carry two session ids, a line holding a large base64 image, and the metadata-like entries (progress,
file-history-snapshot, queue-operation, pr-link) the CLI writes between messages.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from tests.transcript_factories import Entry, assistant, entry, iso, linked, new_id, progress, user


def tool_use(tool_use_id: str, *, message_id: str, parent: str | None, uuid: str | None = None, **fields: Any) -> Entry:
    """One assistant entry carrying one ``tool_use`` block (the CLI writes one entry per content block)."""
    content = [{"type": "tool_use", "id": tool_use_id, "name": "Read", "input": {}}]
    message = {"id": message_id, "role": "assistant", "content": content}
    return entry("assistant", uuid=uuid, parent=parent, message=message, **fields)


def tool_result_for(
    tool_use_id: str, *, parent: str | None, uuid: str | None = None, source: str | None = None, **fields: Any
) -> Entry:
    """A user entry answering ``tool_use_id``; ``source`` becomes ``sourceToolAssistantUUID`` when given."""
    content = [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "ok"}]
    extra = {"sourceToolAssistantUUID": source} if source is not None else {}
    return entry("user", uuid=uuid, parent=parent, message={"role": "user", "content": content}, **extra, **fields)


def parallel_tool_turn(
    parent_uuid: str,
    tools: int,
    result_order: Sequence[int],
    *,
    prefix: str = "",
    message_id: str = "msg_parallel",
    with_source: bool = True,
    calls_at: float = 1,
    results_at: float = 2,
    **fields: Any,
) -> tuple[list[Entry], list[Entry]]:
    """The calls and the results of one response that ran ``tools`` tools in parallel.

    Calls are ``<prefix>call-<i>`` chained one after another from ``parent_uuid``, each with one ``tool_use``
    block ``<prefix>toolu_<i>`` and ``message.id`` ``message_id``, timestamped ``calls_at + i/1000`` s. Results
    are ``<prefix>result-<i>``, each parented on its own call (and naming it in ``sourceToolAssistantUUID``
    when ``with_source``), listed and timestamped (``results_at + position/1000`` s) in ``result_order``, the
    order the tools finished in. ``fields`` go on every entry (``sessionId``, ``isSidechain``, ...).
    """
    calls: list[Entry] = []
    parent = parent_uuid
    for index in range(tools):
        call = tool_use(
            f"{prefix}toolu_{index}",
            message_id=message_id,
            parent=parent,
            uuid=f"{prefix}call-{index}",
            at=calls_at + index / 1000,
            **fields,
        )
        calls.append(call)
        parent = call["uuid"]
    results = [
        tool_result_for(
            f"{prefix}toolu_{index}",
            parent=f"{prefix}call-{index}",
            uuid=f"{prefix}result-{index}",
            source=f"{prefix}call-{index}" if with_source else None,
            at=results_at + position / 1000,
            **fields,
        )
        for position, index in enumerate(result_order)
    ]
    return calls, results


def parallel_session(
    tools: int, result_order: Sequence[int], continue_from: int | None, *, prefix: str = "", **fields: Any
) -> list[Entry]:
    """A prompt, one parallel turn, and (unless ``continue_from`` is None) an answer parented on the result
    of call ``continue_from``: ``<prefix>prompt``, the calls, the results, ``<prefix>answer``."""
    prompt = user("read the files", uuid=f"{prefix}prompt", at=0, **fields)
    calls, results = parallel_tool_turn(prompt["uuid"], tools, result_order, prefix=prefix, **fields)
    entries = [prompt, *calls, *results]
    if continue_from is not None:
        entries.append(
            assistant("done", uuid=f"{prefix}answer", parent=f"{prefix}result-{continue_from}", at=3, **fields)
        )
    return entries


def uuids(entries: Sequence[Entry]) -> list[str]:
    return [item["uuid"] for item in entries]


def compacted_session(session_id: str) -> list[Entry]:
    """A conversation, a ``compact_boundary`` (no ``parentUuid``, ``logicalParentUuid`` to the old leaf), the
    compact summary (``isCompactSummary``) and one more exchange after it."""
    before = linked(
        user("first question", session_id=session_id, at=0), assistant("first answer", session_id=session_id, at=1)
    )
    boundary = entry(
        "system",
        parent=None,
        session_id=session_id,
        at=2,
        subtype="compact_boundary",
        content="Conversation compacted",
        logicalParentUuid=before[-1]["uuid"],
        compactMetadata={"trigger": "auto", "preTokens": 150_000},
    )
    summary = user(
        "This session is being continued from a previous conversation. Summary: ...",
        parent=boundary["uuid"],
        session_id=session_id,
        at=3,
        isCompactSummary=True,
        isVisibleInTranscriptOnly=True,
    )
    after = assistant("continuing", parent=summary["uuid"], session_id=session_id, at=4)
    return [*before, boundary, summary, after]


def old_style_summary(leaf_uuid: str, text: str = "An old-style session summary") -> Entry:
    """A ``summary`` line as Claude Code 1.0.x wrote them: no uuid, no session id, a ``leafUuid``."""
    return {"type": "summary", "summary": text, "leafUuid": leaf_uuid}


def with_inline_sidechain(session_id: str) -> list[Entry]:
    """A main transcript (Claude Code 1.0.x) holding a Task subagent's lines inline, marked ``isSidechain``."""
    main = linked(
        user("delegate this", session_id=session_id, at=0), assistant("delegating", session_id=session_id, at=1)
    )
    side = linked(
        user("subtask prompt", session_id=session_id, at=2, isSidechain=True),
        assistant("subtask done", session_id=session_id, at=3, isSidechain=True),
    )
    final = assistant("all done", parent=main[-1]["uuid"], session_id=session_id, at=4)
    return [*main, *side, final]


def two_session_ids(first_id: str, second_id: str) -> list[Entry]:
    """One file's lines carrying two ``sessionId`` values (a session continued under a new id)."""
    entries = linked(
        user("before", session_id=first_id, at=0),
        assistant("reply", session_id=first_id, at=1),
        user("after", session_id=second_id, at=2),
        assistant("reply again", session_id=second_id, at=3),
    )
    return entries


def image_prompt(session_id: str, image_bytes: int = 1 << 20, **kwargs: Any) -> Entry:
    """A user entry with a base64 image block whose data is at least ``image_bytes`` long (1 MiB by default)."""
    data = base64.b64encode(bytes(range(256)) * (image_bytes * 3 // 4 // 256 + 1)).decode("ascii")
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "text", "text": "what is in this picture?"},
    ]
    return user(content, session_id=session_id, **kwargs)


def between_messages(session_id: str, parent: str) -> list[Entry]:
    """Entries the CLI writes between messages: a hook progress line (in the chain), and the non-chain
    ``file-history-snapshot``, ``queue-operation`` and ``pr-link`` lines."""
    return [
        progress(parent=parent, session_id=session_id, at=10),
        {
            "type": "file-history-snapshot",
            "messageId": new_id(),
            "snapshot": {"trackedFileBackups": {}, "timestamp": iso(10)},
            "isSnapshotUpdate": False,
        },
        {"type": "queue-operation", "operation": "enqueue", "timestamp": iso(11), "sessionId": session_id},
        {"type": "pr-link", "sessionId": session_id, "prNumber": 7, "prUrl": "https://example.invalid/pr/7"},
    ]
