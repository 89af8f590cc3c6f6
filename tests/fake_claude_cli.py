"""A stand-in ``claude`` executable for driving the Claude Agent SDK's real ``query()`` and ``ClaudeSDKClient``.

Run by the SDK as its CLI (``ClaudeAgentOptions(cli_path=...)`` pointing at a wrapper that execs this file with
the test's interpreter); used by ``tests/test_sdk_e2e.py``. It speaks the SDK's stream-json protocol on
stdin/stdout:

1. answers the ``initialize`` control request (and acknowledges any other control request);
2. sends a ``system``/``init`` message with the session id;
3. for each user message on stdin, one turn: it writes the turn's transcript lines under
   ``$CLAUDE_CONFIG_DIR/projects/<project>/`` as the CLI does (the main transcript ``<session>.jsonl`` and one
   subagent ``<session>/subagents/agent-<id>.jsonl``) and, with ``--session-mirror``, sends each line as a
   ``transcript_mirror`` frame (``{"type": "transcript_mirror", "filePath": ..., "entries": [...]}``), then an
   ``assistant`` message and a ``result`` message;
4. ends when stdin closes.

With ``--resume <id>`` (or ``--resume=<id>``) it first reads the transcript materialized in its
``CLAUDE_CONFIG_DIR`` (``projects/*/<id>.jsonl`` and the subagents beside it), continues that session (same id,
the next line's ``parentUuid`` is the last line's ``uuid``) and says in its first assistant message how many
lines it found: ``resumed <main> main lines, <subagent> subagent lines``. Without a transcript to resume it sends
an error result and exits with status 1, as the CLI does for an unknown session.

Environment (the test passes it through ``options.env``):

- ``FAKE_CLAUDE_LINES``: transcript lines per turn on the main transcript (default 3); more than the SDK's
  batch thresholds (500 entries) makes the batched mode flush in the background mid-stream;
- ``FAKE_CLAUDE_RECORD``: a file to which every mirrored line is appended as
  ``{"session_id", "subpath", "entry"}`` (``subpath`` None for the main transcript), in the order sent;
- ``FAKE_CLAUDE_PAUSE_EVERY``: pause 0.1 s after every that many lines (default: never), as the CLI waits for
  the model between lines; the SDK's read loop goes idle and background flushes run;
- ``FAKE_CLAUDE_PAD``: characters of filler text per line (default 0), to cross the byte threshold.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

CLI_VERSION = "2.1.300"
MODEL = "claude-fake-1"


def send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def project_dir_name(cwd: str) -> str:
    """The CLI's project directory name for a short ASCII path: every other character becomes ``-``."""
    return re.sub(r"[^a-zA-Z0-9]", "-", cwd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def option_value(argv: list[str], flag: str) -> str | None:
    for index, argument in enumerate(argv):
        if argument == flag and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith(flag + "="):
            return argument[len(flag) + 1 :]
    return None


class Session:
    """One session's transcript files and the mirror frames for them."""

    def __init__(self, config_dir: Path, cwd: str, session_id: str, mirror: bool, out: TextIO) -> None:
        self.session_id = session_id
        self.mirror = mirror
        self.out = out
        self.project_dir = config_dir / "projects" / project_dir_name(cwd)
        self.cwd = cwd
        self.last_uuid: str | None = None
        self.agent_id = uuid.uuid4().hex[:17]
        self.agent_last_uuid: str | None = None
        self.record = os.environ.get("FAKE_CLAUDE_RECORD")
        self.pad = "x" * int(os.environ.get("FAKE_CLAUDE_PAD", "0"))

    @property
    def main_path(self) -> Path:
        return self.project_dir / f"{self.session_id}.jsonl"

    def subagent_path(self, agent_id: str) -> Path:
        return self.project_dir / self.session_id / "subagents" / f"agent-{agent_id}.jsonl"

    def adopt(self, main: list[dict[str, Any]]) -> None:
        """Continue a resumed transcript: the next line hangs off its last line."""
        self.last_uuid = main[-1]["uuid"] if main else None

    def write(self, path: Path, subpath: str | None, entry: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        if self.mirror:
            send(self.out, {"type": "transcript_mirror", "filePath": str(path), "entries": [entry]})
        if self.record:
            with open(self.record, "a", encoding="utf-8") as file:
                line = {"session_id": self.session_id, "subpath": subpath, "entry": entry}
                file.write(json.dumps(line) + "\n")

    def line(self, kind: str, text: str, parent: str | None, **extra: Any) -> dict[str, Any]:
        role = "user" if kind == "user" else "assistant"
        message: dict[str, Any] = {"role": role, "content": [{"type": "text", "text": text + self.pad}]}
        if role == "assistant":
            message["model"] = MODEL
        return {
            "type": kind,
            "uuid": str(uuid.uuid4()),
            "parentUuid": parent,
            "sessionId": self.session_id,
            "timestamp": now(),
            "cwd": self.cwd,
            "version": CLI_VERSION,
            "isSidechain": False,
            "message": message,
            **extra,
        }

    def main_line(self, kind: str, text: str) -> dict[str, Any]:
        entry = self.line(kind, text, self.last_uuid)
        self.write(self.main_path, None, entry)
        self.last_uuid = entry["uuid"]
        return entry

    def subagent_line(self, kind: str, text: str) -> dict[str, Any]:
        entry = self.line(kind, text, self.agent_last_uuid, isSidechain=True, agentId=self.agent_id)
        self.write(self.subagent_path(self.agent_id), f"subagents/agent-{self.agent_id}", entry)
        self.agent_last_uuid = entry["uuid"]
        return entry


def turn(session: Session, prompt: str, number: int, note: str) -> None:
    """One turn: transcript lines (main and subagent, interleaved), an assistant message, a result."""
    lines = int(os.environ.get("FAKE_CLAUDE_LINES", "3"))
    session.main_line("user", prompt)
    pause = float(os.environ.get("FAKE_CLAUDE_PAUSE_EVERY", "0") or 0)
    for index in range(max(lines - 2, 0)):
        if pause and index and index % int(pause) == 0:
            time.sleep(0.1)  # as the real CLI waits for the model: the SDK's read loop goes idle
        if index % 2 == 0:
            session.subagent_line("user" if index == 0 else "assistant", f"subagent step {index} of turn {number}")
        else:
            session.main_line("assistant", f"thinking {index} of turn {number}")
    answer = f"turn {number}: {note}" if note else f"turn {number}"
    entry = session.main_line("assistant", answer)
    send(
        session.out,
        {
            "type": "assistant",
            "uuid": entry["uuid"],
            "session_id": session.session_id,
            "parent_tool_use_id": None,
            "message": {
                "id": f"msg_{uuid.uuid4().hex[:12]}",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        },
    )
    send(
        session.out,
        {
            "type": "result",
            "subtype": "success",
            "uuid": str(uuid.uuid4()),
            "session_id": session.session_id,
            "duration_ms": 1,
            "duration_api_ms": 1,
            "is_error": False,
            "num_turns": number,
            "result": answer,
            "total_cost_usd": 0.0,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
    )


def fail(out: TextIO, session_id: str, message: str) -> int:
    send(
        out,
        {
            "type": "result",
            "subtype": "error_during_execution",
            "uuid": str(uuid.uuid4()),
            "session_id": session_id,
            "duration_ms": 0,
            "duration_api_ms": 0,
            "is_error": True,
            "num_turns": 0,
            "result": message,
            "errors": [message],
        },
    )
    print(f"fake claude: {message}", file=sys.stderr)
    return 1


def prompt_text(message: dict[str, Any]) -> str:
    content = message.get("message", {}).get("content", "")
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content if isinstance(block, dict))


def main(argv: list[str]) -> int:
    out, source = sys.stdout, sys.stdin
    if "-v" in argv or "--version" in argv:
        print(f"{CLI_VERSION} (Claude Code)")
        return 0
    config_dir = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    resume = option_value(argv, "--resume")
    session_id = resume or option_value(argv, "--session-id") or str(uuid.uuid4())
    session = Session(config_dir, os.getcwd(), session_id, "--session-mirror" in argv, out)
    note = ""
    if resume is not None:
        found = glob.glob(str(config_dir / "projects" / "*" / f"{glob.escape(resume)}.jsonl"))
        if not found:
            return fail(out, resume, f"No conversation found with session ID: {resume} in {config_dir}")
        main_path = Path(found[0])
        session.project_dir = main_path.parent
        main_lines = read_jsonl(main_path)
        subagent_lines = sum(
            len(read_jsonl(Path(path)))
            for path in glob.glob(str(main_path.parent / resume / "subagents" / "agent-*.jsonl"))
        )
        session.adopt(main_lines)
        note = f"resumed {len(main_lines)} main lines, {subagent_lines} subagent lines"
    turns = 0
    for raw in source:
        if not raw.strip():
            continue
        message = json.loads(raw)
        if message.get("type") == "control_request":
            request = message.get("request", {})
            response: dict[str, Any] = {}
            if request.get("subtype") == "initialize":
                response = {"commands": [], "output_style": "default", "models": []}
            send(
                out,
                {
                    "type": "control_response",
                    "response": {"subtype": "success", "request_id": message["request_id"], "response": response},
                },
            )
            if request.get("subtype") == "initialize":
                send(
                    out,
                    {
                        "type": "system",
                        "subtype": "init",
                        "session_id": session_id,
                        "uuid": str(uuid.uuid4()),
                        "cwd": os.getcwd(),
                        "model": MODEL,
                        "tools": [],
                        "claude_code_version": CLI_VERSION,
                    },
                )
            continue
        if message.get("type") == "user":
            turns += 1
            turn(session, prompt_text(message), turns, note)
            note = ""
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
