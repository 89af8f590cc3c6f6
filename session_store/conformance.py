"""The conformance suite every ``SessionStore`` adapter runs in its tests: ``run_session_store_conformance``.

Implements reference §12: the 14 behavioural contracts of the SDK's harness (optional methods are skipped
when the store does not implement them, by the same rule as :func:`session_store.types.store_implements`),
plus this project's own contracts. Two profiles choose which run:

- ``profile="strict"`` (the default): the 14 SDK contracts and every contract below. This project's adapters
  and :class:`~session_store.memory.InMemorySessionStore` pass it.
- ``profile="sdk"``: exactly the SDK harness's 14 contracts with checks no stricter than its own (counts and
  id sets where it checks counts and sets; the strict profile checks exact ids and contents there), so a
  store that passes the SDK's ``claude_agent_sdk.testing.run_session_store_conformance`` passes this profile:
  a store that does not deduplicate, accepts ``subpath == ""`` or creates a session on ``append(key, [])``,
  like the SDK's own in-memory store. No contract time limit unless one is given, as in the SDK.

This project's own contracts (strict profile only):

- ``append_is_idempotent_by_uuid`` (SPEC §4 decision 8): an entry whose uuid the key already holds is ignored,
  also within one batch; entries without a uuid are always appended. A store that does not deduplicate
  declares it by passing ``expect_dedupe=False``, which skips this contract (and only this one).
- ``empty_subpath_is_rejected`` and ``empty_append_creates_nothing`` (SPEC §4 decision 2).
- ``concurrent_appends_to_different_sessions`` and ``concurrent_appends_to_one_session``: appends from many
  tasks at once lose nothing and keep each task's order.
- ``unicode_entries_round_trip`` and ``large_entries_round_trip`` (a 1 MiB entry and a 500-entry batch).
- ``append_once_stores_each_line_once`` and ``concurrent_append_once_stores_each_line_once``, for a store that
  implements this project's optional ``append_once`` (:mod:`session_store.exactly_once`): held uuids and held
  copies of uuid-less lines are skipped, entries stored by ``append`` count, concurrent callers store each line
  once.

Usage, from a test that runs under asyncio or trio (the suite only uses ``compat``)::

    await run_session_store_conformance(lambda: MyStore(...))  # strict
    await run_session_store_conformance(lambda: MyStore(...), profile="sdk")  # the SDK's contracts only

``make_store`` may be a sync or async callable. It is called once for a probe (to see which optional methods
exist) and once per contract, so every contract starts from an empty store: return a fresh store (or one over
a fresh namespace) each time. A store with a ``close()`` method is closed after use (awaited if it returns an
awaitable). Every contract runs even after one fails; at the end a :class:`ConformanceError` (an
``AssertionError``) names each failed contract and why.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import compat

from .summary import fold_session_summary
from .types import OPTIONAL_STORE_METHODS, SessionKey, SessionStore, SessionStoreEntry, store_implements

__all__ = [
    "CONFORMANCE_CONTRACTS",
    "CONFORMANCE_PROFILES",
    "ConformanceError",
    "ConformanceProfile",
    "run_session_store_conformance",
]

StoreFactory = Callable[[], SessionStore | Awaitable[SessionStore]]

DEDUPE = "dedupe"
"""Pseudo-capability: the store deduplicates by uuid (``expect_dedupe=True``)."""

STRICT = "strict"
"""Pseudo-capability: the strict profile runs. The SDK's contracts then also check exact ids and contents
where the SDK's harness checks only counts or sets."""

CONTRACT_TIMEOUT_SECONDS = 60.0
"""Time one contract may take in the strict profile before it counts as failed (a hung store must not hang
the suite). The sdk profile has no limit by default, like the SDK's harness."""

ConformanceProfile = Literal["strict", "sdk"]
CONFORMANCE_PROFILES: tuple[ConformanceProfile, ...] = ("strict", "sdk")
"""``"strict"``: every contract (the default); ``"sdk"``: only the SDK harness's 14 contracts."""

LARGE_ENTRY_BYTES = 1024 * 1024
LARGE_BATCH_ENTRIES = 500
CONCURRENT_SESSIONS = 16
CONCURRENT_BATCHES = 5
MS_SINCE_EPOCH_FLOOR = 1e12  # 2001-09-09 in ms; any value below is seconds, not milliseconds

_MAIN: SessionKey = {"project_key": "proj", "session_id": "sess"}


class ConformanceError(AssertionError):
    """One or more contracts failed. ``failures`` maps each failed contract's name to what went wrong."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        lines = [f"  - {name}: {detail}" for name, detail in self.failures.items()]
        super().__init__(f"SessionStore conformance failed {len(lines)} contract(s):\n" + "\n".join(lines))


def _entry(uuid: str | None, **fields: Any) -> SessionStoreEntry:
    entry: dict[str, Any] = {"type": "x", **fields}
    if uuid is not None:
        entry["uuid"] = uuid
    return cast(SessionStoreEntry, entry)


def _key(project_key: str, session_id: str, subpath: str | None = None) -> SessionKey:
    key: SessionKey = {"project_key": project_key, "session_id": session_id}
    if subpath is not None:
        key["subpath"] = subpath
    return key


def _fields(entry: SessionStoreEntry) -> dict[str, Any]:
    """An entry seen as plain JSON, to read the opaque fields the contracts wrote."""
    return cast(dict[str, Any], entry)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _check_equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        shown_actual, shown_expected = _abbreviate(actual), _abbreviate(expected)
        raise AssertionError(f"{what}: expected {shown_expected}, got {shown_actual}")


def _abbreviate(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _is_epoch_ms(value: Any) -> bool:
    """A finite number above the epoch-ms floor (any real number type, as the SDK's harness accepts)."""
    try:
        return math.isfinite(value) and value > MS_SINCE_EPOCH_FLOOR
    except TypeError:
        return False


async def _check_one_entry(
    store: SessionStore, key: SessionKey, entry: SessionStoreEntry, has: frozenset[str], what: str
) -> None:
    """``key`` still holds ``entry``: exactly (strict), or one entry (the SDK's check)."""
    loaded = await store.load(key)
    if STRICT in has:
        _check_equal(loaded, [entry], what)
    else:
        _check(loaded is not None and len(loaded) == 1, f"{what}: expected one entry, got {_abbreviate(loaded)}")


async def _listed_ids(store: SessionStore, project_key: str) -> list[str]:
    return sorted(row["session_id"] for row in await store.list_sessions(project_key))


# -- the contracts --

ContractCheck = Callable[[SessionStore, frozenset[str]], Awaitable[None]]


@dataclass(frozen=True)
class Contract:
    """One behaviour a store must show; ``needs``: the optional methods (or ``"dedupe"``) it relies on.

    ``in_sdk_harness``: one of the SDK harness's 14 contracts (run by both profiles), else this project's own
    (strict profile only).
    """

    name: str
    description: str
    needs: frozenset[str]
    check: ContractCheck
    in_sdk_harness: bool


CONFORMANCE_CONTRACTS: list[Contract] = []
"""Every contract, in the order they run (reference §12.2 order, then this project's own)."""


def _contract(
    name: str, description: str, *needs: str, in_sdk_harness: bool = True
) -> Callable[[ContractCheck], ContractCheck]:
    def register(check: ContractCheck) -> ContractCheck:
        CONFORMANCE_CONTRACTS.append(Contract(name, description, frozenset(needs), check, in_sdk_harness))
        return check

    return register


@_contract("append_then_load_round_trips", "1: load returns what was appended, deep-equal and in order")
async def _append_then_load(store: SessionStore, has: frozenset[str]) -> None:
    entries = [_entry("b", n=1), _entry("a", n=2)]  # nested JSON: unicode_entries_round_trip (strict)
    await store.append(_MAIN, entries)
    _check_equal(await store.load(_MAIN), entries, "load after one append")


@_contract("load_of_unknown_key_is_none", "2: unknown session and unknown subpath load as None")
async def _load_unknown(store: SessionStore, has: frozenset[str]) -> None:
    _check_equal(await store.load(_key("proj", "never-written")), None, "load of a never-written session")
    await store.append(_MAIN, [_entry("u1")])
    _check_equal(
        await store.load(_key("proj", "sess", "subagents/agent-none")),
        None,
        "load of a never-written subpath of an existing session",
    )


@_contract("appends_keep_call_order", "3: several appends load in call order")
async def _appends_keep_order(store: SessionStore, has: frozenset[str]) -> None:
    batches = [[_entry("1")], [_entry("2"), _entry("3")], [_entry("4")]]
    for batch in batches:
        await store.append(_MAIN, batch)
    _check_equal(await store.load(_MAIN), [e for batch in batches for e in batch], "load after three appends")


@_contract("empty_append_keeps_contents", "4: append(key, []) on an existing key changes nothing")
async def _empty_append_existing(store: SessionStore, has: frozenset[str]) -> None:
    await store.append(_MAIN, [_entry("u1")])
    await store.append(_MAIN, [])
    _check_equal(await store.load(_MAIN), [_entry("u1")], "load after an empty append")


@_contract("subpath_keys_are_separate", "5: a subpath key and its main key hold their own entries")
async def _subpaths_separate(store: SessionStore, has: frozenset[str]) -> None:
    sub = _key("proj", "sess", "subagents/agent-1")
    await store.append(_MAIN, [_entry("main-1")])
    await store.append(sub, [_entry("sub-1")])
    _check_equal(await store.load(_MAIN), [_entry("main-1")], "load of the main key")
    _check_equal(await store.load(sub), [_entry("sub-1")], "load of the subpath key")


@_contract("project_keys_are_isolated", "6: one session id under two projects stays apart")
async def _projects_isolated(store: SessionStore, has: frozenset[str]) -> None:
    in_a, in_b = _key("A", "same"), _key("B", "same")
    await store.append(in_a, [_entry(None, origin="A")])
    await store.append(in_b, [_entry(None, origin="B")])
    _check_equal(await store.load(in_a), [_entry(None, origin="A")], "load in project A")
    _check_equal(await store.load(in_b), [_entry(None, origin="B")], "load in project B")
    if "list_sessions" in has and STRICT in has:
        _check_equal(await _listed_ids(store, "A"), ["same"], "list_sessions('A')")
        _check_equal(await _listed_ids(store, "B"), ["same"], "list_sessions('B')")
    elif "list_sessions" in has:
        _check_equal(len(await store.list_sessions("A")), 1, "number of sessions list_sessions('A') gives")
        _check_equal(len(await store.list_sessions("B")), 1, "number of sessions list_sessions('B') gives")


@_contract(
    "list_sessions_lists_the_project",
    "7: list_sessions gives the project's sessions with epoch-ms mtimes",
    "list_sessions",
)
async def _list_sessions(store: SessionStore, has: frozenset[str]) -> None:
    await store.append(_key("proj", "a"), [_entry("a1")])
    await store.append(_key("proj", "b"), [_entry("b1")])
    await store.append(_key("other", "c"), [_entry("c1")])
    rows = await store.list_sessions("proj")
    _check_equal(sorted(row["session_id"] for row in rows), ["a", "b"], "list_sessions('proj') session ids")
    for row in rows:
        _check(
            _is_epoch_ms(row["mtime"]),
            f"list_sessions mtime {row['mtime']!r} of {row['session_id']!r} is not in epoch milliseconds "
            f"(a finite value > {MS_SINCE_EPOCH_FLOOR:.0e}); seconds are not accepted",
        )
    _check_equal(await store.list_sessions("never-used"), [], "list_sessions of an unused project")


@_contract(
    "list_sessions_excludes_subpaths",
    "8: subagent transcripts are not listed as sessions",
    "list_sessions",
)
async def _list_sessions_main_only(store: SessionStore, has: frozenset[str]) -> None:
    await store.append(_key("proj", "main"), [_entry("m1")])
    await store.append(_key("proj", "main", "subagents/agent-1"), [_entry("s1")])
    _check_equal(await _listed_ids(store, "proj"), ["main"], "list_sessions with one subagent transcript")


@_contract(
    "list_session_summaries_follow_appends",
    "14: summaries are folded on main appends, share the list_sessions clock, ignore subpaths",
    "list_session_summaries",
)
async def _summaries(store: SessionStore, has: frozenset[str]) -> None:
    key = _key("proj", "summ-sess")
    await store.append(key, [_entry("t1", customTitle="first")])
    await store.append(key, [_entry("t2", customTitle="second")])
    await store.append(_key("other-proj", "elsewhere"), [_entry("o1", customTitle="other")])

    summaries = await store.list_session_summaries("proj")
    ids = [s["session_id"] for s in summaries]
    _check_equal(sorted(ids) if STRICT in has else sorted(set(ids)), ["summ-sess"], "summary session ids for 'proj'")
    summary = summaries[-1]
    _check(
        _is_epoch_ms(summary["mtime"]),
        f"summary mtime {summary['mtime']!r} is not a finite epoch-millisecond value",
    )
    if "list_sessions" in has:
        listed = {row["session_id"]: row["mtime"] for row in await store.list_sessions("proj")}
        _check(
            summary["mtime"] >= listed.get("summ-sess", math.inf),
            f"summary mtime {summary['mtime']} is older than list_sessions mtime {listed.get('summ-sess')}: "
            "stamp the summary with the storage clock after persisting",
        )
    _check(isinstance(summary["data"], dict), f"summary data must be a dict, got {type(summary['data'])}")
    refolded = fold_session_summary(summary, key, [_entry("t3", customTitle="third")])
    _check_equal(
        (refolded["session_id"], refolded["mtime"]),
        (summary["session_id"], summary["mtime"]),
        "re-folding a stored summary keeps session_id and mtime",
    )

    await store.append(_key("proj", "summ-sess", "subagents/agent-1"), [_entry("s1", customTitle="sub")])
    after_subagent = await store.list_session_summaries("proj")
    if STRICT in has:
        _check_equal([s["data"] for s in after_subagent], [summary["data"]], "summary data after a subagent append")
    else:
        by_id = {s["session_id"]: s["data"] for s in after_subagent}
        _check_equal(by_id.get("summ-sess"), summary["data"], "summary data after a subagent append")
    _check_equal(await store.list_session_summaries("never-used"), [], "summaries of an unused project")
    if "delete" in has:
        await store.delete(key)
        _check_equal(await store.list_session_summaries("proj"), [], "summaries after deleting the session")


@_contract("delete_removes_the_key", "9: deleting works, and deleting an unknown key is silent", "delete")
async def _delete(store: SessionStore, has: frozenset[str]) -> None:
    await store.delete(_key("proj", "never-written"))
    await store.append(_MAIN, [_entry("u1")])
    await store.delete(_MAIN)
    _check_equal(await store.load(_MAIN), None, "load after delete")


@_contract(
    "delete_main_cascades_to_subkeys",
    "10: deleting a main key removes its subkeys and nothing else",
    "delete",
)
async def _delete_cascades(store: SessionStore, has: frozenset[str]) -> None:
    sub1, sub2 = _key("proj", "sess", "subagents/agent-1"), _key("proj", "sess", "subagents/agent-2")
    neighbour, same_id_elsewhere = _key("proj", "neighbour"), _key("other-proj", "sess")
    for key, uuid in [(_MAIN, "m"), (sub1, "s1"), (sub2, "s2"), (neighbour, "n"), (same_id_elsewhere, "o")]:
        await store.append(key, [_entry(uuid)])
    await store.delete(_MAIN)
    for key in (_MAIN, sub1, sub2):
        _check_equal(await store.load(key), None, f"load of {key} after deleting the main key")
    for untouched, uuid, what in [
        (neighbour, "n", "another session of the same project"),
        (same_id_elsewhere, "o", "the same session id in another project"),
    ]:
        await _check_one_entry(store, untouched, _entry(uuid), has, what)
    if "list_subkeys" in has:
        _check_equal(
            await store.list_subkeys({"project_key": "proj", "session_id": "sess"}),
            [],
            "list_subkeys after cascade",
        )
    if "list_sessions" in has:
        _check("sess" not in await _listed_ids(store, "proj"), "list_sessions still lists the deleted session")


@_contract("delete_subpath_is_targeted", "11: deleting a subpath removes only that subkey", "delete")
async def _delete_subpath(store: SessionStore, has: frozenset[str]) -> None:
    sub1, sub2 = _key("proj", "sess", "subagents/agent-1"), _key("proj", "sess", "subagents/agent-2")
    await store.append(_MAIN, [_entry("m")])
    await store.append(sub1, [_entry("s1")])
    await store.append(sub2, [_entry("s2")])
    await store.delete(sub1)
    _check_equal(await store.load(sub1), None, "load of the deleted subkey")
    await _check_one_entry(store, sub2, _entry("s2"), has, "load of the other subkey")
    await _check_one_entry(store, _MAIN, _entry("m"), has, "load of the main key")
    if "list_subkeys" in has:
        _check_equal(
            await store.list_subkeys({"project_key": "proj", "session_id": "sess"}),
            ["subagents/agent-2"],
            "list_subkeys after a targeted delete",
        )


@_contract("list_subkeys_lists_subpaths", "12: list_subkeys gives the session's subpaths only", "list_subkeys")
async def _list_subkeys(store: SessionStore, has: frozenset[str]) -> None:
    await store.append(_MAIN, [_entry("m")])
    await store.append(_key("proj", "sess", "subagents/agent-1"), [_entry("s1")])
    await store.append(_key("proj", "sess", "subagents/agent-2"), [_entry("s2")])
    await store.append(_key("proj", "other-sess", "subagents/agent-x"), [_entry("x")])
    listed = await store.list_subkeys({"project_key": "proj", "session_id": "sess"})
    _check_equal(sorted(listed), ["subagents/agent-1", "subagents/agent-2"], "list_subkeys of 'sess'")


@_contract(
    "list_subkeys_excludes_main",
    "13: the main transcript is not a subkey; an unknown session has none",
    "list_subkeys",
)
async def _list_subkeys_main(store: SessionStore, has: frozenset[str]) -> None:
    await store.append(_MAIN, [_entry("m")])
    _check_equal(
        await store.list_subkeys({"project_key": "proj", "session_id": "sess"}),
        [],
        "list_subkeys with only the main transcript",
    )
    _check_equal(
        await store.list_subkeys({"project_key": "proj", "session_id": "never-written"}),
        [],
        "list_subkeys of an unknown session",
    )


@_contract(
    "append_is_idempotent_by_uuid",
    "own: a known uuid is ignored (across and within batches); entries without uuid always append",
    DEDUPE,
    in_sdk_harness=False,
)
async def _dedupe(store: SessionStore, has: frozenset[str]) -> None:
    first, second, third = _entry("u1", n=1), _entry("u2", n=2), _entry("u3", n=3)
    untitled = _entry(None, customTitle="no uuid")
    await store.append(_MAIN, [first, second])
    await store.append(_MAIN, [second, third, untitled])  # a retried batch overlapping the last one
    await store.append(_MAIN, [untitled, _entry("u4"), _entry("u4")])
    hint = "; if this store does not deduplicate by uuid, pass expect_dedupe=False"
    _check_equal(
        await store.load(_MAIN),
        [first, second, third, untitled, untitled, _entry("u4")],
        "load after appends repeating uuids" + hint,
    )
    sub = _key("proj", "sess", "subagents/agent-1")
    await store.append(sub, [_entry("u1", n=1)])
    _check_equal(await store.load(sub), [_entry("u1", n=1)], "a uuid is deduplicated per key, not per store")


@_contract("empty_subpath_is_rejected", "own: subpath '' raises ValueError and writes nothing", in_sdk_harness=False)
async def _empty_subpath(store: SessionStore, has: frozenset[str]) -> None:
    bad = _key("proj", "sess", "")
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("append", lambda: store.append(bad, [_entry("u1")])),
        ("load", lambda: store.load(bad)),
    ]
    if "delete" in has:
        calls.append(("delete", lambda: store.delete(bad)))
    for method, call in calls:
        try:
            await call()
        except ValueError:
            continue
        raise AssertionError(f"{method}() with subpath '' must raise ValueError (omit subpath for the main key)")
    _check_equal(await store.load(_MAIN), None, "the main key after a rejected append with subpath ''")


@_contract(
    "empty_append_creates_nothing",
    "own: append(new_key, []) creates no session, listing or summary",
    in_sdk_harness=False,
)
async def _empty_append_new(store: SessionStore, has: frozenset[str]) -> None:
    sub = _key("proj", "sess", "subagents/agent-1")
    await store.append(_MAIN, [])
    await store.append(sub, [])
    _check_equal(await store.load(_MAIN), None, "load after append(new_key, [])")
    _check_equal(await store.load(sub), None, "load of a subkey after append(new_subkey, [])")
    if "list_sessions" in has:
        _check_equal(await store.list_sessions("proj"), [], "list_sessions after an empty append")
    if "list_session_summaries" in has:
        _check_equal(await store.list_session_summaries("proj"), [], "summaries after an empty append")
    if "list_subkeys" in has:
        _check_equal(
            await store.list_subkeys({"project_key": "proj", "session_id": "sess"}),
            [],
            "list_subkeys after an empty subkey append",
        )


@_contract(
    "concurrent_appends_to_different_sessions",
    f"own: {CONCURRENT_SESSIONS} tasks append to their own sessions at once; nothing lost or reordered",
    in_sdk_harness=False,
)
async def _concurrent_sessions(store: SessionStore, has: frozenset[str]) -> None:
    def batch(session: int, number: int) -> list[SessionStoreEntry]:
        return [_entry(f"s{session}-b{number}-{i}", session=session, batch=number) for i in range(2)]

    async def writer(session: int) -> None:
        for number in range(CONCURRENT_BATCHES):
            await store.append(_key("proj", f"concurrent-{session}"), batch(session, number))

    async with compat.create_task_group() as tg:
        for session in range(CONCURRENT_SESSIONS):
            tg.start_soon(writer, session)
    for session in range(CONCURRENT_SESSIONS):
        expected = [e for number in range(CONCURRENT_BATCHES) for e in batch(session, number)]
        _check_equal(await store.load(_key("proj", f"concurrent-{session}")), expected, f"session {session}")
    if "list_sessions" in has:
        _check_equal(
            await _listed_ids(store, "proj"),
            sorted(f"concurrent-{session}" for session in range(CONCURRENT_SESSIONS)),
            "list_sessions after concurrent appends",
        )
    if "list_session_summaries" in has:
        summaries = await store.list_session_summaries("proj")
        _check_equal(len(summaries), CONCURRENT_SESSIONS, "number of summaries after concurrent appends")


@_contract(
    "concurrent_appends_to_one_session",
    "own: several tasks append to one session at once; every entry lands, each task's order kept",
    in_sdk_harness=False,
)
async def _concurrent_one_session(store: SessionStore, has: frozenset[str]) -> None:
    writers = 8

    async def writer(task: int) -> None:
        for number in range(CONCURRENT_BATCHES):
            await store.append(_MAIN, [_entry(f"t{task}-{number}", task=task, number=number)])

    async with compat.create_task_group() as tg:
        for task in range(writers):
            tg.start_soon(writer, task)
    loaded = await store.load(_MAIN) or []
    _check_equal(len(loaded), writers * CONCURRENT_BATCHES, "entries after concurrent appends to one session")
    for task in range(writers):
        numbers = [e["number"] for e in map(_fields, loaded) if e["task"] == task]
        _check_equal(numbers, list(range(CONCURRENT_BATCHES)), f"order of task {task}'s appends")


@_contract(
    "unicode_entries_round_trip",
    "own: non-ASCII text, odd characters and JSON types load unchanged",
    in_sdk_harness=False,
)
async def _unicode(store: SessionStore, has: frozenset[str]) -> None:
    texts = {
        "accents": "café naïve Ångström",
        "cjk": "漢字かなカナ한국어",
        "emoji": "😀👩‍👩‍👧‍👦🏳️‍🌈",
        "rtl": "שלום مرحبا",
        "controls": 'tab\there\nnewline\r\u0000nul\u001fus \\ backslash "quote"',
        "invisible": "zero\u200bwidth\ufeffbom\u2028line-separator",
    }
    entries = [
        _entry(f"unicode-{label}", message={"content": [{"type": "text", "text": text}]}, label=label)
        for label, text in texts.items()
    ]
    entries.append(
        _entry(
            "unicode-json",
            **{"clé-ключ-🔑": "value"},
            numbers=[0, -1, 2**53 + 1, 1.5, -0.25, 1e300],
            literals=[True, False, None],
            empty={"list": [], "dict": {}, "str": ""},
            deep={"a": {"b": {"c": {"d": {"e": ["f"]}}}}},
        )
    )
    key = _key("proj", "sess-ünïcode-😀", "subagents/agent-ü")
    await store.append(key, entries)
    _check_equal(await store.load(key), entries, "load of non-ASCII entries under a non-ASCII key")


@_contract(
    "large_entries_round_trip",
    f"own: a {LARGE_ENTRY_BYTES} byte entry and a {LARGE_BATCH_ENTRIES}-entry batch load unchanged",
    in_sdk_harness=False,
)
async def _large(store: SessionStore, has: frozenset[str]) -> None:
    unit = "large payload é 😀 line\n"
    payload = (unit * (LARGE_ENTRY_BYTES // len(unit.encode()) + 1)).encode()[:LARGE_ENTRY_BYTES]
    big = _entry("big", text=payload.decode(errors="ignore"))
    await store.append(_MAIN, [big])
    loaded = await store.load(_MAIN)
    _check(loaded == [big], "load of a 1 MiB entry does not equal what was appended")

    batch = [_entry(f"batch-{i}", i=i) for i in range(LARGE_BATCH_ENTRIES)]
    key = _key("proj", "many")
    await store.append(key, batch)
    _check_equal(await store.load(key), batch, f"load of a {LARGE_BATCH_ENTRIES}-entry batch")


@_contract(
    "append_once_stores_each_line_once",
    "own: append_once skips held uuids and held copies of uuid-less lines, keeps order, returns the count",
    "append_once",
    DEDUPE,
    in_sdk_harness=False,
)
async def _append_once(store: SessionStore, has: frozenset[str]) -> None:
    tag, title = _entry(None, tag="t"), _entry(None, customTitle="T", n=1)
    lines = [_entry("u1"), tag, title, tag, _entry("u2")]
    counts = [None, 0, 0, 1, None]
    for key in (_MAIN, _key("proj", "sess", "subagents/agent-1")):
        _check_equal(await store.append_once(key, lines[:3], counts[:3]), 3, "append_once of a new prefix")
        _check_equal(await store.append_once(key, lines, counts), 2, "append_once of the whole file after a prefix")
        _check_equal(await store.append_once(key, lines, counts), 0, "append_once of the same file again")
        _check_equal(await store.load(key), lines, "load after repeated append_once")
    await store.append(_key("proj", "plain"), [tag, _entry("u1")])
    _check_equal(
        await store.append_once(
            _key("proj", "plain"), [_entry("u1"), cast(SessionStoreEntry, {"tag": "t", "type": "x"}), tag], [None, 0, 1]
        ),
        1,
        "append_once after a plain append of equal entries (key order differs)",
    )
    _check_equal(await store.load(_key("proj", "plain")), [tag, _entry("u1"), tag], "load after append + append_once")
    _check_equal(await store.append_once(_key("proj", "same-call"), [tag, tag], [0, 0]), 1, "one copy, twice")
    _check_equal(await store.append_once(_key("proj", "empty"), [], []), 0, "append_once of no entries")
    _check_equal(await store.load(_key("proj", "empty")), None, "load after append_once of no entries")
    try:
        await store.append_once(_key("proj", "sess", ""), [_entry("u9")], [None])
    except ValueError:
        pass
    else:
        raise AssertionError("append_once() with subpath '' must raise ValueError (omit subpath for the main key)")
    if "list_session_summaries" in has:
        listed = sorted(row["session_id"] for row in await store.list_session_summaries("proj"))
        _check_equal(listed, ["plain", "same-call", "sess"], "summaries after append_once to main transcripts")


@_contract(
    "concurrent_append_once_stores_each_line_once",
    "own: tasks sending the same lines with append_once at once store each line exactly once, in order",
    "append_once",
    DEDUPE,
    in_sdk_harness=False,
)
async def _concurrent_append_once(store: SessionStore, has: frozenset[str]) -> None:
    lines = [_entry(None, tag="t"), _entry("u1"), _entry(None, tag="t"), _entry(None, n=1), _entry("u2")]
    counts: list[int | None] = [0, None, 1, 0, None]
    sub = _key("proj", "sess", "subagents/agent-1")

    async def writer(key: SessionKey, size: int) -> None:
        for end in range(size, len(lines) + size, size):
            await store.append_once(key, lines[:end], counts[:end])

    async with compat.create_task_group() as tg:
        for task in range(6):
            tg.start_soon(writer, _MAIN, 1 + task % 3)
            tg.start_soon(writer, sub, 1 + task % 2)
    _check_equal(await store.load(_MAIN), lines, "main transcript after concurrent append_once")
    _check_equal(await store.load(sub), lines, "subagent transcript after concurrent append_once")


# -- the runner --


async def _make(make_store: StoreFactory) -> SessionStore:
    made = make_store()
    if inspect.isawaitable(made):
        return await made
    return made


async def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):
            await result


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


async def _run_contract(
    contract: Contract, make_store: StoreFactory, has: frozenset[str], timeout_seconds: float | None
) -> str | None:
    """None when the contract holds, else what went wrong."""
    try:
        with compat.fail_after(math.inf if timeout_seconds is None else timeout_seconds):
            store = await _make(make_store)
            try:
                await contract.check(store, has)
            finally:
                await _close(store)
    except AssertionError as failure:
        return str(failure)
    except TimeoutError:
        return f"did not finish within {timeout_seconds} s"
    except Exception as error:
        return f"raised {_describe(error)}"
    return None


async def run_session_store_conformance(
    make_store: StoreFactory,
    *,
    skip_optional: frozenset[str] = frozenset(),
    expect_dedupe: bool = True,
    contract_timeout_seconds: float | None = None,
    profile: ConformanceProfile = "strict",
) -> None:
    """Run the contracts of ``profile`` on fresh stores from ``make_store``; a failure raises
    :class:`ConformanceError`.

    ``profile``: ``"strict"`` (the default) runs every contract; ``"sdk"`` runs exactly the SDK harness's 14
    (see the module docstring). ``skip_optional``: optional methods (``list_sessions``,
    ``list_session_summaries``, ``delete``, ``list_subkeys``) whose contracts to skip although the store has
    them. Contracts of methods the store does not implement are skipped anyway. ``expect_dedupe=False``
    declares a store that does not deduplicate by uuid and skips ``append_is_idempotent_by_uuid`` (a strict
    contract). ``contract_timeout_seconds`` bounds each contract; None: :data:`CONTRACT_TIMEOUT_SECONDS` for
    the strict profile, no limit for the sdk profile.
    """
    if profile not in CONFORMANCE_PROFILES:
        raise ValueError(
            f"profile must be one of {', '.join(repr(p) for p in CONFORMANCE_PROFILES)}, got {profile!r}: "
            "'strict' for every contract, 'sdk' for the SDK harness's contracts only"
        )
    if contract_timeout_seconds is None and profile == "strict":
        contract_timeout_seconds = CONTRACT_TIMEOUT_SECONDS
    unknown = set(skip_optional) - OPTIONAL_STORE_METHODS
    if unknown:
        raise ValueError(
            f"unknown optional methods in skip_optional: {sorted(unknown)}; "
            f"choose from {sorted(OPTIONAL_STORE_METHODS)}"
        )
    probe = await _make(make_store)
    try:
        implemented = {m for m in OPTIONAL_STORE_METHODS if store_implements(probe, m) and m not in skip_optional}
    finally:
        await _close(probe)
    has = frozenset(implemented | ({DEDUPE} if expect_dedupe else set()) | ({STRICT} if profile == "strict" else set()))

    failures: dict[str, str] = {}
    for contract in CONFORMANCE_CONTRACTS:
        if not contract.needs <= has or (profile == "sdk" and not contract.in_sdk_harness):
            continue
        problem = await _run_contract(contract, make_store, has, contract_timeout_seconds)
        if problem is not None:
            failures[contract.name] = problem
    if failures:
        raise ConformanceError(failures)
