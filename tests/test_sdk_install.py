"""session_store.sdk.install(), installed(), uninstall() and the SESSION_STORE_SDK_INSTALL=1 opt-in (.pth hook).

Against the real claude-agent-sdk (skipped when it is not installed). ``tests/test_sdk_e2e.py`` drives the SDK's
``query()`` and ``ClaudeSDKClient`` with install() in force; this file checks the rebinding itself: what it
points at the port, what stays the SDK's, that uninstall() restores every name exactly, the version check,
idempotence under concurrent calls, the SDK imported before or after, and the environment-variable opt-in
through the same ``.pth`` line the wheel installs.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import compat
import session_store
import session_store.sdk as port
from session_store.sdk import installer

sdk = pytest.importorskip("claude_agent_sdk")
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, SystemMessage, query  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLI = Path(__file__).with_name("fake_claude_cli.py")


def snapshot() -> dict[tuple[str, str], object]:
    """Every attribute of every loaded SDK module, by (module, name)."""
    return {
        (name, attribute): value
        for name, module in list(sys.modules.items())
        if name == "claude_agent_sdk" or name.startswith("claude_agent_sdk.")
        for attribute, value in list(vars(module).items())
    }


def changed(before: dict[tuple[str, str], object]) -> list[tuple[str, str]]:
    after = snapshot()
    return sorted(key for key in before.keys() | after.keys() if before.get(key) is not after.get(key, None))


@pytest.fixture
def clean() -> Iterator[dict[tuple[str, str], object]]:
    """Not installed before; uninstalled after, and then every SDK name is what it was."""
    assert not port.installed()
    before = snapshot()
    try:
        yield before
    finally:
        port.uninstall()
        assert changed(before) == []


def test_install_points_the_sdk_session_store_path_at_the_port(clean: dict[tuple[str, str], object]) -> None:
    from claude_agent_sdk._internal import client, session_resume, sessions, transcript_mirror_batcher
    from claude_agent_sdk._internal import session_store as sdk_session_store

    port.install()
    assert port.installed()
    assert session_resume.materialize_resume_session is port.materialize_resume_session
    assert client.materialize_resume_session is port.materialize_resume_session  # imported by name
    assert client.build_mirror_batcher is port.build_mirror_batcher
    assert client.validate_session_store_options is port.validate_session_store_options
    assert transcript_mirror_batcher.TranscriptMirrorBatcher is session_store.TranscriptMirrorBatcher
    assert sdk_session_store.InMemorySessionStore is session_store.InMemorySessionStore
    assert sessions._store_implements is session_store.store_implements  # the SDK's disk readers call ours
    for name in ("InMemorySessionStore", "list_sessions_from_store", "fork_session_via_store", "SDKSessionInfo"):
        assert getattr(sdk, name) is getattr(port, name), name
    # what stays the SDK's: the message its parser builds, its task layer, its conformance harness
    assert sdk.MirrorErrorMessage is sdk.types.MirrorErrorMessage
    assert issubclass(sdk.types.MirrorErrorMessage, SystemMessage)
    assert sdk.types.MirrorErrorMessage.__module__ == "claude_agent_sdk.types"
    assert sdk._internal._task_compat.spawn_detached.__module__ == "claude_agent_sdk._internal._task_compat"
    assert sorted({name for name, _ in changed(clean)}) == [
        "claude_agent_sdk",
        "claude_agent_sdk._internal.client",
        "claude_agent_sdk._internal.session_import",
        "claude_agent_sdk._internal.session_mutations",
        "claude_agent_sdk._internal.session_resume",
        "claude_agent_sdk._internal.session_store",
        "claude_agent_sdk._internal.session_store_validation",
        "claude_agent_sdk._internal.session_summary",
        "claude_agent_sdk._internal.sessions",
        "claude_agent_sdk._internal.transcript_mirror_batcher",
        "claude_agent_sdk.types",
    ]


def test_install_is_idempotent_and_uninstall_restores_exactly(clean: dict[tuple[str, str], object]) -> None:
    port.install()
    first = changed(clean)
    port.install()
    assert changed(clean) == first and first
    port.uninstall()
    assert not port.installed()
    assert changed(clean) == []
    port.uninstall()  # a second uninstall does nothing
    port.install()
    assert changed(clean) == first


def test_concurrent_installs_install_once(clean: dict[tuple[str, str], object]) -> None:
    port.install()
    expected = changed(clean)
    port.uninstall()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            port.install()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert changed(clean) == expected
    state = installer._state
    assert state is not None
    assert len(state.replaced) == len({(module.__name__, name) for module, name, _ in state.replaced})


@pytest.mark.parametrize("version", ["0.2.94", "0.2.191", "1.0.0", "0.2", None])
def test_a_version_outside_the_tested_range_is_refused(
    version: str | None, clean: dict[tuple[str, str], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk, "__version__", version)
    oldest, newest = port.TESTED_SDK_VERSIONS
    with pytest.raises(port.UnsupportedSDKVersionError) as raised:
        port.install()
    message = str(raised.value)
    assert repr(version) in message and f"({oldest} to {newest})" in message
    assert "\n" not in message
    assert not port.installed()
    monkeypatch.undo()
    assert changed(clean) == []


def test_the_tested_range_includes_the_installed_sdk() -> None:
    oldest, newest = port.TESTED_SDK_VERSIONS
    parse = installer._parse_version
    assert parse(oldest) <= parse(sdk.__version__) <= parse(newest)  # type: ignore[operator]


def run_python(code: str) -> str:
    environment = {key: value for key, value in os.environ.items() if key != "SESSION_STORE_SDK_INSTALL"}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_install_before_the_sdk_was_imported() -> None:
    output = run_python(
        """
        import sys
        import session_store.sdk as port
        assert "claude_agent_sdk" not in sys.modules
        port.install()
        from claude_agent_sdk._internal import client
        import claude_agent_sdk
        print(client.build_mirror_batcher is port.build_mirror_batcher,
              claude_agent_sdk.InMemorySessionStore is port.InMemorySessionStore, port.installed())
        """
    )
    assert output == "True True True"


HOOK_PROBE = """
    import site, sys
    site.addsitedir({site_dir!r})  # what Python's site does for site-packages at start-up: runs the .pth line
    print("loaded:", sorted(name for name in ("session_store", "session_store_sdk_hook", "claude_agent_sdk")
                            if name in sys.modules))
    import claude_agent_sdk
    import session_store.sdk as port
    print("installed:", port.installed(), claude_agent_sdk.InMemorySessionStore.__module__)
"""


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A site directory holding the repository's ``session_store_sdk.pth``, as the wheel installs it."""
    (tmp_path / "session_store_sdk.pth").write_bytes((ROOT / "session_store_sdk.pth").read_bytes())
    return tmp_path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["loaded: []", "installed: False claude_agent_sdk._internal.session_store"]),
        ("0", ["loaded: []", "installed: False claude_agent_sdk._internal.session_store"]),
        ("1", ["loaded: ['session_store_sdk_hook']", "installed: True session_store.memory"]),
    ],
    ids=["unset", "zero", "one"],
)
def test_the_environment_variable_opts_in_when_the_sdk_is_imported(
    site_dir: Path, value: str | None, expected: list[str]
) -> None:
    env = {} if value is None else {"SESSION_STORE_SDK_INSTALL": value}
    environment = {key: val for key, val in os.environ.items() if key != "SESSION_STORE_SDK_INSTALL"}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HOOK_PROBE.format(site_dir=str(site_dir)))],
        env={**environment, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == expected
    assert completed.stderr == ""


def test_the_opt_in_refuses_an_untested_sdk_at_import(site_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake-sdk" / "claude_agent_sdk"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "9.9.9"\n', encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-c", f"import site; site.addsitedir({str(site_dir)!r}); import claude_agent_sdk"],
        env={**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}", "SESSION_STORE_SDK_INSTALL": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: SESSION_STORE_SDK_INSTALL=1: session_store.sdk.install(): claude-agent-sdk")
    assert "'9.9.9'" in last and "unset SESSION_STORE_SDK_INSTALL" in last


# --- a dropped mirror batch arrives as the SDK's own SystemMessage ------------------------------------------


class FailingStore:
    """Every append fails; reads find nothing."""

    async def append(self, key: Any, entries: list[Any]) -> None:
        raise OSError("the disk is full")

    async def load(self, key: Any) -> None:
        return None


async def test_a_dropped_batch_is_the_sdks_mirror_error_message(
    clean: dict[tuple[str, str], object], tmp_path: Path
) -> None:
    port.install()
    cli = tmp_path / "claude"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" "$@"\n', encoding="utf-8")
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "config").mkdir()
    options = ClaudeAgentOptions(
        cli_path=str(cli),
        cwd=str(tmp_path),
        session_store=FailingStore(),  # type: ignore[arg-type]  # append and load are all the mirror needs
        env={"CLAUDE_CONFIG_DIR": str(tmp_path / "config"), "FAKE_CLAUDE_LINES": "2"},
    )
    errors = []
    result = None
    async for message in query(prompt="hello", options=options):
        if isinstance(message, sdk.MirrorErrorMessage):
            errors.append(message)
        elif isinstance(message, ResultMessage):
            result = message
    assert result is not None
    assert errors and all(isinstance(error, SystemMessage) for error in errors)
    assert {type(error) for error in errors} == {sdk.types.MirrorErrorMessage}
    assert all("the disk is full" in error.error and error.subtype == "mirror_error" for error in errors)
    assert {error.key["session_id"] for error in errors if error.key} == {result.session_id}


# --- what the port answers that the stock SDK has not shipped, side by side with the SDK's own code -----------
# Each test runs the SDK's function (install() not in force) and this project's on the same input; the README's
# section "For users of the Claude Agent SDK" cites them by issue number.

SESSION = "123e4567-e89b-12d3-a456-426614174000"


async def test_issue_1168_store_keys_do_not_alias(clean: dict[tuple[str, str], object]) -> None:
    from claude_agent_sdk._internal.session_store import InMemorySessionStore as SDKStore

    written: dict[str, Any] = {"project_key": "a/b", "session_id": "c"}
    other: dict[str, Any] = {"project_key": "a", "session_id": "b/c"}
    entry = {"type": "user", "uuid": SESSION}
    theirs, ours = SDKStore(), session_store.InMemorySessionStore()
    await theirs.append(written, [entry])  # type: ignore[arg-type]
    await ours.append(written, [entry])  # type: ignore[arg-type]
    assert await theirs.load(other) == [entry]  # type: ignore[arg-type]  # the SDK: another key reads it
    assert await ours.load(other) is None  # type: ignore[arg-type]


async def test_issue_1216_append_is_idempotent_by_uuid(clean: dict[tuple[str, str], object]) -> None:
    from claude_agent_sdk._internal.session_store import InMemorySessionStore as SDKStore

    key: Any = {"project_key": "p", "session_id": SESSION}
    entry = {"type": "user", "uuid": SESSION}
    theirs, ours = SDKStore(), session_store.InMemorySessionStore()
    for store in (theirs, ours):
        await store.append(key, [entry])
        await store.append(key, [entry])  # a retried batch
    assert await theirs.load(key) == [entry, entry]
    assert await ours.load(key) == [entry]


async def test_issue_1177_invalid_session_ids_are_dropped_before_paging(
    clean: dict[tuple[str, str], object], tmp_path: Path
) -> None:
    from claude_agent_sdk._internal.sessions import list_sessions_from_store as sdk_list

    from session_store.keys import project_key_for_directory

    store = session_store.InMemorySessionStore()
    project = project_key_for_directory(str(tmp_path))
    line = {"type": "user", "message": {"role": "user", "content": "hi"}, "timestamp": "2026-01-01T00:00:00Z"}
    await store.append({"project_key": project, "session_id": SESSION}, [{**line, "uuid": SESSION}])
    await store.append({"project_key": project, "session_id": "../not-a-uuid"}, [{**line, "uuid": "u"}])
    theirs = await sdk_list(store, directory=str(tmp_path), limit=1)  # type: ignore[arg-type]
    ours = await session_store.list_sessions_from_store(store, directory=str(tmp_path), limit=1)
    assert [row.session_id for row in theirs] == ["../not-a-uuid"]  # the newest row, an id no reader accepts
    assert [row.session_id for row in ours] == [SESSION]


async def test_issue_1093_import_tolerates_a_corrupt_line_when_asked(
    clean: dict[tuple[str, str], object], tmp_path: Path
) -> None:
    from claude_agent_sdk._internal.session_import import import_session_to_store as sdk_import

    from session_store.keys import project_key_for_directory

    projects = tmp_path / "config" / "projects"
    folder = projects / project_key_for_directory(str(tmp_path / "work"))
    folder.mkdir(parents=True)
    good = {"type": "user", "uuid": SESSION, "message": {"role": "user", "content": "kept"}}
    (folder / f"{SESSION}.jsonl").write_text(json.dumps(good) + '\n{"truncated\n', encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "config"))
        with pytest.raises(json.JSONDecodeError):  # the SDK: the whole import fails, naming neither file nor line
            await sdk_import(SESSION, sdk.InMemorySessionStore())
    store = session_store.InMemorySessionStore()
    with pytest.raises(ValueError, match=rf"{SESSION}\.jsonl:2: invalid transcript line"):
        await session_store.import_session_to_store(SESSION, store, projects_dir=projects)
    result = await session_store.import_session_to_store(SESSION, store, projects_dir=projects, skip_invalid_lines=True)
    assert len(result.skipped_lines) == 1
    assert await store.load({"project_key": result.project_key, "session_id": SESSION}) == [good]


def test_issue_1215_store_methods_are_detected_on_the_instance(clean: dict[tuple[str, str], object]) -> None:
    from claude_agent_sdk._internal.session_store_validation import _store_implements as sdk_implements

    class Assembled(sdk.SessionStore):  # type: ignore[misc]  # the SDK's protocol, methods added at runtime
        async def append(self, key: Any, entries: list[Any]) -> None: ...

        async def load(self, key: Any) -> None: ...

    store = Assembled()

    async def list_sessions(project_key: str) -> list[Any]:
        return []

    store.list_sessions = list_sessions  # type: ignore[method-assign]
    assert not sdk_implements(store, "list_sessions")
    assert session_store.store_implements(store, "list_sessions")


def test_issue_1187_a_session_id_with_a_trailing_newline_is_not_a_uuid(clean: dict[tuple[str, str], object]) -> None:
    from claude_agent_sdk._internal.sessions import _validate_uuid as sdk_validate

    from session_store.keys import validate_uuid

    assert sdk_validate(SESSION + "\n") == SESSION + "\n"
    assert validate_uuid(SESSION + "\n") is None


def test_the_nox_sessions_run_the_tested_versions() -> None:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    [versions] = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SDK_VERSIONS" for t in node.targets)
    ]
    assert tuple(versions) == port.TESTED_SDK_VERSIONS


class GatedStore:
    """``append`` waits until the gate opens (a store that stopped answering), then keeps the entries."""

    def __init__(self) -> None:
        self.entries: list[Any] = []
        self.gate: compat.Event | None = compat.Event()

    async def append(self, key: Any, entries: list[Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.entries.extend(entries)

    async def load(self, key: Any) -> None:
        return None


@pytest.mark.parametrize("batcher", ["sdk", "port"])
async def test_a_cancelled_flush_keeps_its_frames(clean: dict[tuple[str, str], object], batcher: str) -> None:
    from claude_agent_sdk._internal.transcript_mirror_batcher import TranscriptMirrorBatcher as SDKBatcher

    store = GatedStore()
    errors: list[str] = []

    async def on_error(key: Any, message: str) -> None:
        errors.append(message)

    kind = SDKBatcher if batcher == "sdk" else session_store.TranscriptMirrorBatcher
    mirror = kind(store=store, projects_dir="/p", on_error=on_error)  # type: ignore[arg-type]
    for index in range(10):
        mirror.enqueue(f"/p/project/{SESSION}.jsonl", [{"type": "user", "uuid": f"entry-{index}"}])
    with compat.move_on_after(0.05) as scope:
        await mirror.flush()  # the store hangs: the caller gives up (a cancelled query, a timeout)
    assert scope.cancelled_caught
    store.gate = None  # the store answers again
    await mirror.close()
    if batcher == "sdk":
        assert (len(store.entries), errors) == (0, [])  # the SDK: all 10 frames lost, and nothing reported
    else:
        assert [entry["uuid"] for entry in store.entries] == [f"entry-{index}" for index in range(10)]
        assert errors == []
