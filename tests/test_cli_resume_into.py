"""``session-store resume SESSION_ID --into DIR`` attacked as a hostile or careless user would (issue 14, 1-5).

Each test runs ``python -m session_store`` in a subprocess, on ``--backend asyncio`` and ``--backend trio``,
against a real SQLite store file and a real target tree: symbolic links planted at every level of DIR, a 1777
folder, ``--into ''``, an existing transcript that differs, a relative DIR and the printed command run from
elsewhere, umask 0, a full tmpfs, and subagent transcripts the materialization has to leave out. The store is
seeded in-process through :class:`SQLiteSessionStore` (the import path has its own tests in test_cli.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import processes
import pytest
from property_support import BACKEND_PARAMS, run_on

from session_store.adapters.sqlite import SQLiteSessionStore
from session_store.keys import project_key_for_directory

TIMEOUT_SECONDS = 120
AGENT = "subagents/agent-a1b2c3"


def transcript(session_id: str, texts: list[str], cwd: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    parent = None
    for number, text in enumerate(texts):
        entry_uuid = str(uuid.uuid4())
        role = "user" if number % 2 == 0 else "assistant"
        entries.append(
            {
                "parentUuid": parent,
                "isSidechain": False,
                "cwd": cwd,
                "sessionId": session_id,
                "type": role,
                "message": {"role": role, "content": text},
                "uuid": entry_uuid,
                "timestamp": f"2025-03-01T10:{number % 60:02d}:00.000Z",
            }
        )
        parent = entry_uuid
    return entries


@dataclass
class Setup:
    """A seeded store, the project directory the session belongs to, and how to run the CLI on ``backend``."""

    backend: str
    tmp: Path
    db: Path
    workdir: Path
    session_id: str
    entries: list[dict[str, Any]]

    @property
    def project_key(self) -> str:
        return project_key_for_directory(self.workdir)

    def transcript_in(self, into: Path) -> Path:
        return into / "projects" / self.project_key / f"{self.session_id}.jsonl"

    def agent_in(self, into: Path) -> Path:
        return into / "projects" / self.project_key / self.session_id / f"{AGENT}.jsonl"

    def stored_text(self) -> str:
        return "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in self.entries)

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("SESSION_STORE", "CLAUDE_"))}
        env["HOME"] = str(self.tmp / "home")
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
        return env

    def command(self, *args: str) -> list[str]:
        store = "sqlite:///" + str(self.db)
        return [sys.executable, "-m", "session_store", "--store", store, "--backend", self.backend, *args]

    def resume(
        self,
        into: str | Path,
        *extra: str,
        cwd: Path | None = None,
        umask: int | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = self.command("resume", self.session_id, "--into", str(into), "-d", str(self.workdir), *extra)
        if umask is not None:
            command = ["sh", "-c", f'umask {umask:o} && exec "$@"', "sh", *command]
        environment = self.env() | (env or {})
        return processes.run(command, env=environment, cwd=cwd or self.workdir, text=True, timeout=TIMEOUT_SECONDS)

    def seed(self, subkeys: dict[str, list[dict[str, Any]]]) -> None:
        async def append() -> None:
            store = SQLiteSessionStore(self.db)
            try:
                main: list[Any] = self.entries
                await store.append({"project_key": self.project_key, "session_id": self.session_id}, main)
                for subpath, entries in subkeys.items():
                    key = {"project_key": self.project_key, "session_id": self.session_id, "subpath": subpath}
                    await store.append(key, entries)  # type: ignore[arg-type]
            finally:
                await store.close()

        run_on(self.backend, append)


def make_setup(backend: str, tmp_path: Path, lines: int = 4, text_size: int = 20) -> Setup:
    workdir = tmp_path / "app"
    workdir.mkdir()
    (tmp_path / "home").mkdir()
    session_id = str(uuid.uuid4())
    entries = transcript(session_id, [f"message {n} " + "x" * text_size for n in range(lines)], str(workdir))
    setup = Setup(backend, tmp_path, tmp_path / "store" / "sessions.db", workdir, session_id, entries)
    agent = transcript(session_id, ["side quest", "found it"], str(workdir))
    setup.seed({AGENT: [{"type": "agent_metadata", "agentType": "Explore"}, *agent]})
    return setup


@pytest.fixture
def setup(backend: str, tmp_path: Path) -> Setup:
    return make_setup(backend, tmp_path)


def failure(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The single error line of a failed run (no traceback, no shutil.Error repr)."""
    assert result.returncode == status, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "shutil" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("session-store: error: ")
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str | None]]:
    """Every entry below (and including) ``root``, not following links: mode, mtime_ns, content or link target."""
    found: dict[str, tuple[int, int, bytes | str | None]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        content: bytes | str | None = None
        if stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        found[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, content)
    return found


# --- 1. symbolic links anywhere in DIR -------------------------------------------------------------------------

LINK_LEVELS = ["DIR", "projects", "project key", "session folder", "subagents", "transcript", "subagent file"]


@BACKEND_PARAMS
@pytest.mark.parametrize("level", LINK_LEVELS)
def test_a_link_at_any_level_of_dir_is_refused_named_and_nothing_outside_changes(
    backend: str, tmp_path: Path, level: str
) -> None:
    setup = make_setup(backend, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    victim = outside / "victim.jsonl"
    victim.write_text("not yours\n")
    victim.chmod(0o644)
    into = tmp_path / "into"
    transcript_path = setup.transcript_in(into)
    link = {
        "DIR": into,
        "projects": into / "projects",
        "project key": transcript_path.parent,
        "session folder": transcript_path.parent / setup.session_id,
        "subagents": transcript_path.parent / setup.session_id / "subagents",
        "transcript": transcript_path,
        "subagent file": setup.agent_in(into),
    }[level]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim if level in ("transcript", "subagent file") else outside)
    before_outside = snapshot(outside)
    before_tree = snapshot(into) if level != "DIR" else None

    line = failure(setup.resume(into))

    assert f"symbolic link {link} (-> " in line
    assert "--into" in line  # the fix
    assert snapshot(outside) == before_outside  # nothing written, chmod-ed or created out there
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    if before_tree is not None:
        assert snapshot(into) == before_tree  # and nothing written inside DIR either


@BACKEND_PARAMS
def test_a_fifo_or_a_file_where_a_folder_belongs_is_refused_without_hanging(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    into = tmp_path / "into"
    fifo = setup.transcript_in(into)
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    plain = tmp_path / "plain-file"
    plain.write_text("a file, not a folder\n")

    fifo_line = failure(setup.resume(into))
    file_line = failure(setup.resume(plain))

    assert f"{fifo} exists and is not a regular file" in fifo_line
    assert f"{plain} is not a folder" in file_line
    assert plain.read_text() == "a file, not a folder\n"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# --- 2. existing folders, --into '' ----------------------------------------------------------------------------


@BACKEND_PARAMS
def test_existing_folders_keep_their_mode_and_mtime_and_a_rerun_changes_nothing(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    into = tmp_path / "shared"
    (into / "projects").mkdir(parents=True)
    for folder in (into, into / "projects"):
        folder.chmod(0o1777)
        os.utime(folder, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    dir_before = into.lstat()

    ok(setup.resume(into))

    dir_after, projects_after = into.lstat(), (into / "projects").lstat()
    assert stat.S_IMODE(dir_after.st_mode) == 0o1777
    assert dir_after.st_mtime_ns == dir_before.st_mtime_ns  # nothing was added to DIR itself
    assert stat.S_IMODE(projects_after.st_mode) == 0o1777  # its mtime moves: the project folder was added to it
    assert setup.transcript_in(into).read_text() == setup.stored_text()
    tree = snapshot(into)

    again = ok(setup.resume(into))

    assert snapshot(into) == tree  # identical files: no rewrite, no folder re-stamped
    assert "already there, unchanged" in again


@BACKEND_PARAMS
def test_into_empty_is_a_usage_error_naming_the_fix_and_the_cwd_is_untouched(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir(mode=0o755)
    cwd.chmod(0o755)
    before = snapshot(cwd)

    line = failure(setup.resume("", cwd=cwd), status=2)

    assert "--into ''" in line and "--into ./resumed" in line
    assert snapshot(cwd) == before


# --- 3. an existing transcript that differs --------------------------------------------------------------------


@BACKEND_PARAMS
def test_a_different_transcript_is_refused_and_force_keeps_every_old_copy(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    into = tmp_path / "into"
    ok(setup.resume(into))
    transcript_path = setup.transcript_in(into)
    local = setup.stored_text() + '{"type":"user","uuid":"local-1"}\n{"type":"user","uuid":"local-2"}\n'
    transcript_path.write_text(local)
    older_backup = transcript_path.with_name(transcript_path.name + ".bak")
    older_backup.write_text("an older backup\n")
    tree = snapshot(into)

    line = failure(setup.resume(into))

    assert str(transcript_path) in line
    assert "2 line(s) only in this file" in line and "--force" in line
    assert snapshot(into) == tree  # refused before anything was written

    forced = ok(setup.resume(into, "--force"))

    assert transcript_path.read_text() == setup.stored_text()
    assert older_backup.read_text() == "an older backup\n"  # never overwritten
    new_backup = transcript_path.with_name(transcript_path.name + ".2.bak")
    assert new_backup.read_text() == local  # nothing the local copy had is lost
    assert new_backup.name in forced


@BACKEND_PARAMS
def test_a_transcript_with_the_same_lines_written_differently_is_left_alone(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    setup.entries.append({"type": "user", "uuid": str(uuid.uuid4()), "message": {"role": "user", "content": "héllo ✓"}})
    setup.seed({})
    into = tmp_path / "into"
    ok(setup.resume(into))
    transcript_path = setup.transcript_in(into)
    # what the Claude CLI writes: raw UTF-8, its own key spacing
    transcript_path.write_text("".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in setup.entries))
    before = snapshot(into)

    ok(setup.resume(into))

    assert snapshot(into) == before


# --- 4. the printed command works from anywhere ----------------------------------------------------------------


@BACKEND_PARAMS
def test_the_printed_command_works_from_another_directory_after_a_relative_into(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_claude = bin_dir / "claude"
    fake_claude.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$PWD" "$CLAUDE_CONFIG_DIR" "$*"\n'
        '[ -f "$CLAUDE_CONFIG_DIR/projects/$EXPECTED_KEY/$2.jsonl" ] || { echo missing >&2; exit 7; }\n'
    )
    fake_claude.chmod(0o755)

    report = json.loads(ok(setup.resume("relative/cfg", "--json")))

    command = report["command"]
    assert "relative/cfg" not in command.replace(str(setup.workdir / "relative" / "cfg"), "")
    env = setup.env() | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "EXPECTED_KEY": setup.project_key}
    ran = processes.run(["sh", "-c", command], env=env, cwd=elsewhere, text=True, timeout=TIMEOUT_SECONDS)
    assert ran.returncode == 0, ran.stderr
    pwd, config_dir, arguments = ran.stdout.splitlines()
    assert Path(config_dir).is_absolute()
    assert Path(config_dir) == setup.workdir / "relative" / "cfg"
    assert project_key_for_directory(pwd) == setup.project_key
    assert arguments == f"--resume {setup.session_id}"
    assert shlex.split(command)  # one valid shell word list


# --- 5. modes from creation, and a full disk -------------------------------------------------------------------


@BACKEND_PARAMS
def test_under_umask_0_no_file_or_folder_is_ever_seen_with_a_wider_mode(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path, lines=3000, text_size=300)
    into = tmp_path / "into"
    seen: set[tuple[str, int]] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for directory, folders, files in os.walk(into):
                for name in [directory, *(os.path.join(directory, name) for name in folders + files)]:
                    with contextlib.suppress(FileNotFoundError):  # a temp file renamed away meanwhile
                        mode = os.lstat(name).st_mode
                        seen.add(("dir" if stat.S_ISDIR(mode) else "file", stat.S_IMODE(mode)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ok(setup.resume(into, umask=0))
    finally:
        done.set()
        watcher.join()

    assert seen <= {("dir", 0o700), ("file", 0o600)}, seen
    assert ("file", 0o600) in seen  # the watcher did see the tree
    modes = {stat.S_IMODE(path.lstat().st_mode) for path in [into, *into.rglob("*")] if path.is_dir()}
    assert modes == {0o700}
    assert {stat.S_IMODE(path.lstat().st_mode) for path in into.rglob("*") if path.is_file()} == {0o600}


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 64k tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@BACKEND_PARAMS
def test_a_full_disk_is_one_line_naming_the_path_and_the_space_needed_and_leaves_nothing(
    backend: str, tmp_path: Path, small_tmpfs: Path
) -> None:
    setup = make_setup(backend, tmp_path, lines=600, text_size=400)
    into = small_tmpfs / "cfg"

    line = failure(setup.resume(into))

    assert "no space left" in line
    assert str(setup.transcript_in(into)) in line
    needed = re.search(r"needs ([\d,]+) bytes, ([\d,]+) bytes are free", line)
    assert needed is not None, line
    assert int(needed[1].replace(",", "")) > len(setup.stored_text().encode()) > int(needed[2].replace(",", ""))
    assert list(small_tmpfs.iterdir()) == []  # no partial file, no temp file, no folder left


@BACKEND_PARAMS
def test_a_full_disk_during_force_keeps_the_old_transcript_and_makes_no_backup(
    backend: str, tmp_path: Path, small_tmpfs: Path
) -> None:
    setup = make_setup(backend, tmp_path, lines=600, text_size=400)
    into = small_tmpfs / "cfg"
    old = setup.transcript_in(into)
    old.parent.mkdir(parents=True)
    old.write_text('{"type":"user","uuid":"only-here"}\n')
    before = snapshot(small_tmpfs)

    line = failure(setup.resume(into, "--force"))

    assert "no space left" in line
    after = snapshot(small_tmpfs)
    assert after.keys() == before.keys()  # no backup, no temp file, no new folder
    for name, (mode, mtime_ns, content) in after.items():  # a folder's mtime moved: a temp file came and went
        assert (mode, content) == before[name][::2] and (stat.S_ISDIR(mode) or mtime_ns == before[name][1])


@BACKEND_PARAMS
def test_a_full_temp_folder_is_one_line_naming_tmpdir_and_dir_stays_untouched(
    backend: str, tmp_path: Path, small_tmpfs: Path
) -> None:
    setup = make_setup(backend, tmp_path, lines=600, text_size=400)
    into = tmp_path / "into"

    line = failure(setup.resume(into, env={"TMPDIR": str(small_tmpfs)}))

    assert str(small_tmpfs) in line and "point TMPDIR at a folder with space" in line
    assert not into.exists()
    assert list(small_tmpfs.iterdir()) == []  # the library removed its temp dir


# --- left out: reported without --verbose, exit status 3 ---------------------------------------------------------


@BACKEND_PARAMS
def test_subagent_transcripts_left_out_are_named_on_stderr_and_exit_3(backend: str, tmp_path: Path) -> None:
    setup = make_setup(backend, tmp_path)
    too_long = "subagents/agent-" + "z" * 300
    setup.seed(
        {
            "../escape": transcript(setup.session_id, ["evil"], "/"),
            too_long: transcript(setup.session_id, ["long"], "/"),
        }
    )
    into = tmp_path / "into"

    result = setup.resume(into)

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "left out" in line]
    assert any("'../escape'" in line for line in warnings), result.stderr
    assert any("z" * 300 in line for line in warnings), result.stderr
    assert "incomplete" in result.stderr and "exit status 3" in result.stderr
    assert "left out (the resumed session is incomplete):" in result.stdout
    assert setup.transcript_in(into).read_text() == setup.stored_text()  # the rest is written
    assert setup.agent_in(into).is_file()
    assert not (into / "projects" / setup.project_key / "escape.jsonl").exists()

    report = json.loads(setup.resume(tmp_path / "again", "--json").stdout)
    assert report["complete"] is False and len(report["left_out"]) == 2


def test_help_names_the_exit_statuses_and_force(tmp_path: Path) -> None:
    result = processes.run(
        [sys.executable, "-m", "session_store", "resume", "--help"],
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    text = " ".join(result.stdout.split())
    assert "3 written but incomplete" in text and "--force" in text and "NAME.bak" in text
