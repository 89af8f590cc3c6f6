"""Generate the sample Claude Code transcripts shipped in ``session_store/samples/`` (used by ``session-store demo``).

The output is committed; run this script again after changing it, and ``--check`` (or tests/test_cli.py) fails
when the committed files drift from what it generates. Everything is deterministic: ids are ``uuid5`` of a fixed
namespace and a label, clocks start at fixed instants, and JSON is written as the Claude CLI writes it: compact, non-ASCII
kept, keys in the order the code builds them, one object per line.

Layout (reference §3.8, §11): ``projects/<project_key>/<session_id>.jsonl`` for a main transcript, and
``projects/<project_key>/<session_id>/subagents/agent-<id>.jsonl`` with its ``agent-<id>.meta.json`` sidecar.

The project holds three sessions of a small "weather-app" repository:

- ``units-flag``: a user/assistant chain with Read, Task and Edit tool calls; the Task call spawned a subagent
  (its own transcript, ``isSidechain`` entries, plus the metadata sidecar); ends with a ``summary`` line.
- ``flaky-test``: a Bash tool call, an answer that was regenerated (two assistant children of one parent: the
  chain follows the newer one), then a ``custom-title`` and a ``tag`` line as ``/rename`` and ``/tag`` write them.
- ``legacy-sidechain``: a transcript whose entries are all ``isSidechain`` (how older CLIs stored subagents);
  listings skip it.

Usage: ``python scripts/make_samples.py [--out DIR] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "session_store" / "samples"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/session-store-compat/samples")
PROJECT_CWD = "/home/demo/weather-app"
PROJECT_KEY = "-home-demo-weather-app"  # what the Claude CLI names the folder for PROJECT_CWD
CLI_VERSION = "2.0.14"
MODEL = "claude-sonnet-4-5-20250929"
README = """\
# Sample transcripts (generated)

Claude Code transcripts of a made-up `weather-app` project, laid out as under `~/.claude/projects/`.
`session-store demo` imports them into a temporary store. Do not edit by hand: change and rerun
`scripts/make_samples.py`.
"""

Json = dict[str, Any]


def stable_uuid(label: str) -> str:
    return str(uuid.uuid5(NAMESPACE, label))


def stable_token(prefix: str, label: str) -> str:
    """An id shaped like the API's (``toolu_01...``, ``msg_01...``, ``req_01...``)."""
    return prefix + "01" + uuid.uuid5(NAMESPACE, label).hex[:22]


def iso_millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Transcript:
    """Builds one JSONL transcript: each entry is chained to the previous one unless a parent is given."""

    label: str
    session_id: str
    git_branch: str
    clock: datetime
    is_sidechain: bool = False
    agent_id: str | None = None
    lines: list[Json] = field(default_factory=list)
    last_uuid: str | None = None

    def _tick(self, seconds: float) -> str:
        self.clock += timedelta(seconds=seconds)
        return iso_millis(self.clock)

    def _entry(self, kind: str, message: Json, parent: str | None, seconds: float, extra: Json) -> str:
        entry_uuid = stable_uuid(f"{self.label}/entry/{len(self.lines)}")
        entry: Json = {
            "parentUuid": parent,
            "isSidechain": self.is_sidechain,
            "userType": "external",
            "cwd": PROJECT_CWD,
            "sessionId": self.session_id,
            "version": CLI_VERSION,
            "gitBranch": self.git_branch,
        }
        if self.agent_id is not None:
            entry["agentId"] = self.agent_id
        entry |= {"type": kind, "message": message, **extra, "uuid": entry_uuid, "timestamp": self._tick(seconds)}
        self.lines.append(entry)
        self.last_uuid = entry_uuid
        return entry_uuid

    def user(self, text: str, *, seconds: float = 20.0) -> str:
        return self._entry("user", {"role": "user", "content": text}, self.last_uuid, seconds, {})

    def tool_result(self, tool_use_id: str, output: str, result: Json, *, seconds: float = 2.0) -> str:
        content = [{"tool_use_id": tool_use_id, "type": "tool_result", "content": output}]
        message = {"role": "user", "content": content}
        return self._entry("user", message, self.last_uuid, seconds, {"toolUseResult": result})

    def assistant(
        self, *blocks: Json, parent: str | None = None, seconds: float = 4.0, output_tokens: int = 120
    ) -> str:
        index = len(self.lines)
        stop_reason = "tool_use" if any(block["type"] == "tool_use" for block in blocks) else "end_turn"
        message = {
            "id": stable_token("msg_", f"{self.label}/msg/{index}"),
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": list(blocks),
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 6,
                "cache_creation_input_tokens": 1800 + 37 * index,
                "cache_read_input_tokens": 14200 + 412 * index,
                "output_tokens": output_tokens,
            },
        }
        extra = {"requestId": stable_token("req_", f"{self.label}/req/{index}")}
        return self._entry("assistant", message, parent or self.last_uuid, seconds, extra)

    def line(self, entry: Json) -> None:
        """A metadata line without uuid or chain position (summary, custom-title, tag)."""
        self.lines.append(entry)

    def tool_use_id(self, name: str) -> str:
        return stable_token("toolu_", f"{self.label}/tool/{name}/{len(self.lines)}")


def text(value: str) -> Json:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, arguments: Json) -> Json:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


WEATHER_PY = """\
import argparse

from api import fetch_current


def main() -> None:
    parser = argparse.ArgumentParser(description="Current weather for a city")
    parser.add_argument("city")
    args = parser.parse_args()
    reading = fetch_current(args.city)
    print(f"{args.city}: {reading.temperature_c:.1f} °C, wind {reading.wind_kmh:.0f} km/h")
"""


def units_flag_session(session_id: str, agent_id: str) -> tuple[Transcript, Transcript, Json]:
    """The main transcript, the subagent transcript and the subagent's metadata sidecar."""
    start = datetime(2025, 6, 2, 9, 14, 3, 120000, tzinfo=UTC)
    main = Transcript("units-flag", session_id, "feature/units", start)
    main.user("Add a --units flag to weather.py so I can pick metric or imperial output. Keep metric the default.")
    read_id = main.tool_use_id("Read")
    main.assistant(
        text("I'll start by reading how weather.py parses its arguments."),
        tool_use(read_id, "Read", {"file_path": f"{PROJECT_CWD}/weather.py"}),
    )
    numbered = "\n".join(f"{n:>6}\u2192{row}" for n, row in enumerate(WEATHER_PY.splitlines(), 1))
    main.tool_result(
        read_id,
        numbered,
        {"type": "text", "file": {"filePath": f"{PROJECT_CWD}/weather.py", "numLines": 11, "totalLines": 11}},
    )
    task_id = main.tool_use_id("Task")
    task_prompt = (
        "Search the weather-app repository for existing temperature or wind-speed conversion helpers "
        "(Celsius/Fahrenheit, km/h/mph). Report file paths and function names only."
    )
    main.assistant(
        text("Before adding conversions, let me check whether the repo already has some."),
        tool_use(
            task_id,
            "Task",
            {"description": "Find unit conversion helpers", "prompt": task_prompt, "subagent_type": "Explore"},
        ),
    )

    agent = Transcript(
        "units-flag/agent",
        session_id,
        "feature/units",
        main.clock + timedelta(seconds=1),
        is_sidechain=True,
        agent_id=agent_id,
    )
    agent.user(task_prompt, seconds=0.5)
    grep_id = agent.tool_use_id("Grep")
    agent.assistant(
        tool_use(grep_id, "Grep", {"pattern": "def .*(_to_|celsius|fahrenheit|mph)", "output_mode": "content"})
    )
    agent.tool_result(
        grep_id,
        "convert.py:3:def c_to_f(celsius: float) -> float:\nconvert.py:7:def kmh_to_mph(kmh: float) -> float:",
        {"mode": "content", "numFiles": 1, "numLines": 2},
    )
    finding = "Found convert.py with c_to_f(celsius) and kmh_to_mph(kmh); nothing else converts units."
    agent.assistant(text(finding), output_tokens=38)
    sidecar = {"agentType": "Explore", "toolUseId": task_id, "description": "Find unit conversion helpers"}

    main.clock = agent.clock
    main.tool_result(
        task_id, finding, {"status": "completed", "agentId": agent_id, "totalToolUseCount": 1}, seconds=1.0
    )
    edit_id = main.tool_use_id("Edit")
    main.assistant(
        text("convert.py already has what we need. Adding the flag:"),
        tool_use(
            edit_id,
            "Edit",
            {
                "file_path": f"{PROJECT_CWD}/weather.py",
                "old_string": '    parser.add_argument("city")\n',
                "new_string": (
                    '    parser.add_argument("city")\n'
                    '    parser.add_argument("--units", choices=["metric", "imperial"], default="metric")\n'
                ),
            },
        ),
        seconds=6.0,
    )
    main.tool_result(
        edit_id,
        f"The file {PROJECT_CWD}/weather.py has been updated.",
        {"filePath": f"{PROJECT_CWD}/weather.py", "userModified": False},
    )
    last = main.assistant(
        text(
            "Done. `python weather.py Oslo --units imperial` now prints °F and mph via `convert.c_to_f` and "
            "`convert.kmh_to_mph`; without the flag the output is unchanged (°C, km/h)."
        ),
        output_tokens=64,
    )
    main.line({"type": "summary", "summary": "Add --units flag to weather CLI", "leafUuid": last})
    return main, agent, sidecar


def flaky_test_session(session_id: str) -> Transcript:
    """A Bash call, a regenerated answer (a fork in the chain), then a rename and a tag."""
    start = datetime(2025, 6, 3, 14, 2, 45, 500000, tzinfo=UTC)
    main = Transcript("flaky-test", session_id, "fix/flaky-forecast", start)
    main.user("test_forecast fails about one run in five. Can you find out why?")
    bash_id = main.tool_use_id("Bash")
    main.assistant(
        tool_use(
            bash_id,
            "Bash",
            {"command": "pytest tests/test_forecast.py -q --count 10", "description": "Run the test 10 times"},
        )
    )
    results = main.tool_result(
        bash_id,
        "..F.....F.\nFAILED tests/test_forecast.py::test_week - AssertionError: expected 7 days, got 6\n"
        "2 failed, 8 passed in 3.41s",
        {"stdout": "2 failed, 8 passed in 3.41s", "stderr": "", "interrupted": False},
        seconds=9.0,
    )
    main.assistant(
        text("It looks like a network timeout in the API stub; retrying the request should fix it."),
        output_tokens=30,
    )
    # The user pressed "retry": a second answer with the same parent. The chain follows this newer one.
    main.assistant(
        text(
            "The failure is a date boundary: the fixture builds seven days from `date.today()` (local time) "
            "while the API stub counts days in UTC, so between 00:00 and 02:00 local they disagree by one. "
            "Freezing the clock in the fixture makes the test deterministic."
        ),
        parent=results,
        seconds=40.0,
        output_tokens=95,
    )
    main.user("Yes, freeze the clock in the fixture.")
    edit_id = main.tool_use_id("Edit")
    main.assistant(
        tool_use(
            edit_id,
            "Edit",
            {
                "file_path": f"{PROJECT_CWD}/tests/conftest.py",
                "old_string": "    today = date.today()\n",
                "new_string": '    today = date.fromisoformat("2025-06-03")\n',
            },
        )
    )
    main.tool_result(
        edit_id,
        f"The file {PROJECT_CWD}/tests/conftest.py has been updated.",
        {"filePath": f"{PROJECT_CWD}/tests/conftest.py", "userModified": False},
    )
    main.assistant(text("Fixed: the fixture now uses a fixed date, and 50 consecutive runs pass."))
    main.line({"type": "custom-title", "customTitle": "Fix flaky forecast test", "sessionId": session_id})
    main.line({"type": "tag", "tag": "bugfix", "sessionId": session_id})
    return main


def legacy_sidechain_session(session_id: str) -> Transcript:
    """A whole transcript of sidechain entries, as older CLIs stored subagent runs."""
    start = datetime(2025, 6, 2, 9, 30, 11, 0, tzinfo=UTC)
    side = Transcript("legacy-sidechain", session_id, "feature/units", start, is_sidechain=True)
    side.user("List the files under tests/ and say which ones touch the network.", seconds=0.0)
    side.assistant(text("tests/test_api.py calls the live API; test_forecast.py and test_cli.py use stubs."))
    return side


def render_jsonl(entries: list[Json]) -> str:
    return "".join(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n" for entry in entries)


def sample_files() -> dict[str, str]:
    """Relative path -> text of every generated file."""
    units_id = stable_uuid("session/units-flag")
    agent_id = uuid.uuid5(NAMESPACE, "agent/units-flag").hex[:17]
    flaky_id = stable_uuid("session/flaky-test")
    legacy_id = stable_uuid("session/legacy-sidechain")
    main, agent, sidecar = units_flag_session(units_id, agent_id)
    project = f"projects/{PROJECT_KEY}"
    agent_stem = f"{project}/{units_id}/subagents/agent-{agent_id}"
    return {
        "README.md": README,
        f"{project}/{units_id}.jsonl": render_jsonl(main.lines),
        f"{agent_stem}.jsonl": render_jsonl(agent.lines),
        f"{agent_stem}.meta.json": json.dumps(sidecar, separators=(",", ":")) + "\n",
        f"{project}/{flaky_id}.jsonl": render_jsonl(flaky_test_session(flaky_id).lines),
        f"{project}/{legacy_id}.jsonl": render_jsonl(legacy_sidechain_session(legacy_id).lines),
    }


def write_samples(out: Path) -> None:
    shutil.rmtree(out / "projects", ignore_errors=True)
    for relative, content in sample_files().items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8", newline="\n")


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``root`` (caches left out)."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def differences(expected: Path, actual: Path) -> list[str]:
    """Relative paths that are missing, unexpected or different in ``actual``."""
    want, have = tree(expected), tree(actual)
    return (
        [f"missing: {name}" for name in sorted(want.keys() - have.keys())]
        + [f"unexpected: {name}" for name in sorted(have.keys() - want.keys())]
        + [f"differs: {name}" for name in sorted(want.keys() & have.keys()) if want[name] != have[name]]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare --out with a fresh generation; write nothing")
    args = parser.parse_args(argv)
    if not args.check:
        write_samples(args.out)
        print(f"wrote {len(sample_files())} files under {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as fresh:
        write_samples(Path(fresh))
        drift = differences(Path(fresh), args.out)
    for line in drift:
        print(line, file=sys.stderr)
    if drift:
        print(f"{args.out} is out of date: run python scripts/make_samples.py", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
