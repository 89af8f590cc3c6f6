"""Real Claude Code transcripts, imported and read back (issue 7).

The corpus is ``<repo>/../shared/corpus/real-transcripts`` (33 public sessions from 18 projects, 11 subagent
transcripts, 26 MB; CI has it beside the clone). It is read in place and never copied into the repository;
without it the module is skipped. For each of the memory and SQLite stores, on each backend, the whole
corpus is imported once and then:

- nothing is lost: ``load`` of every session and subagent key gives every source line, deep-equal, in order;
- message chains are complete: every ``tool_use`` and ``tool_result`` the transcript pairs comes back with
  its partner, main sessions and subagents alike, and the messages recovered beyond a plain ``parentUuid``
  walk are counted against what the SDK 0.2.189 returns;
- resume writes the original lines back (``materialize_resume_session``, JSON deep-equal per line).

The command line (``import``, ``list``, ``show``, as ``python -m session_store``) runs once per backend on a
temp SQLite file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import session_store.transcript as transcript_module
from session_store.adapters.sqlite import SQLiteSessionStore
from session_store.importing import import_session_to_store
from session_store.keys import project_key_for_directory
from session_store.memory import InMemorySessionStore
from session_store.reading import (
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from session_store.resume import materialize_resume_session
from session_store.transcript import build_subagent_chain, entries_to_session_messages, filter_transcript_entries
from session_store.types import SessionKey, SessionMessage

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "real-transcripts"
PROJECTS = CORPUS / "projects"

pytestmark = pytest.mark.skipif(
    not PROJECTS.is_dir(),
    reason=f"real-transcript corpus not found at {CORPUS} (CI puts shared/corpus/real-transcripts beside the clone)",
)

# Measured on this corpus with the SDK 0.2.189 readers (disk and store, identical): a plain parentUuid walk
# (this project before issue 7, and the SDK before 0.2.170) loses these messages of parallel tool turns.
SESSIONS_LOSING_MESSAGES_TO_THE_WALK = 17
MESSAGES_LOST_TO_THE_WALK = 93
# Subagent transcripts: the SDK 0.2.189 still walks them plainly; this project recovers (SPEC §4 decision 9).
SUBAGENTS_LOSING_MESSAGES_TO_THE_WALK = 4
SUBAGENT_MESSAGES_LOST_TO_THE_WALK = 31


@dataclass
class Transcript:
    """One source file: its store key, its parsed non-blank lines, and what a directory mapping to it is."""

    path: Path
    project_key: str
    session_id: str
    subpath: str | None
    lines: list[dict[str, Any]]

    @property
    def key(self) -> SessionKey:
        key: SessionKey = {"project_key": self.project_key, "session_id": self.session_id}
        if self.subpath is not None:
            key["subpath"] = self.subpath
        return key

    @property
    def agent_id(self) -> str:
        assert self.subpath is not None
        return self.subpath.rsplit("/", 1)[-1].removeprefix("agent-")


@dataclass
class Session:
    main: Transcript
    subagents: list[Transcript] = field(default_factory=list)

    @property
    def directory(self) -> str:
        """A directory whose project key is this session's folder name (the corpus's ``cwd``s are sanitized)."""
        return directory_for(self.main.project_key)


def directory_for(project_key: str) -> str:
    """A path that sanitizes to ``project_key``: every ``-`` after the first is some non-alphanumeric char."""
    directory = "/" + project_key[1:].replace("-", "_")
    assert project_key_for_directory(directory) == project_key, project_key
    return directory


def parse_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


@pytest.fixture(scope="module")
def corpus() -> list[Session]:
    sessions = []
    for main_path in sorted(PROJECTS.glob("*/*.jsonl")):
        session_id = main_path.stem
        main = Transcript(main_path, main_path.parent.name, session_id, None, parse_lines(main_path))
        session = Session(main)
        session_dir = main_path.parent / session_id
        for sub_path in sorted(session_dir.glob("subagents/**/*.jsonl")):
            subpath = sub_path.relative_to(session_dir).as_posix().removesuffix(".jsonl")
            session.subagents.append(Transcript(sub_path, main.project_key, session_id, subpath, parse_lines(sub_path)))
        sessions.append(session)
    assert len(sessions) == 33 and sum(len(session.subagents) for session in sessions) == 11
    return sessions


@dataclass(frozen=True)
class WalkGap:
    """Messages a plain parentUuid walk returns, and how many more the recovering chain returns."""

    walked: int
    recovered: int


@pytest.fixture(scope="module")
def walk_gaps(corpus: list[Session]) -> dict[tuple[str, str | None], WalkGap]:
    """Per transcript (session id, subpath): the chain with and without the parallel-tool recovery."""

    def counts(lines: list[dict[str, Any]], subagent: bool) -> int:
        if subagent:
            return len(build_subagent_chain(filter_transcript_entries(lines)))
        return len(entries_to_session_messages(lines))

    gaps = {}
    for session in corpus:
        for item in (session.main, *session.subagents):
            full = counts(item.lines, item.subpath is not None)
            with pytest.MonkeyPatch.context() as patch:  # the walk alone, as before issue 7
                patch.setattr(transcript_module, "recover_parallel_tool_results", lambda _index, chain, _seen: chain)
                walked = counts(item.lines, item.subpath is not None)
            gaps[(item.session_id, item.subpath)] = WalkGap(walked, full - walked)
    return gaps


def test_the_walk_alone_loses_the_messages_the_sdk_returns(walk_gaps: dict[tuple[str, str | None], WalkGap]) -> None:
    main = [gap for (_, subpath), gap in walk_gaps.items() if subpath is None]
    subagents = [gap for (_, subpath), gap in walk_gaps.items() if subpath is not None]
    assert all(gap.recovered >= 0 for gap in walk_gaps.values())
    assert sum(gap.recovered > 0 for gap in main) == SESSIONS_LOSING_MESSAGES_TO_THE_WALK
    assert sum(gap.recovered for gap in main) == MESSAGES_LOST_TO_THE_WALK
    assert sum(gap.recovered > 0 for gap in subagents) == SUBAGENTS_LOSING_MESSAGES_TO_THE_WALK
    assert sum(gap.recovered for gap in subagents) == SUBAGENT_MESSAGES_LOST_TO_THE_WALK


# --- store round trips ----------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_store(kind: str, directory: Path) -> InMemorySessionStore | SQLiteSessionStore:
    return InMemorySessionStore() if kind == "memory" else SQLiteSessionStore(directory / "corpus.db")


def block_ids(message: object, block_type: str, id_field: str) -> Iterator[str]:
    content = message.get("content") if isinstance(message, dict) else None
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") == block_type and isinstance(block.get(id_field), str):
            yield block[id_field]


def unpaired_tool_blocks(lines: list[dict[str, Any]], messages: list[SessionMessage]) -> list[str]:
    """The ``tool_use`` / ``tool_result`` ids among ``messages`` whose partner the transcript holds but
    ``messages`` lack."""
    paired_in_file = {tool_id for line in lines for tool_id in block_ids(line.get("message"), "tool_use", "id")} & {
        tool_id for line in lines for tool_id in block_ids(line.get("message"), "tool_result", "tool_use_id")
    }
    calls = {tool_id for m in messages for tool_id in block_ids(m.message, "tool_use", "id")} & paired_in_file
    results = {tool_id for m in messages for tool_id in block_ids(m.message, "tool_result", "tool_use_id")}
    results &= paired_in_file
    return sorted(f"call {tool_id} without its result" for tool_id in calls - results) + sorted(
        f"result {tool_id} without its call" for tool_id in results - calls
    )


async def test_the_corpus_round_trips_through_the_store(
    corpus: list[Session], walk_gaps: dict[tuple[str, str | None], WalkGap], store_kind: str, tmp_path: Path
) -> None:
    store = make_store(store_kind, tmp_path)
    async with store:
        for session in corpus:
            result = await import_session_to_store(session.main.session_id, store, projects_dir=PROJECTS)
            assert result.transcripts == 1 + len(session.subagents)
            assert result.skipped_lines == []

        lost = []
        for session in corpus:
            for item in (session.main, *session.subagents):
                if await store.load(item.key) != item.lines:
                    lost.append(str(item.path.relative_to(PROJECTS)))
        assert lost == [], "transcripts not loaded back line for line"

        unlisted = []
        for project_key in sorted({session.main.project_key for session in corpus}):
            listed = {info.session_id for info in await list_sessions_from_store(store, directory_for(project_key))}
            expected = {session.main.session_id for session in corpus if session.main.project_key == project_key}
            unlisted += sorted(expected - listed) + sorted(f"unexpected {extra}" for extra in listed - expected)
        assert unlisted == [], "sessions missing from (or extra in) their project's listing"

        broken: dict[str, list[str]] = {}
        pairs = 0
        for session in corpus:
            messages = await get_session_messages_from_store(store, session.main.session_id, session.directory)
            gap = walk_gaps[(session.main.session_id, None)]
            assert len(messages) == gap.walked + gap.recovered
            if unpaired := unpaired_tool_blocks(session.main.lines, messages):
                broken[session.main.session_id] = unpaired
            pairs += sum(1 for m in messages for _ in block_ids(m.message, "tool_result", "tool_use_id"))
            agent_ids = await list_subagents_from_store(store, session.main.session_id, session.directory)
            assert sorted(agent_ids) == sorted(sub.agent_id for sub in session.subagents)
            for sub in session.subagents:
                sub_messages = await get_subagent_messages_from_store(
                    store, sub.session_id, sub.agent_id, session.directory
                )
                sub_gap = walk_gaps[(sub.session_id, sub.subpath)]
                assert len(sub_messages) == sub_gap.walked + sub_gap.recovered
                if unpaired := unpaired_tool_blocks(sub.lines, sub_messages):
                    broken[f"{sub.session_id}/{sub.subpath}"] = unpaired
        assert broken == {}
        assert pairs > 700  # the corpus's main sessions answer 800 tool calls; nothing vacuous here

        mismatched = []
        for session in corpus:
            materialized = await materialize_resume_session(
                store, resume=session.main.session_id, cwd=session.directory
            )
            assert materialized is not None
            try:
                session_dir = materialized.projects_dir / session.main.project_key
                for item in (session.main, *session.subagents):
                    written = session_dir / item.path.relative_to(PROJECTS / session.main.project_key)
                    if not written.is_file() or parse_lines(written) != item.lines:
                        mismatched.append(str(item.path.relative_to(PROJECTS)))
            finally:
                await materialized.cleanup()
        assert mismatched == [], "resume did not write these transcripts back line for line"


# --- the command line -----------------------------------------------------------------------------------------


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "session_store", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert completed.returncode == 0, f"{arguments}: exit {completed.returncode}\n{completed.stderr}"
    assert "Traceback" not in completed.stderr
    return completed


async def test_the_command_line_imports_lists_and_shows_the_corpus(
    corpus: list[Session], walk_gaps: dict[tuple[str, str | None], WalkGap], backend: str, tmp_path: Path
) -> None:
    """The CLI on this test's backend (``--backend``); async only to run once per selected backend, the
    subprocesses are waited for blocking, with nothing else running on the loop."""
    common = ["--store", f"sqlite:///{tmp_path / 'cli.db'}", "--backend", backend, "--json"]
    run_cli("import", str(PROJECTS), *common)

    biggest = max(corpus, key=lambda session: len(session.main.lines) + sum(len(s.lines) for s in session.subagents))
    shown_projects = {biggest.main.project_key, corpus[0].main.project_key}
    for project_key in sorted(shown_projects):
        listed = json.loads(run_cli("list", "-d", directory_for(project_key), *common).stdout)
        expected = {session.main.session_id for session in corpus if session.main.project_key == project_key}
        assert {row["session_id"] for row in listed} == expected

    shown = json.loads(run_cli("show", biggest.main.session_id, "-d", biggest.directory, *common).stdout)
    gap = walk_gaps[(biggest.main.session_id, None)]
    assert len(shown["messages"]) == gap.walked + gap.recovered
    sub = next(sub for sub in biggest.subagents if walk_gaps[(sub.session_id, sub.subpath)].recovered)
    agent = json.loads(
        run_cli("show", sub.session_id, "-d", biggest.directory, "--agent", sub.agent_id, *common).stdout
    )
    sub_gap = walk_gaps[(sub.session_id, sub.subpath)]
    assert len(agent["messages"]) == sub_gap.walked + sub_gap.recovered
