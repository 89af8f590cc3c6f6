"""End to end through the Claude Agent SDK's real ``query()`` and ``ClaudeSDKClient``, stock and with install().

The SDK spawns ``tests/fake_claude_cli.py`` as its CLI (``cli_path``): a stand-in that answers the control
protocol, writes each turn's transcript (main and subagent) under its ``CLAUDE_CONFIG_DIR`` and mirrors every
line as a ``transcript_mirror`` frame, and on ``--resume`` reports what was materialized for it. Every mirrored
line is also recorded in a file, so each test checks that the store holds every line exactly once and in order,
per key. Cases: a fresh session then a resume from the store (the first run's config dir deleted in between),
batched and eager flush with enough lines that background flushes run mid-stream, and a two-turn client; with
the SDK as shipped (``stock``) and with ``session_store.sdk.install()`` (``installed``, the appends then come
from this project's batcher: the store records the module that called ``append``); into the SDK's in-memory
store and each adapter of this project (SQLite, PostgreSQL, Redis, Redis Cluster, S3; ``EXTRA_STORES`` is the
hook for more). Async tests run on asyncio and trio (tests/conftest.py); ``test_under_anyio_run_on_trio`` runs the
same scenarios inside ``anyio.run(..., backend="trio")``.

Skipped when claude-agent-sdk is not installed; ``nox -s sdk_e2e`` runs this file against the oldest and newest
SDK versions ``install()`` accepts.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servers import new_s3_bucket, redis_test_prefix
from temp_dirs import leftovers

import session_store.sdk as port
from session_store.adapters import PostgresSessionStore, RedisSessionStore, S3SessionStore, SQLiteSessionStore
from session_store.keys import project_key_for_directory

sdk = pytest.importorskip("claude_agent_sdk")
from claude_agent_sdk import (  # noqa: E402  # after the importorskip
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    TextBlock,
    query,
)

FAKE_CLI = Path(__file__).with_name("fake_claude_cli.py")
MANY_LINES = 1_200  # over the batcher's 500-entry threshold twice: two background flushes in batched mode
SDK_BATCHER = "claude_agent_sdk._internal.transcript_mirror_batcher"
PORT_BATCHER = "session_store.batcher"

StoreFactory = Callable[[], Any]
"""Builds a fresh store; the test enters it with ``async with`` when it has ``__aenter__``."""


class CountingStore:
    """Delegates to a real store; records each ``append`` (key, entry count, calling module, phase).

    Declares all six methods, so the SDK and this project treat it as implementing them; ``phase`` is set by the
    test ("streaming" until the turn's assistant message arrives): an append recorded while streaming was a
    background flush mid-stream, not the flush the SDK forces before yielding the result.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.phase = "streaming"
        self.appends: list[tuple[str | None, int, str, str]] = []

    async def append(self, key: Any, entries: list[Any]) -> None:
        caller = sys._getframe(1).f_globals.get("__name__", "?")
        self.appends.append((key.get("subpath"), len(entries), caller, self.phase))
        await self.inner.append(key, entries)

    async def load(self, key: Any) -> Any:
        return await self.inner.load(key)

    async def list_sessions(self, project_key: str) -> Any:
        return await self.inner.list_sessions(project_key)

    async def list_session_summaries(self, project_key: str) -> Any:
        return await self.inner.list_session_summaries(project_key)

    async def delete(self, key: Any) -> None:
        await self.inner.delete(key)

    async def list_subkeys(self, key: Any) -> Any:
        return await self.inner.list_subkeys(key)


def _sdk_in_memory_store() -> Any:
    return sdk.InMemorySessionStore()  # the SDK's own, or this project's once install() rebound the root name


STORES: list[Any] = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.servers),
    pytest.param("redis", marks=pytest.mark.servers),
    pytest.param("redis-cluster", marks=pytest.mark.servers),
    pytest.param("s3", marks=pytest.mark.servers),
]
EXTRA_STORES: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {}
"""Hook for adapters added later: name -> (request, tmp_path) -> factory; add the name to STORES too."""


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    name = request.param
    if name == "memory":
        return _sdk_in_memory_store
    if name == "sqlite":
        return lambda: SQLiteSessionStore(tmp_path / "sessions.db")
    if name == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return lambda: PostgresSessionStore(url, table=f"sdk_e2e_{uuid.uuid4().hex[:16]}")
    if name == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        return lambda: RedisSessionStore(redis_url, prefix=redis_test_prefix())
    if name == "redis-cluster":
        cluster_url: str = request.getfixturevalue("redis_cluster").url
        return lambda: RedisSessionStore(cluster_url, cluster=True, prefix=redis_test_prefix())
    if name == "s3":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        return lambda: S3SessionStore(new_s3_bucket(endpoint), endpoint_url=endpoint)
    return EXTRA_STORES[name](request, tmp_path)


@pytest.fixture(params=["stock", "installed"])
def sdk_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The SDK as shipped, or with ``session_store.sdk.install()`` in force for the test (undone after)."""
    assert not port.installed()
    if request.param == "installed":
        port.install()
    try:
        yield request.param
    finally:
        port.uninstall()


@asynccontextmanager
async def opened(make_store: StoreFactory) -> AsyncIterator[CountingStore]:
    store = make_store()
    if hasattr(store, "__aenter__"):
        async with store:
            yield CountingStore(store)
    else:
        yield CountingStore(store)


@dataclass
class Harness:
    """The stand-in CLI, its record of mirrored lines, and the options to run the SDK with."""

    root: Path
    cwd: Path = field(init=False)
    cli: Path = field(init=False)
    record: Path = field(init=False)

    def __post_init__(self) -> None:
        self.cwd = self.root / "project"
        self.cwd.mkdir(parents=True)
        self.record = self.root / "mirrored.jsonl"
        self.cli = self.root / "claude"
        self.cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" "$@"\n', encoding="utf-8")
        self.cli.chmod(self.cli.stat().st_mode | stat.S_IXUSR)

    @property
    def project_key(self) -> str:
        return project_key_for_directory(str(self.cwd))

    def options(self, store: CountingStore, flush: str, lines: int, **fields: Any) -> Any:
        config_dir = self.root / f"config-{uuid.uuid4().hex[:8]}"
        config_dir.mkdir()
        env = {
            "CLAUDE_CONFIG_DIR": str(config_dir),
            "FAKE_CLAUDE_LINES": str(lines),
            "FAKE_CLAUDE_RECORD": str(self.record),
            "FAKE_CLAUDE_PAUSE_EVERY": "300",
        }
        return ClaudeAgentOptions(
            cli_path=str(self.cli),
            cwd=str(self.cwd),
            session_store=store,
            session_store_flush=flush,  # type: ignore[arg-type]  # a str from the parametrization
            env=env,
            **fields,
        )

    def mirrored(self) -> dict[tuple[str, str | None], list[dict[str, Any]]]:
        """Every line the CLI mirrored, per (session id, subpath), in the order sent."""
        lines: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for raw in self.record.read_text(encoding="utf-8").splitlines():
            line = json.loads(raw)
            lines.setdefault((line["session_id"], line["subpath"]), []).append(line["entry"])
        return lines

    async def assert_store_holds_everything_once_in_order(self, store: CountingStore) -> None:
        mirrored = self.mirrored()
        assert mirrored
        for (session_id, subpath), entries in mirrored.items():
            key: dict[str, Any] = {"project_key": self.project_key, "session_id": session_id}
            if subpath is not None:
                key["subpath"] = subpath
            loaded = await store.inner.load(key)
            assert loaded is not None, key
            assert [entry["uuid"] for entry in loaded] == [entry["uuid"] for entry in entries], key
            assert loaded == entries


def texts(message: AssistantMessage) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


async def run_query(prompt: str, options: Any, store: CountingStore) -> tuple[ResultMessage, str]:
    """One ``query()``; returns its result and the assistant's text. ``store.phase`` follows the stream."""
    result: ResultMessage | None = None
    answer = ""
    store.phase = "streaming"
    async for message in query(prompt=prompt, options=options):
        if isinstance(message, AssistantMessage):
            store.phase = "after-assistant"
            answer += texts(message)
        elif isinstance(message, ResultMessage):
            result = message
    assert result is not None and not result.is_error, result
    return result, answer


def expected_batcher(sdk_mode: str) -> str:
    return PORT_BATCHER if sdk_mode == "installed" else SDK_BATCHER


def assert_flushed_mid_stream(store: CountingStore, flush: str, sdk_mode: str) -> None:
    callers = {caller for _, _, caller, _ in store.appends}
    assert callers == {expected_batcher(sdk_mode)}
    main = [(count, phase) for subpath, count, _, phase in store.appends if subpath is None]
    # at least one flush started before the turn's assistant message: a background flush, mid-stream (batched:
    # the 500-entry threshold; eager: every frame); the last one is the flush the SDK forces before the result
    assert len(main) >= 2 and main[0][1] == "streaming", store.appends
    assert sum(count for count, _ in main) == MANY_LINES // 2 + 1  # every main line sent once
    if flush == "batched":  # coalesced: a flush per 500 pending lines, not per line
        assert len(main) <= 10, store.appends


# --- the scenarios, shared by the asyncio/trio tests and the anyio.run(backend="trio") test ------------------


async def fresh_then_resume(root: Path, make_store: StoreFactory, sdk_mode: str, flush: str) -> None:
    harness = Harness(root)
    async with opened(make_store) as store:
        options = harness.options(store, flush, MANY_LINES)
        first, answer = await run_query("hello", options, store)
        assert answer == "turn 1"
        assert_flushed_mid_stream(store, flush, sdk_mode)
        await harness.assert_store_holds_everything_once_in_order(store)
        main_lines = len(harness.mirrored()[(first.session_id, None)])
        subagent_lines = sum(len(v) for (sid, sub), v in harness.mirrored().items() if sub is not None)

        shutil.rmtree(options.env["CLAUDE_CONFIG_DIR"])  # resume must come from the store, not the first run's disk
        store.appends.clear()
        resumed_options = harness.options(store, flush, 4, resume=first.session_id)
        resumed, answer = await run_query("again", resumed_options, store)
        assert resumed.session_id == first.session_id
        assert answer == f"turn 1: resumed {main_lines} main lines, {subagent_lines} subagent lines"
        assert {caller for _, _, caller, _ in store.appends} == {expected_batcher(sdk_mode)}
        await harness.assert_store_holds_everything_once_in_order(store)
        loaded = await store.inner.load({"project_key": harness.project_key, "session_id": first.session_id})
        assert len(loaded) == main_lines + 3  # the resumed turn: a prompt, one step, the answer


async def two_turn_client(root: Path, make_store: StoreFactory, sdk_mode: str, flush: str) -> None:
    harness = Harness(root)
    async with opened(make_store) as store:
        answers: list[str] = []
        session_ids: set[str] = set()
        async with ClaudeSDKClient(options=harness.options(store, flush, 40)) as client:
            for prompt in ("first", "second"):
                await client.query(prompt)
                async for message in client.receive_response():
                    if isinstance(message, AssistantMessage):
                        answers.append(texts(message))
                    elif isinstance(message, ResultMessage):
                        session_ids.add(message.session_id)
                        await harness.assert_store_holds_everything_once_in_order(store)  # flushed before result
        assert answers == ["turn 1", "turn 2"]
        assert len(session_ids) == 1
        assert {caller for _, _, caller, _ in store.appends} == {expected_batcher(sdk_mode)}
        mirrored = harness.mirrored()
        assert sorted(len(entries) for entries in mirrored.values()) == [38, 42]  # subagent 2x19, main 2x21
        await harness.assert_store_holds_everything_once_in_order(store)


FLUSH_MODES = ["batched", "eager"]


@pytest.mark.parametrize("flush", FLUSH_MODES)
async def test_fresh_session_then_resume_from_the_store(
    make_store: StoreFactory, sdk_mode: str, flush: str, tmp_path: Path, temp_root: Path
) -> None:
    await fresh_then_resume(tmp_path, make_store, sdk_mode, flush)
    assert leftovers(temp_root) == []  # the materialized config dir is gone


SDK_GENERATORS_LEFT_OPEN = pytest.mark.filterwarnings("ignore:Async generator 'claude_agent_sdk.:ResourceWarning")
"""``ClaudeSDKClient.receive_response()`` returns at the result without closing the SDK's inner generators
(``receive_messages``), which trio reports when they are garbage collected; the SDK's code, not this project's."""


@SDK_GENERATORS_LEFT_OPEN
@pytest.mark.parametrize("flush", FLUSH_MODES)
async def test_two_turn_client(make_store: StoreFactory, sdk_mode: str, flush: str, tmp_path: Path) -> None:
    await two_turn_client(tmp_path, make_store, sdk_mode, flush)


@SDK_GENERATORS_LEFT_OPEN
@pytest.mark.skipif(
    "trio" not in os.environ.get("COMPAT_TEST_BACKENDS", "trio"), reason="the trio backend is not selected"
)
@pytest.mark.parametrize("scenario", [fresh_then_resume, two_turn_client], ids=["fresh-then-resume", "two-turn"])
@pytest.mark.parametrize("flush", FLUSH_MODES)
@pytest.mark.parametrize("store_name", ["memory", "sqlite"])
def test_under_anyio_run_on_trio(
    scenario: Callable[..., Any], flush: str, store_name: str, sdk_mode: str, tmp_path: Path
) -> None:
    anyio = pytest.importorskip("anyio")
    factory: StoreFactory = (
        _sdk_in_memory_store if store_name == "memory" else (lambda: SQLiteSessionStore(tmp_path / "s.db"))
    )
    anyio.run(scenario, tmp_path, factory, sdk_mode, flush, backend="trio")
