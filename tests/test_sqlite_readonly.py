"""Read-only SQLite stores: a file nobody may write can still be listed and shown, and every error names the file.

``SQLiteSessionStore(read_only=True)`` (what ``list``, ``show``, ``subagents`` and ``resume`` use) opens the file
with a ``mode=ro`` URI and changes nothing: tested on a read-only bind mount (root only: skipped otherwise), on an
``chattr +i`` file (root, on a file system that supports it), and for an unprivileged user (``setpriv``) on a 0444
file in a 0555 folder, since root ignores permission bits. Errors after opening (``file is not a database``,
``database or disk is full`` on a small tmpfs, ``attempt to write a readonly database``) name the database file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import processes
import pytest
from test_cli import SUBPROCESS_TIMEOUT_SECONDS, ClaudeHome, Cli, error_line, sqlite_url

from session_store.adapters import SQLiteSessionStore, open_store
from session_store.types import SessionKey, SessionStoreEntry

REPO = Path(__file__).resolve().parent.parent
KEY: SessionKey = {"project_key": "-work-app", "session_id": "0f0e0d0c-0b0a-4909-8807-060504030201"}


def entry(text: str) -> SessionStoreEntry:
    return {
        "type": "user",
        "uuid": str(uuid.uuid4()),
        "timestamp": "2025-03-01T10:00:00.000Z",
        "message": {"role": "user", "content": text},
    }


async def filled_store(path: Path) -> list[SessionStoreEntry]:
    """A store file at ``path`` holding one session of two entries (closed, so its WAL is checkpointed)."""
    entries = [entry("first"), entry("second")]
    async with SQLiteSessionStore(path) as store:
        await store.append(KEY, entries)
    return entries


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_command(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **options)  # type: ignore[call-overload,no-any-return]  # options are subprocess.run's


@contextlib.contextmanager
def read_only_mount(source: Path, target: Path) -> Iterator[Path]:
    """``source`` bind-mounted read-only at ``target`` (skips unless this process may mount)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root and mount(8)")
    target.mkdir()
    if run_command(["mount", "--bind", str(source), str(target)]).returncode != 0:
        pytest.skip("mount --bind is not permitted here (no CAP_SYS_ADMIN)")
    try:
        remount = run_command(["mount", "-o", "remount,bind,ro", str(target)])
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        yield target
    finally:
        run_command(["umount", str(target)])


# --- the store, in process ----------------------------------------------------------------------------------


async def test_a_read_only_store_reads_a_file_on_a_read_only_mount(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    entries = await filled_store(tmp_path / "data" / "sessions.db")
    with read_only_mount(tmp_path / "data", tmp_path / "ro") as mounted:
        async with SQLiteSessionStore(mounted / "sessions.db", read_only=True) as store:
            listed = await store.list_sessions(KEY["project_key"])
            loaded = await store.load(KEY)
        after = sorted(os.listdir(mounted))
        async with SQLiteSessionStore(mounted / "sessions.db") as writable:
            with pytest.raises(sqlite3.OperationalError, match=r"sessions\.db"):
                await writable.load(KEY)  # a read-write open fails there, naming the file

    assert [row["session_id"] for row in listed] == [KEY["session_id"]]
    assert loaded == entries
    assert after == ["sessions.db"]  # no -wal/-shm (immutable=1 where they cannot be created)


async def test_a_read_only_open_changes_nothing_in_a_writable_folder(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    entries = await filled_store(path)
    before = digest(path)

    async with SQLiteSessionStore(path, read_only=True) as store:
        assert await store.load(KEY) == entries

    assert digest(path) == before
    # SQLite's reader of a WAL database leaves its (empty) -wal and -shm beside it; nothing else appears
    assert set(os.listdir(tmp_path)) <= {"sessions.db", "sessions.db-wal", "sessions.db-shm"}
    wal = tmp_path / "sessions.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


async def test_a_missing_database_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "not-yet" / "sessions.db"

    async with SQLiteSessionStore(path, read_only=True) as store:
        assert await store.list_sessions(KEY["project_key"]) == []
        assert await store.load(KEY) is None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.append(KEY, [entry("lost?")])  # refused, as on a read-only file

    assert not path.parent.exists()


async def test_writing_through_a_read_only_store_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    await filled_store(path)
    before = digest(path)

    async with SQLiteSessionStore(path, read_only=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly") as raised:
            await store.append(KEY, [entry("third")])

    assert str(path) in str(raised.value)
    assert raised.value.sqlite_errorname.startswith("SQLITE_READONLY")
    assert digest(path) == before


@pytest.mark.parametrize("read_only", [False, True])
async def test_a_file_that_is_not_a_database_is_named(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)

    async with SQLiteSessionStore(path, read_only=read_only) as store:
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database") as raised:
            await store.list_sessions(KEY["project_key"])

    assert str(path) in str(raised.value)
    assert path.read_bytes().startswith(b"these are my notes")


async def test_a_sqlite_database_of_another_program_is_named_read_only(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
        conn.commit()

    async with SQLiteSessionStore(path, read_only=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="not a session store") as raised:
            await store.list_sessions(KEY["project_key"])

    assert str(path) in str(raised.value)


async def test_a_full_disk_is_named(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or run_command(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)]).returncode:
        pytest.skip("a small tmpfs (for a real ENOSPC) needs root and mount(8)")
    try:
        path = small / "sessions.db"
        async with SQLiteSessionStore(path) as store:
            with pytest.raises(sqlite3.OperationalError, match="full") as raised:
                for index in range(200):
                    await store.append(KEY, [entry(f"{index} " + "x" * 4000)])
        assert str(path) in str(raised.value)
    finally:
        run_command(["umount", str(small)])


def test_open_store_passes_read_only_to_sqlite_only(tmp_path: Path) -> None:
    store = open_store(sqlite_url(tmp_path / "s.db"), read_only=True)

    assert isinstance(store, SQLiteSessionStore) and store.read_only
    assert not open_store("memory://", read_only=True).__class__.__name__.startswith("SQLite")


# --- the command line ---------------------------------------------------------------------------------------


@pytest.fixture
def claude_home(tmp_path: Path) -> ClaudeHome:
    workdir = tmp_path / "app"
    workdir.mkdir()
    return ClaudeHome(tmp_path / "claude" / "projects", workdir)


def cli_for(tmp_path: Path, claude_home: ClaudeHome, store: str) -> Cli:
    env = {key: value for key, value in os.environ.items() if key not in {"SESSION_STORE_URL", "SESSION_STORE_DB"}}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env |= {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(claude_home.projects.parent), "TZ": "UTC"}
    return Cli(env, store, claude_home.workdir)


def imported(tmp_path: Path, claude_home: ClaudeHome, folder: Path) -> tuple[str, Path]:
    """Import one session (with a subagent) into ``folder/sessions.db``; its id and the database path."""
    session = claude_home.session("Read me from a read-only store", "Sure.")
    claude_home.subagent(session.session_id, "a1b2c3", "Look around", "toolu_01ro")
    folder.mkdir(exist_ok=True)
    cli_for(tmp_path, claude_home, sqlite_url(folder / "sessions.db")).ok("import")
    return session.session_id, folder / "sessions.db"


def test_list_show_subagents_and_resume_work_on_a_read_only_mount(tmp_path: Path, claude_home: ClaudeHome) -> None:
    session_id, _ = imported(tmp_path, claude_home, tmp_path / "data")
    with read_only_mount(tmp_path / "data", tmp_path / "ro") as mounted:
        cli = cli_for(tmp_path, claude_home, sqlite_url(mounted / "sessions.db"))

        listed = cli.json("list")
        shown = cli.ok("show", session_id)
        subagents = cli.ok("subagents", session_id)
        resumed = cli.json("resume", session_id, "--into", str(tmp_path / "resumed"))
        renamed = cli("rename", session_id, "New title")

    assert [row["session_id"] for row in listed] == [session_id]
    assert "Read me from a read-only store" in shown
    assert "a1b2c3" in subagents
    assert resumed["session_id"] == session_id
    line = error_line(renamed)  # writing is refused, naming the file
    assert "readonly" in line or "read-only" in line, line
    assert str(mounted / "sessions.db") in line


def test_list_works_on_an_immutable_file(tmp_path: Path, claude_home: ClaudeHome) -> None:
    session_id, path = imported(tmp_path, claude_home, tmp_path / "data")
    if shutil.which("chattr") is None or run_command(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("chattr +i needs root and a file system that supports it")
    try:
        cli = cli_for(tmp_path, claude_home, sqlite_url(path))
        listed = cli.json("list")
        tagged = cli("tag", session_id, "x")
    finally:
        run_command(["chattr", "-i", str(path)])

    assert [row["session_id"] for row in listed] == [session_id]
    assert str(path) in error_line(tagged)


def test_an_unprivileged_user_lists_a_0444_file_in_a_0555_folder(tmp_path: Path, claude_home: ClaudeHome) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running the command as another user needs root and setpriv(1)")
    # pytest's tmp_path is private to root: the unprivileged user gets a folder it may traverse
    base = Path(tempfile.mkdtemp(prefix="session-store-ro-"))
    try:
        base.chmod(0o755)
        session_id, path = imported(tmp_path, claude_home, base / "data")
        for leftover in (base / "data").glob("sessions.db-*"):
            leftover.unlink()  # closed cleanly: the log is checkpointed; without these the folder needs no write
        path.chmod(0o444)
        (base / "data").chmod(0o555)
        home = base / "home"
        home.mkdir(mode=0o777)
        command = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            *Cli({}, sqlite_url(path), claude_home.workdir).command("--json", "list", "-d", str(claude_home.workdir)),
        ]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO), "TZ": "UTC"}
        result = processes.run(command, env=env, cwd=home, text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS)
        writing = processes.run(
            command[:5] + Cli({}, sqlite_url(path), claude_home.workdir).command("tag", session_id, "x", "-d", "/"),
            env=env,
            cwd=home,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_SECONDS,
        )
        after = sorted(os.listdir(base / "data"))
    finally:
        with contextlib.suppress(FileNotFoundError):
            (base / "data").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)

    assert result.returncode == 0, result.stderr
    assert [row["session_id"] for row in json.loads(result.stdout)] == [session_id]
    assert after == ["sessions.db"]
    assert writing.returncode == 1 and str(path) in writing.stderr, writing.stderr


def test_a_file_that_is_not_a_database_is_one_error_line_naming_it(tmp_path: Path, claude_home: ClaudeHome) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database\n" * 100)
    claude_home.session("Where do I go?")

    for command in (["list"], ["import"]):
        line = error_line(cli_for(tmp_path, claude_home, sqlite_url(path))(*command))
        assert "file is not a database" in line and str(path) in line, line


def test_an_empty_store_option_is_a_usage_error(tmp_path: Path, claude_home: ClaudeHome) -> None:
    cli = cli_for(tmp_path, claude_home, "")

    result = cli("list")
    from_env = processes.run(
        [sys.executable, "-m", "session_store", "list"],
        env=cli.env | {"SESSION_STORE_URL": ""},
        cwd=cli.cwd,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
    )

    assert result.returncode == 2 and from_env.returncode == 2
    assert "--store is empty" in error_line(result) and "leave --store out" in error_line(result)
    assert "SESSION_STORE_URL is set but empty" in error_line(from_env)
    assert not (Path(cli.env["HOME"]) / ".local").exists()  # the default store was not touched
