"""session_store.sdk: the SDK's call shapes, its credential and settings seeding, and its names (SPEC §4).

The options objects here are plain dataclasses and namespaces, never the SDK's: the layer reads options by
attribute and does not depend on the SDK. Store-backed tests run on the in-memory and the SQLite store; every
async test runs under asyncio and trio. ``nox -s downstream_sdk`` runs the SDK's own tests on this layer.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import pytest
from temp_dirs import leftovers
from transcript_factories import conversation, key_for, new_id, seed

import session_store
import session_store.sdk as sdk
from session_store.adapters.sqlite import SQLiteSessionStore
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.resume import remove_tree, with_timeout
from session_store.sdk import session_resume
from session_store.sdk import sessions as sdk_sessions
from session_store.sdk import testing as sdk_testing
from session_store.transcript import build_conversation_chain
from session_store.types import MirrorError, SessionKey, SessionStore, SessionStoreEntry, store_implements

PROJECT_DIR = "/work/sdk-project"
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes and FIFOs")


@dataclass
class Options:
    """The option fields the SDK's session-store path reads, with the SDK's defaults (not the SDK's class)."""

    session_store: Any = None
    resume: str | None = None
    continue_conversation: bool = False
    cwd: str | None = PROJECT_DIR
    env: dict[str, str] = field(default_factory=dict)
    load_timeout_ms: int = 60_000
    enable_file_checkpointing: bool = False
    session_store_flush: str = "batched"


StoreFactory = Callable[[], "InMemorySessionStore | SQLiteSessionStore"]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A fresh in-memory or SQLite store; use it as ``async with make_store() as store:``."""
    if request.param == "memory":
        return InMemorySessionStore
    return lambda: SQLiteSessionStore(tmp_path / "sessions.db")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home directory with no Claude config, no auth variables, and no Keychain."""
    fake_home = tmp_path / "home"
    (fake_home / ".claude").mkdir(parents=True)
    monkeypatch.setattr(Path, "home", staticmethod(lambda: fake_home))
    for name in ("CLAUDE_CONFIG_DIR", "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(session_resume, "_read_keychain_credentials", lambda: None)
    return fake_home


async def stored_session(store: SessionStore, *prompts: str) -> str:
    session_id = new_id()
    await seed(store, PROJECT_DIR, session_id, conversation(*prompts, session_id=session_id))
    return session_id


async def materialize_ok(options: object, **kwargs: Any) -> sdk.MaterializedResume:
    materialized = await sdk.materialize_resume_session(options, **kwargs)
    assert materialized is not None
    return materialized


def credentials(refresh_token: str = "refresh-secret") -> str:
    return json.dumps({"claudeAiOauth": {"accessToken": "access", "refreshToken": refresh_token}})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- materialize_resume_session(options) ---------------------------------------------------------------------


async def test_materialize_reads_the_sdk_options_by_attribute(
    make_store: StoreFactory, temp_root: Path, home: Path
) -> None:
    async with make_store() as store:
        session_id = await stored_session(store, "hello", "again")
        materialized = await materialize_ok(Options(session_store=store, resume=session_id))
        transcript = materialized.projects_dir / project_key_for_directory(PROJECT_DIR) / f"{session_id}.jsonl"
        loaded = await store.load(key_for(PROJECT_DIR, session_id))
        assert [json.loads(line) for line in transcript.read_text().splitlines()] == loaded
        assert materialized.resume_session_id == session_id
        await materialized.cleanup()
        assert leftovers(temp_root) == []


async def test_an_options_object_with_only_some_fields_gets_the_sdk_defaults(
    make_store: StoreFactory, temp_root: Path, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with make_store() as store:
        monkeypatch.chdir(tmp_path)
        session_id = new_id()
        await seed(store, tmp_path, session_id, conversation("in the cwd", session_id=session_id))
        materialized = await materialize_ok(SimpleNamespace(session_store=store, resume=session_id))
        assert (materialized.projects_dir / project_key_for_directory(tmp_path) / f"{session_id}.jsonl").is_file()
        await materialized.cleanup()


async def test_continue_conversation_in_the_options_picks_the_newest_session(
    make_store: StoreFactory, temp_root: Path, home: Path
) -> None:
    async with make_store() as store:
        await stored_session(store, "older")
        newest = await stored_session(store, "newer")
        materialized = await materialize_ok(Options(session_store=store, continue_conversation=True))
        assert materialized.resume_session_id == newest
        await materialized.cleanup()


@pytest.mark.parametrize(
    "options",
    [
        Options(session_store=None, resume=new_id()),
        Options(session_store=InMemorySessionStore()),
        Options(session_store=InMemorySessionStore(), resume="../../etc/passwd"),
        Options(session_store=InMemorySessionStore(), resume=new_id()),
    ],
    ids=["no-store", "neither-resume-nor-continue", "non-uuid-resume", "unknown-session"],
)
async def test_materialize_returns_none_when_there_is_nothing_to_resume(
    options: Options, temp_root: Path, home: Path
) -> None:
    assert await sdk.materialize_resume_session(options) is None
    assert leftovers(temp_root) == []


async def test_load_timeout_ms_zero_times_out_without_calling_the_store(temp_root: Path, home: Path) -> None:
    class NeverCalled(InMemorySessionStore):
        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            raise AssertionError("SPEC §4 decision 3: the store must not be called")

    options = Options(session_store=NeverCalled(), resume=new_id(), load_timeout_ms=0)
    with pytest.raises(RuntimeError, match="timed out after 0ms"):
        await sdk.materialize_resume_session(options)
    assert leftovers(temp_root) == []


# --- the SDK's credential and settings seeding, the default seed_config_dir ------------------------------------


@POSIX_ONLY
async def test_default_seeding_copies_credentials_without_refresh_token_and_claude_json(
    temp_root: Path, home: Path
) -> None:
    (home / ".claude" / ".credentials.json").write_text(credentials())
    (home / ".claude.json").write_bytes(b'{"userID": "u-1",  "spacing": "kept"}')
    store = InMemorySessionStore()
    materialized = await materialize_ok(Options(session_store=store, resume=await stored_session(store, "hi")))
    copied = json.loads((materialized.config_dir / ".credentials.json").read_text())
    assert copied == {"claudeAiOauth": {"accessToken": "access"}}
    assert (materialized.config_dir / ".claude.json").read_bytes() == b'{"userID": "u-1",  "spacing": "kept"}'
    assert mode(materialized.config_dir) == 0o700
    assert {mode(materialized.config_dir / name) for name in (".credentials.json", ".claude.json")} == {0o600}
    await materialized.cleanup()


async def test_the_config_dir_in_options_env_wins_over_home(temp_root: Path, home: Path, tmp_path: Path) -> None:
    (home / ".claude" / ".credentials.json").write_text(credentials("from-home"))
    (home / ".claude.json").write_text('{"from": "home"}')
    config = tmp_path / "custom-config"
    config.mkdir()
    (config / ".credentials.json").write_text(json.dumps({"claudeAiOauth": {"accessToken": "custom"}}))
    (config / ".claude.json").write_text('{"from": "custom"}')
    (config / "settings.json").write_text('{"theme": "dark"}')
    store = InMemorySessionStore()
    options = Options(session_store=store, resume=await stored_session(store, "hi"))
    options.env = {"CLAUDE_CONFIG_DIR": str(config)}
    materialized = await materialize_ok(options)
    seeded = materialized.config_dir
    assert json.loads((seeded / ".credentials.json").read_text()) == {"claudeAiOauth": {"accessToken": "custom"}}
    assert (seeded / ".claude.json").read_text() == '{"from": "custom"}'
    assert (seeded / "settings.json").read_text() == '{"theme": "dark"}'
    await materialized.cleanup()


async def test_the_keychain_replaces_file_credentials_only_without_env_auth(
    temp_root: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".claude" / ".credentials.json").write_text(credentials("from-file"))
    monkeypatch.setattr(session_resume, "_read_keychain_credentials", lambda: credentials("from-keychain"))
    store = InMemorySessionStore()
    session_id = await stored_session(store, "hi")

    from_keychain = await materialize_ok(Options(session_store=store, resume=session_id))
    assert "refreshToken" not in (from_keychain.config_dir / ".credentials.json").read_text()
    await from_keychain.cleanup()

    calls: list[str] = []
    monkeypatch.setattr(session_resume, "_read_keychain_credentials", lambda: calls.append("read") or None)
    with_api_key = await materialize_ok(
        Options(session_store=store, resume=session_id, env={"ANTHROPIC_API_KEY": "sk-test"})
    )
    assert calls == []
    assert json.loads((with_api_key.config_dir / ".credentials.json").read_text()) == {
        "claudeAiOauth": {"accessToken": "access"}
    }
    await with_api_key.cleanup()


def test_the_keychain_is_read_only_on_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_resume.platform, "system", lambda: "Linux")
    assert session_resume._read_keychain_credentials() is None


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (
            b'{"enabledPlugins": {"p": true}, "extraKnownMarketplaces": {}, "env": {"CLAUDE_CONFIG_DIR": "/x", "K": "v"}, "theme": "dark"}',
            b'{"env":{"K":"v"},"theme":"dark"}',
        ),
        (b'\xef\xbb\xbf{"enabledPlugins": [], "apiKeyHelper": "h"}', b'{"apiKeyHelper":"h"}'),
        (b'{"theme":  "dark"}', b'{"theme":  "dark"}'),
        (b"not json {", b"not json {"),
        (b"[1, 2]", b"[1, 2]"),
        (b'{"env": "not an object", "theme": 1}', b'{"env": "not an object", "theme": 1}'),
        (b'{"enabledPlugins": {}, "big": 1e999}', b'{"enabledPlugins": {}, "big": 1e999}'),
        (b'\xff\xfe{"enabledPlugins": {}}', b'\xff\xfe{"enabledPlugins": {}}'),
    ],
    ids=["stripped", "bom", "nothing-to-strip", "malformed", "not-an-object", "env-not-an-object", "inf", "not-utf8"],
)
def test_settings_lose_plugin_keys_or_are_kept_byte_for_byte(original: bytes, expected: bytes) -> None:
    assert session_resume._strip_settings_for_resume(original) == expected


@POSIX_ONLY
async def test_settings_are_copied_stripped_with_mode_0o600(temp_root: Path, home: Path) -> None:
    (home / ".claude" / "settings.json").write_bytes(b'{"enabledPlugins": {"p": true}, "apiKeyHelper": "h"}')
    (home / ".claude" / "cowork_settings.json").write_bytes(b'{"theme": "light"}')
    store = InMemorySessionStore()
    materialized = await materialize_ok(Options(session_store=store, resume=await stored_session(store, "hi")))
    assert (materialized.config_dir / "settings.json").read_bytes() == b'{"apiKeyHelper":"h"}'
    assert (materialized.config_dir / "cowork_settings.json").read_bytes() == b'{"theme": "light"}'
    assert mode(materialized.config_dir / "settings.json") == 0o600
    assert not (materialized.config_dir / ".credentials.json").exists()  # none to copy
    await materialized.cleanup()


@POSIX_ONLY
async def test_a_fifo_or_a_directory_in_place_of_a_seed_file_is_skipped(
    temp_root: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(home / ".claude" / "settings.json")  # opening it would block forever
    (home / ".claude" / ".credentials.json").mkdir()
    store = InMemorySessionStore()
    session_id = await stored_session(store, "hi")
    materialized = await materialize_ok(Options(session_store=store, resume=session_id))
    assert sorted(path.name for path in materialized.config_dir.iterdir()) == ["projects"]
    assert (materialized.projects_dir / project_key_for_directory(PROJECT_DIR) / f"{session_id}.jsonl").is_file()
    assert sum("skipping" in record.getMessage() for record in caplog.records) == 2
    await materialized.cleanup()


async def test_seed_config_dir_none_seeds_nothing_and_a_callable_replaces_the_default(
    temp_root: Path, home: Path
) -> None:
    (home / ".claude.json").write_text("{}")
    store = InMemorySessionStore()
    session_id = await stored_session(store, "hi")
    plain = await materialize_ok(Options(session_store=store, resume=session_id), seed_config_dir=None)
    assert not (plain.config_dir / ".claude.json").exists()
    await plain.cleanup()

    seen: list[Path] = []
    custom = await materialize_ok(Options(session_store=store, resume=session_id), seed_config_dir=seen.append)
    assert seen == [custom.config_dir]
    assert not (custom.config_dir / ".claude.json").exists()
    await custom.cleanup()


async def test_an_unknown_seed_config_dir_value_is_rejected(temp_root: Path) -> None:
    options = Options(session_store=InMemorySessionStore(), resume=new_id())
    with pytest.raises(ValueError, match="seed_config_dir must be 'claude', a callable"):
        await sdk.materialize_resume_session(options, seed_config_dir="cli")  # type: ignore[arg-type]  # the error is the point


# --- build_mirror_batcher(store, materialized, env, ...) and apply_materialized_options ------------------------


async def test_the_batcher_maps_frames_from_the_materialized_dir(
    make_store: StoreFactory, temp_root: Path, home: Path
) -> None:
    async with make_store() as store:
        session_id = await stored_session(store, "hi")
        materialized = await materialize_ok(Options(session_store=store, resume=session_id))
        errors: list[tuple[SessionKey | None, str]] = []
        batcher = sdk.build_mirror_batcher(store, materialized, {}, lambda key, message: errors.append((key, message)))
        project_key = project_key_for_directory(PROJECT_DIR)
        late: SessionStoreEntry = {"type": "user", "uuid": new_id()}
        batcher.enqueue(str(materialized.projects_dir / project_key / f"{session_id}.jsonl"), [late])
        await batcher.close()
        assert errors == []
        loaded = await store.load(key_for(PROJECT_DIR, session_id))
        assert loaded is not None and loaded[-1] == late
        await materialized.cleanup()


def test_without_materialization_the_batcher_uses_the_env_config_dir(home: Path, tmp_path: Path) -> None:
    on_error = print
    from_env = sdk.build_mirror_batcher(InMemorySessionStore(), None, {"CLAUDE_CONFIG_DIR": str(tmp_path)}, on_error)
    assert from_env.projects_dir == str(tmp_path / "projects")
    from_home = sdk.build_mirror_batcher(InMemorySessionStore(), None, None, on_error)
    assert from_home.projects_dir == str(home / ".claude" / "projects")
    eager = sdk.build_mirror_batcher(InMemorySessionStore(), None, None, on_error, "eager")
    assert (eager.max_pending_entries, eager.max_pending_bytes) == (0, 0)
    batched = sdk.build_mirror_batcher(InMemorySessionStore(), None, None, on_error)
    assert (batched.max_pending_entries, batched.max_pending_bytes) == (sdk.MAX_PENDING_ENTRIES, sdk.MAX_PENDING_BYTES)


def test_apply_materialized_options_returns_a_repointed_copy() -> None:
    async def cleanup() -> None:
        return None

    materialized = sdk.MaterializedResume(Path("/tmp/claude-resume-x"), "sid-1", cleanup)
    for original in (Options(env={"K": "v"}, continue_conversation=True), SimpleNamespace(env={"K": "v"})):
        updated = sdk.apply_materialized_options(original, materialized)
        assert updated is not original
        assert updated.env == {"K": "v", "CLAUDE_CONFIG_DIR": "/tmp/claude-resume-x"}
        assert (updated.resume, updated.continue_conversation) == ("sid-1", False)
        assert original.env == {"K": "v"}


# --- validate_session_store_options ---------------------------------------------------------------------------


class AppendLoadOnly:
    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        return None

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None


@pytest.mark.parametrize(
    "options",
    [
        Options(),
        Options(session_store=None, continue_conversation=True, enable_file_checkpointing=True),
        Options(session_store=InMemorySessionStore(), continue_conversation=True),
        Options(session_store=AppendLoadOnly(), continue_conversation=True, resume=new_id()),
        SimpleNamespace(),
    ],
    ids=["defaults", "no-store", "continue-with-list-sessions", "resume-wins", "bare-object"],
)
def test_valid_option_combinations_pass(options: object) -> None:
    sdk.validate_session_store_options(options)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (Options(session_store=AppendLoadOnly(), continue_conversation=True), "list_sessions"),
        (Options(session_store=InMemorySessionStore(), enable_file_checkpointing=True), "enable_file_checkpointing"),
    ],
    ids=["continue-without-list-sessions", "checkpointing"],
)
def test_invalid_option_combinations_name_the_problem(options: Options, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        sdk.validate_session_store_options(options)


# --- names ------------------------------------------------------------------------------------------------------


def test_the_sdk_names_are_this_projects_objects() -> None:
    assert sdk.SDKSessionInfo is session_store.SessionInfo
    assert sdk.summary_entry_to_sdk_info is session_store.summary_entry_to_session_info
    assert sdk._store_implements is store_implements
    assert sdk._with_timeout is with_timeout
    assert sdk._rmtree_with_retry is remove_tree
    assert sdk.InMemorySessionStore is InMemorySessionStore
    assert sdk.MaterializedResume is session_store.MaterializedResume
    assert sdk_sessions._build_conversation_chain is build_conversation_chain
    assert sdk_sessions.list_sessions_from_store is session_store.list_sessions_from_store


def test_mirror_error_message_takes_the_sdk_arguments_and_is_a_mirror_error() -> None:
    key: SessionKey = {"project_key": "p", "session_id": "s"}
    message = sdk.MirrorErrorMessage("mirror_error", {"error": "disk full"}, key, "disk full")
    assert isinstance(message, MirrorError)
    assert (message.subtype, message.data, message.key, message.error) == (
        "mirror_error",
        {"error": "disk full"},
        key,
        "disk full",
    )
    assert sdk.MirrorErrorMessage("mirror_error", {}) == sdk.MirrorErrorMessage("mirror_error", {}, None, "")
    reported = sdk.MirrorErrorMessage.from_mirror_error(MirrorError(key, "timed out"))
    assert reported.data == {"key": key, "error": "timed out", "session_id": "s"}
    assert (reported.subtype, reported.key, reported.error) == ("mirror_error", key, "timed out")


def test_write_jsonl_is_compact_lines_with_a_final_newline(tmp_path: Path) -> None:
    entries = [{"type": "user", "n": index, "text": "é"} for index in range(100)]
    path = tmp_path / "nested" / "out.jsonl"
    sdk._write_jsonl(path, entries)
    expected = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries)
    assert path.read_text(encoding="utf-8") == expected
    if sys.platform != "win32":
        assert mode(path) == 0o600


class ForeignSessionStoreProtocol(Protocol):
    """Another declaration of the protocol, as the SDK's ``claude_agent_sdk.types.SessionStore`` is."""

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None: ...

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None: ...

    async def list_sessions(self, project_key: str) -> list[Any]:
        raise NotImplementedError

    async def list_session_summaries(self, project_key: str) -> list[Any]:
        raise NotImplementedError


class WrittenAgainstTheForeignProtocol(ForeignSessionStoreProtocol):
    def __init__(self) -> None:
        self.entries: dict[str, list[SessionStoreEntry]] = {}

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.entries.setdefault(key["session_id"], []).extend(entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return self.entries.get(key["session_id"])


async def test_methods_inherited_from_another_protocol_declaration_count_as_absent() -> None:
    store = WrittenAgainstTheForeignProtocol()
    assert sdk._store_implements(store, "append")
    assert not sdk._store_implements(store, "list_sessions")
    assert not sdk._store_implements(store, "list_session_summaries")
    with pytest.raises(ValueError, match="list_sessions"):
        await sdk.list_sessions_from_store(store, directory=PROJECT_DIR)  # type: ignore[arg-type]  # a foreign protocol
    options = Options(session_store=store, continue_conversation=True)
    with pytest.raises(ValueError, match="list_sessions"):
        sdk.validate_session_store_options(options)


async def test_the_sdk_testing_harness_is_the_sdk_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Mapping[str, Any]] = []

    async def record(make_store: Any, **options: Any) -> None:
        calls.append(options)

    monkeypatch.setattr(sdk_testing, "_run", record)
    await sdk.run_session_store_conformance(InMemorySessionStore, skip_optional=frozenset({"delete"}))
    assert calls == [{"skip_optional": frozenset({"delete"}), "profile": "sdk"}]
