"""``list``, ``show`` and ``subagents``: the store-backed readers (SPEC §6) for the project of a :class:`Scope`.

Transcript text is untrusted: every value shown has its control characters made visible
(:func:`~session_store.cli.output.visible`). Table cells and header values keep none (a newline in a title
shows as ``\\n``); a message body in ``show`` keeps its line breaks (``\\n`` and ``\\r\\n`` start a new
line) and tabs, and shows any other control, a lone ``\\r`` included, as an escape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..reading import (
    get_session_info_from_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from ..types import SessionMessage, SessionStore
from .output import Report, format_table, format_time, one_line, visible
from .running import CliError
from .scope import Scope, as_json, require_session, require_session_id

__all__ = ["format_messages", "list_command", "show_command", "subagents_command"]


async def list_command(store: SessionStore, scope: Scope, limit: int | None = None, offset: int = 0) -> Report:
    infos = await list_sessions_from_store(store, scope.directory, limit=limit, offset=offset)
    if not infos:
        return Report([], f"no sessions stored for {scope.describe()}")
    rows = [
        (
            info.session_id,
            format_time(info.last_modified),
            one_line(info.summary + (f" #{info.tag}" if info.tag else ""), 44),
            one_line(info.git_branch or "-", 24),
            one_line(info.first_prompt or "-", 48),
        )
        for info in infos
    ]
    headers = ("ID", "MODIFIED", "TITLE / SUMMARY", "BRANCH", "FIRST PROMPT")
    return Report([as_json(info) for info in infos], format_table(headers, rows))


def _block_lines(block: Any, tool_names: dict[str, str]) -> list[str]:
    """How one content block of a message reads in ``show``."""
    if not isinstance(block, dict):
        return [visible(str(block))]
    kind = block.get("type")
    if kind == "text":
        text = str(block.get("text", "")).replace("\r\n", "\n")
        return [visible(line, keep="\t") for line in text.split("\n")] if text else [""]
    if kind == "tool_use":
        name = visible(str(block.get("name", "?")))
        tool_names[str(block.get("id", ""))] = name
        arguments = block.get("input")
        if not isinstance(arguments, dict):
            arguments = {}
        shown = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
        return [f"→ {name}({one_line(shown, 100)})"]
    if kind == "tool_result":
        name = tool_names.get(str(block.get("tool_use_id", "")), "tool")
        content = block.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        text = str(content or "")
        lines = text.splitlines()
        more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
        return [f"← {name}: {one_line(lines[0] if lines else '', 90)}{more}"]
    if kind == "thinking":
        return ["(thinking)"]
    return [f"[{visible(str(kind))}]"]


def format_messages(messages: Sequence[SessionMessage]) -> str:
    tool_names: dict[str, str] = {}
    out: list[str] = []
    for message in messages:
        content = message.message.get("content") if isinstance(message.message, dict) else message.message
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        lines = [line for block in blocks for line in _block_lines(block, tool_names)]
        for index, line in enumerate(lines or [""]):
            out.append(f"{visible(str(message.type)) if index == 0 else '':<10} {line}".rstrip())
    return "\n".join(out)


async def show_command(
    store: SessionStore,
    scope: Scope,
    session_id: str,
    *,
    agent_id: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Report:
    require_session_id(session_id)
    if agent_id is not None:
        return await _show_subagent(store, scope, session_id, agent_id, limit, offset)
    info = await get_session_info_from_store(store, session_id, scope.directory)
    if info is None:
        await require_session(store, session_id, scope)  # raises when it does not exist at all
    messages = await get_session_messages_from_store(store, session_id, scope.directory, limit=limit, offset=offset)
    header = [("Session", session_id)]
    if info is not None:
        header += [
            ("Title", info.custom_title or info.summary),
            ("Tag", info.tag or "-"),
            ("Branch", info.git_branch or "-"),
            ("Directory", info.cwd or "-"),
            ("Created", format_time(info.created_at)),
            ("Modified", format_time(info.last_modified)),
            ("First prompt", one_line(info.first_prompt, 100) or "-"),
        ]
    header.append(("Messages", str(len(messages))))
    text = "\n".join(f"{label + ':':<14}{visible(value)}" for label, value in header)
    if messages:
        text += "\n\n" + format_messages(messages)
    data = {"session": as_json(info), "messages": [as_json(message) for message in messages]}
    return Report(data, text)


async def _show_subagent(
    store: SessionStore, scope: Scope, session_id: str, agent_id: str, limit: int | None, offset: int
) -> Report:
    messages = await get_subagent_messages_from_store(
        store, session_id, agent_id, scope.directory, limit=limit, offset=offset
    )
    if not messages:
        known = await list_subagents_from_store(store, session_id, scope.directory)
        if agent_id not in known:
            await require_session(store, session_id, scope)
            listed = ", ".join(known) if known else "none"
            raise CliError(f"session {session_id} has no subagent {agent_id!r} (its subagents: {listed})")
    parent = next((m.parent_tool_use_id for m in messages if m.parent_tool_use_id), None)
    text = (
        f"{'Session:':<14}{session_id}\n{'Subagent:':<14}{visible(agent_id)}\n{'Tool use:':<14}{visible(parent or '-')}"
    )
    text += f"\n{'Messages:':<14}{len(messages)}"
    if messages:
        text += "\n\n" + format_messages(messages)
    data = {"session_id": session_id, "agent_id": agent_id, "messages": [as_json(m) for m in messages]}
    return Report(data, text)


async def subagents_command(store: SessionStore, scope: Scope, session_id: str) -> Report:
    await require_session(store, session_id, scope)
    rows: list[dict[str, Any]] = []
    for agent_id in await list_subagents_from_store(store, session_id, scope.directory):
        messages = await get_subagent_messages_from_store(store, session_id, agent_id, scope.directory)
        parent = next((m.parent_tool_use_id for m in messages if m.parent_tool_use_id), None)
        rows.append({"agent_id": agent_id, "messages": len(messages), "parent_tool_use_id": parent})
    if not rows:
        return Report({"session_id": session_id, "subagents": []}, f"session {session_id} has no subagents")
    table = format_table(
        ("AGENT ID", "MESSAGES", "PARENT TOOL USE"),
        [(row["agent_id"], str(row["messages"]), row["parent_tool_use_id"] or "-") for row in rows],
    )
    return Report({"session_id": session_id, "subagents": rows}, table)
