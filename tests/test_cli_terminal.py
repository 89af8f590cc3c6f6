"""Transcript text never drives the terminal: control characters reach it only as visible escapes.

A transcript is untrusted input: a prompt, a tool result or a branch name can hold a window-title OSC, an OSC 8
hyperlink, erase-line and clear-screen CSI sequences, a one-byte C1 CSI (0x9b), BEL, DEL or a carriage return
that overwrites the line. Imported through the command line and shown by ``list``, ``show``, ``subagents``
(text and ``--json``) and ``mirror``, none of them may reach stdout or stderr raw; ``rename``, ``tag`` and
``fork --title`` refuse such values, naming the character and its position. Each command runs as a subprocess,
on asyncio and on trio.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_cli import ClaudeHome, TranscriptBuilder, error_line
from test_cli_servers import LIBRARIES, BackendCli, cli_environment

HOSTILE = (
    "\x1b]0;pwned-title\x07"  # window title (OSC ... BEL)
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink, ST-terminated
    "\x1b[2K"  # erase line
    "\x1b[2J\x1b[H"  # clear screen, cursor home
    "\x9b31m"  # C1 CSI: red
    "\x7f\x07\rFAKE"  # DEL, BEL, carriage return overwriting the line
)
SHOWN = r"\x1b]0;pwned-title\x07"
"""How the start of :data:`HOSTILE` reads once made visible."""

RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Any control character but tab and newline."""


def assert_no_raw_control(result: subprocess.CompletedProcess[str], *, allow_tab: bool = True) -> None:
    output = result.stdout + result.stderr
    found = RAW_CONTROL.search(output) or (None if allow_tab else re.search("\t", output))
    assert found is None, f"raw {found.group()!r} in output:\n{output!r}" if found else ""
    assert "Traceback" not in output


@pytest.fixture(params=LIBRARIES)
def cli(request: pytest.FixtureRequest, tmp_path: Path, claude_home: ClaudeHome) -> BackendCli:
    store = "sqlite:///" + str(tmp_path / "store" / "sessions.db")
    return BackendCli(cli_environment(tmp_path, claude_home), store, claude_home.workdir, request.param)


@pytest.fixture
def claude_home(tmp_path: Path) -> ClaudeHome:
    workdir = tmp_path / "app"
    workdir.mkdir()
    return ClaudeHome(tmp_path / "claude" / "projects", workdir)


def hostile_session(claude_home: ClaudeHome) -> TranscriptBuilder:
    """A session with :data:`HOSTILE` in every field the command line shows, and a subagent."""
    builder = TranscriptBuilder(
        "0f0e0d0c-0b0a-4909-8807-060504030201", branch=f"feat/{HOSTILE}", cwd=str(claude_home.workdir)
    )
    builder.user(f"Please {HOSTILE} help\twith tabs\nand lines")
    builder._add(
        "assistant",
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": f"Answer {HOSTILE}\r\nsecond line"},
                {"type": "tool_use", "id": "toolu_01", "name": f"Bash{HOSTILE}", "input": {"cmd": HOSTILE}},
                {"type": f"kind{HOSTILE}"},
            ],
        },
    )
    builder._add(
        "user",
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": HOSTILE}]},
    )
    builder.lines.append({"type": "custom-title", "customTitle": f"Title {HOSTILE}", "sessionId": builder.session_id})
    builder.lines.append({"type": "tag", "tag": f"tag{HOSTILE}", "sessionId": builder.session_id})
    claude_home.write(builder)
    claude_home.subagent(builder.session_id, "a1b2c3", f"Subagent {HOSTILE}", f"toolu_{HOSTILE}")
    return builder


def test_list_shows_hostile_titles_tags_branches_and_prompts_escaped(cli: BackendCli, claude_home: ClaudeHome) -> None:
    hostile_session(claude_home)
    cli.ok("import")

    result = cli("list")

    assert result.returncode == 0, result.stderr
    assert_no_raw_control(result, allow_tab=False)
    assert SHOWN in result.stdout
    assert len(result.stdout.strip().splitlines()) == 2  # header and one row: no newline got through


def test_show_escapes_every_field_and_keeps_line_breaks_and_tabs_of_messages(
    cli: BackendCli, claude_home: ClaudeHome
) -> None:
    session = hostile_session(claude_home)
    cli.ok("import")

    result = cli("show", session.session_id)

    assert result.returncode == 0, result.stderr
    assert_no_raw_control(result)
    lines = result.stdout.splitlines()
    assert any(line.startswith("Title:") and SHOWN in line for line in lines)
    assert any(line.startswith("Branch:") and SHOWN in line for line in lines)
    assert any("help\twith tabs" in line for line in lines)  # a tab in a message body stays a tab
    assert any(line.strip() == "and lines" for line in lines)  # a newline in a body starts a new line
    assert any(line.strip() == "second line" for line in lines)  # so does CRLF
    assert r"\rFAKE" in result.stdout  # a lone carriage return is shown, not obeyed
    assert f"Bash{SHOWN}" in result.stdout and f"[kind{SHOWN}" in result.stdout


def test_show_of_the_subagent_and_subagents_escape_too(cli: BackendCli, claude_home: ClaudeHome) -> None:
    session = hostile_session(claude_home)
    cli.ok("import")

    shown = cli("show", session.session_id, "--agent", "a1b2c3")
    listed = cli("subagents", session.session_id)

    for result in (shown, listed):
        assert result.returncode == 0, result.stderr
        assert_no_raw_control(result)
        assert r"toolu_\x1b]0;pwned-title" in result.stdout


def test_json_escapes_c1_and_del_and_keeps_the_text_exact(cli: BackendCli, claude_home: ClaudeHome) -> None:
    session = hostile_session(claude_home)
    cli.ok("import")

    listed = cli("--json", "list")
    shown = cli("--json", "show", session.session_id)

    for result in (listed, shown):
        assert result.returncode == 0, result.stderr
        assert_no_raw_control(result)
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    assert rows[0]["custom_title"] == f"Title {HOSTILE}"  # escaped for the terminal, exact for a script
    assert rows[0]["git_branch"] == f"feat/{HOSTILE}"
    assert json.loads(shown.stdout)["messages"][0]["message"]["content"] == session.lines[0]["message"]["content"]
    assert "\\u009b" in listed.stdout and "\\u007f" in listed.stdout


def test_error_lines_and_mirror_narration_escape_paths_and_values(
    cli: BackendCli, claude_home: ClaudeHome, tmp_path: Path
) -> None:
    session = hostile_session(claude_home)
    hostile_project = claude_home.projects / f"evil{HOSTILE}"
    hostile_project.mkdir(parents=True)
    (claude_home.project_dir / f"{session.session_id}.jsonl").rename(hostile_project / f"{session.session_id}.jsonl")

    mirrored = cli("mirror", "--once", "--from-start", "--interval", "0")
    missing = cli("import", str(tmp_path / f"missing{HOSTILE}"))
    unknown_agent = cli("show", session.session_id, "--agent", f"x{HOSTILE}", "--directory", "/nowhere")

    assert mirrored.returncode == 0, mirrored.stderr
    assert f"evil{SHOWN}" in mirrored.stdout
    for result in (mirrored, missing, unknown_agent):
        assert_no_raw_control(result)
    assert SHOWN in error_line(missing)
    assert error_line(unknown_agent)


@pytest.mark.parametrize(
    ("command", "value", "shown", "position"),
    [
        ("rename", "Release\x1b]0;pwned\x07", r"\x1b", 8),
        ("tag", "ok\x9b31m", r"\x9b", 3),
        ("tag", "a\x7fb", r"\x7f", 2),
        ("rename", "two\nlines", r"\n", 4),
        ("fork", "bell\x07", r"\x07", 5),
    ],
)
def test_rename_tag_and_fork_refuse_control_characters_naming_them(
    cli: BackendCli, claude_home: ClaudeHome, command: str, value: str, shown: str, position: int
) -> None:
    session = claude_home.session("Plain session")
    cli.ok("import")
    arguments = (
        ["fork", session.session_id, "--title", value] if command == "fork" else [command, session.session_id, value]
    )

    result = cli(*arguments)

    assert result.returncode == 2
    line = error_line(result)
    assert_no_raw_control(result)
    assert shown in line and f"position {position}" in line, line
    listed = cli.json("list")
    assert [(row["custom_title"], row["tag"]) for row in listed] == [(None, None)]  # nothing stored


def test_surrounding_whitespace_the_store_strips_is_not_refused(cli: BackendCli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Plain session")
    cli.ok("import")

    cli.ok("rename", session.session_id, "Release notes\n")

    assert cli.json("list")[0]["custom_title"] == "Release notes"
