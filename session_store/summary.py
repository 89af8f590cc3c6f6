"""Session summaries: fold appended entries into a small sidecar, and turn the sidecar into a ``SessionInfo``.

Implements reference §5. A store that offers ``list_session_summaries`` calls :func:`fold_session_summary`
inside ``append`` (main transcripts only, never for a subpath key), so listing a project costs one call
instead of one ``load`` per session. Every derived field is set-once or last-wins, so a fold never needs the
entries appended before.

SPEC §4 decision 6: this fold is the **one** source of truth for store-backed rows. The slow listing path
(``list_sessions`` + ``load``) folds the loaded entries with the same function and converts them with
:func:`summary_entry_to_session_info`, so both paths give identical rows for identical data, and
``SessionInfo.file_size`` is None for every store-backed row.

The first-prompt rules (:data:`COMMAND_NAME_PATTERN`, :data:`SKIP_FIRST_PROMPT_PATTERN`,
:func:`classify_prompt_text`) and :func:`iso_to_epoch_ms` are public so the on-disk lite parse applies exactly
the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .types import SessionInfo, SessionKey, SessionStoreEntry, SessionSummaryEntry

__all__ = [
    "COMMAND_NAME_PATTERN",
    "FIRST_PROMPT_MAX_CHARS",
    "SKIP_FIRST_PROMPT_PATTERN",
    "classify_prompt_text",
    "fold_session_summary",
    "iso_to_epoch_ms",
    "prompt_in_entry",
    "summary_entry_to_session_info",
    "user_prompt_texts",
]

FIRST_PROMPT_MAX_CHARS = 200
"""A first prompt longer than this is cut to it (trailing whitespace stripped) and ends with ``…``."""

COMMAND_NAME_PATTERN = re.compile(r"<command-name>(.*?)</command-name>")
"""A slash-command message; its name is the first-prompt fallback when no real prompt follows."""

SKIP_FIRST_PROMPT_PATTERN = re.compile(
    r"^(?:<local-command-stdout>|<session-start-hook>|<tick>|<goal>"
    r"|\[Request interrupted by user[^\]]*\]"
    r"|\s*<ide_opened_file>[\s\S]*</ide_opened_file>\s*$"
    r"|\s*<ide_selection>[\s\S]*</ide_selection>\s*$)"
)
"""Auto-generated user messages that never count as the first prompt (matched at the start)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MILLISECOND = timedelta(milliseconds=1)

# entry field -> summary data field, for strings where the latest value wins (reference §5.1 step 4)
_LAST_WINS_FIELDS: Mapping[str, str] = {
    "customTitle": "custom_title",
    "aiTitle": "ai_title",
    "lastPrompt": "last_prompt",
    "summary": "summary_hint",
    "gitBranch": "git_branch",
}


def iso_to_epoch_ms(value: object) -> int | None:
    """Epoch milliseconds of an ISO-8601 timestamp string, or None if ``value`` is not one.

    A trailing ``Z`` means UTC; a timestamp without an offset is read as local time. Sub-millisecond digits
    are truncated (computed exactly, without float rounding).
    """
    if not isinstance(value, str):
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive means local time
    return (moment - _EPOCH) // _ONE_MILLISECOND


def classify_prompt_text(raw: str) -> tuple[Literal["prompt", "command"], str] | None:
    """What one user text block contributes to the first prompt.

    ``("command", name)`` for a slash-command message, ``("prompt", text)`` for a real prompt (newlines become
    spaces, stripped, cut to :data:`FIRST_PROMPT_MAX_CHARS` plus ``…``); None for blank or generated text.
    """
    text = raw.replace("\n", " ").strip()
    if not text:
        return None
    command = COMMAND_NAME_PATTERN.search(text)
    if command:
        return "command", command.group(1)
    if SKIP_FIRST_PROMPT_PATTERN.match(text):
        return None
    if len(text) > FIRST_PROMPT_MAX_CHARS:
        text = text[:FIRST_PROMPT_MAX_CHARS].rstrip() + "\u2026"
    return "prompt", text


def user_prompt_texts(entry: Mapping[str, Any]) -> list[str]:
    """The text blocks of a user entry that may hold the first prompt; ``[]`` when it cannot.

    Only ``type == "user"`` entries qualify, and not meta entries, compact summaries or tool results. The
    candidates are the content itself when it is a string, else each ``text`` block's string.
    """
    if entry.get("type") != "user" or entry.get("isMeta") is True or entry.get("isCompactSummary") is True:
        return []
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    blocks = [block for block in content if isinstance(block, dict)]
    if any(block.get("type") == "tool_result" for block in blocks):
        return []
    return [block["text"] for block in blocks if block.get("type") == "text" and isinstance(block.get("text"), str)]


def prompt_in_entry(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(prompt, command)`` of one entry: its first real prompt text, and the first slash-command name seen
    before it (either None). The one rule shared by the summary fold and the lite parse."""
    command: str | None = None
    for raw in user_prompt_texts(entry):
        found = classify_prompt_text(raw)
        if found is None:
            continue
        kind, text = found
        if kind == "prompt":
            return text, command
        command = command or text
    return None, command


def _fold_first_prompt(data: dict[str, Any], entry: Mapping[str, Any]) -> None:
    if data.get("first_prompt_locked"):
        return
    prompt, command = prompt_in_entry(entry)
    if command and not data.get("command_fallback"):
        data["command_fallback"] = command
    if prompt is not None:
        data["first_prompt"] = prompt
        data["first_prompt_locked"] = True


def _fold_entry(data: dict[str, Any], entry: Mapping[str, Any]) -> None:
    # set-once fields: the first entry decides is_sidechain, even without a timestamp
    if "is_sidechain" not in data:
        data["is_sidechain"] = entry.get("isSidechain") is True
    if "created_at" not in data:
        created_at = iso_to_epoch_ms(entry.get("timestamp"))
        if created_at is not None:
            data["created_at"] = created_at
    if "cwd" not in data:
        cwd = entry.get("cwd")
        if isinstance(cwd, str) and cwd:
            data["cwd"] = cwd

    _fold_first_prompt(data, entry)

    for entry_field, data_field in _LAST_WINS_FIELDS.items():
        value = entry.get(entry_field)
        if isinstance(value, str):
            data[data_field] = value

    if entry.get("type") == "tag":
        tag = entry.get("tag")
        if isinstance(tag, str) and tag:
            data["tag"] = tag
        else:
            data.pop("tag", None)


def fold_session_summary(
    prev: SessionSummaryEntry | None, key: SessionKey, entries: Iterable[SessionStoreEntry]
) -> SessionSummaryEntry:
    """Fold a batch of appended ``entries`` into the running summary of ``key``'s main transcript.

    ``prev`` is the previous summary (None on the first append); it is never mutated: the result holds a
    shallow copy of its ``data``. Call this only for keys without a subpath. The fold never touches ``mtime``:
    it keeps ``prev["mtime"]`` (0 for a new summary) and the store stamps its own write time after persisting,
    on the clock of ``list_sessions``. ``data`` is opaque: persist it verbatim.
    """
    if prev is None:
        summary: SessionSummaryEntry = {"session_id": key["session_id"], "mtime": 0, "data": {}}
    else:
        summary = {"session_id": prev["session_id"], "mtime": prev["mtime"], "data": dict(prev["data"])}
    for entry in entries:
        _fold_entry(summary["data"], entry)
    return summary


def summary_entry_to_session_info(entry: SessionSummaryEntry, project_path: str | None) -> SessionInfo | None:
    """The listing row of a summary, or None for a sidechain session or one with nothing to show as summary.

    ``summary`` is the first non-empty of: custom title (``customTitle``, else ``aiTitle``), last prompt,
    summary hint, first prompt (else the command fallback). ``last_modified`` is the summary's storage
    ``mtime``; ``cwd`` falls back to ``project_path``; ``file_size`` is None (SPEC §4 decision 6).
    """
    data = entry["data"]
    if data.get("is_sidechain"):
        return None
    prompt_field = "first_prompt" if data.get("first_prompt_locked") else "command_fallback"
    first_prompt = data.get(prompt_field) or None
    custom_title = data.get("custom_title") or data.get("ai_title") or None
    summary = custom_title or data.get("last_prompt") or data.get("summary_hint") or first_prompt
    if not summary:
        return None
    return SessionInfo(
        session_id=entry["session_id"],
        summary=summary,
        last_modified=entry["mtime"],
        file_size=None,
        custom_title=custom_title,
        first_prompt=first_prompt,
        git_branch=data.get("git_branch") or None,
        cwd=data.get("cwd") or project_path or None,
        tag=data.get("tag") or None,
        created_at=data.get("created_at"),
    )
