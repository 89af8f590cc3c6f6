"""The vocabulary of the session store: keys, entries, the ``SessionStore`` protocol and result records.

Implements reference §1 (types) and §2.1 (capability probing). Everything else in ``session_store`` speaks
in these names, and adapters only need this module to be a store.

Shapes (reference §1):

- ``SessionKey`` addresses one transcript: ``project_key`` + ``session_id``, and ``subpath`` for a subagent
  transcript (``"subagents/agent-<id>"``). SPEC §4 decision 2: ``subpath == ""`` is invalid everywhere and
  stores raise ``ValueError``; leave the field out for the main transcript.
- ``SessionStoreEntry`` is one transcript line: ``type`` is required, ``uuid`` and ``timestamp`` are common,
  every other field is opaque JSON that a store must hand back deep-equal.
- ``SessionStore`` is a ``typing.Protocol`` that is deliberately **not** ``@runtime_checkable``:
  ``isinstance(x, SessionStore)`` raises ``TypeError``. Ask :func:`store_implements` instead. ``append`` and
  ``load`` are required; ``list_sessions``, ``list_session_summaries``, ``delete`` and ``list_subkeys`` are
  optional, as is this project's ``append_once`` (not in the SDK's protocol); a subclass that inherits their
  default (which raises ``NotImplementedError``) counts as not implementing them. ``list_projects`` and
  ``prune_project`` are this project's optional retention methods (neither is in the SDK's protocol nor in
  :data:`OPTIONAL_STORE_METHODS`, the methods the conformance suite has contracts for).
- ``SessionInfo`` carries the fields of the SDK's ``SDKSessionInfo``. SPEC §4 decision 6: rows built from a
  store always have ``file_size = None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Protocol, Required, TypedDict

__all__ = [
    "ForkSessionResult",
    "MirrorError",
    "OPTIONAL_STORE_METHODS",
    "SessionInfo",
    "SessionKey",
    "SessionListSubkeysKey",
    "SessionMessage",
    "SessionStore",
    "SessionStoreEntry",
    "SessionStoreFlushMode",
    "SessionStoreListEntry",
    "SessionSummaryEntry",
    "store_implements",
]


class SessionKey(TypedDict):
    """Where one transcript lives in a store.

    ``project_key`` is a caller-chosen scope (default: the sanitized cwd, see
    :func:`session_store.keys.project_key_for_directory`; multi-tenant deployments may use a tenant id).
    ``subpath`` is omitted for the main transcript and set for subagent transcripts, e.g.
    ``"subagents/agent-<id>"``; the empty string is invalid (SPEC §4 decision 2). To a store it is an opaque
    suffix of the storage key.
    """

    project_key: str
    session_id: str
    subpath: NotRequired[str]


class SessionStoreEntry(TypedDict, total=False):
    """One transcript line. Only ``type`` is required; any other field is opaque JSON passed through as is.

    ``uuid`` is the idempotency key: stores ignore an entry whose uuid they already hold for that key. Entries
    without a uuid (titles, tags, mode markers) are always appended by ``append``; ``append_once`` identifies
    them by content and occurrence (:mod:`session_store.exactly_once`).
    """

    type: Required[str]
    uuid: str
    timestamp: str


class SessionStoreListEntry(TypedDict):
    """One row of ``list_sessions``: the session id and its last-modified time in Unix epoch milliseconds."""

    session_id: str
    mtime: int


class SessionSummaryEntry(TypedDict):
    """The incrementally folded summary sidecar of one main transcript (reference §1.4, §5).

    ``mtime`` is the storage write time of the sidecar in epoch milliseconds, on the same clock as
    ``list_sessions`` (never derived from entry timestamps). ``data`` is opaque state owned by
    :func:`session_store.summary.fold_session_summary`: persist it verbatim.
    """

    session_id: str
    mtime: int
    data: dict[str, Any]


class SessionListSubkeysKey(TypedDict):
    """The session whose subpaths ``list_subkeys`` enumerates (no subpath)."""

    project_key: str
    session_id: str


SessionStoreFlushMode = Literal["batched", "eager"]
"""``"batched"``: flush once per turn or past the size thresholds; ``"eager"``: flush after every frame."""


def _absent(method: str) -> NotImplementedError:
    # A helper call rather than a bare ``raise NotImplementedError``: type checkers treat a bare one as an
    # abstract method, which would forbid instantiating a subclass that inherits the default to mean "absent".
    return NotImplementedError(
        f"this SessionStore does not implement {method}(); check store_implements(store, {method!r}) first"
    )


class SessionStore(Protocol):
    """A backend that keeps session transcripts (reference §1.7). Not runtime-checkable: probe with
    :func:`store_implements`.

    The Claude CLI still writes its transcripts to local disk under ``CLAUDE_CONFIG_DIR``; a store gets a
    second copy of every line (mirrored by :mod:`session_store.batcher`, or imported), and a resume writes the
    stored copy back to a temp config dir first.

    Within one process a store persists appends in call order. Every method is ``async`` and must work under
    asyncio and trio (use ``compat`` for any concurrency).
    """

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Persist ``entries`` after what the key already holds, in order.

        Entries whose ``uuid`` the key already holds are ignored; entries without a uuid are always appended.
        ``append(key, [])`` is a no-op that creates nothing. ``subpath == ""`` raises ``ValueError``.
        Stores implementing ``list_session_summaries`` fold main-transcript appends into the summary here.
        """
        ...

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """A fresh copy of the key's entries, deep-equal to what was appended; ``None`` if never written.

        Called (not only before the CLI starts):

        - by :func:`~session_store.resume.materialize_resume_session`: once for an explicit ``resume`` id; for
          ``continue_conversation``, once per candidate, newest first, until a non-sidechain session loads; then
          once per subpath when ``list_subkeys`` is implemented;
        - by the readers ``get_session_messages_from_store``, ``get_subagent_messages_from_store`` and
          ``get_session_info_from_store``, and by ``fork_session_via_store``;
        - by ``list_sessions_from_store``: once per session when ``list_session_summaries`` is not implemented,
          and for the sessions of a page whose summary is missing or stale when it is.

        (The SDK's docstring since 0.2.160 gives this list without the info reader and the stale-summary loads,
        which its code makes too.)
        """
        ...

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """Optional. Main transcripts of one project with their mtime in epoch ms; order unspecified."""
        raise _absent("list_sessions")

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """Optional. Summary sidecars of one project's main transcripts (folded inside ``append``)."""
        raise _absent("list_session_summaries")

    async def delete(self, key: SessionKey) -> None:
        """Optional. Delete a key; a main key (no subpath) cascades to every subkey and the summary."""
        raise _absent("delete")

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """Optional. Every subpath stored under a session (never the main transcript)."""
        raise _absent("list_subkeys")

    # -- retention (this project's extension; not in the SDK's protocol): see session_store.retention --

    async def list_projects(self) -> list[str]:
        """Optional. Every project key that holds at least one main transcript (order unspecified).

        Lets :func:`session_store.retention.prune_sessions` work on every project of a store.
        """
        raise _absent("list_projects")

    async def prune_project(
        self, project_key: str, *, before_ms: int, dry_run: bool = False
    ) -> list[SessionStoreListEntry]:
        """Optional. Delete (like ``delete`` of the main key) every session of the project whose ``mtime`` is
        before ``before_ms``; return the deleted rows (with ``dry_run``, the rows it would delete, deleting
        nothing). Found through an index range, not a scan; a session appended to while it is pruned is kept
        whole or deleted whole, never cut.
        """
        raise _absent("prune_project")

    async def append_once(
        self, key: SessionKey, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        """Optional (this project's, not the SDK's). ``append`` that stores each source line at most once.

        An entry with a uuid is stored unless the key holds that uuid (as ``append`` does). An entry without
        one, with occurrence ``n`` (its copy number in the source, from
        :func:`session_store.exactly_once.occurrences`), is stored unless the key already holds more than
        ``n`` entries equal to it by :func:`~session_store.exactly_once.canonical_json`, whether ``append`` or
        ``append_once`` stored them (entries stored earlier in the same call count). Stored entries keep the
        call's order; the call is atomic, so two writers sending the same arguments at once store each entry
        once. Returns how many entries were newly stored; ``[]`` is a no-op returning 0; validation as
        ``append``. Callers use :func:`session_store.exactly_once.append_once`, which falls back to
        ``load`` + ``append`` for a store without this method.
        """
        raise _absent("append_once")


OPTIONAL_STORE_METHODS = frozenset({"list_sessions", "list_session_summaries", "delete", "list_subkeys", "append_once"})
"""The ``SessionStore`` methods a store may leave out."""


def store_implements(store: object, method: str) -> bool:
    """Whether ``store`` really provides ``method`` (reference §2.1).

    False when the store has no such attribute, or when what its class has is the default from a
    ``typing.Protocol`` class body (inherited, or assigned to mark the method absent): this project's
    ``SessionStore`` or another declaration of the protocol among the store's bases, such as the SDK's own
    ``claude_agent_sdk.types.SessionStore`` (so a store written against the SDK's types is probed the same
    way). True for an override (even one that raises ``NotImplementedError``), for a duck-typed class that
    defines the method, and for a method set on the instance, even over a protocol default (SDK issue #1215). For a name that is not a ``SessionStore`` method, True
    when the attribute exists.
    """
    if getattr(store, method, None) is None:
        return False
    if method in getattr(store, "__dict__", ()):
        return True  # set on the instance (a store assembled at runtime): provided, whatever its class declares
    on_class = getattr(type(store), method, None)
    if on_class is None:
        return True  # only an instance attribute provides it
    if on_class is getattr(SessionStore, method, None):
        return False
    return not any(
        vars(klass).get("_is_protocol", False) and vars(klass).get(method) is on_class for klass in type(store).__mro__
    )


@dataclass
class SessionInfo:
    """One listed session: the fields of the SDK's ``SDKSessionInfo`` (reference §1.8), times in epoch ms.

    ``file_size`` is always ``None`` for rows read from a store (SPEC §4 decision 6).
    """

    session_id: str
    summary: str
    last_modified: int
    file_size: int | None = None
    custom_title: str | None = None
    first_prompt: str | None = None
    git_branch: str | None = None
    cwd: str | None = None
    tag: str | None = None
    created_at: int | None = None


@dataclass
class SessionMessage:
    """One visible user/assistant message of a transcript (reference §1.9).

    ``message`` is the raw API message dict. The parent fields are None for top-level messages and come from
    the agent metadata for subagent messages.
    """

    type: Literal["user", "assistant"]
    uuid: str
    session_id: str
    message: Any
    parent_tool_use_id: str | None = None
    parent_agent_id: str | None = None


@dataclass
class ForkSessionResult:
    """The outcome of forking a session: the new session's UUID."""

    session_id: str


@dataclass
class MirrorError:
    """What ``on_error`` reports when a mirror append is given up (reference §1.10 ``MirrorErrorMessage``).

    Reported once a batch has been dropped: after its retries ran out, or after one attempt timed out (a
    timed-out ``append`` may still land in the store). A dropped batch is never sent again later, so the store's
    copy lacks it unless that timed-out append landed.

    ``key`` is the transcript that could not be written, or None when the frame could not be mapped to a key
    (SPEC §4 decision 5). ``error`` always says what failed (SPEC §4 decision 4: never empty).
    """

    key: SessionKey | None
    error: str
