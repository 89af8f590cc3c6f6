"""The conformance suite itself: it passes good stores and names the contract a broken store breaks (§12, §16.5)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

import compat
from session_store.conformance import (
    CONFORMANCE_CONTRACTS,
    ConformanceError,
    run_session_store_conformance,
)
from session_store.keys import validate_session_key
from session_store.memory import InMemorySessionStore
from session_store.summary import fold_session_summary
from session_store.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)

REFERENCE_CONTRACTS = 14
OWN_CONTRACTS = 9


async def failed_contracts(make_store: Any, **options: Any) -> set[str]:
    """The names of the contracts ``make_store``'s stores fail (empty when all pass)."""
    try:
        await run_session_store_conformance(make_store, **options)
    except ConformanceError as error:
        assert isinstance(error, AssertionError)
        for name in error.failures:
            assert name in str(error)
        return set(error.failures)
    return set()


# -- good stores pass --


async def test_in_memory_store_passes_every_contract() -> None:
    assert await failed_contracts(InMemorySessionStore) == set()


async def test_an_async_factory_is_awaited() -> None:
    made: list[InMemorySessionStore] = []

    async def make() -> InMemorySessionStore:
        await compat.checkpoint()
        made.append(InMemorySessionStore())
        return made[-1]

    assert await failed_contracts(make) == set()
    assert len(made) == 1 + len(CONFORMANCE_CONTRACTS)  # one probe, then a fresh store per contract


class MinimalDuckStore:
    """Only append and load, not a SessionStore subclass; follows this project's rules (dedupe, subpath)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str, str | None], list[SessionStoreEntry]] = {}

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        validate_session_key(key)
        if not entries:
            return
        stored = self._data.setdefault((key["project_key"], key["session_id"], key.get("subpath")), [])
        seen = {e.get("uuid") for e in stored if "uuid" in e}
        for entry in entries:
            if "uuid" in entry and entry["uuid"] in seen:
                continue
            seen.add(entry.get("uuid"))
            stored.append(entry)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        validate_session_key(key)
        stored = self._data.get((key["project_key"], key["session_id"], key.get("subpath")))
        return None if stored is None else list(stored)


async def test_a_minimal_duck_typed_store_passes_with_optional_contracts_skipped() -> None:
    assert await failed_contracts(MinimalDuckStore) == set()


async def test_skip_optional_skips_contracts_of_methods_the_store_has() -> None:
    class BrokenListing(InMemorySessionStore):
        async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
            raise RuntimeError("listing is down")

    assert "list_sessions_lists_the_project" in await failed_contracts(BrokenListing)
    assert await failed_contracts(BrokenListing, skip_optional=frozenset({"list_sessions"})) == set()


async def test_skip_optional_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown optional methods in skip_optional: \['load'\]"):
        await run_session_store_conformance(InMemorySessionStore, skip_optional=frozenset({"load"}))


async def test_unimplemented_optional_methods_are_skipped_automatically() -> None:
    class InheritsDefaults(SessionStore):
        def __init__(self) -> None:
            self._inner = InMemorySessionStore()

        async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
            await self._inner.append(key, entries)

        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            return await self._inner.load(key)

    assert await failed_contracts(InheritsDefaults) == set()


def test_there_are_the_reference_contracts_plus_our_own() -> None:
    names = [contract.name for contract in CONFORMANCE_CONTRACTS]
    assert len(names) == len(set(names)) == REFERENCE_CONTRACTS + OWN_CONTRACTS


async def test_stores_are_closed_after_each_contract() -> None:
    closed: list[str] = []

    class ClosingStore(InMemorySessionStore):
        async def close(self) -> None:
            await compat.checkpoint()
            closed.append("async")

    class SyncClosingStore(InMemorySessionStore):
        def close(self) -> None:
            closed.append("sync")

    await run_session_store_conformance(ClosingStore)
    await run_session_store_conformance(SyncClosingStore)
    assert closed == ["async"] * (1 + len(CONFORMANCE_CONTRACTS)) + ["sync"] * (1 + len(CONFORMANCE_CONTRACTS))


# -- broken stores fail the right contract --


class SecondsClock(InMemorySessionStore):
    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return [{**row, "mtime": row["mtime"] // 1000} for row in await super().list_sessions(project_key)]


class NoCascade(InMemorySessionStore):
    async def delete(self, key: SessionKey) -> None:
        if key.get("subpath") is None:
            self._entries.pop((key["project_key"], key["session_id"], None), None)
            self._summaries.pop((key["project_key"], key["session_id"]), None)
        else:
            await super().delete(key)


class ListsSubagents(InMemorySessionStore):
    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return [
            {"session_id": session_id, "mtime": mtime}
            for (project, session_id, _), mtime in self._mtimes.items()
            if project == project_key
        ]


class NoDedupe(InMemorySessionStore):
    append_once = SessionStore.append_once  # type: ignore[assignment]  # absent: its append_once would not dedupe either

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        for entry in entries:
            self._uuids.pop((key["project_key"], key["session_id"], key.get("subpath")), None)
            await super().append(key, [entry])


class EmptySubpathMeansMain(InMemorySessionStore):
    @staticmethod
    def _fix(key: SessionKey) -> SessionKey:
        return {"project_key": key["project_key"], "session_id": key["session_id"]} if key.get("subpath") == "" else key

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await super().append(self._fix(key), entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await super().load(self._fix(key))


class EmptyAppendCreates(InMemorySessionStore):
    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await super().append(key, entries)
        self._entries.setdefault((key["project_key"], key["session_id"], key.get("subpath")), [])


class FoldsSubagents(InMemorySessionStore):
    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await super().append(key, entries)
        if key.get("subpath") is not None and entries:
            main: SessionKey = {"project_key": key["project_key"], "session_id": key["session_id"]}
            previous = self._summaries.get((key["project_key"], key["session_id"]))
            self._summaries[key["project_key"], key["session_id"]] = fold_session_summary(previous, main, entries)


class StaleSummaryClock(InMemorySessionStore):
    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        return [{**s, "mtime": s["mtime"] - 1000} for s in await super().list_session_summaries(project_key)]


class TargetedDeleteCascades(InMemorySessionStore):
    async def delete(self, key: SessionKey) -> None:
        if key.get("subpath"):
            key = {"project_key": key["project_key"], "session_id": key["session_id"]}
        await super().delete(key)


class SubkeysIncludeMain(InMemorySessionStore):
    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        main = (key["project_key"], key["session_id"], None)
        return [*(["<main>"] if main in self._entries else []), *await super().list_subkeys(key)]


class LostUpdates(InMemorySessionStore):
    """Read-modify-write with a yield in between: concurrent appends to one key overwrite each other."""

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        storage_key = (key["project_key"], key["session_id"], key.get("subpath"))
        before = list(self._entries.get(storage_key, []))
        await compat.checkpoint()  # another writer appends here...
        already = len(self._entries.get(storage_key, []))
        await super().append(key, entries)
        if storage_key in self._entries:  # ...and is overwritten by our stale copy
            self._entries[storage_key] = before + self._entries[storage_key][already:]


class DropsNul(InMemorySessionStore):
    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await super().append(key, [strip_nul(e) for e in entries])


def strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\u0000", "")
    if isinstance(value, dict):
        return {k: strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


class TruncatesLongStrings(InMemorySessionStore):
    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        loaded = await super().load(key)
        return None if loaded is None else [truncate(e) for e in loaded]


def truncate(entry: SessionStoreEntry) -> SessionStoreEntry:
    return {k: v[:65536] if isinstance(v, str) else v for k, v in entry.items()}  # type: ignore[return-value]  # same keys


class UnknownLoadsEmpty(InMemorySessionStore):
    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await super().load(key) or []


@pytest.mark.parametrize(
    ("broken_store", "expected_failures"),
    [
        (SecondsClock, {"list_sessions_lists_the_project"}),
        (NoCascade, {"delete_main_cascades_to_subkeys"}),
        (ListsSubagents, {"list_sessions_excludes_subpaths"}),
        (NoDedupe, {"append_is_idempotent_by_uuid"}),
        (EmptySubpathMeansMain, {"empty_subpath_is_rejected"}),
        (EmptyAppendCreates, {"empty_append_creates_nothing"}),
        (FoldsSubagents, {"list_session_summaries_follow_appends"}),
        (StaleSummaryClock, {"list_session_summaries_follow_appends"}),
        (TargetedDeleteCascades, {"delete_subpath_is_targeted"}),
        (LostUpdates, {"concurrent_appends_to_one_session", "concurrent_append_once_stores_each_line_once"}),
        (DropsNul, {"unicode_entries_round_trip"}),
        (TruncatesLongStrings, {"large_entries_round_trip"}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
async def test_a_broken_store_fails_exactly_the_contract_it_breaks(
    broken_store: type[SessionStore], expected_failures: set[str]
) -> None:
    assert await failed_contracts(broken_store) == expected_failures


async def test_list_subkeys_reporting_the_main_transcript_fails_the_subkey_contracts() -> None:
    assert {"list_subkeys_lists_subpaths", "list_subkeys_excludes_main"} <= await failed_contracts(SubkeysIncludeMain)


async def test_loading_an_unknown_key_as_an_empty_list_fails_the_none_contract() -> None:
    assert "load_of_unknown_key_is_none" in await failed_contracts(UnknownLoadsEmpty)


async def test_a_store_without_dedupe_passes_when_it_says_so() -> None:
    assert await failed_contracts(NoDedupe, expect_dedupe=False) == set()


async def test_the_dedupe_failure_tells_how_to_declare_a_non_deduplicating_store() -> None:
    with pytest.raises(ConformanceError, match="expect_dedupe=False"):
        await run_session_store_conformance(NoDedupe)


async def test_an_unexpected_exception_is_reported_with_its_type() -> None:
    class Exploding(InMemorySessionStore):
        async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
            raise RuntimeError("boom")

    with pytest.raises(ConformanceError) as caught:
        await run_session_store_conformance(Exploding)
    assert caught.value.failures["list_subkeys_lists_subpaths"] == "raised RuntimeError: boom"


async def test_a_hanging_store_fails_by_timeout_instead_of_hanging() -> None:
    class Hanging(InMemorySessionStore):
        async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
            await compat.sleep(math.inf)
            return []

    with pytest.raises(ConformanceError) as caught:
        await run_session_store_conformance(Hanging, contract_timeout_seconds=0.05)
    assert caught.value.failures["list_subkeys_excludes_main"] == "did not finish within 0.05 s"
    assert "append_then_load_round_trips" not in caught.value.failures


async def test_a_store_that_loses_concurrent_appends_to_different_sessions_is_caught() -> None:
    class SharedBuffer(InMemorySessionStore):
        """Buffers one pending batch for the whole store: a second writer overwrites the first one's batch."""

        pending: tuple[SessionKey, list[SessionStoreEntry]] | None = None

        async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
            self.pending = (key, entries)
            await compat.checkpoint()
            pending_key, pending_entries = self.pending
            await super().append(pending_key, pending_entries)

    assert "concurrent_appends_to_different_sessions" in await failed_contracts(SharedBuffer)


# -- profiles: "sdk" runs exactly the SDK harness's contracts, "strict" (the default) adds this project's --


class SdkSemanticsStore(SessionStore):
    """A store with the SDK's own in-memory semantics (reference §4.1-§4.2, §19.1-§19.2), which the SDK's
    harness accepts: no dedupe, ``subpath == ""`` writes the main key (without folding the summary),
    ``append(key, [])`` creates the key, composite string keys, a strictly increasing millisecond clock."""

    def __init__(self) -> None:
        self._entries: dict[str, list[SessionStoreEntry]] = {}
        self._mtimes: dict[str, int] = {}
        self._summaries: dict[tuple[str, str], SessionSummaryEntry] = {}
        self._last_mtime = 0

    @staticmethod
    def _name(key: SessionKey | SessionListSubkeysKey) -> str:
        subpath = key.get("subpath")
        base = f"{key['project_key']}/{key['session_id']}"
        return f"{base}/{subpath}" if subpath else base

    def _now(self) -> int:
        self._last_mtime = max(int(time.time() * 1000), self._last_mtime + 1)
        return self._last_mtime

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        name = self._name(key)
        self._entries.setdefault(name, []).extend(entries)
        mtime = self._now()
        if key.get("subpath") is None:
            pair = (key["project_key"], key["session_id"])
            folded = fold_session_summary(self._summaries.get(pair), key, entries)
            self._summaries[pair] = {**folded, "mtime": mtime}
        self._mtimes[name] = mtime

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        stored = self._entries.get(self._name(key))
        return None if stored is None else list(stored)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        prefix = f"{project_key}/"
        return [
            {"session_id": name[len(prefix) :], "mtime": self._mtimes.get(name, 0)}
            for name in self._entries
            if name.startswith(prefix) and "/" not in name[len(prefix) :]
        ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        return [summary for (project, _), summary in self._summaries.items() if project == project_key]

    async def delete(self, key: SessionKey) -> None:
        name = self._name(key)
        self._entries.pop(name, None)
        self._mtimes.pop(name, None)
        if key.get("subpath") is None:
            self._summaries.pop((key["project_key"], key["session_id"]), None)
            for sub in [other for other in self._entries if other.startswith(f"{name}/")]:
                del self._entries[sub]
                self._mtimes.pop(sub, None)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        prefix = f"{self._name(key)}/"
        return [name[len(prefix) :] for name in self._entries if name.startswith(prefix)]


async def test_a_store_with_the_sdk_semantics_passes_the_sdk_profile() -> None:
    assert await failed_contracts(SdkSemanticsStore, profile="sdk") == set()


async def test_the_strict_profile_fails_a_store_with_the_sdk_semantics_on_this_projects_contracts() -> None:
    assert await failed_contracts(SdkSemanticsStore) == {
        "append_is_idempotent_by_uuid",
        "empty_subpath_is_rejected",
        "empty_append_creates_nothing",
    }
    assert await failed_contracts(SdkSemanticsStore, profile="strict", expect_dedupe=False) == {
        "empty_subpath_is_rejected",
        "empty_append_creates_nothing",
    }


async def test_the_sdk_profile_accepts_the_sdk_tests_minimal_store_with_optionals_skipped() -> None:
    class SdkTestsMinimalStore:
        """Append and load only, no dedupe, ``subpath or ""`` in a string key, as the SDK's harness test has."""

        def __init__(self) -> None:
            self._data: dict[str, list[SessionStoreEntry]] = {}

        async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
            self._data.setdefault(f"{key['project_key']}/{key['session_id']}/{key.get('subpath') or ''}", []).extend(
                entries
            )

        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            return self._data.get(f"{key['project_key']}/{key['session_id']}/{key.get('subpath') or ''}")

    skip = frozenset({"list_sessions", "delete", "list_subkeys"})
    assert await failed_contracts(SdkTestsMinimalStore, skip_optional=skip, profile="sdk") == set()
    assert "empty_subpath_is_rejected" in await failed_contracts(SdkTestsMinimalStore, skip_optional=skip)


async def test_the_sdk_profile_runs_exactly_the_reference_contracts() -> None:
    made: list[InMemorySessionStore] = []

    def make() -> InMemorySessionStore:
        made.append(InMemorySessionStore())
        return made[-1]

    assert await failed_contracts(make, profile="sdk") == set()
    assert len(made) == 1 + REFERENCE_CONTRACTS  # the probe, then one store per SDK contract
    assert sum(contract.in_sdk_harness for contract in CONFORMANCE_CONTRACTS) == REFERENCE_CONTRACTS


async def test_the_sdk_profile_still_fails_a_store_that_breaks_an_sdk_contract() -> None:
    class ForgetsOrder(SdkSemanticsStore):
        async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
            loaded = await super().load(key)
            return None if loaded is None else loaded[::-1]

    assert {"append_then_load_round_trips", "appends_keep_call_order"} <= await failed_contracts(
        ForgetsOrder, profile="sdk"
    )


@pytest.mark.parametrize("profile", ["SDK", "lenient", ""])
async def test_an_unknown_profile_is_a_value_error_naming_it_and_the_choices(profile: str) -> None:
    with pytest.raises(ValueError, match=rf"profile must be one of 'strict', 'sdk', got {profile!r}"):
        await run_session_store_conformance(InMemorySessionStore, profile=profile)  # type: ignore[arg-type]  # the error is the point


async def test_the_sdk_profile_checks_counts_where_the_sdk_harness_does_and_strict_checks_ids() -> None:
    class DuplicatesSummaryRows(SdkSemanticsStore):
        async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
            rows = await super().list_session_summaries(project_key)
            return rows + rows  # the SDK's harness compares the set of ids

    assert await failed_contracts(DuplicatesSummaryRows, profile="sdk") == set()
    assert "list_session_summaries_follow_appends" in await failed_contracts(DuplicatesSummaryRows, expect_dedupe=False)
