"""Properties of the write path, resume, the summary fold and import, checked by hypothesis (issue 10, suite 3).

Each async property is a sync ``@given`` test run once per backend (see ``tests/property_support.py``). The
default run draws a few dozen examples per property; ``nox -s soak`` draws hundreds.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from property_support import BACKEND_PARAMS, property_settings, run_on

import compat
from session_store import (
    InMemorySessionStore,
    TranscriptMirrorBatcher,
    fold_session_summary,
    import_session_to_store,
    materialize_resume_session,
)
from session_store.adapters import SQLiteSessionStore
from session_store.keys import file_path_to_session_key, project_key_for_directory
from session_store.types import SessionKey, SessionListSubkeysKey, SessionStore, SessionStoreEntry

# --- (a) any interleaving of enqueue / flush / thresholds / store delays delivers every entry once, in order -----

PROJECTS_DIR = "/projects"
SESSION_A, SESSION_B = str(uuid.uuid4()), str(uuid.uuid4())
MIRROR_PATHS = (
    f"{PROJECTS_DIR}/proj/{SESSION_A}.jsonl",
    f"{PROJECTS_DIR}/proj/{SESSION_B}.jsonl",
    f"{PROJECTS_DIR}/proj/{SESSION_A}/subagents/agent-a1.jsonl",
)


class DelayedStore(InMemorySessionStore):
    """Sleeps before each append for the next of ``delays`` (0: one checkpoint), and logs every append it gets."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__()
        self._delays = itertools.cycle(delays)
        self.appended: list[tuple[SessionKey, list[str]]] = []

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        delay = next(self._delays)
        await (compat.sleep(delay) if delay else compat.checkpoint())
        self.appended.append((key, [entry["uuid"] for entry in entries]))
        await super().append(key, entries)


mirror_ops = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, len(MIRROR_PATHS) - 1), st.integers(0, 4)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("flush in background")),
        st.tuples(st.just("checkpoint")),
        st.tuples(st.just("sleep"), st.sampled_from([0.0005, 0.002])),
    ),
    max_size=30,
)


async def mirror_scenario(ops: list[tuple[Any, ...]], max_entries: int, max_bytes: int, delays: list[float]) -> None:
    store = DelayedStore(delays)
    errors: list[str] = []
    batcher = TranscriptMirrorBatcher(
        store, PROJECTS_DIR, lambda key, message: errors.append(message), max_pending_entries=max_entries,
        max_pending_bytes=max_bytes,
    )  # fmt: skip
    expected: dict[str, list[str]] = {path: [] for path in MIRROR_PATHS}
    flushes: list[compat.TaskHandle] = []
    for op in ops:
        if op[0] == "enqueue":
            path = MIRROR_PATHS[op[1]]
            entries = [
                cast(SessionStoreEntry, {"type": "user", "uuid": str(uuid.uuid4()), "n": n}) for n in range(op[2])
            ]
            expected[path] += [entry["uuid"] for entry in entries]
            batcher.enqueue(path, entries)
        elif op[0] == "flush":
            await batcher.flush()
        elif op[0] == "flush in background":
            flushes.append(compat.spawn_detached(batcher.flush()))
        elif op[0] == "checkpoint":
            await compat.checkpoint()
        else:
            await compat.sleep(op[1])
    await batcher.close()
    for handle in flushes:
        await handle.wait()

    assert errors == []
    assert batcher.background_flushes == 0
    for path, uuids in expected.items():
        key = file_path_to_session_key(path, PROJECTS_DIR)
        assert key is not None
        sent = [uuid_ for appended_key, batch in store.appended if appended_key == key for uuid_ in batch]
        assert sent == uuids  # each entry reached append exactly once, in enqueue order
        assert [entry["uuid"] for entry in await store.load(key) or []] == uuids


@BACKEND_PARAMS
@property_settings(default_run=150, soak=3000)
@given(
    ops=mirror_ops,
    max_entries=st.integers(0, 6),
    max_bytes=st.sampled_from([0, 150, 1 << 20]),
    delays=st.lists(st.sampled_from([0.0, 0.0005, 0.002]), min_size=1, max_size=5),
)
@example(  # a slow append in flight while a later flush with a fast append starts: order needs the lock
    ops=[("enqueue", 0, 2), ("flush in background",), ("sleep", 0.0005), ("enqueue", 0, 1), ("flush in background",),
         ("sleep", 0.002)],
    max_entries=6, max_bytes=1 << 20, delays=[0.002, 0.0],
)  # fmt: skip
def test_any_interleaving_of_enqueue_flush_and_store_delays_delivers_every_entry_once_in_order(
    backend: str, ops: list[tuple[Any, ...]], max_entries: int, max_bytes: int, delays: list[float]
) -> None:
    run_on(backend, mirror_scenario, ops, max_entries, max_bytes, delays)


# --- (b) no subpath a store lists makes resume write outside the session directory ----------------------------

SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "", "subagents", "agent-1", "linked", "C:", "~", "%2e%2e", "a\\..\\..", "\x00", "é"]),
    st.text(min_size=1, max_size=8),
    st.sampled_from(["x" * 300, "\u202e\u200b", "\ud800", "\udcff", "con", "a.jsonl", "a" * 250]),
)
hostile_subpaths = st.one_of(
    st.lists(SEGMENTS, min_size=1, max_size=5).flatmap(
        lambda parts: st.sampled_from(["/", "\\"]).map(lambda sep: sep.join(parts))
    ),
    st.integers(1, 7).map(lambda ups: "../" * ups + "outside/evil"),
    st.sampled_from(["/OUTSIDE/evil", "\\\\server\\share\\x", "C:\\evil", "C:evil", "subagents/agent-ok"]),
)


class HostileStore(InMemorySessionStore):
    """Lists the given subpaths and loads one entry naming the subpath for each (whatever it is)."""

    def __init__(self, subpaths: list[str]) -> None:
        super().__init__()
        self.subpaths = subpaths

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return list(self.subpaths)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        subpath = key.get("subpath")
        if subpath is None:
            return await super().load(key)
        return [cast(SessionStoreEntry, {"type": "user", "uuid": str(uuid.uuid4()), "subpath": subpath})]


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def temp_dirs_in(directory: Path) -> Iterator[None]:
    """Make ``tempfile.mkdtemp`` create its folders in ``directory`` for the duration."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def files_under(root: Path) -> list[Path]:
    return [Path(folder, name) for folder, _, names in os.walk(root) for name in names]


async def resume_scenario(root: Path, subpaths: list[str]) -> None:
    sandbox, outside = root / "sandbox", root / "outside"
    sandbox.mkdir()
    outside.mkdir()
    subpaths = [subpath.replace("/OUTSIDE", str(outside)) for subpath in subpaths]
    store = HostileStore(subpaths)
    session_id = str(uuid.uuid4())
    project_key = project_key_for_directory(root)
    await store.append({"project_key": project_key, "session_id": session_id}, [{"type": "user", "uuid": "main"}])

    def plant_a_link(config_dir: Path) -> None:
        session_dir = config_dir / "projects" / project_key / session_id
        session_dir.mkdir(parents=True, exist_ok=True)
        (session_dir / "linked").symlink_to(outside, target_is_directory=True)

    warnings = _Warnings()
    logging.getLogger("session_store").addHandler(warnings)
    try:
        with temp_dirs_in(sandbox):
            resumed = await materialize_resume_session(store, resume=session_id, cwd=root, seed_config_dir=plant_a_link)
    finally:
        logging.getLogger("session_store").removeHandler(warnings)

    assert files_under(outside) == []
    assert resumed is not None  # a hostile subpath is skipped, it does not sink the session
    session_dir = resumed.config_dir / "projects" / project_key / session_id
    for path in files_under(sandbox):
        assert path.resolve().is_relative_to(resumed.config_dir.resolve() / "projects" / project_key), path
    for subpath in subpaths:
        assert _written_inside(session_dir, subpath) or any(
            repr(subpath) in message for message in warnings.messages
        ), subpath
    await resumed.cleanup()


def _written_inside(session_dir: Path, subpath: str) -> bool:
    """Whether ``<session_dir>/<subpath>.jsonl`` lies inside ``session_dir`` and holds the subpath's entry."""
    target = session_dir / f"{subpath}.jsonl"
    try:
        if not target.resolve().is_relative_to(session_dir.resolve()):
            return False
        return bool(json.loads(target.read_text(encoding="utf-8"))["subpath"] == subpath)
    except (OSError, ValueError):
        return False


@BACKEND_PARAMS
@property_settings(default_run=40, soak=500)
@given(subpaths=st.lists(hostile_subpaths, min_size=1, max_size=6))
@example(subpaths=["../../../../../outside/evil", "/OUTSIDE/evil", "linked/agent-1", "subagents/agent-ok"])
def test_no_subpath_a_store_lists_makes_resume_write_outside_the_session_directory(
    backend: str, subpaths: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as root:
        run_on(backend, resume_scenario, Path(root), subpaths)


# --- (c) the summary fold over any split of a stream equals the fold of the whole stream ----------------------

short_text = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["", "  ", "hello", "<command-name>/init</command-name>", "<tick>", "x" * 230, "a\nb"]),
)
timestamps = st.one_of(
    st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123456+02:00", "not a time", ""]),
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
)
content_blocks = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_result", "image"]), "text": short_text}), max_size=3
)
summary_entries = st.fixed_dictionaries(
    {"type": st.sampled_from(["user", "assistant", "tag", "custom-title", "summary", "system"])},
    optional={
        "timestamp": timestamps,
        "cwd": short_text,
        "isSidechain": st.booleans(),
        "isMeta": st.booleans(),
        "isCompactSummary": st.booleans(),
        "customTitle": short_text,
        "aiTitle": short_text,
        "lastPrompt": short_text,
        "summary": short_text,
        "gitBranch": short_text,
        "tag": st.one_of(st.none(), short_text),
        "message": st.fixed_dictionaries({"content": st.one_of(short_text, content_blocks)}),
    },
)
streams = st.lists(summary_entries, max_size=25)
SUMMARY_KEY: SessionKey = {"project_key": "proj", "session_id": SESSION_A}


def split(stream: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = [0, *sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


@property_settings(default_run=200, soak=5000)
@given(stream=streams, cuts=st.lists(st.integers(0, 100), max_size=6))
def test_the_summary_fold_over_any_split_of_a_stream_equals_the_fold_of_the_whole(
    stream: list[SessionStoreEntry], cuts: list[int]
) -> None:
    summary = None
    for batch in split(stream, cuts):
        summary = fold_session_summary(summary, SUMMARY_KEY, batch)
    whole = fold_session_summary(None, SUMMARY_KEY, stream)
    assert (summary or fold_session_summary(None, SUMMARY_KEY, [])) == whole


async def store_summary_scenario(store_kind: str, batches: list[list[SessionStoreEntry]]) -> None:
    store: SessionStore = InMemorySessionStore() if store_kind == "memory" else SQLiteSessionStore(":memory:")
    for batch in batches:
        await store.append(SUMMARY_KEY, batch)
    stored = await store.list_session_summaries(SUMMARY_KEY["project_key"])
    whole = [entry for batch in batches for entry in batch]
    expected = [fold_session_summary(None, SUMMARY_KEY, whole)["data"]] if whole else []
    assert [summary["data"] for summary in stored] == expected
    if isinstance(store, SQLiteSessionStore):
        await store.close()


@BACKEND_PARAMS
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@property_settings(default_run=25, soak=400)
@given(stream=streams, cuts=st.lists(st.integers(0, 100), max_size=4))
def test_the_summary_a_store_folds_over_any_split_equals_the_fold_of_the_whole(
    backend: str, store_kind: str, stream: list[dict[str, Any]], cuts: list[int]
) -> None:
    entries = [cast(SessionStoreEntry, {**entry, "uuid": str(uuid.uuid4())}) for entry in stream]
    run_on(backend, store_summary_scenario, store_kind, split(entries, cuts))


# --- (d) import then resume is the identity on any valid JSONL --------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.sampled_from(["\x00", "a\x00b", "\ud83d", "x\udc00", "\u2028\u2029", "🦀", "\r\n"]),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
transcript_lines = st.tuples(
    st.dictionaries(st.text(max_size=8).filter(lambda name: name not in ("type", "uuid")), json_values, max_size=5),
    st.sampled_from(["user", "assistant", "system", "summary", "x"]),
    st.booleans(),
    st.sampled_from([0, 0, 0, 1, 70_000]),
    st.booleans(),
).map(lambda drawn: _transcript_line(*drawn))


def _transcript_line(fields: dict[str, Any], type_: str, with_uuid: bool, big: int, type_first: bool) -> dict[str, Any]:
    head: dict[str, Any] = {"type": type_}
    if with_uuid:
        head["uuid"] = str(uuid.uuid4())
    if big:
        fields = {**fields, "big": "é" * big}
    return {**head, **fields} if type_first else {**fields, **head}


def jsonl_text(entries: list[dict[str, Any]]) -> str:
    """One line per entry, UTF-8 as the Claude CLI writes it (escaped only where UTF-8 cannot carry it)."""
    lines = []
    for entry in entries:
        line = json.dumps(entry, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(entry)
        lines.append(line + "\n")
    return "".join(lines)


def parsed_lines(path: Path) -> list[str]:
    """Each line of a JSONL file parsed and re-dumped: equal strings mean equal values in equal key order."""
    return [json.dumps(json.loads(line)) for line in path.read_text(encoding="utf-8").split("\n") if line]


async def import_resume_scenario(root: Path, store_kind: str, main: list[Any], sub: list[Any]) -> None:
    session_id = str(uuid.uuid4())
    project_key = project_key_for_directory(root)
    projects = root / "projects" / project_key
    (projects / session_id / "subagents").mkdir(parents=True)
    (projects / f"{session_id}.jsonl").write_text(jsonl_text(main), encoding="utf-8")
    if sub:
        (projects / session_id / "subagents" / "agent-a1.jsonl").write_text(jsonl_text(sub), encoding="utf-8")
        (projects / session_id / "subagents" / "agent-a1.meta.json").write_text('{"agentType": "Explore"}')
    store: SessionStore = InMemorySessionStore() if store_kind == "memory" else SQLiteSessionStore(root / "s.db")
    await import_session_to_store(session_id, store, projects_dir=root / "projects")
    with temp_dirs_in(root):
        resumed = await materialize_resume_session(store, resume=session_id, cwd=root)
    assert resumed is not None
    written = resumed.projects_dir / project_key
    assert parsed_lines(written / f"{session_id}.jsonl") == parsed_lines(projects / f"{session_id}.jsonl")
    if sub:
        subagents = Path(session_id, "subagents")
        written_agent, original_agent = written / subagents / "agent-a1.jsonl", projects / subagents / "agent-a1.jsonl"
        assert parsed_lines(written_agent) == parsed_lines(original_agent)
        assert json.loads((written / subagents / "agent-a1.meta.json").read_text()) == {"agentType": "Explore"}
    await resumed.cleanup()
    if isinstance(store, SQLiteSessionStore):
        await store.close()


@BACKEND_PARAMS
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@property_settings(default_run=20, soak=300)
@given(main=st.lists(transcript_lines, min_size=1, max_size=6), sub=st.lists(transcript_lines, max_size=3))
def test_import_then_resume_is_the_identity_on_any_valid_jsonl(
    backend: str, store_kind: str, main: list[Any], sub: list[Any]
) -> None:
    with tempfile.TemporaryDirectory() as root:
        run_on(backend, import_resume_scenario, Path(root).resolve(), store_kind, main, sub)


@BACKEND_PARAMS
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_import_then_resume_keeps_a_line_of_several_mebibytes_whole(backend: str, store_kind: str) -> None:
    huge = [{"type": "user", "uuid": str(uuid.uuid4()), "text": "ü\x00" * (3 << 20)}]
    with tempfile.TemporaryDirectory() as root:
        run_on(backend, import_resume_scenario, Path(root).resolve(), store_kind, huge, [])
