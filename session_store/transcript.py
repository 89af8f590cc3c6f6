"""Reading transcripts without a store: the lite parse, chain building and message paging (reference §8).

Everything here is pure (no I/O, no concurrency) and works on entries already loaded from a store, so the
readers (:mod:`session_store.reading`), the mutations (:mod:`session_store.mutations`) and the tests share one
implementation:

- **Lite parse** (§8): :func:`entries_to_jsonl` (``type`` hoisted to the first key, so a store that reorders
  keys, like JSONB, still produces ``{"type":"tag"`` line prefixes), :func:`jsonl_to_lite` (64 KiB head and
  tail windows, as a disk reader would see them), :func:`mtime_from_jsonl_tail`, the raw-text field scanners
  and :func:`parse_session_info_from_lite`. The store readers do not build their rows from the lite parse
  (SPEC §4 decision 6 has them use the same fold as the summary fast path); it is kept as the byte-level
  parser of the Claude CLI's file format, used by fork title derivation and by the parity tests that pin the
  fold to it.
- **Chains** (§8.1, §8.2): :func:`filter_transcript_entries`, :func:`build_conversation_chain`,
  :func:`build_subagent_chain`, :func:`recover_parallel_tool_results`, :func:`is_visible_message`,
  :func:`to_session_message` and :func:`paginate`.

Paging (:func:`paginate`) skips ``offset`` items and then takes ``limit``; a ``limit`` of None or ``<= 0``
means "all" and an ``offset <= 0`` skips nothing. The reference slices ``[offset:offset+limit]`` for
messages, which gives Python's negative-slice result for a negative offset; here a negative offset is simply
no offset, the same rule the session listing uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from session_store.summary import iso_to_epoch_ms, prompt_in_entry
from session_store.types import SessionInfo, SessionMessage

__all__ = [
    "LITE_READ_BUF_SIZE_BYTES",
    "TRANSCRIPT_ENTRY_TYPES",
    "LiteTranscript",
    "TranscriptEntry",
    "build_conversation_chain",
    "build_subagent_chain",
    "entries_to_jsonl",
    "entries_to_session_messages",
    "extract_first_prompt_from_head",
    "extract_json_string_field",
    "extract_last_json_string_field",
    "filter_transcript_entries",
    "is_visible_message",
    "jsonl_to_lite",
    "mtime_from_jsonl_tail",
    "paginate",
    "parse_session_info_from_lite",
    "recover_parallel_tool_results",
    "to_session_message",
]

TranscriptEntry = dict[str, Any]
"""A loaded transcript line as a plain dict (a ``SessionStoreEntry`` whose extra fields we read)."""

LITE_READ_BUF_SIZE_BYTES = 65536
"""Size of the head and tail windows the lite parse sees, as a disk reader would read them."""

TRANSCRIPT_ENTRY_TYPES = frozenset({"user", "assistant", "progress", "system", "attachment"})
"""Entry types that take part in the ``parentUuid`` chain; everything else is metadata."""

_NOT_A_PROMPT_MARKERS = (
    '"isMeta":true',
    '"isMeta": true',
    '"isCompactSummary":true',
    '"isCompactSummary": true',
)

_T = TypeVar("_T")


# --- lite parse (§8) --------------------------------------------------------------------------------


def entries_to_jsonl(entries: Iterable[object]) -> str:
    """Compact JSONL for ``entries``, one line each and a trailing newline, ``type`` first in every dict."""
    lines = []
    for entry in entries:
        if isinstance(entry, dict) and "type" in entry:
            entry = {"type": entry["type"], **entry}
        lines.append(json.dumps(entry, separators=(",", ":")))
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class LiteTranscript:
    """What the lite parse sees of a transcript: its mtime (epoch ms), UTF-8 size and head/tail windows."""

    mtime: int
    size: int
    head: str
    tail: str


def jsonl_to_lite(jsonl: str, mtime: int) -> LiteTranscript:
    """The head and tail windows (64 KiB each, decoded with replacement) of ``jsonl`` as UTF-8 bytes.

    The tail equals the head when the whole text fits in one window.
    """
    data = jsonl.encode("utf-8")
    head = data[:LITE_READ_BUF_SIZE_BYTES].decode("utf-8", errors="replace")
    if len(data) > LITE_READ_BUF_SIZE_BYTES:
        tail = data[-LITE_READ_BUF_SIZE_BYTES:].decode("utf-8", errors="replace")
    else:
        tail = head
    return LiteTranscript(mtime=mtime, size=len(data), head=head, tail=tail)


def mtime_from_jsonl_tail(jsonl: str) -> int:
    """The ``timestamp`` of the last non-blank line in epoch ms; the wall-clock time now if it has none."""
    stripped = jsonl.rstrip()
    last_line = stripped[stripped.rfind("\n") + 1 :]
    try:
        last = json.loads(last_line)
    except ValueError:
        last = None
    parsed = iso_to_epoch_ms(last.get("timestamp")) if isinstance(last, dict) else None
    return parsed if parsed is not None else int(time.time() * 1000)


def _unescape_json_string(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _string_values(text: str, key: str) -> Iterable[str]:
    """Every raw-text value of ``"key":"..."``, compact occurrences first, then spaced ones.

    Escapes are skipped when looking for the closing quote, so a truncated line still yields whatever is
    complete; a value without a closing quote is not yielded.
    """
    for pattern in (f'"{key}":"', f'"{key}": "'):
        search_from = 0
        while (found := text.find(pattern, search_from)) >= 0:
            start = i = found + len(pattern)
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= len(text):
                break
            yield _unescape_json_string(text[start:i])
            search_from = i + 1


def extract_json_string_field(text: str, key: str) -> str | None:
    """The first string value of ``key`` by raw-text scan (compact pattern first), without parsing JSON."""
    return next(iter(_string_values(text, key)), None)


def extract_last_json_string_field(text: str, key: str) -> str | None:
    """The last string value of ``key`` by raw-text scan; a spaced ``"key": "`` match beats compact ones."""
    last = None
    for last in _string_values(text, key):  # noqa: B007 - we want the final value
        pass
    return last


def extract_first_prompt_from_head(head: str) -> str:
    """The first real user prompt in a JSONL head, or the first slash-command name, or ``""``.

    Lines are pre-filtered by substring as the CLI does (user lines only; no ``tool_result``, ``isMeta`` or
    ``isCompactSummary``); each candidate text is then judged by the same rules as the summary fold
    (:func:`session_store.summary.prompt_in_entry`).
    """
    command_fallback = ""
    for line in head.split("\n"):
        if '"type":"user"' not in line and '"type": "user"' not in line:
            continue
        if '"tool_result"' in line or any(marker in line for marker in _NOT_A_PROMPT_MARKERS):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        prompt, command = prompt_in_entry(entry)
        if prompt is not None:
            return prompt
        command_fallback = command_fallback or command or ""
    return command_fallback


def parse_session_info_from_lite(
    session_id: str, lite: LiteTranscript, project_path: str | None = None
) -> SessionInfo | None:
    """A session row from the lite windows, as the CLI's file lister builds it; None for a sidechain or a
    session with nothing to summarize.

    ``file_size`` is the byte size of the text that was parsed (this parser describes a file); the store
    readers never report a size (SPEC §4 decision 6).
    """
    head, tail = lite.head, lite.tail
    first_line = head.split("\n", 1)[0]
    if '"isSidechain":true' in first_line or '"isSidechain": true' in first_line:
        return None
    custom_title = (
        extract_last_json_string_field(tail, "customTitle")
        or extract_last_json_string_field(head, "customTitle")
        or extract_last_json_string_field(tail, "aiTitle")
        or extract_last_json_string_field(head, "aiTitle")
        or None
    )
    first_prompt = extract_first_prompt_from_head(head) or None
    summary = (
        custom_title
        or extract_last_json_string_field(tail, "lastPrompt")
        or extract_last_json_string_field(tail, "summary")
        or first_prompt
    )
    if not summary:
        return None
    git_branch = (
        extract_last_json_string_field(tail, "gitBranch") or extract_json_string_field(head, "gitBranch") or None
    )
    tag_line = next((line for line in reversed(tail.split("\n")) if line.startswith('{"type":"tag"')), None)
    tag = (extract_last_json_string_field(tag_line, "tag") or None) if tag_line else None
    return SessionInfo(
        session_id=session_id,
        summary=summary,
        last_modified=lite.mtime,
        file_size=lite.size,
        custom_title=custom_title,
        first_prompt=first_prompt,
        git_branch=git_branch,
        cwd=extract_json_string_field(head, "cwd") or project_path or None,
        tag=tag,
        created_at=iso_to_epoch_ms(extract_json_string_field(head, "timestamp")),
    )


# --- chains (§8.1, §8.2) ----------------------------------------------------------------------------


def filter_transcript_entries(entries: Iterable[object]) -> list[TranscriptEntry]:
    """The chain entries of a loaded transcript: dicts of a transcript type with a string ``uuid``.

    Metadata lines (custom-title, tag, agent_metadata, content-replacement, ...) are dropped.
    """
    return [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and entry.get("type") in TRANSCRIPT_ENTRY_TYPES
        and isinstance(entry.get("uuid"), str)
    ]


def _walk_to_root(leaf: TranscriptEntry, by_uuid: dict[str, TranscriptEntry]) -> list[TranscriptEntry]:
    """``leaf`` and its ``parentUuid`` ancestors, root first; stops at a missing parent or a cycle."""
    chain: list[TranscriptEntry] = []
    seen: set[str] = set()
    current: TranscriptEntry | None = leaf
    while current is not None and current["uuid"] not in seen:
        seen.add(current["uuid"])
        chain.append(current)
        parent = current.get("parentUuid")
        current = by_uuid.get(parent) if parent else None
    chain.reverse()
    return chain


def _is_main_chain(entry: TranscriptEntry) -> bool:
    return not (entry.get("isSidechain") or entry.get("teamName") or entry.get("isMeta"))


def build_conversation_chain(entries: Sequence[TranscriptEntry]) -> list[TranscriptEntry]:
    """The conversation of a main transcript, root to leaf (reference §8.1, delta 0.2.189 §2).

    ``entries`` are chain entries (see :func:`filter_transcript_entries`). Terminals are entries nobody names
    as ``parentUuid``; each is walked back to its nearest user/assistant entry, a leaf. The leaf chosen is the
    latest in file order among main-chain leaves (not sidechain, team or meta), else among all leaves; its
    ``parentUuid`` chain is walked, and then the tool calls and results of parallel tool turns that the walk
    left out are put back (:func:`recover_parallel_tool_results`), as the SDK does since 0.2.170. The result is
    therefore not a pure ancestor path: a recovered result need not follow its parent. ``logicalParentUuid``
    (compact boundaries) is deliberately not followed. Empty when no leaf exists (for example a stream of
    progress entries only).
    """
    by_uuid: dict[str, TranscriptEntry] = {}
    position: dict[str, int] = {}
    for index, entry in enumerate(entries):
        by_uuid[entry["uuid"]] = entry  # the last object of a duplicate uuid, at its first position
        position[entry["uuid"]] = index  # the last position of a duplicate uuid
    referenced = {entry["parentUuid"] for entry in entries if entry.get("parentUuid")}

    leaves: list[TranscriptEntry] = []
    for terminal in entries:
        if terminal["uuid"] in referenced:
            continue
        current: TranscriptEntry | None = terminal
        seen: set[str] = set()
        while current is not None and current["uuid"] not in seen:
            if current.get("type") in ("user", "assistant"):
                leaves.append(current)
                break
            seen.add(current["uuid"])
            parent = current.get("parentUuid")
            current = by_uuid.get(parent) if parent else None
    if not leaves:
        return []
    candidates = [leaf for leaf in leaves if _is_main_chain(leaf)] or leaves
    leaf = max(candidates, key=lambda candidate: position[candidate["uuid"]])
    chain = _walk_to_root(leaf, by_uuid)
    return recover_parallel_tool_results(by_uuid, chain, {entry["uuid"] for entry in chain})


def build_subagent_chain(entries: Sequence[TranscriptEntry]) -> list[TranscriptEntry]:
    """The conversation of a subagent transcript, root to leaf (reference §8.2, SPEC §4 decision 9).

    The leaf is the last user/assistant entry in list order. Its ``parentUuid`` chain is walked, the parallel
    tool calls and results the walk left out are put back exactly as on the main chain
    (:func:`recover_parallel_tool_results`), and only user and assistant entries are returned; unlike the main
    chain there is no sidechain, team or meta filtering.

    **Differs from the SDK** (0.2.189): its subagent chain has no recovery, so a subagent that ran tools in
    parallel loses every call and result off the walked branch (with two calls continued from result 0: the
    prompt, call 0, result 0 and the answer). Here a subagent's parallel turn is returned whole, like the
    main session's, because a subagent transcript is written by the same CLI code in the same shape
    (SPEC §4 decision 9).
    """
    by_uuid = {entry["uuid"]: entry for entry in entries}
    leaf = next((entry for entry in reversed(entries) if entry.get("type") in ("user", "assistant")), None)
    if leaf is None:
        return []
    walked = _walk_to_root(leaf, by_uuid)
    chain = recover_parallel_tool_results(by_uuid, walked, {entry["uuid"] for entry in walked})
    return [entry for entry in chain if entry.get("type") in ("user", "assistant")]


# --- parallel tool turns (delta 0.2.189 §2) ----------------------------------------------------------


def _assistant_message_id(entry: TranscriptEntry) -> str | None:
    """The API response id (``message.id``) of an assistant entry; None for anything else or a non-str id."""
    if entry.get("type") != "assistant":
        return None
    message = entry.get("message")
    if not isinstance(message, dict):
        return None
    message_id = message.get("id")
    return message_id if isinstance(message_id, str) and message_id else None


def _content_block_ids(entry: TranscriptEntry, block_type: str, id_field: str) -> list[str]:
    """The str ``id_field`` of every ``block_type`` dict block of ``message.content`` (a list), in order."""
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [
        block[id_field]
        for block in content
        if isinstance(block, dict) and block.get("type") == block_type and isinstance(block.get(id_field), str)
    ]


def _is_tool_result_entry(entry: TranscriptEntry) -> bool:
    """A user entry with a non-empty str ``parentUuid`` and at least one ``tool_result`` block in list content."""
    if entry.get("type") != "user":
        return False
    parent = entry.get("parentUuid")
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return (
        isinstance(parent, str)
        and bool(parent)
        and isinstance(content, list)
        and any(isinstance(block, dict) and block.get("type") == "tool_result" for block in content)
    )


def _same_writer(a: TranscriptEntry, b: TranscriptEntry) -> bool:
    """Both written by the main session, or both by the same agent: ``isSidechain`` (truthiness) and ``agentId``."""
    return bool(a.get("isSidechain")) == bool(b.get("isSidechain")) and a.get("agentId") == b.get("agentId")


def _timestamp_key(entry: TranscriptEntry) -> str:
    """The raw ``timestamp`` string (not parsed), ``""`` when it is missing or not a str, so those sort first."""
    timestamp = entry.get("timestamp")
    return timestamp if isinstance(timestamp, str) else ""


def recover_parallel_tool_results(
    by_uuid: dict[str, TranscriptEntry], chain: list[TranscriptEntry], seen: set[str]
) -> list[TranscriptEntry]:
    """``chain`` with the tool calls and results of its parallel tool turns put back (delta 0.2.189 §2.4).

    The CLI writes one assistant entry per content block, so N parallel ``tool_use`` blocks are N assistant
    entries sharing one ``message.id`` (a *response*), chained one after another, and each ``tool_result``
    hangs off its own call's entry: the transcript forks, and a ``parentUuid`` walk keeps one branch only.
    For every response on ``chain`` (in the order its first entry appears there) this puts back, right after
    the response's last entry on the chain (its *anchor*):

    - its *siblings*: the entries of the response (any assistant entry with that ``message.id``, from the whole
      index) that are not in ``seen``, sorted by timestamp string, ties in index order;
    - then its *results*, sorted by timestamp string: every result entry not in ``seen`` whose ``parentUuid``
      is one of the response's entries (even a second result for a call already answered on the chain), in
      index order under each entry in turn; then the *strays*, results found only through their
      ``sourceToolAssistantUUID`` or a ``tool_use_id`` of one of the response's calls (either link only when
      the linked entry has the same writer, i.e. ``isSidechain`` and ``agentId``), in file order, each taken
      only when it answers a call of this response that is not answered yet (on the original chain, by this
      response's results or by a stray taken before it); a ``tool_use`` id that two responses claim places no
      stray.

    Timestamps compare as raw strings; a missing or non-str one sorts first. Recovered uuids are added to
    ``seen`` (it is mutated), so no later response takes them again. Chain entries never move. Returns the
    same ``chain`` object when nothing is put back, else a new list. ``by_uuid`` maps uuid to entry in the order
    each uuid first appeared; ``seen`` holds the uuids on ``chain``. Malformed entries (no ``message``, a
    non-str id, odd content blocks) are ignored, never an error.
    """
    chain_assistants = [entry for entry in chain if entry.get("type") == "assistant"]
    anchors: dict[str, TranscriptEntry] = {}
    for entry in chain_assistants:
        message_id = _assistant_message_id(entry)
        if message_id is not None:
            anchors[message_id] = entry  # the last on-chain entry of each response
    if not anchors:
        return chain

    members: dict[str, list[TranscriptEntry]] = {}
    owners: dict[str, TranscriptEntry | None] = {}  # tool_use id -> the entry making the call; None: ambiguous
    results: list[TranscriptEntry] = []
    for entry in by_uuid.values():
        message_id = _assistant_message_id(entry)
        if message_id is None:
            if _is_tool_result_entry(entry):
                results.append(entry)
            continue
        members.setdefault(message_id, []).append(entry)
        for tool_use_id in _content_block_ids(entry, "tool_use", "id"):
            if tool_use_id not in owners:
                owners[tool_use_id] = entry
            else:
                owner = owners[tool_use_id]
                same_response = owner is not None and _assistant_message_id(owner) == message_id
                owners[tool_use_id] = entry if same_response else None  # ambiguous stays ambiguous

    results_under: dict[str, list[TranscriptEntry]] = {}
    for result in results:
        results_under.setdefault(result["parentUuid"], []).append(result)
        source_uuid = result.get("sourceToolAssistantUUID")
        source = by_uuid.get(source_uuid) if isinstance(source_uuid, str) else None
        if source is not None and _same_writer(source, result):
            results_under.setdefault(source["uuid"], []).append(result)
        for tool_use_id in _content_block_ids(result, "tool_result", "tool_use_id"):
            owner = owners.get(tool_use_id)
            if owner is not None and _same_writer(owner, result):
                results_under.setdefault(owner["uuid"], []).append(result)

    answered_on_chain: set[str] | None = None
    file_position: dict[str, int] | None = None
    blocks: dict[str, list[TranscriptEntry]] = {}  # anchor uuid -> what goes right after it
    handled: set[str] = set()
    for chain_entry in chain_assistants:
        message_id = _assistant_message_id(chain_entry)
        if message_id is None or message_id in handled:
            continue
        handled.add(message_id)
        group = members.get(message_id) or [chain_entry]
        member_uuids = {member["uuid"] for member in group}
        siblings = [member for member in group if member["uuid"] not in seen]
        orphaned: list[TranscriptEntry] = []
        strays: list[TranscriptEntry] = []
        collected: set[str] = set()
        for member in group:
            for result in results_under.get(member["uuid"], ()):
                if result["uuid"] in seen or result["uuid"] in collected:
                    continue
                collected.add(result["uuid"])
                (orphaned if result["parentUuid"] in member_uuids else strays).append(result)
        accepted: list[TranscriptEntry] = []
        if strays:
            if answered_on_chain is None or file_position is None:
                answered_on_chain = {
                    tool_use_id
                    for entry in chain
                    for tool_use_id in _content_block_ids(entry, "tool_result", "tool_use_id")
                }
                file_position = {uuid: index for index, uuid in enumerate(by_uuid)}
            answered = answered_on_chain | {
                tool_use_id
                for result in orphaned
                for tool_use_id in _content_block_ids(result, "tool_result", "tool_use_id")
            }
            positions = file_position
            for stray in sorted(strays, key=lambda result: positions[result["uuid"]]):
                answers = _content_block_ids(stray, "tool_result", "tool_use_id")
                if any(
                    tool_use_id not in answered
                    and (owner := owners.get(tool_use_id)) is not None
                    and owner["uuid"] in member_uuids
                    for tool_use_id in answers
                ):
                    answered.update(answers)
                    accepted.append(stray)
        if not siblings and not orphaned and not accepted:
            continue
        block = sorted(siblings, key=_timestamp_key) + sorted(orphaned + accepted, key=_timestamp_key)
        seen.update(entry["uuid"] for entry in block)
        blocks[anchors[message_id]["uuid"]] = block

    if not blocks:
        return chain
    rebuilt: list[TranscriptEntry] = []
    for entry in chain:
        rebuilt.append(entry)
        rebuilt.extend(blocks.get(entry["uuid"], ()))
    return rebuilt


def is_visible_message(entry: TranscriptEntry) -> bool:
    """Whether a chain entry is shown as a message: user/assistant, not meta, sidechain or team.

    Compact summaries (``isCompactSummary``) are shown: after compaction they are the only copy of what was
    said.
    """
    return entry.get("type") in ("user", "assistant") and _is_main_chain(entry)


def to_session_message(
    entry: TranscriptEntry, parent_tool_use_id: str | None = None, parent_agent_id: str | None = None
) -> SessionMessage:
    """The :class:`SessionMessage` for a user/assistant entry (missing ids become ``""``)."""
    return SessionMessage(
        type="user" if entry.get("type") == "user" else "assistant",
        uuid=entry.get("uuid", ""),
        session_id=entry.get("sessionId", ""),
        message=entry.get("message"),
        parent_tool_use_id=parent_tool_use_id,
        parent_agent_id=parent_agent_id,
    )


def paginate(items: Sequence[_T], limit: int | None, offset: int) -> list[_T]:
    """``items`` after skipping ``offset`` (when > 0), cut to ``limit`` (when not None and > 0).

    ``TypeError`` naming the value when ``offset`` is not an int or ``limit`` neither an int nor None.
    """
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) and not (name == "limit" and value is None):
            raise TypeError(f"{name} must be an int{' or None' if name == 'limit' else ''}, got {value!r}")
    page = list(items[offset:]) if offset > 0 else list(items)
    return page[:limit] if limit is not None and limit > 0 else page


def entries_to_session_messages(
    entries: Iterable[object], limit: int | None = None, offset: int = 0
) -> list[SessionMessage]:
    """The visible messages of a loaded main transcript, in conversation order, paged."""
    chain = build_conversation_chain(filter_transcript_entries(entries))
    return paginate([to_session_message(entry) for entry in chain if is_visible_message(entry)], limit, offset)
