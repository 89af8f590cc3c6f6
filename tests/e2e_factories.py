"""A realistic Claude Code session written to disk, and the ``transcript_mirror`` frames the CLI emits for it.

Used by ``tests/test_end_to_end.py``. :func:`write_session` lays a session out the way the CLI does under
``<projects_dir>/<project_key>/``: the main transcript (a user/assistant chain with Read and Task tool calls, a
sidechain line, a ``custom-title`` and a ``summary`` line), two subagents under ``<session>/subagents/`` with
their ``.meta.json`` sidecars, and one nested workflow subagent without a sidecar. Every id is fresh, so
sessions of different tests never collide in a shared database.

:func:`mirror_frames` reads the files back from disk and cuts them into frames of 1-3 lines, interleaved across
files, as the CLI's stdout would carry them; each sidecar travels as an ``agent_metadata`` entry on its
subagent's transcript path, the way the ``session-store mirror`` command sends it (reference §3.8, §11).
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from transcript_factories import iso

from session_store.keys import project_key_for_directory
from session_store.metadata import AGENT_METADATA_TYPE, agent_metadata_sidecar_path
from session_store.types import SessionStoreEntry

Json = dict[str, Any]
Frame = tuple[str, list[SessionStoreEntry]]

CLI_VERSION = "2.0.14"
MODEL = "claude-sonnet-4-5-20250929"


def new_agent_id() -> str:
    """An agent id shaped like the CLI's: 17 hex digits."""
    return uuid.uuid4().hex[:17]


def tool_use_id() -> str:
    return "toolu_01" + uuid.uuid4().hex[:22]


@dataclass
class Chain:
    """One transcript being written: each entry's ``parentUuid`` is the previous chained entry's ``uuid``."""

    session_id: str
    cwd: str
    is_sidechain: bool = False
    agent_id: str | None = None
    lines: list[Json] = field(default_factory=list)
    last_uuid: str | None = None
    clock: float = 0.0

    def add(self, kind: str, message: Json, *, parent: str | None = None, **extra: Any) -> str:
        self.clock += 1.5
        entry: Json = {
            "parentUuid": parent if parent is not None else self.last_uuid,
            "isSidechain": self.is_sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": CLI_VERSION,
            "gitBranch": "feature/units",
        }
        if self.agent_id is not None:
            entry["agentId"] = self.agent_id
        entry |= {"type": kind, "message": message, **extra, "uuid": str(uuid.uuid4()), "timestamp": iso(self.clock)}
        self.lines.append(entry)
        self.last_uuid = entry["uuid"]
        return str(entry["uuid"])

    def user(self, text: str) -> str:
        return self.add("user", {"role": "user", "content": text})

    def assistant(self, *blocks: Json) -> str:
        stop_reason = "tool_use" if any(block["type"] == "tool_use" for block in blocks) else "end_turn"
        message = {
            "id": "msg_01" + uuid.uuid4().hex[:22],
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": list(blocks),
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 6, "cache_read_input_tokens": 14200, "output_tokens": 120},
        }
        return self.add("assistant", message, requestId="req_01" + uuid.uuid4().hex[:22])

    def tool_result(self, tool_id: str, output: str, result: Json) -> str:
        content = [{"tool_use_id": tool_id, "type": "tool_result", "content": output}]
        return self.add("user", {"role": "user", "content": content}, toolUseResult=result)


def text(value: str) -> Json:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, arguments: Json) -> Json:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


@dataclass
class SessionOnDisk:
    """A session the CLI wrote under ``projects_dir / project_key``; paths in ``files`` are relative to it."""

    cwd: Path
    projects_dir: Path
    project_key: str
    session_id: str
    files: list[str]

    @property
    def project_dir(self) -> Path:
        return self.projects_dir / self.project_key

    def transcripts(self) -> list[Path]:
        return [self.project_dir / name for name in self.files if name.endswith(".jsonl")]


def subagent(session_id: str, cwd: str, prompt: str, tool: str, answer: str) -> Chain:
    agent = Chain(session_id, cwd, is_sidechain=True, agent_id=new_agent_id())
    agent.user(prompt)
    call = tool_use_id()
    agent.assistant(tool_use(call, tool, {"pattern": "def .*(celsius|fahrenheit|mph)", "output_mode": "content"}))
    agent.tool_result(call, "api.py:12:def kmh_to_mph(v)", {"numFiles": 1, "durationMs": 41.5})
    agent.assistant(text(answer))
    return agent


def write_session(root: Path) -> SessionOnDisk:
    """Write a fresh session under ``root / "claude" / "projects"`` for the working directory ``root / "weather-app"``."""
    cwd = root / "weather-app"
    cwd.mkdir(parents=True)
    cwd = cwd.resolve()
    project_key = project_key_for_directory(cwd)
    projects_dir = root / "claude" / "projects"
    session_id = str(uuid.uuid4())

    main = Chain(session_id, str(cwd))
    main.user("Add a --units flag to weather.py (metric by default) \u2014 °C/°F, km/h/mph \U0001f321\ufe0f")
    read_call = tool_use_id()
    main.assistant(text("Reading weather.py first."), tool_use(read_call, "Read", {"file_path": f"{cwd}/weather.py"}))
    main.tool_result(
        read_call,
        "     1\u2192import argparse\n     2\u2192print(f'{t:.1f} °C')\u2028",
        {"type": "text", "file": {"filePath": f"{cwd}/weather.py", "numLines": 2, "totalLines": 2}},
    )
    explorers: list[tuple[Chain, Json]] = []
    for number, (description, tool) in enumerate((("Find conversion helpers", "Grep"), ("Find the CLI tests", "Glob"))):
        call = tool_use_id()
        asked = main.assistant(
            text(f"Delegating: {description.lower()}."),
            tool_use(call, "Task", {"description": description, "prompt": description, "subagent_type": "Explore"}),
        )
        agent = subagent(session_id, str(cwd), description, tool, f"Done: {description}.")
        metadata: Json = {"agentType": "Explore", "toolUseId": call, "description": description}
        if number == 1:
            metadata["parentAgentId"] = explorers[0][0].agent_id
        explorers.append((agent, metadata))
        if number == 0:  # an old-style sidechain line in the main transcript, off the main chain
            main.add("user", {"role": "user", "content": "warmup"}, parent=asked, isSidechain=True)
            main.last_uuid = asked
        main.tool_result(call, f"Done: {description}.", {"status": "completed", "totalTokens": 5120, "ratio": 0.25})
    main.assistant(text("Added `--units {metric,imperial}`; tests pass. Nothing else changed."))
    main.lines.append({"type": "custom-title", "customTitle": "units flag \u2603", "sessionId": session_id})
    main.lines.append({"type": "summary", "summary": "Add --units flag", "leafUuid": main.last_uuid})
    workflow = subagent(session_id, str(cwd), "Run the test suite", "Bash", "All 14 tests passed.")

    files: dict[str, list[Json] | Json] = {f"{session_id}.jsonl": main.lines}
    for agent, metadata in explorers:
        files[f"{session_id}/subagents/agent-{agent.agent_id}.jsonl"] = agent.lines
        files[f"{session_id}/subagents/agent-{agent.agent_id}.meta.json"] = metadata
    files[f"{session_id}/subagents/workflows/run-1/agent-{workflow.agent_id}.jsonl"] = workflow.lines

    project_dir = projects_dir / project_key
    for name, content in files.items():
        path = project_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            # As the CLI writes: compact, non-ASCII kept, one object per line.
            path.write_text(
                "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in content),
                encoding="utf-8",
            )
        else:
            path.write_text(json.dumps(content, separators=(",", ":")), encoding="utf-8")
    return SessionOnDisk(cwd, projects_dir, project_key, session_id, sorted(files))


def read_jsonl(path: Path) -> list[Any]:
    """Each line of a JSONL file parsed; split on ``\\n`` only (a raw U+2028 inside a line is not a break)."""
    text_ = path.read_text(encoding="utf-8")
    assert text_.endswith("\n"), f"{path} does not end with a newline"
    return [json.loads(line) for line in text_[:-1].split("\n")]


def read_tree(project_dir: Path) -> dict[str, Any]:
    """Every file under ``project_dir``, parsed: ``.jsonl`` as a list of lines, ``.meta.json`` as one object."""
    tree: dict[str, Any] = {}
    for path in sorted(project_dir.rglob("*")):
        if path.is_dir():
            continue
        name = path.relative_to(project_dir).as_posix()
        tree[name] = read_jsonl(path) if name.endswith(".jsonl") else json.loads(path.read_text(encoding="utf-8"))
    return tree


def mirror_frames(session: SessionOnDisk, chunk_sizes: tuple[int, ...] = (1, 3, 2)) -> list[Frame]:
    """The session's lines as ``transcript_mirror`` frames: chunks of 1-3 lines, round-robin across the files.

    A subagent's sidecar follows its first chunk as an ``agent_metadata`` entry (``type`` set last, as import
    and the ``mirror`` command do).
    """
    queues: list[list[Frame]] = []
    for path in session.transcripts():
        lines = cast("list[SessionStoreEntry]", read_jsonl(path))
        sizes = itertools.cycle(chunk_sizes)
        chunks: list[Frame] = []
        start = 0
        while start < len(lines):
            size = next(sizes)
            chunks.append((str(path), lines[start : start + size]))
            start += size
        sidecar = agent_metadata_sidecar_path(path)
        if sidecar.exists():
            metadata = json.loads(sidecar.read_text(encoding="utf-8"))
            chunks.insert(1, (str(path), [cast(SessionStoreEntry, {**metadata, "type": AGENT_METADATA_TYPE})]))
        queues.append(chunks)
    frames: list[Frame] = []
    for round_ in itertools.zip_longest(*queues):
        frames.extend(frame for frame in round_ if frame is not None)
    return frames
