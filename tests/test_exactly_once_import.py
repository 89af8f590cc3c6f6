"""Exactly-once import (issue 14 items 6-10): the library, the CLI as a subprocess, and real stores.

Each source line, with or without a uuid, is stored once: by a re-run, by the run after a kill -9 or a
cancellation, and by two importers at once (SQLite, PostgreSQL, Redis, Redis Cluster).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

import processes
import pytest
from hypothesis import given
from hypothesis import strategies as st
from property_support import BACKEND_PARAMS, property_settings, run_on
from servers import redis_test_prefix

import compat
from session_store.adapters import PostgresSessionStore, RedisSessionStore, SQLiteSessionStore, open_store
from session_store.importing import import_session_to_store, import_transcript_file
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.resume import materialize_resume_session
from session_store.types import SessionKey, SessionStore, SessionStoreEntry

REPO = Path(__file__).resolve().parent.parent
SUBPROCESS_TIMEOUT_SECONDS = 120
PROJECT = "-home-me-app"

Entry = dict[str, Any]


# --- transcripts on disk ----------------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def transcript(session_id: str, turns: int = 2) -> list[Entry]:
    """A small transcript with the uuid-less lines a real one has (title, tag, summary, mode), one repeated."""
    lines: list[Entry] = [{"type": "custom-title", "customTitle": "T", "sessionId": session_id}]
    parent = None
    for turn in range(turns):
        for kind in ("user", "assistant"):
            line_id = new_id()
            lines.append(
                {
                    "type": kind,
                    "uuid": line_id,
                    "parentUuid": parent,
                    "sessionId": session_id,
                    "message": {"role": kind, "content": f"{kind} {turn}"},
                }
            )
            parent = line_id
        lines.append({"type": "tag", "tag": "wip", "sessionId": session_id})  # the same line, once per turn
    lines.append({"type": "summary", "summary": "done", "leafUuid": parent})
    return lines


def write_jsonl(path: Path, entries: list[Entry]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[Entry]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_session(projects: Path, session_id: str, project: str = PROJECT, *, subagent: bool = True) -> Path:
    path = write_jsonl(projects / project / f"{session_id}.jsonl", transcript(session_id))
    if subagent:
        agent = [{**line, "isSidechain": True} for line in transcript(session_id, turns=1)]
        write_jsonl(projects / project / session_id / "subagents" / "agent-a1.jsonl", agent)
        (projects / project / session_id / "subagents" / "agent-a1.meta.json").write_text('{"agentType": "Explore"}')
    return path


def expected_keys(projects: Path) -> dict[tuple[str, str, str | None], list[Entry]]:
    """Every key an import of ``projects`` must fill, with exactly the entries it must hold."""
    expected: dict[tuple[str, str, str | None], list[Entry]] = {}
    for main in projects.glob("*/*.jsonl"):
        project, session_id = main.parent.name, main.stem
        expected[project, session_id, None] = read_jsonl(main)
        for agent in (main.parent / session_id / "subagents").glob("*.jsonl"):
            meta = json.loads(agent.with_name(agent.stem + ".meta.json").read_text())
            expected[project, session_id, f"subagents/{agent.stem}"] = [
                *read_jsonl(agent),
                {**meta, "type": "agent_metadata"},
            ]
    return expected


def key_of(project: str, session_id: str, subpath: str | None) -> SessionKey:
    key: SessionKey = {"project_key": project, "session_id": session_id}
    if subpath is not None:
        key["subpath"] = subpath
    return key


async def assert_each_line_once(store: SessionStore, projects: Path) -> None:
    for (project, session_id, subpath), entries in expected_keys(projects).items():
        assert await store.load(key_of(project, session_id, subpath)) == entries, (project, session_id, subpath)


# --- the library -------------------------------------------------------------------------------------------------


async def test_reimporting_stores_no_uuidless_line_twice_and_counts_only_what_was_stored(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id)
    store = InMemorySessionStore()
    first = await import_session_to_store(session_id, store, projects_dir=projects)
    again = await import_session_to_store(session_id, store, projects_dir=projects)
    assert first.stored == first.entries == 14
    assert (again.entries, again.stored) == (14, 0)
    await assert_each_line_once(store, projects)


async def test_import_after_a_plain_append_of_the_same_lines_adds_nothing(tmp_path: Path) -> None:
    """Lines the SDK's batcher already mirrored with plain append count as held."""
    projects = tmp_path / "projects"
    session_id = new_id()
    path = write_session(projects, session_id, subagent=False)
    store = InMemorySessionStore()
    await store.append(key_of(PROJECT, session_id, None), cast(list[SessionStoreEntry], read_jsonl(path)))
    result = await import_transcript_file(path, store)
    assert result.stored == 0
    await assert_each_line_once(store, projects)


async def test_lines_added_to_the_file_are_stored_by_the_next_import(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    path = write_session(projects, session_id, subagent=False)
    store = InMemorySessionStore()
    await import_transcript_file(path, store)
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"type": "tag", "tag": "wip", "sessionId": session_id}) + "\n")
    assert (await import_transcript_file(path, store)).stored == 1
    await assert_each_line_once(store, projects)


class HangingStore(InMemorySessionStore):
    """Hangs (until cancelled) in its ``hang_at``-th append_once call, before storing anything."""

    def __init__(self, hang_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.hang_at = hang_at

    async def append_once(
        self, key: SessionKey, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        self.calls += 1
        if self.calls == self.hang_at:
            await compat.sleep(float("inf"))
        return await super().append_once(key, entries, occurrences)


@pytest.mark.parametrize("hang_at", [1, 2, 3, 4])
async def test_a_cancelled_import_never_lists_a_partial_session_and_the_rerun_completes_it(
    tmp_path: Path, hang_at: int
) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id)
    store = HangingStore(hang_at)
    with compat.move_on_after(0.2) as scope:
        await import_session_to_store(session_id, store, projects_dir=projects, batch_size=3)
    assert scope.cancelled_caught
    assert await store.list_sessions(PROJECT) == []  # the main transcript goes last, in one call
    assert await store.load(key_of(PROJECT, session_id, None)) is None
    await import_session_to_store(session_id, store, projects_dir=projects, batch_size=3)
    await assert_each_line_once(store, projects)


async def test_a_store_without_append_once_gets_each_line_once_on_reruns(tmp_path: Path) -> None:
    class PlainStore:
        def __init__(self) -> None:
            self.inner = InMemorySessionStore()

        async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
            await self.inner.append(key, entries)

        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            return await self.inner.load(key)

    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id)
    store = cast(SessionStore, PlainStore())
    for _ in range(3):
        await import_session_to_store(session_id, store, projects_dir=projects, batch_size=2)
    await assert_each_line_once(store, projects)


async def test_one_session_id_in_two_projects_imports_each_file_under_its_own_project(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    first = write_session(projects, session_id, "-a")
    second = write_session(projects, session_id, "-b")
    store = InMemorySessionStore()
    results = [await import_transcript_file(path, store) for path in (first, second)]
    assert [(r.project_key, r.stored) for r in results] == [("-a", 14), ("-b", 14)]
    await assert_each_line_once(store, projects)


async def test_a_deeply_nested_line_is_an_error_naming_file_and_line_and_can_be_skipped(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    path = write_session(projects, session_id, subagent=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], "[" * 100_000, *lines[2:]]) + "\n")
    store = InMemorySessionStore()
    with pytest.raises(ValueError, match=rf"{session_id}\.jsonl:3: .*nested too deeply"):
        await import_transcript_file(path, store)
    assert store.size == 0
    result = await import_transcript_file(path, store, skip_invalid_lines=True)
    assert [line.line_number for line in result.skipped_lines] == [3]
    assert result.stored == len(lines)


def test_a_file_name_that_is_not_a_session_id_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "projects" / PROJECT / "notes.jsonl", [{"type": "x"}])
    with pytest.raises(ValueError, match=r"expected <projects>/<project>/<session-id>\.jsonl"):
        run_on("asyncio", import_transcript_file, path, InMemorySessionStore())


# --- the property: import -> store -> resume -> re-import is the identity and idempotent ----------------------------

POOL = [{"type": "tag", "tag": "a"}, {"type": "custom-title", "customTitle": "T"}, {"type": "summary", "summary": "s"}]
mixed_lines = st.lists(
    st.one_of(
        st.sampled_from(POOL),  # uuid-less, often repeated
        st.builds(lambda n: {"type": "user", "uuid": str(uuid.UUID(int=n)), "n": n}, st.integers(0, 5)),
        st.builds(lambda t: {"type": "mode", "mode": t}, st.text(max_size=3)),
    ),
    min_size=1,
    max_size=12,
)


async def import_resume_reimport(root: Path, store_kind: str, lines: list[Entry]) -> None:
    session_id = new_id()
    projects = root / "projects"
    project = project_key_for_directory(str(root))  # where resume (cwd=root) looks
    path = write_jsonl(projects / project / f"{session_id}.jsonl", lines)
    # what the source holds, once: a uuid repeated in the file is one entry (the store's idempotency key)
    seen: set[str] = set()
    expected = [line for line in lines if "uuid" not in line or not (line["uuid"] in seen or seen.add(line["uuid"]))]
    store: SessionStore = InMemorySessionStore() if store_kind == "memory" else SQLiteSessionStore(root / "s.db")
    try:
        first = await import_transcript_file(path, store)
        assert first.stored == len(expected)
        key = key_of(project, session_id, None)
        assert await store.load(key) == expected
        resumed = await materialize_resume_session(store, resume=session_id, cwd=str(root))
        assert resumed is not None
        try:
            written = next(resumed.projects_dir.glob(f"*/{session_id}.jsonl"))
            assert read_jsonl(written) == expected  # resume writes back what was imported
            written_copy = write_jsonl(root / "again" / project / f"{session_id}.jsonl", read_jsonl(written))
        finally:
            await resumed.cleanup()
        assert (await import_transcript_file(written_copy, store)).stored == 0
        assert (await import_transcript_file(path, store)).stored == 0
        assert await store.load(key) == expected
    finally:
        if isinstance(store, SQLiteSessionStore):
            await store.close()


@BACKEND_PARAMS
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@property_settings(default_run=25, soak=300)
@given(lines=mixed_lines)
def test_import_resume_reimport_is_the_identity_and_idempotent(
    backend: str, store_kind: str, lines: list[Entry], tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_on(backend, import_resume_reimport, tmp_path_factory.mktemp("prop"), store_kind, lines)


# --- schema upgrades: rows stored before the counts existed are counted ----------------------------------------------


async def test_sqlite_upgrades_a_version_1_file_and_counts_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    tag = {"type": "tag", "tag": "a"}
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            "CREATE TABLE session_entries (seq INTEGER PRIMARY KEY, project_key TEXT NOT NULL,"
            " session_id TEXT NOT NULL, subpath TEXT NOT NULL, uuid TEXT, entry TEXT NOT NULL);"
            "PRAGMA user_version = 1;"
        )
        conn.execute(
            "INSERT INTO session_entries (project_key, session_id, subpath, uuid, entry) VALUES (?, ?, '', NULL, ?)",
            ("p", "s", json.dumps(tag)),
        )
    conn.close()
    async with SQLiteSessionStore(path) as store:
        stored = await store.append_once({"project_key": "p", "session_id": "s"}, [tag, tag], [0, 1])  # type: ignore[list-item]
        assert stored == 1
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    conn.close()


@pytest.mark.servers
async def test_postgres_counts_rows_stored_by_a_table_without_hashes(postgres_url: str) -> None:
    import psycopg

    table = f"t_{uuid.uuid4().hex[:12]}"
    tag = {"type": "tag", "tag": "a"}
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the table as an older version created it
        conn.execute(
            f"CREATE TABLE {table} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, project_key text NOT NULL,"
            " session_id text NOT NULL, subpath text NOT NULL, uuid text, entry json NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {table} (project_key, session_id, subpath, entry) VALUES ('p', 's', '', %s)",
            [json.dumps(tag)],
        )
    async with PostgresSessionStore(postgres_url, table=table) as store:
        assert await store.append_once({"project_key": "p", "session_id": "s"}, [tag, tag], [0, 1]) == 1  # type: ignore[list-item]
        assert await store.load({"project_key": "p", "session_id": "s"}) == [tag, tag]


@pytest.mark.servers
async def test_redis_counts_a_key_stored_before_its_count_hash(redis_url: str) -> None:
    import redis

    tag: SessionStoreEntry = {"type": "tag", "tag": "a"}  # type: ignore[typeddict-unknown-key]
    key: SessionKey = {"project_key": "p", "session_id": "s", "subpath": "subagents/agent-1"}
    prefix = redis_test_prefix()
    async with RedisSessionStore(redis_url, prefix=prefix) as store:
        await store.append(key, [tag])
        client = redis.Redis.from_url(redis_url)
        client.delete(*client.keys(f"{prefix}:*:contents:*"))  # as an older version left it
        client.close()
        assert await store.append_once(key, [tag, tag], [0, 1]) == 1
        assert await store.load(key) == [tag, tag]


# --- the command line, as a user runs it -----------------------------------------------------------------------------


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"SESSION_STORE_URL", "SESSION_STORE_DB", "CLAUDE_CONFIG_DIR"}
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return env | {"HOME": str(home), "PYTHONPATH": str(REPO), "TZ": "UTC"}


def cli(tmp_path: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "session_store", "--store", store, *args]
    return processes.run(command, env=cli_env(tmp_path), cwd=tmp_path, text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS)


def sqlite_store(tmp_path: Path) -> str:
    return "sqlite:///" + str(tmp_path / "store.db")


async def check_store(url: str, projects: Path) -> None:
    store = open_store(url)
    try:
        await assert_each_line_once(store, projects)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            await close()


def test_cli_reimport_stores_nothing_twice_and_says_so(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    for _ in range(2):
        write_session(projects, new_id())
    store = sqlite_store(tmp_path)
    first = cli(tmp_path, store, "--json", "import", str(projects))
    second = cli(tmp_path, store, "import", str(projects))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    report = json.loads(first.stdout)
    assert (report["imported"], report["stored"]) == (2, 28)
    assert "imported 0 session(s)" in second.stdout and "0 new line(s) stored" in second.stdout
    assert "2 session(s) already in the store" in second.stdout
    run_on("asyncio", check_store, store, projects)


def test_cli_imports_one_session_id_in_two_projects_under_each_project(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id, "-a")
    write_session(projects, session_id, "-b")
    store = sqlite_store(tmp_path)
    result = cli(tmp_path, store, "--json", "import", str(projects))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(row["project_key"] for row in report["sessions"]) == ["-a", "-b"]
    assert report["imported"] == 2
    run_on("asyncio", check_store, store, projects)


def test_cli_a_too_deep_line_fails_only_its_session_names_file_and_line_and_can_be_skipped(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    good, bad = new_id(), new_id()
    write_session(projects, good)
    path = write_session(projects, bad, subagent=False)
    with path.open("a") as file:
        file.write("[" * 100_000 + "\n")
    store = sqlite_store(tmp_path)
    failed = cli(tmp_path, store, "import", str(projects))
    assert failed.returncode == 1
    assert f"{bad}.jsonl:9: invalid transcript line (JSON nested too deeply" in failed.stdout
    assert "Traceback" not in failed.stderr
    assert "rerun with --skip-invalid-lines" in failed.stdout
    assert "imported 1 session(s)" in failed.stdout
    skipped = cli(tmp_path, store, "import", "--skip-invalid-lines", str(projects))
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert f"skipped {path}:9" in skipped.stdout
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))  # the line dropped, as skipped
    run_on("asyncio", check_store, store, projects)


def test_cli_gives_no_skip_hint_for_failures_the_flag_cannot_fix(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    session_id = new_id()
    write_session(projects, session_id, subagent=False)
    fifo = projects / PROJECT / session_id / "subagents" / "agent-x.jsonl"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    result = cli(tmp_path, sqlite_store(tmp_path), "import", str(projects))
    assert result.returncode == 1
    assert "is a FIFO" in result.stdout
    assert "--skip-invalid-lines" not in result.stdout


def test_cli_import_that_finds_nothing_is_an_error_naming_the_folder_and_layout(tmp_path: Path) -> None:
    empty = tmp_path / "projects"
    (empty / "some-project").mkdir(parents=True)
    result = cli(tmp_path, sqlite_store(tmp_path), "import", str(empty))
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert str(empty) in line and "<projects>/<project>/<session-id>.jsonl" in line


def many_sessions(projects: Path, count: int) -> None:
    for number in range(count):
        write_session(projects, new_id(), f"-p{number % 3}")


async def assert_listed_sessions_are_complete(url: str, projects: Path) -> None:
    """Every main transcript the store holds is the whole file: an interrupted import left none partial."""
    store = open_store(url)
    try:
        for (project, session_id, subpath), entries in expected_keys(projects).items():
            if subpath is None:
                assert await store.load(key_of(project, session_id, None)) in (None, entries), (project, session_id)
    finally:
        await cast(Any, store).close()


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_cli_rerun_after_kill_or_ctrl_c_stores_each_line_once(tmp_path: Path, signal_name: str) -> None:
    projects = tmp_path / "projects"
    many_sessions(projects, 300)
    store = sqlite_store(tmp_path)
    command = [sys.executable, "-m", "session_store", "--store", store, "import", str(projects)]
    for delay in (0.7, 1.0):
        with processes.started(
            command, env=cli_env(tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as process:
            time.sleep(delay)
            os.killpg(process.pid, getattr(signal, signal_name))  # kill -9, or Ctrl-C, wherever it is
            process.wait(timeout=SUBPROCESS_TIMEOUT_SECONDS)
        if Path(tmp_path / "store.db").exists():
            run_on("asyncio", assert_listed_sessions_are_complete, store, projects)
    result = cli(tmp_path, store, "--json", "import", str(projects))
    assert result.returncode == 0, result.stderr
    run_on("asyncio", check_store, store, projects)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("redis", marks=pytest.mark.servers),
        pytest.param("redis-cluster", marks=pytest.mark.servers),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_store(tmp_path)
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return f"{url}{'&' if '?' in url else '?'}table=t_{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return f"{url}{'&' if '?' in url else '?'}prefix={redis_test_prefix()}"
    cluster = request.getfixturevalue("redis_cluster")
    return f"{cluster.url}{'&' if '?' in cluster.url else '?'}prefix={redis_test_prefix()}"


def test_two_importers_at_once_store_each_line_once(tmp_path: Path, store_url: str) -> None:
    projects = tmp_path / "projects"
    many_sessions(projects, 12)
    command = [sys.executable, "-m", "session_store", "--store", store_url, "import", str(projects)]
    env = cli_env(tmp_path)
    with (
        processes.started(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as a,
        processes.started(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as b,
    ):
        outputs = [process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS) for process in (a, b)]
        assert [a.returncode, b.returncode] == [0, 0], outputs
    run_on("asyncio", check_store, store_url, projects)


def test_append_once_from_two_processes_at_once_stores_each_line_once(tmp_path: Path, store_url: str) -> None:
    """The store method itself, raced by two processes sending the same growing prefixes."""
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps({"keys": RACE_KEYS, "lines": race_lines()}))
    start_at = str(time.time() + 1.5)
    env = cli_env(tmp_path)
    runs = [
        processes.started([sys.executable, str(script), store_url, start_at, name, str(lines)], env=env, cwd=tmp_path)
        for name in ("a", "b")
    ]
    with runs[0] as first, runs[1] as second:
        assert [first.wait(timeout=SUBPROCESS_TIMEOUT_SECONDS), second.wait(timeout=SUBPROCESS_TIMEOUT_SECONDS)] == [
            0,
            0,
        ]

    async def check() -> None:
        store = open_store(store_url)
        try:
            for key in RACE_KEYS:
                assert await store.load(key) == race_lines()
        finally:
            await cast(Any, store).close()

    run_on("asyncio", check)


RACE_KEYS: list[SessionKey] = [
    {"project_key": "race", "session_id": "s"},
    {"project_key": "race", "session_id": "s", "subpath": "subagents/agent-1"},
]


def race_lines() -> list[Entry]:
    lines: list[Entry] = []
    for number in range(30):
        lines.append({"type": "user", "uuid": str(uuid.UUID(int=number)), "n": number})
        lines.append({"type": "tag", "tag": "t"})  # the same uuid-less line, 30 times
    return lines


RACER = """
import json, sys, time, trio
from session_store.adapters import open_store
from session_store.exactly_once import append_once, occurrences

async def main():
    url, start_at, name, data = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(data) as file:
        given = json.load(file)
    lines, keys = given["lines"], given["keys"]
    counts = occurrences(lines)
    store = open_store(url)
    step = 3 if name == "a" else 4
    await trio.sleep(max(0.0, start_at - time.time()))
    for end in range(step, len(lines) + step, step):
        for key in keys:
            await append_once(store, key, lines[:end], counts[:end])
    await store.close()

trio.run(main)
"""


# --- item 10: linear in the number of files ---------------------------------------------------------------------


def file_system_calls(tmp_path: Path, projects_count: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many stat/listdir/scandir calls the CLI's import makes for ``projects_count`` one-session projects."""
    from session_store.cli.import_folder import import_command
    from session_store.cli.output import Console

    projects = tmp_path / f"projects-{projects_count}"
    for number in range(projects_count):
        write_session(projects, new_id(), f"-p{number}", subagent=False)
    counter = iter(range(1 << 62))
    for name in ("stat", "lstat", "listdir", "scandir"):
        original = getattr(os, name)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            next(counter)
            return _original(*args, **kwargs)

        monkeypatch.setattr(os, name, counted)
    report = run_on("asyncio", import_command, InMemorySessionStore(), projects, Console(json_mode=True))
    calls = next(counter)
    monkeypatch.undo()
    assert report.data["imported"] == projects_count
    return calls


def test_import_touches_the_file_system_linearly_in_the_number_of_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each session used to re-scan every project folder: O(sessions x projects) stat calls."""
    small, large = file_system_calls(tmp_path, 20, monkeypatch), file_system_calls(tmp_path, 80, monkeypatch)
    assert large < 5 * small, (small, large)  # 4x the projects: about 4x the calls (was about 16x)
