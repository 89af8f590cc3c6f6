"""The ``session-store`` command line, driven as a user would: ``python -m session_store ...`` in a subprocess.

Each test gets its own HOME and CLAUDE_CONFIG_DIR under tmp_path, a transcript factory that writes Claude Code
projects folders, and a SQLite store file (or ``memory://``). A few sync tests call pieces of
``session_store.cli`` and ``session_store.cli.output`` in-process (the backend runner, the progress bar).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import processes
import pytest

from session_store import cli
from session_store.cli import dispatch
from session_store.cli.output import ProgressBar
from session_store.keys import project_key_for_directory

REPO = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT_SECONDS = 120


# --- factories ----------------------------------------------------------------------------------------------


@dataclass
class TranscriptBuilder:
    """Lines of one transcript: each message is chained to the previous one, timestamps one minute apart."""

    session_id: str
    branch: str = "main"
    cwd: str = "/work/app"
    lines: list[dict[str, Any]] = field(default_factory=list)
    last_uuid: str | None = None

    def _add(self, kind: str, message: dict[str, Any], **extra: Any) -> str:
        entry_uuid = str(uuid.uuid4())
        minute = len(self.lines)
        self.lines.append(
            {
                "parentUuid": self.last_uuid,
                "isSidechain": extra.pop("sidechain", False),
                "cwd": self.cwd,
                "sessionId": self.session_id,
                "gitBranch": self.branch,
                "type": kind,
                "message": message,
                "uuid": entry_uuid,
                "timestamp": f"2025-03-01T10:{minute:02d}:00.000Z",
                **extra,
            }
        )
        self.last_uuid = entry_uuid
        return entry_uuid

    def user(self, text: str, **extra: Any) -> str:
        return self._add("user", {"role": "user", "content": text}, **extra)

    def assistant(self, text: str, **extra: Any) -> str:
        return self._add("assistant", {"role": "assistant", "content": [{"type": "text", "text": text}]}, **extra)

    def jsonl(self) -> str:
        return "".join(json.dumps(line) + "\n" for line in self.lines)


@dataclass
class ClaudeHome:
    """A fake ``$CLAUDE_CONFIG_DIR/projects`` with sessions of the project ``workdir``."""

    projects: Path
    workdir: Path

    @property
    def project_dir(self) -> Path:
        return self.projects / project_key_for_directory(self.workdir)

    written: int = 0

    def session(self, first_prompt: str, answer: str = "Sure.", *, branch: str = "main") -> TranscriptBuilder:
        builder = TranscriptBuilder(str(uuid.uuid4()), branch=branch, cwd=str(self.workdir))
        builder.user(first_prompt)
        builder.assistant(answer)
        self.write(builder)
        return builder

    def write(self, builder: TranscriptBuilder) -> Path:
        """Write the transcript; each file written gets a later modification time than the one before."""
        path = self.project_dir / f"{builder.session_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(builder.jsonl(), encoding="utf-8")
        self.written += 1
        os.utime(path, (1_700_000_000 + self.written, 1_700_000_000 + self.written))
        return path

    def subagent(self, session_id: str, agent_id: str, prompt: str, tool_use_id: str) -> Path:
        builder = TranscriptBuilder(session_id, cwd=str(self.workdir))
        builder.user(prompt, sidechain=True, agentId=agent_id)
        builder.assistant("Found it.", sidechain=True, agentId=agent_id)
        path = self.project_dir / session_id / "subagents" / f"agent-{agent_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(builder.jsonl(), encoding="utf-8")
        sidecar = {"agentType": "Explore", "toolUseId": tool_use_id}
        path.with_name(f"agent-{agent_id}.meta.json").write_text(json.dumps(sidecar), encoding="utf-8")
        return path


@dataclass
class Cli:
    """Runs ``python -m session_store`` with this test's environment, store and working directory."""

    env: dict[str, str]
    store: str
    cwd: Path

    def command(self, *args: str, store: bool = True) -> list[str]:
        return [sys.executable, "-m", "session_store", *(["--store", self.store] if store else []), *args]

    def __call__(self, *args: str, store: bool = True) -> subprocess.CompletedProcess[str]:
        return processes.run(
            self.command(*args, store=store), env=self.env, cwd=self.cwd, text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS
        )

    def ok(self, *args: str, store: bool = True) -> str:
        result = self(*args, store=store)
        assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))

    def started(self, *args: str) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
        """The command running in the background (default signal handling); killed when the block ends."""
        return processes.started(
            self.command(*args), env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


def sqlite_url(path: Path) -> str:
    return "sqlite:///" + str(path)


def unopenable_sqlite_url(tmp_path: Path) -> str:
    """A SQLite store URL whose database cannot be created: its folder is a file (every append fails)."""
    (tmp_path / "not-a-folder").write_text("")
    return sqlite_url(tmp_path / "not-a-folder" / "sessions.db")


@pytest.fixture
def claude_home(tmp_path: Path) -> ClaudeHome:
    workdir = tmp_path / "app"
    workdir.mkdir()
    return ClaudeHome(tmp_path / "claude" / "projects", workdir)


@pytest.fixture
def run(tmp_path: Path, claude_home: ClaudeHome) -> Cli:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SESSION_STORE_URL", "SESSION_STORE_DB", "XDG_DATA_HOME", "CLAUDE_CONFIG_DIR"}
    }
    home = tmp_path / "home"
    home.mkdir()
    env |= {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(claude_home.projects.parent), "TZ": "UTC"}
    return Cli(env, sqlite_url(tmp_path / "store" / "sessions.db"), claude_home.workdir)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserting there is exactly one and no traceback)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("session-store: error: "), lines[0]
    return lines[0]


# --- import and list ----------------------------------------------------------------------------------------


def test_import_reads_claude_config_dir_and_list_prints_an_aligned_table_newest_first(
    run: Cli, claude_home: ClaudeHome
) -> None:
    older = claude_home.session("Fix the login redirect", branch="fix/login")
    newer = claude_home.session("Add dark mode to the settings page", branch="feature/dark")

    imported = run.ok("import")
    listed = run.ok("list")

    assert "imported 2 session(s)" in imported
    header, *rows = listed.splitlines()
    assert header.split() == ["ID", "MODIFIED", "TITLE", "/", "SUMMARY", "BRANCH", "FIRST", "PROMPT"]
    assert [row.split()[0] for row in rows] == [newer.session_id, older.session_id]
    columns = [header.index(name) for name in ("MODIFIED", "TITLE", "BRANCH", "FIRST PROMPT")]
    assert rows[0][columns[2] :].startswith("feature/dark")
    assert rows[1][columns[2] :].startswith("fix/login")
    assert rows[1][columns[1] :].startswith("Fix the login redirect")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d  ", rows[0][columns[0] :])


def test_list_json_is_a_list_of_session_infos(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Write a haiku about SQLite")
    run.ok("import")

    rows = run.json("list")

    assert [row["session_id"] for row in rows] == [session.session_id]
    assert rows[0]["first_prompt"] == "Write a haiku about SQLite"
    assert rows[0]["git_branch"] == "main"
    assert rows[0]["file_size"] is None


def test_list_of_a_project_without_sessions_says_where_it_looked(run: Cli, claude_home: ClaudeHome) -> None:
    claude_home.session("Hello")
    run.ok("import")

    elsewhere = run.ok("list", "--directory", str(claude_home.projects))

    assert "no sessions stored for project" in elsewhere
    assert project_key_for_directory(claude_home.projects) in elsewhere


def test_import_from_a_given_folder_ignores_claude_config_dir(run: Cli, tmp_path: Path) -> None:
    other = ClaudeHome(tmp_path / "elsewhere" / "projects", run.cwd)
    session = other.session("Imported from a folder given on the command line")

    imported = run.json("import", str(other.projects))

    assert [row["session_id"] for row in imported["sessions"]] == [session.session_id]
    assert [row["session_id"] for row in run.json("list")] == [session.session_id]


def test_import_of_one_project_folder_and_one_session(run: Cli, claude_home: ClaudeHome) -> None:
    wanted = claude_home.session("Keep me")
    claude_home.session("Leave me out")

    run.ok("import", str(claude_home.project_dir), "--session", wanted.session_id)

    assert [row["session_id"] for row in run.json("list")] == [wanted.session_id]


def test_import_brings_subagents_along(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Find the config loader")
    claude_home.subagent(session.session_id, "a1b2c3", "Search for config loading", "toolu_01abc")

    run.ok("import")
    subagents = run.json("subagents", session.session_id)

    assert subagents == {
        "session_id": session.session_id,
        "subagents": [{"agent_id": "a1b2c3", "messages": 2, "parent_tool_use_id": "toolu_01abc"}],
    }


def test_import_of_a_corrupt_transcript_names_file_and_line_and_can_skip_it(run: Cli, claude_home: ClaudeHome) -> None:
    good = claude_home.session("A good session")
    bad = claude_home.session("A session with a torn line")
    path = claude_home.project_dir / f"{bad.session_id}.jsonl"
    path.write_text(path.read_text() + '{"type": "user", "mess\n', encoding="utf-8")

    failed = run("--json", "import")
    skipped = run.json("import", "--skip-invalid-lines")

    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    errors = {row["session_id"]: row.get("error") for row in report["sessions"]}
    assert errors[good.session_id] is None
    assert f"{bad.session_id}.jsonl" in errors[bad.session_id] and "3" in errors[bad.session_id]
    assert skipped["failed"] == 0
    assert {row["session_id"] for row in run.json("list")} == {good.session_id, bad.session_id}


def test_import_draws_no_progress_bar_when_stderr_is_not_a_terminal(run: Cli, claude_home: ClaudeHome) -> None:
    claude_home.session("One")

    result = run("import")

    assert result.returncode == 0
    assert result.stderr == ""


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side of the pty is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_import_draws_a_progress_bar_when_stderr_is_a_terminal(run: Cli, claude_home: ClaudeHome) -> None:
    for number in range(3):
        claude_home.session(f"Session {number}")
    leader, follower = pty.openpty()
    try:
        result = processes.run(
            run.command("import"),
            env=run.env,
            cwd=run.cwd,
            stderr=follower,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_SECONDS,
        )
    finally:
        os.close(follower)
    drawn = read_all(leader)
    os.close(leader)

    assert result.returncode == 0
    frames = drawn.split("\r")
    assert any(frame.startswith("importing [") and " 0/3 " in frame for frame in frames)
    assert any(frame.startswith("importing [############################] 3/3") for frame in frames)
    assert frames[-1] == ""  # erased: the next output starts at the beginning of the line
    assert "imported 3 session(s)" in result.stdout


def test_import_of_a_missing_folder_is_one_error_line(run: Cli, tmp_path: Path) -> None:
    line = error_line(run("import", str(tmp_path / "nowhere")))

    assert "nowhere is not a directory" in line


# --- show, subagents ----------------------------------------------------------------------------------------


def test_show_prints_details_then_the_conversation(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Explain the retry loop", "It retries three times with backoff.")
    run.ok("import")

    shown = run.ok("show", session.session_id)

    assert f"Session:      {session.session_id}" in shown
    assert "Branch:       main" in shown
    assert "user       Explain the retry loop" in shown
    assert "assistant  It retries three times with backoff." in shown


def test_show_json_has_the_session_and_its_messages(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Question", "Answer")
    run.ok("import")

    shown = run.json("show", session.session_id)

    assert shown["session"]["session_id"] == session.session_id
    assert [message["type"] for message in shown["messages"]] == ["user", "assistant"]
    assert shown["messages"][1]["message"]["content"] == [{"type": "text", "text": "Answer"}]


def test_show_agent_prints_the_subagent_conversation(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Delegate a search")
    claude_home.subagent(session.session_id, "feed42", "Search the logs", "toolu_01xyz")
    run.ok("import")

    shown = run.json("show", session.session_id, "--agent", "feed42")

    assert [m["parent_tool_use_id"] for m in shown["messages"]] == ["toolu_01xyz", "toolu_01xyz"]
    assert shown["messages"][0]["message"]["content"] == "Search the logs"


def test_show_of_an_unknown_session_is_one_error_line(run: Cli, claude_home: ClaudeHome) -> None:
    claude_home.session("Known")
    run.ok("import")
    unknown = str(uuid.uuid4())

    line = error_line(run("show", unknown))

    assert f"session {unknown} not found" in line
    assert "session-store list" in line


def test_a_session_id_that_is_not_a_uuid_is_rejected_before_the_store(run: Cli) -> None:
    line = error_line(run("show", "../../etc/passwd"))

    assert "'../../etc/passwd' is not a UUID" in line


# --- resume -------------------------------------------------------------------------------------------------


def test_resume_writes_the_session_where_the_claude_cli_looks_for_it(
    run: Cli, claude_home: ClaudeHome, tmp_path: Path
) -> None:
    session = claude_home.session("Resume me later")
    claude_home.subagent(session.session_id, "beef01", "Side quest", "toolu_01side")
    run.ok("import")
    into = tmp_path / "resumed"

    resumed = run.json("resume", session.session_id, "--into", str(into))

    project_key = project_key_for_directory(claude_home.workdir)
    transcript = into / "projects" / project_key / f"{session.session_id}.jsonl"
    assert [json.loads(line) for line in transcript.read_text().splitlines()] == session.lines
    assert (into / "projects" / project_key / session.session_id / "subagents" / "agent-beef01.jsonl").is_file()
    assert f"projects/{project_key}/{session.session_id}.jsonl" in resumed["files"]


def test_resume_of_an_unknown_session_is_one_error_line(run: Cli, tmp_path: Path) -> None:
    line = error_line(run("resume", str(uuid.uuid4()), "--into", str(tmp_path / "x")))

    assert "not found" in line
    assert not (tmp_path / "x").exists()


# --- mutations ----------------------------------------------------------------------------------------------


def test_rename_and_tag_show_up_in_list(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Untitled work")
    run.ok("import")

    run.ok("rename", session.session_id, "  Release checklist  ")
    run.ok("tag", session.session_id, "release")
    [row] = run.json("list")

    assert row["custom_title"] == "Release checklist"
    assert row["tag"] == "release"
    assert "Release checklist #release" in run.ok("list")


def test_tag_clear_removes_the_tag(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Tagged")
    run.ok("import")
    run.ok("tag", session.session_id, "wip")

    run.ok("tag", session.session_id, "--clear")

    assert run.json("list")[0]["tag"] is None


def test_tag_needs_a_tag_or_clear(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Tagged")
    run.ok("import")

    result = run("tag", session.session_id)

    assert result.returncode == 2
    assert "either a TAG or --clear" in error_line(result)


def test_rename_of_an_unknown_session_creates_nothing(run: Cli) -> None:
    unknown = str(uuid.uuid4())

    line = error_line(run("rename", unknown, "Ghost"))

    assert "not found" in line
    assert run.json("list") == []


def test_fork_creates_a_new_session_with_the_same_conversation(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Original question", "Original answer")
    run.ok("import")

    forked = run.json("fork", session.session_id, "--title", "Experiment")
    shown = run.json("show", forked["session_id"])

    assert forked["forked_from"] == session.session_id
    assert forked["session_id"] != session.session_id
    assert shown["session"]["custom_title"] == "Experiment"
    assert [m["message"] for m in shown["messages"]] == [line["message"] for line in session.lines]


def test_fork_up_to_a_message_keeps_the_conversation_until_there(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("First question", "First answer")
    session.user("Second question")
    session.assistant("Second answer")
    claude_home.write(session)
    run.ok("import")

    forked = run.json("fork", session.session_id, "--up-to", session.lines[1]["uuid"])

    shown = run.json("show", forked["session_id"])
    assert [m["message"]["content"] for m in shown["messages"]] == [
        "First question",
        [{"type": "text", "text": "First answer"}],
    ]


def test_delete_removes_the_session(run: Cli, claude_home: ClaudeHome) -> None:
    kept = claude_home.session("Keep")
    gone = claude_home.session("Delete")
    run.ok("import")

    run.ok("delete", gone.session_id)

    assert [row["session_id"] for row in run.json("list")] == [kept.session_id]
    assert "not found" in error_line(run("delete", gone.session_id))


# --- global options and errors ------------------------------------------------------------------------------


def test_options_work_before_and_after_the_command_and_on_trio(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Run me on trio")

    run.ok("--backend", "trio", "import")
    after = json.loads(run.ok("list", "--backend", "trio", "--json"))

    assert [row["session_id"] for row in after] == [session.session_id]


def test_memory_store_lives_for_one_command(run: Cli, claude_home: ClaudeHome) -> None:
    claude_home.session("Ephemeral")

    imported = json.loads(run.ok("--store", "memory://", "--json", "import", store=False))
    listed = json.loads(run.ok("--store", "memory://", "--json", "list", store=False))

    assert imported["imported"] == 1
    assert listed == []


def test_the_default_store_is_the_sqlite_file_under_home(run: Cli, claude_home: ClaudeHome) -> None:
    claude_home.session("Default store")

    run.ok("import", store=False)

    assert (Path(run.env["HOME"]) / ".local" / "share" / "session-store" / "sessions.db").is_file()
    assert len(json.loads(run.ok("--json", "list", store=False))) == 1


def test_a_bad_store_url_is_one_error_line(run: Cli) -> None:
    line = error_line(run("--store", "ftp://example.com/sessions", "list", store=False))

    assert "'ftp://'" in line and "sqlite://" in line


def test_a_bad_backend_is_a_usage_error(run: Cli) -> None:
    result = run("--backend", "curio", "list")

    assert result.returncode == 2
    assert "invalid choice: 'curio'" in error_line(result)


def test_an_unknown_command_is_a_usage_error(run: Cli) -> None:
    result = run("frobnicate")

    assert result.returncode == 2
    assert "frobnicate" in error_line(result)


# --- mirror -------------------------------------------------------------------------------------------------


def test_mirror_once_from_start_copies_existing_transcripts(run: Cli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Mirror me")
    claude_home.subagent(session.session_id, "cafe01", "Helper", "toolu_01m")

    mirrored = run.json("mirror", "--once", "--from-start")

    assert mirrored["entries"] == 5  # 2 main lines, 2 subagent lines, 1 sidecar
    assert mirrored["errors"] == []
    assert run.json("show", session.session_id)["session"]["first_prompt"] == "Mirror me"
    assert run.json("subagents", session.session_id)["subagents"][0]["parent_tool_use_id"] == "toolu_01m"


def test_mirror_once_without_from_start_skips_what_is_already_there(run: Cli, claude_home: ClaudeHome) -> None:
    claude_home.session("Already written")

    mirrored = run.json("mirror", "--once")

    assert mirrored["entries"] == 0
    assert run.json("list") == []


def test_mirror_reports_batches_the_store_rejects_and_exits_1(
    run: Cli, claude_home: ClaudeHome, tmp_path: Path
) -> None:
    claude_home.session("Nowhere to go")
    broken_store = unopenable_sqlite_url(tmp_path)

    result = run("--store", broken_store, "--json", "mirror", "--once", "--from-start", store=False)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "mirroring" not in line] == [
        f"session-store: warning: mirror failed: {json.loads(result.stdout)['errors'][0]['error']}"
    ]


def _wait_until_following(process: subprocess.Popen[str]) -> None:
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "mirroring" in line, line


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_mirror_follows_lines_appended_while_it_runs(run: Cli, claude_home: ClaudeHome, library: str) -> None:
    session = claude_home.session("Before the mirror started")
    path = claude_home.project_dir / f"{session.session_id}.jsonl"
    with run.started("--backend", library, "--json", "mirror", "--duration", "3", "--interval", "0.05") as process:
        _wait_until_following(process)
        session.user("Typed while mirroring")
        with path.open("a", encoding="utf-8") as handle:
            line = json.dumps(session.lines[-1])
            handle.write(line[:20])  # a half-written line is not mirrored until it is complete
            handle.flush()
            handle.write(line[20:] + "\n")
        out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
    assert process.returncode == 0, err
    assert json.loads(out)["entries"] == 1
    stored = run.json("show", session.session_id)["messages"]
    assert [m["message"]["content"] for m in stored] == ["Typed while mirroring"]


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_mirror_stops_on_ctrl_c_with_status_130_and_no_traceback(
    run: Cli, claude_home: ClaudeHome, library: str
) -> None:
    claude_home.session("Interrupt me")
    with run.started("--backend", library, "mirror", "--interval", "0.05") as process:
        _wait_until_following(process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "interrupted" in err


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_mirror_stops_cleanly_on_sigterm_after_storing_what_was_written(
    run: Cli, claude_home: ClaudeHome, library: str
) -> None:
    session = claude_home.session("Before the mirror started")
    path = claude_home.project_dir / f"{session.session_id}.jsonl"
    with run.started("--backend", library, "--json", "mirror", "--interval", "0.05") as process:
        _wait_until_following(process)
        session.user("Written just before the SIGTERM")
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(session.lines[-1]) + "\n")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
    assert process.returncode == 0, err
    report = json.loads(out)
    assert report["sigterm"] is True
    assert report["entries"] == 1
    stored = run.json("show", session.session_id)["messages"]
    assert [m["message"]["content"] for m in stored] == ["Written just before the SIGTERM"]


def test_mirror_started_with_sigint_ignored_keeps_ignoring_it_as_posix_tools_do(
    run: Cli, claude_home: ClaudeHome
) -> None:
    """A background job of a script is started with SIGINT ignored on purpose; mirror does not override that."""
    claude_home.session("Not interrupted")
    ignore_then_exec = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
    )
    command = [
        sys.executable,
        "-c",
        ignore_then_exec,
        *run.command("mirror", "--duration", "1.5", "--interval", "0.05"),
    ]
    with processes.started(
        command, env=run.env, cwd=run.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        _wait_until_following(process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
    assert process.returncode == 0, err  # ran its --duration out instead of stopping with 130
    assert "interrupted" not in err
    assert "mirrored 0 entries" in out


# --- demo ---------------------------------------------------------------------------------------------------


def test_demo_runs_import_list_show_and_resume_on_both_backends(run: Cli) -> None:
    result = run("--json", "demo", store=False)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["backend"] for r in report["runs"]] == ["asyncio", "trio"]
    for outcome in report["runs"]:
        assert outcome["import"]["imported"] == 3
        titles = [row["summary"] for row in outcome["list"]]
        assert titles == ["Fix flaky forecast test", "Add --units flag to weather CLI"]  # the sidechain is not listed
        assert len(outcome["show"]["messages"]) == 8
        assert any(name.endswith(".meta.json") for name in outcome["resume"]["files"])
    assert not Path(report["workdir"]).exists()


def test_demo_text_narrates_each_step(run: Cli) -> None:
    out = run.ok("demo", "--backend", "trio", store=False)

    assert "=== trio ===" in out and "=== asyncio ===" not in out
    commands = [line.split()[6] for line in out.splitlines() if line.startswith("$ session-store --backend trio")]
    assert commands == ["import", "list", "show", "subagents", "resume"]


def test_shipped_samples_match_the_generator() -> None:
    result = processes.run(
        [sys.executable, str(REPO / "scripts" / "make_samples.py"), "--check"],
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
    )

    assert result.returncode == 0, result.stderr


# --- in-process pieces --------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_and_erases_itself() -> None:
    stream = FakeTerminal()
    bar = ProgressBar(4, "importing", stream, width=8)

    bar.update(1, "abc")
    bar.update(4)
    bar.finish()

    frames = stream.getvalue().split("\r")
    assert frames[1] == "importing [##......] 1/4 abc"
    assert frames[2].rstrip() == "importing [########] 4/4"
    assert frames[-2].strip() == "" and frames[-1] == ""


def test_progress_bar_stays_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(4, "importing", stream)

    bar.update(2)
    bar.finish()

    assert stream.getvalue() == ""


@pytest.mark.parametrize("backend_name", ["asyncio", "trio"])
def test_run_on_backend_runs_the_command_under_that_library(backend_name: str) -> None:
    import compat

    async def which() -> str:
        await compat.checkpoint()
        return compat.current_backend()

    assert cli.run_on_backend(backend_name, which) == backend_name


def test_describe_error_unwraps_exception_groups() -> None:
    group = ExceptionGroup("task group", [ValueError("bad title"), KeyError("x")])

    assert cli.describe_error(group) == "bad title (and 1 more error(s))"


def test_unexpected_errors_name_their_type(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def explode(argv: Any, console: Any) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(dispatch, "_execute", explode)

    status = cli.main(["list"])

    assert status == 1
    assert capsys.readouterr().err == "session-store: error: ZeroDivisionError: division by zero\n"


def test_verbose_shows_the_library_log_that_is_hidden_by_default(
    run: Cli, claude_home: ClaudeHome, tmp_path: Path
) -> None:
    claude_home.session("Nowhere to go")
    broken_store = unopenable_sqlite_url(tmp_path)

    quiet = run("--store", broken_store, "mirror", "--once", "--from-start", store=False)
    verbose = run("--store", broken_store, "mirror", "--once", "--from-start", "--verbose", store=False)

    assert "[TranscriptMirrorBatcher]" not in quiet.stderr
    assert "session-store: ERROR session_store.batcher: [TranscriptMirrorBatcher] flush failed" in verbose.stderr
