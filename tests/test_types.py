"""The SessionStore protocol, capability probing and result records (reference §1, §2.1)."""

from __future__ import annotations

import dataclasses

import pytest

from session_store.types import (
    OPTIONAL_STORE_METHODS,
    ForkSessionResult,
    MirrorError,
    SessionInfo,
    SessionKey,
    SessionListSubkeysKey,
    SessionMessage,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    store_implements,
)

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}


class MinimalSubclass(SessionStore):
    """Implements only the two required methods; inherits every optional default."""

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        return None

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None


class OverrideThatRaises(MinimalSubclass):
    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        raise NotImplementedError("not yet")


class DuckTyped:
    """Does not subclass SessionStore at all."""

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        return None

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return None

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return []


def test_isinstance_against_the_protocol_raises_type_error() -> None:
    with pytest.raises(TypeError):
        isinstance(MinimalSubclass(), SessionStore)  # type: ignore[misc]  # the TypeError is the point


@pytest.mark.parametrize("method", sorted(OPTIONAL_STORE_METHODS))
def test_inherited_protocol_default_counts_as_not_implemented(method: str) -> None:
    assert not store_implements(MinimalSubclass(), method)


@pytest.mark.parametrize("method", ["append", "load"])
def test_required_methods_of_a_subclass_count_as_implemented(method: str) -> None:
    assert store_implements(MinimalSubclass(), method)


def test_an_override_that_raises_not_implemented_still_counts_as_implemented() -> None:
    assert store_implements(OverrideThatRaises(), "list_sessions")


def test_a_duck_typed_method_counts_as_implemented_and_a_missing_one_does_not() -> None:
    store = DuckTyped()
    assert store_implements(store, "list_subkeys")
    assert not store_implements(store, "delete")


def test_an_instance_attribute_counts_as_implemented() -> None:
    store = DuckTyped()

    async def delete(key: SessionKey) -> None:
        return None

    store.delete = delete  # type: ignore[attr-defined]  # simulating a store assembled at runtime
    assert store_implements(store, "delete")


def test_an_attribute_set_to_none_counts_as_absent() -> None:
    store = DuckTyped()
    store.list_sessions = None  # type: ignore[attr-defined]  # simulating an explicitly disabled method
    assert not store_implements(store, "list_sessions")


def test_a_name_outside_the_protocol_is_implemented_when_present() -> None:
    assert not store_implements(DuckTyped(), "close")
    assert store_implements(DuckTyped(), "append")


@pytest.mark.parametrize(
    ("method", "argument"),
    [
        ("list_sessions", "proj"),
        ("list_session_summaries", "proj"),
        ("delete", KEY),
        ("list_subkeys", {"project_key": "proj", "session_id": "sess"}),
    ],
)
async def test_protocol_optional_defaults_raise_not_implemented_naming_the_method(
    method: str, argument: object
) -> None:
    with pytest.raises(NotImplementedError, match=method):
        await getattr(MinimalSubclass(), method)(argument)


def test_optional_store_methods_are_the_sdks_four_and_append_once() -> None:
    assert frozenset({"list_sessions", "list_session_summaries", "delete", "list_subkeys", "append_once"}) == (
        OPTIONAL_STORE_METHODS
    )


def test_session_info_has_the_sdk_fields_in_order_with_optional_defaults() -> None:
    names = [field.name for field in dataclasses.fields(SessionInfo)]
    assert names == [
        "session_id",
        "summary",
        "last_modified",
        "file_size",
        "custom_title",
        "first_prompt",
        "git_branch",
        "cwd",
        "tag",
        "created_at",
    ]
    info = SessionInfo("id", "summary", 1)
    assert (info.file_size, info.custom_title, info.tag, info.created_at) == (None, None, None, None)


def test_session_message_parent_fields_default_to_none() -> None:
    message = SessionMessage(type="user", uuid="u", session_id="s", message={"role": "user"})
    assert (message.parent_tool_use_id, message.parent_agent_id) == (None, None)


def test_mirror_error_carries_the_key_and_the_error() -> None:
    error = MirrorError(key=KEY, error="append timed out after 5 s")
    assert (error.key, error.error) == (KEY, "append timed out after 5 s")
    assert MirrorError(None, "unmapped").key is None


def test_fork_session_result_holds_the_new_session_id() -> None:
    assert ForkSessionResult(session_id="new").session_id == "new"
