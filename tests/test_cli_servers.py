"""The ``session-store`` command line against real PostgreSQL and Redis servers, driven as a subprocess.

Every scenario runs once per store (``postgres`` / ``redis``, the throwaway servers of ``tests/servers.py``) and
once per ``--backend`` (``asyncio`` / ``trio``): import a small projects folder, then ``list``, ``show``,
``rename`` + ``tag``, ``fork``, ``resume --into`` and ``delete`` on it. The transcript factories and the
subprocess runner are those of ``tests/test_cli.py``; each test gets its own HOME, CLAUDE_CONFIG_DIR and
working directory (so its own project key).

Namespaces: the CLI opens ``open_store(url)`` with no options and neither store reads its namespace from the
URL (``?table=`` is handed to libpq, which rejects it; ``?prefix=`` is handed to redis-py's connection, which
rejects it too). So:

- PostgreSQL: each test gets its own schema, selected through libpq's ``options=-csearch_path=<schema>`` in
  the URL query, so the default table ``session_entries`` is created inside it; the schema is dropped after.
- Redis: the default prefix ``session-store`` is shared; each test's keys are those of its own project key
  (``session-store:{<project key>...``), and they are deleted after the test.

A store URL whose server is down (a closed port on 127.0.0.1) must fail within a few seconds with one error
line and exit status 1, on both backends at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import processes
import pytest
from servers import free_port
from test_cli import ClaudeHome, Cli, error_line

from session_store.adapters.postgres import DEFAULT_TABLE
from session_store.adapters.redis import DEFAULT_PREFIX
from session_store.keys import project_key_for_directory

LIBRARIES = ["asyncio", "trio"]
STORES = [pytest.param("postgres", marks=pytest.mark.servers), pytest.param("redis", marks=pytest.mark.servers)]
UNREACHABLE_LIMIT_SECONDS = 5.0
"""How long a command may take to give up on a server that is not there."""


# --- namespaces ---------------------------------------------------------------------------------------------


@dataclass
class Namespace:
    """Where one test's sessions live in a shared server: the store URL, how to count and how to drop them."""

    url: str
    count_entries: Callable[[], int]
    drop: Callable[[], None]


def _with_query(url: str, extra: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def postgres_namespace(server_url: str) -> Namespace:
    """A fresh schema, made the only one on the search path of the URL's connections."""
    import psycopg

    schema = f"cli_{uuid.uuid4().hex[:12]}"

    def execute(statement: str) -> Any:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(statement.encode())
            return cursor.fetchall() if cursor.description is not None else None

    def count_entries() -> int:
        rows = execute(
            f"SELECT table_schema FROM information_schema.tables WHERE table_name = '{DEFAULT_TABLE}'"
            f" AND table_schema = '{schema}'"
        )
        if not rows:
            return 0
        [(count,)] = execute(f'SELECT count(*) FROM "{schema}"."{DEFAULT_TABLE}"')
        return int(count)

    execute(f'CREATE SCHEMA "{schema}"')
    url = _with_query(server_url, "options=" + quote(f"-csearch_path={schema}", safe=""))
    return Namespace(url, count_entries, lambda: execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def redis_namespace(server_url: str, project_key: str) -> Namespace:
    """The default prefix; the keys of one project key (unique to the test) are the test's namespace."""
    import redis

    patterns = [f"{DEFAULT_PREFIX}:{{{project_key}}}:*", f"{DEFAULT_PREFIX}:{{{project_key}:*"]

    def keys(client: redis.Redis) -> list[bytes]:
        return [key for pattern in patterns for key in client.scan_iter(match=pattern, count=1000)]

    def count_entries() -> int:
        with redis.Redis.from_url(server_url) as client:
            lists = [key for key in keys(client) if client.type(key) == b"list"]
            return sum(int(client.llen(key)) for key in lists)

    def drop() -> None:
        with redis.Redis.from_url(server_url) as client:
            for key in keys(client):
                client.delete(key)

    return Namespace(server_url, count_entries, drop)


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
def claude_home(tmp_path: Path) -> ClaudeHome:
    workdir = tmp_path / "app"
    workdir.mkdir()
    return ClaudeHome(tmp_path / "claude" / "projects", workdir)


@pytest.fixture(params=STORES)
def namespace(request: pytest.FixtureRequest, claude_home: ClaudeHome) -> Iterator[Namespace]:
    if request.param == "postgres":
        made = postgres_namespace(request.getfixturevalue("postgres_url"))
    else:
        made = redis_namespace(request.getfixturevalue("redis_url"), project_key_for_directory(claude_home.workdir))
    try:
        yield made
    finally:
        made.drop()
    assert made.count_entries() == 0, "the test's sessions outlived its namespace"


@dataclass
class BackendCli(Cli):
    """``python -m session_store --store URL --backend LIBRARY ...``."""

    library: str = "asyncio"

    def command(self, *args: str, store: bool = True) -> list[str]:
        return super().command("--backend", self.library, *args, store=store)


def cli_environment(tmp_path: Path, claude_home: ClaudeHome) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SESSION_STORE_URL", "SESSION_STORE_DB", "XDG_DATA_HOME", "CLAUDE_CONFIG_DIR"}
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return env | {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(claude_home.projects.parent), "TZ": "UTC"}


@pytest.fixture(params=LIBRARIES)
def run(request: pytest.FixtureRequest, tmp_path: Path, claude_home: ClaudeHome, namespace: Namespace) -> BackendCli:
    return BackendCli(cli_environment(tmp_path, claude_home), namespace.url, claude_home.workdir, request.param)


# --- helpers ------------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def files_under(folder: Path) -> dict[str, Path]:
    return {path.relative_to(folder).as_posix(): path for path in folder.rglob("*") if path.is_file()}


def imported_ids(report: dict[str, Any]) -> list[str]:
    return [row["session_id"] for row in report["sessions"] if "error" not in row]


# --- scenarios ----------------------------------------------------------------------------------------------


def test_import_of_a_projects_folder_stores_every_session_and_show_has_the_conversation(
    run: BackendCli, claude_home: ClaudeHome, namespace: Namespace
) -> None:
    first = claude_home.session("Fix the login redirect", "Done.", branch="fix/login")
    second = claude_home.session("Add dark mode", "Added.", branch="feature/dark")
    claude_home.subagent(second.session_id, "a1b2c3", "Find the theme settings", "toolu_01dark")

    imported = run.json("import")
    listed = {row["session_id"]: row for row in run.json("list")}
    shown = run.json("show", second.session_id)

    assert (imported["imported"], imported["failed"]) == (2, 0)
    assert sorted(imported_ids(imported)) == sorted([first.session_id, second.session_id])
    assert namespace.count_entries() == 7  # 2 + 2 main lines, 2 subagent lines and its sidecar, all in here
    assert {sid: row["git_branch"] for sid, row in listed.items()} == {
        first.session_id: "fix/login",
        second.session_id: "feature/dark",
    }
    assert shown["session"]["first_prompt"] == "Add dark mode"
    assert [m["message"] for m in shown["messages"]] == [line["message"] for line in second.lines]
    assert "assistant  Added." in run.ok("show", second.session_id)


def test_list_shows_the_sessions_newest_first(run: BackendCli, claude_home: ClaudeHome) -> None:
    sessions = [claude_home.session(prompt) for prompt in ("Oldest question", "Middle question", "Newest question")]
    # One import per session: the store's clock counts milliseconds and a folder import stores sessions about
    # a millisecond apart, so only separate commands are sure to give each session its own modification time.
    for session in sessions:
        run.ok("import", "--session", session.session_id)

    rows = run.json("list")
    table = run.ok("list")

    newest_first = [session.session_id for session in reversed(sessions)]
    assert [row["session_id"] for row in rows] == newest_first
    assert [row["first_prompt"] for row in rows] == ["Newest question", "Middle question", "Oldest question"]
    assert [row["last_modified"] for row in rows] == sorted((row["last_modified"] for row in rows), reverse=True)
    assert [line.split()[0] for line in table.splitlines()[1:]] == newest_first
    assert [row["session_id"] for row in run.json("list", "--limit", "1", "--offset", "1")] == newest_first[1:2]


def test_rename_and_tag_show_up_in_list(run: BackendCli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Untitled work")
    other = claude_home.session("Leave me alone")
    run.ok("import")

    run.ok("rename", session.session_id, "  Release checklist  ")
    run.ok("tag", session.session_id, "release")
    rows = {row["session_id"]: row for row in run.json("list")}

    assert rows[session.session_id]["custom_title"] == "Release checklist"
    assert rows[session.session_id]["tag"] == "release"
    assert (rows[other.session_id]["custom_title"], rows[other.session_id]["tag"]) == (None, None)
    assert "Release checklist #release" in run.ok("list")


def test_fork_creates_a_new_session_with_the_same_conversation(run: BackendCli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Original question", "Original answer")
    run.ok("import")

    forked = run.json("fork", session.session_id, "--title", "Experiment")
    shown = run.json("show", forked["session_id"])
    listed = [row["session_id"] for row in run.json("list")]

    assert forked["forked_from"] == session.session_id
    assert forked["session_id"] != session.session_id
    assert sorted(listed) == sorted([session.session_id, forked["session_id"]])
    assert shown["session"]["custom_title"] == "Experiment"
    assert [m["message"] for m in shown["messages"]] == [line["message"] for line in session.lines]


def test_resume_into_a_folder_writes_files_equal_to_the_originals(
    run: BackendCli, claude_home: ClaudeHome, tmp_path: Path
) -> None:
    session = claude_home.session("Resume me later", "Sure, later.")
    session.user("Now, please")
    session.assistant("Here it is.")
    claude_home.write(session)
    claude_home.subagent(session.session_id, "beef01", "Side quest", "toolu_01side")
    claude_home.session("Another session of the project")
    run.ok("import")
    into = tmp_path / "resumed"

    resumed = run.json("resume", session.session_id, "--into", str(into))

    project = Path("projects") / claude_home.project_dir.name
    originals = {
        (project / name).as_posix(): path
        for name, path in files_under(claude_home.project_dir).items()
        if name.startswith(session.session_id)
    }
    written = files_under(into)
    assert len(originals) == 3  # the main transcript, the subagent's transcript and its sidecar
    assert sorted(resumed["files"]) == sorted(written) == sorted(originals)
    for name, original in originals.items():
        if name.endswith(".jsonl"):
            assert read_jsonl(written[name]) == read_jsonl(original), name
        else:
            assert json.loads(written[name].read_text()) == json.loads(original.read_text()), name


def test_delete_removes_the_session_and_only_it(run: BackendCli, claude_home: ClaudeHome) -> None:
    kept = claude_home.session("Keep")
    gone = claude_home.session("Delete")
    claude_home.subagent(gone.session_id, "dead01", "Helper of the deleted session", "toolu_01gone")
    run.ok("import")

    deleted = run.json("delete", gone.session_id)

    assert deleted == {"session_id": gone.session_id, "deleted": True}
    assert [row["session_id"] for row in run.json("list")] == [kept.session_id]
    assert "not found" in error_line(run("show", gone.session_id))
    assert [m["message"]["content"] for m in run.json("show", kept.session_id)["messages"]][:1] == ["Keep"]


def test_a_session_imported_on_one_backend_is_read_on_the_other(run: BackendCli, claude_home: ClaudeHome) -> None:
    session = claude_home.session("Written by one event loop")
    other = BackendCli(run.env, run.store, run.cwd, "trio" if run.library == "asyncio" else "asyncio")

    run.ok("import")

    assert [row["session_id"] for row in other.json("list")] == [session.session_id]


# --- an unreachable server ----------------------------------------------------------------------------------


def closed_port_url(kind: str) -> str:
    port = free_port()
    if kind == "postgres":
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return f"redis://127.0.0.1:{port}/0"


@dataclass
class Finished:
    library: str
    seconds: float
    result: subprocess.CompletedProcess[str]
    timed_out: bool


def run_all_until(commands: dict[str, list[str]], env: dict[str, str], cwd: Path, limit: float) -> list[Finished]:
    """Start every command at once; wait until ``limit`` seconds; kill what is still running."""
    started = time.monotonic()
    finished = []
    with contextlib.ExitStack() as stack:
        running = {
            name: stack.enter_context(
                processes.started(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
            for name, command in commands.items()
        }
        for name, process in running.items():
            timed_out = False
            try:
                out, err = process.communicate(timeout=max(0.0, started + limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                processes.kill_group(process)
                out, err = process.communicate()
            result = subprocess.CompletedProcess(commands[name], process.returncode, out, err)
            finished.append(Finished(name, time.monotonic() - started, result, timed_out))
    return finished


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_an_unreachable_server_is_one_error_line_and_exit_1_within_seconds(
    kind: str, tmp_path: Path, claude_home: ClaudeHome
) -> None:
    url = closed_port_url(kind)
    template = BackendCli(cli_environment(tmp_path, claude_home), url, claude_home.workdir)
    commands = {library: BackendCli(template.env, url, template.cwd, library).command("list") for library in LIBRARIES}

    outcomes = run_all_until(commands, template.env, template.cwd, UNREACHABLE_LIMIT_SECONDS)

    for outcome in outcomes:
        assert "Traceback" not in outcome.result.stderr, outcome.library
        assert "WARNING" not in outcome.result.stderr, (outcome.library, outcome.result.stderr)
        assert not outcome.timed_out, f"{outcome.library}: still running after {UNREACHABLE_LIMIT_SECONDS} s"
        assert outcome.result.returncode == 1, (outcome.library, outcome.result.stderr)
        line = error_line(outcome.result)
        assert "127.0.0.1" in line and str(urlsplit(url).port) in line, line
        assert "is the" in line and "server up" in line, line  # names the way out
