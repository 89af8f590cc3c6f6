"""``S3SessionStore``: session transcripts in any S3-compatible object store, for stateless deployments.

Implements the whole ``SessionStore`` contract of reference §1.7 (all six methods, ``list_session_summaries``
included) plus ``append_once``, with the project's decisions of SPEC §4: ``subpath == ""`` raises
``ValueError``, ``append(key, [])`` creates nothing, entries are idempotent by ``uuid`` per key, the summary
is folded atomically with the append, and every ``mtime`` is the object store's own clock (``LastModified``).

Driver: boto3's sync client through ``compat.run_sync`` with a limiter (like the other adapters), so the store
works under asyncio and trio alike. Credentials come from boto3's usual chain (environment, shared config and
credentials files, instance roles), never from the URL.

Layout (``P`` is the prefix, ``pk`` and ``sid`` have ``%`` and ``/`` percent-encoded; a subpath keeps its
``/`` segments)::

    P{pk}/{sid}/part-{ms:013d}-{hex6}-ss.jsonl            a main-transcript part written here
    P{pk}/{sid}/{subpath}/part-{ms:013d}-{hex6}-ss.jsonl  a subagent part written here
    P{pk}/%index/{sid}.json       the session's main index: its committed parts, the folded summary
    P{pk}/%sub/{sid}/{subpath%}.json  one subkey's index (the subpath with ``%`` and ``/`` encoded)
    P{pk}/%listing.json           the listing cache: each session's index ETag, mtime and summary

**Read-compatible with the SDK's example S3 store** (reference §13.1): its parts are
``P{pk}/{sid}/[{subpath}/]part-{ms:013d}-{hex6}.jsonl``. A key that has no index here is read the SDK's way
(its direct ``part-*.jsonl`` children in name order; malformed lines skipped), listed by the newest part name,
and adopted into an index by the first append made here. Write-side differences: parts written here end in
``-ss.jsonl`` and only count once an index names them, and the ``%index`` / ``%sub`` objects exist; the SDK's
example reads this store's parts but not its indexes (it would also read uncommitted parts).

**Commit protocol** (one key at a time; the main transcript and each subpath have their own index):

1. ``GET`` the key's index (ETag E, or absent).
2. Work out what is new: entries whose uuid the key holds, and ``append_once`` entries the key already holds
   enough copies of, are dropped (the store keeps the key's uuids and copy counts in memory, keyed by the
   index ETag, reading only the parts committed since it last looked).
3. ``PUT`` the new entries as one part object under a fresh name.
4. ``PUT`` the index naming that part last (and, for the main transcript, the folded summary) with
   ``If-Match: E`` (``If-None-Match: *`` for a new index). The part is committed exactly when this succeeds.
5. On ``412 Precondition Failed`` (another writer committed first) the part is deleted and the append starts
   over from 1, at most :data:`MAX_COMMIT_ATTEMPTS` times.

So concurrent writers, in one process or many, keep every entry exactly once and in order per writer; a crash
between 3 and 4 leaves an uncommitted part that no reader sees and :meth:`S3SessionStore.compact` removes
after :data:`ORPHAN_GRACE_SECONDS`. Readers take the parts an index names; a part that vanished under them
(compacted meanwhile) makes them read the index again.

**Listings** read the ETag of every main index with ``ListObjectsV2`` (one request per 1,000 sessions) and the
listing cache (one ``GET``); a session whose cached row carries the ETag just listed is taken from the cache,
any other is read from its index (16 ``GET``s in flight). A listing that needed many such ``GET``s
(:data:`LISTING_REWRITE_MIN_GETS`, and one in 32 sessions) rewrites the cache. The cache is never trusted
beyond its ETags: a stale, damaged or missing cache costs ``GET``s, never a wrong row (a row forged with an
index's current ETag would be believed, but forging it takes the same write access as forging the index); a
refused write (read-only credentials) is logged at debug level and the listing goes on; two listers writing it
at once each write rows that are correct for their ETags. Once a project has no session left (deleted, pruned,
or found empty by a listing), its cache is deleted too, so the project leaves no object.

**Compaction** (:meth:`S3SessionStore.compact`, ``session-store compact``): per key, all committed parts are
merged into one new part, the index is swapped to name only it (``If-Match``: a concurrent append makes it
start over), and only then are the old parts deleted. A reader sees the old parts or the new one, never both and
never neither. Without compaction every append adds a part, and a load fetches them all (16 at a time).

The object store must support conditional writes (``If-Match`` / ``If-None-Match`` on ``PutObject``, and
``If-Match`` on ``DeleteObject`` for :func:`prune_sessions`); AWS S3 and the test server do. boto3 is imported
when a store is built; without it the error names the extra: ``pip install 'session-store-compat[s3]'``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit

import compat

from ..exactly_once import content_hash, plan_append_once
from ..keys import validate_project_key, validate_session_key
from ..redaction import redact_url
from ..summary import fold_session_summary
from ..types import SessionKey, SessionStoreEntry, SessionStoreListEntry, SessionSummaryEntry
from ..validation import encode_json
from ._threaded import ThreadedSessionStore, encode_entry, entry_uuid, require_driver

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = ["MAX_COMMIT_ATTEMPTS", "MAX_OBJECT_NAME_BYTES", "ORPHAN_GRACE_SECONDS", "S3SessionStore"]

T = TypeVar("T")

_log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 50
"""How often an append (or a compaction) starts over after another writer committed the same index first."""

ORPHAN_GRACE_SECONDS = 3600.0
"""An uncommitted part (its writer crashed, or lost the race) older than this is removed by ``compact``."""

MAX_PARALLEL_FETCHES = 16

MAX_OBJECT_NAME_BYTES = 1024
"""S3's limit on an object name (UTF-8 bytes); an append whose object names would be longer raises ValueError."""

_PART_NAME_BYTES = len("part-0000000000000-000000-ss.jsonl")

LISTING_REWRITE_MIN_GETS = 64
"""A listing rewrites the project's listing cache when it had to ``GET`` at least this many indexes (and at
least one in 32 of the project's sessions): one ``PUT`` then saves every later listing those ``GET``s."""

_LISTING = "%listing.json"

_SDK_PART = re.compile(r"part-(\d{13})-[0-9a-f]{6}\.jsonl")
_OWN_PART = re.compile(r"part-(\d{13})-[0-9a-f]{6}-ss\.jsonl")
_STATE_CACHE_SIZE = 256


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def _flat(subpath: str) -> str:
    return quote(subpath, safe="")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _epoch_ms(last_modified: Any) -> int:
    return int(last_modified.timestamp() * 1000)


def _server_ms(response: dict[str, Any]) -> int:
    """The object store's clock (its ``Date`` header, epoch ms) when it answered; this machine's without one."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        try:
            return int(parsedate_to_datetime(date).timestamp() * 1000)
        except (TypeError, ValueError):
            pass
    return _now_ms()


@dataclass
class _KeyState:
    """What one key holds, as of index ETag ``etag``: its committed parts, uuids and copy counts."""

    etag: str | None = None
    parts: list[str] = field(default_factory=list)
    uuids: set[str] = field(default_factory=set)
    copies: Counter[str] = field(default_factory=Counter)
    index: dict[str, Any] = field(default_factory=dict)

    def take(self, entries: list[SessionStoreEntry]) -> None:
        for entry in entries:
            uuid = entry_uuid(entry)
            if uuid is not None:
                self.uuids.add(uuid)
            else:
                self.copies[content_hash(entry)] += 1


_ACCESS_DENIED = (
    "access to bucket {bucket!r} at {where} was denied for these credentials: the store needs s3:ListBucket on the "
    "bucket and s3:GetObject, s3:PutObject and s3:DeleteObject on 'arn:aws:s3:::{bucket}/{prefix}*'"
)
_ACCESS_CODES = frozenset({"AccessDenied", "AllAccessDisabled"})
_ACCESS_DENIED_READ_ONLY = (
    "access to bucket {bucket!r} at {where} was denied for these credentials: the store, opened read-only, needs "
    "s3:ListBucket on the bucket and s3:GetObject on 'arn:aws:s3:::{bucket}/{prefix}*'"
)
_SETUP_ERRORS = {
    "KeyTooLongError": (
        "an object name of this store would be longer than the 1,024 bytes S3 allows: shorten the store prefix, "
        "the project key, the session id or the subpath"
    ),
    "NoSuchBucket": (
        "bucket {bucket!r} does not exist at {where}: create it (aws s3 mb s3://{bucket}) or fix the bucket in the "
        "store URL"
    ),
    "AccessDenied": _ACCESS_DENIED,
    "AllAccessDisabled": _ACCESS_DENIED,
    "InvalidAccessKeyId": (
        "{where} does not know this access key id: check AWS_ACCESS_KEY_ID, AWS_PROFILE or ~/.aws/credentials"
    ),
    "SignatureDoesNotMatch": (
        "the secret access key does not belong to this access key id at {where}: check AWS_SECRET_ACCESS_KEY, "
        "AWS_PROFILE or ~/.aws/credentials"
    ),
    "InvalidToken": "the session token was refused at {where}: refresh the credentials (AWS_SESSION_TOKEN, SSO login)",
    "ExpiredToken": "the session token has expired at {where}: refresh the credentials (AWS_SESSION_TOKEN, SSO login)",
}
"""The S3 error codes of a store being set up, and what each message says instead (``{bucket}``, ``{where}``:
the endpoint, redacted, ``{prefix}``)."""


def _no_credentials() -> Exception:
    """A ``botocore.exceptions.NoCredentialsError`` whose message says where credentials come from."""
    from botocore.exceptions import NoCredentialsError

    class NoCredentialsError(NoCredentialsError):  # type: ignore[misc,no-redef]  # same name in messages
        fmt = (
            "Unable to locate credentials for the S3 store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE with ~/.aws/credentials, or run where an instance or task role provides them"
        )

    error: Exception = NoCredentialsError()
    return error


class _Lost(Exception):
    """A part named by an index is gone (compacted or deleted meanwhile): read the index again."""


class S3SessionStore(ThreadedSessionStore):
    """A ``SessionStore`` in an S3 bucket (see the module docstring for the layout and the commit protocol).

    ``bucket``: the bucket (it must exist). ``prefix``: the key prefix of every object (normalized to end in one
    ``/``). ``client``: a boto3 S3 client you own; else one is built from ``endpoint_url`` and ``region`` with
    boto3's default credential chain. ``max_connections`` bounds concurrent requests. ``read_only``: write no
    object, the listing cache included (what the command line's reading commands use); an append, delete,
    compaction or prune raises ``PermissionError`` before any request.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        client: BaseClient | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_connections: int = MAX_PARALLEL_FETCHES,
        read_only: bool = False,
    ) -> None:
        require_driver("boto3", store="S3SessionStore", extra="s3")
        if not isinstance(bucket, str) or not bucket:
            raise ValueError(f"S3SessionStore needs a bucket name, got {bucket!r}; e.g. 's3://my-bucket/sessions/'")
        if not isinstance(prefix, str):
            raise TypeError(f"S3SessionStore prefix must be a str, got {type(prefix).__name__}")
        super().__init__(max_threads=max_connections)
        self.bucket = bucket
        self.read_only = read_only
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._max_connections = max_connections
        self._owns_client = client is None
        self._built_client = client
        self._client_lock = threading.Lock()
        self._states: OrderedDict[str, _KeyState] = OrderedDict()
        self._states_lock = threading.Lock()
        self._last_ms = 0
        self._clock_lock = threading.Lock()

    def __repr__(self) -> str:
        read_only = ", read_only=True" if self.read_only else ""
        return f"S3SessionStore(bucket={self.bucket!r}, prefix={self.prefix!r}{read_only})"

    def _writable(self) -> None:
        if self.read_only:
            raise PermissionError(
                f"{self!r} was opened read-only and writes nothing; open it without read_only=True to change it"
            )

    @property
    def _client(self) -> Any:
        with self._client_lock:
            if self._built_client is None:
                import boto3
                from botocore.config import Config

                self._built_client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region,
                    config=Config(max_pool_connections=2 * self._max_connections, retries={"mode": "standard"}),
                )
            return self._built_client

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        try:
            return await super()._call(fn, *args)
        except EndpointConnectionError:
            # "from None": botocore's message holds the endpoint URL as given, password included
            raise ConnectionError(
                f"cannot reach the object store at {self._where()} for bucket {self.bucket!r} (is the endpoint up "
                "and the URL right?)"
            ) from None
        except NoCredentialsError as error:
            raise _no_credentials() from error
        except ClientError as error:
            explained = self._explained(error)
            if explained is None:
                raise
            raise explained from error

    def _where(self) -> str:
        """The endpoint, for messages: redacted, or "AWS S3" for Amazon's own endpoints."""
        endpoint = self._endpoint_url
        if endpoint is None and self._built_client is not None:
            endpoint = getattr(getattr(self._built_client, "meta", None), "endpoint_url", None)
        if not endpoint or (urlsplit(endpoint).hostname or "").endswith(".amazonaws.com"):
            return "AWS S3"
        return redact_url(endpoint)

    def _explained(self, error: Any) -> Exception | None:
        """The same ``ClientError`` with a message naming the bucket, the endpoint and the fix, for the errors an
        operator meets when setting a store up (bucket, credentials, permissions); None for any other."""
        from botocore.exceptions import ClientError

        code = error.response.get("Error", {}).get("Code")
        text = _ACCESS_DENIED_READ_ONLY if code in _ACCESS_CODES and self.read_only else _SETUP_ERRORS.get(code)
        if text is None:
            return None
        response = {**error.response, "Error": {**error.response["Error"]}}
        response["Error"]["Message"] = text.format(bucket=self.bucket, where=self._where(), prefix=self.prefix or "")
        explained: Exception = ClientError(response, error.operation_name)
        return explained

    # -- object names ---------------------------------------------------------------------------------------

    def _project_dir(self, project_key: str) -> str:
        return f"{self.prefix}{_escape(project_key)}/"

    def _session_dir(self, project_key: str, session_id: str) -> str:
        return f"{self._project_dir(project_key)}{_escape(session_id)}/"

    def _key_dir(self, project_key: str, session_id: str, subpath: str | None) -> str:
        session_dir = self._session_dir(project_key, session_id)
        return session_dir if subpath is None else f"{session_dir}{subpath}/"

    def _main_indexes(self, project_key: str) -> str:
        """The folder of the project's main indexes."""
        return f"{self._project_dir(project_key)}%index/"

    def _sub_indexes(self, project_key: str, session_id: str) -> str:
        """The folder of one session's subkey indexes."""
        return f"{self._project_dir(project_key)}%sub/{_escape(session_id)}/"

    def _index_name(self, project_key: str, session_id: str, subpath: str | None) -> str:
        if subpath is None:
            return f"{self._main_indexes(project_key)}{_escape(session_id)}.json"
        return f"{self._sub_indexes(project_key, session_id)}{_flat(subpath)}.json"

    def _new_part_name(self, after: list[str]) -> str:
        """A fresh part name that sorts after ``after`` (the key's parts) and after this store's last one."""
        newest = max((int(match.group(1)) for name in after[-1:] if (match := _part_match(name))), default=0)
        with self._clock_lock:
            self._last_ms = max(_now_ms(), self._last_ms + 1, newest + 1)
            ms = self._last_ms
        return f"part-{ms:013d}-{secrets.token_hex(3)}-ss.jsonl"

    # -- requests -------------------------------------------------------------------------------------------

    def _is_missing(self, error: Exception) -> bool:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        return code in ("NoSuchKey", "404", "NotFound")

    def _is_conflict(self, error: Exception) -> bool:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        return code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")

    def _get(self, name: str) -> tuple[bytes, str] | None:
        """The object's body and ETag, or None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if self._is_missing(error):
                return None
            raise
        return response["Body"].read(), response["ETag"]

    def _get_index(self, name: str) -> tuple[dict[str, Any], str] | None:
        found = self._get(name)
        if found is None:
            return None
        body, etag = found
        index: dict[str, Any] = json.loads(body)
        return index, etag

    def _put_index(self, name: str, index: dict[str, Any], etag: str | None) -> str | None:
        """Write the index if it is still at ``etag`` (absent when None): its new ETag, or None when another
        writer got there first."""
        from botocore.exceptions import ClientError

        self._writable()
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            response = self._client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=encode_json(index).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if self._is_conflict(error) or (etag is not None and self._is_missing(error)):
                return None
            raise
        new_etag: str = response["ETag"]
        return new_etag

    def _put_part(self, name: str, entries: list[SessionStoreEntry]) -> int:
        """Write one part; returns the object store's clock (epoch ms) when it took it."""
        self._writable()
        body = "".join(encode_entry(entry) + "\n" for entry in entries).encode()
        response = self._client.put_object(Bucket=self.bucket, Key=name, Body=body, ContentType="application/x-ndjson")
        return _server_ms(response)

    def _still(self, index_name: str, state: _KeyState) -> bool:
        """Whether the index is still at ``state``'s ETag (a ``HEAD`` request)."""
        from botocore.exceptions import ClientError

        try:
            response = self._client.head_object(Bucket=self.bucket, Key=index_name)
        except ClientError as error:
            if self._is_missing(error):
                return False
            raise
        return bool(response["ETag"] == state.etag)

    def _delete_objects(self, names: list[str]) -> None:
        self._writable()
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            response = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": name} for name in chunk], "Quiet": True}
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"S3 delete failed for {len(errors)} object(s) in bucket {self.bucket!r}: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )

    def _list(self, prefix: str, *, delimiter: bool) -> Iterator[dict[str, Any]]:
        """Every page of ListObjectsV2 under ``prefix`` (direct children only with ``delimiter``)."""
        paginator = self._client.get_paginator("list_objects_v2")
        options = {"Delimiter": "/"} if delimiter else {}
        yield from paginator.paginate(Bucket=self.bucket, Prefix=prefix, **options)

    def _direct(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name relative to ``prefix``, listing item) of each object directly under ``prefix``."""
        for page in self._list(prefix, delimiter=True):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name and "/" not in name:  # some S3-compatibles ignore Delimiter
                    yield name, item

    def _children(self, prefix: str) -> list[tuple[str, Any]]:
        """(name relative to ``prefix``, LastModified) of the objects directly under ``prefix``."""
        return [(name, item["LastModified"]) for name, item in self._direct(prefix)]

    def _indexes_under(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(decoded name, listing item) of each index object (``NAME.json``) directly under ``prefix``."""
        for name, item in self._direct(prefix):
            if name.endswith(".json"):
                yield unquote(name[: -len(".json")]), item

    def _sdk_parts(self, key_dir: str) -> list[tuple[str, Any]]:
        """The SDK example's parts directly under ``key_dir``, in order."""
        return sorted((name, modified) for name, modified in self._children(key_dir) if _SDK_PART.fullmatch(name))

    def _read_part(self, name: str) -> list[SessionStoreEntry]:
        """The entries of one part; malformed lines are skipped, as the SDK's example does (parts written here
        have none)."""
        found = self._get(name)
        if found is None:
            raise _Lost(name)
        entries: list[SessionStoreEntry] = []
        for line in found[0].decode("utf-8", errors="replace").split("\n"):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(cast(SessionStoreEntry, entry))
        return entries

    # -- key state (what a key holds, for deduplication) -----------------------------------------------------

    def _cached_state(self, index_name: str) -> _KeyState | None:
        with self._states_lock:
            state = self._states.get(index_name)
            if state is not None:
                self._states.move_to_end(index_name)
            return state

    def _remember(self, index_name: str, state: _KeyState) -> None:
        with self._states_lock:
            self._states[index_name] = state
            self._states.move_to_end(index_name)
            while len(self._states) > _STATE_CACHE_SIZE:
                self._states.popitem(last=False)

    def _forget_session(self, project_key: str, session_id: str) -> None:
        main = self._index_name(project_key, session_id, None)
        subs = self._sub_indexes(project_key, session_id)
        with self._states_lock:
            for name in [name for name in self._states if name == main or name.startswith(subs)]:
                del self._states[name]

    def _current_state(self, project_key: str, session_id: str, subpath: str | None) -> _KeyState:
        """The key's state as of its index now (read from the parts committed since the cached state)."""
        index_name = self._index_name(project_key, session_id, subpath)
        key_dir = self._key_dir(project_key, session_id, subpath)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            found = self._get(index_name)
            if found is None:  # nothing committed here yet: adopt the SDK example's parts, if any
                sdk_parts = self._sdk_parts(key_dir)
                newest = max((int(_part_match(name).group(1)) for name, _ in sdk_parts), default=0)  # type: ignore[union-attr]
                state = _KeyState(index={"v": 1, "parts": [], "summary": None, "mtime": newest})
                state.parts = [key_dir + name for name, _ in sdk_parts]
                try:
                    for part in state.parts:
                        state.take(self._read_part(part))
                except _Lost:
                    continue
                state.index["parts"] = list(state.parts)
                return state
            body, etag = found
            index = json.loads(body)
            cached = self._cached_state(index_name)
            if cached is not None and cached.etag == etag:
                return cached
            parts: list[str] = list(index.get("parts", []))
            if cached is not None and parts[: len(cached.parts)] == cached.parts:
                state = _KeyState(etag, list(cached.parts), set(cached.uuids), Counter(cached.copies), index)
                new_parts = parts[len(cached.parts) :]
            else:
                state = _KeyState(etag, [], set(), Counter(), index)
                new_parts = parts
            try:
                for part in new_parts:
                    state.take(self._read_part(part))
                    state.parts.append(part)
            except _Lost:
                continue  # compacted under us: read the new index
            self._remember(index_name, state)
            return state
        raise RuntimeError(f"{index_name!r} kept changing while it was read; try again")

    # -- append ---------------------------------------------------------------------------------------------

    def _write_blocking(
        self,
        key: SessionKey,
        subpath: str | None,
        entries: list[SessionStoreEntry],
        occurrences: list[int | None] | None,
    ) -> int:
        self._writable()
        project_key, session_id = key["project_key"], key["session_id"]
        index_name = self._index_name(project_key, session_id, subpath)
        key_dir = self._key_dir(project_key, session_id, subpath)
        longest = max(len(index_name.encode()), len(key_dir.encode()) + _PART_NAME_BYTES)
        if longest > MAX_OBJECT_NAME_BYTES:
            raise ValueError(
                f"the object names of {key!r} would be {longest:,} bytes long, over the {MAX_OBJECT_NAME_BYTES:,} "
                "bytes S3 allows: shorten the store prefix, the project key, the session id or the subpath"
            )
        for entry in entries:
            encode_entry(entry)  # refuses what JSON cannot carry, before any request
        # Optimistic first attempt: what this store last committed or read is usually still current, and
        # a stale guess costs nothing but a retry (its conditional index write fails).
        state = self._cached_state(index_name)
        fresh = False
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if state is None:
                state, fresh = self._current_state(project_key, session_id, subpath), True
            stored = _new_entries(state, entries, occurrences)
            if not stored:
                if not fresh and not self._still(index_name, state):
                    state = None  # deleted or changed meanwhile: decide again on what the store holds now
                    continue
                return 0
            part = key_dir + self._new_part_name(state.parts)
            server_ms = self._put_part(part, stored)
            index = dict(state.index)
            index["parts"] = [*state.parts, part]
            if subpath is None:
                index["summary"] = self._folded(key, index.get("summary"), stored)
                index["mtime"] = max(server_ms, int(index.get("mtime") or 0) + 1)  # one clock, always forward
            new_etag = self._put_index(index_name, index, state.etag)
            if new_etag is not None:
                committed = _KeyState(new_etag, index["parts"], set(state.uuids), Counter(state.copies), index)
                committed.take(stored)
                self._remember(index_name, committed)
                return len(stored)
            self._delete_objects([part])  # lost the race: nothing of this attempt stays
            state = None
        raise RuntimeError(
            f"gave up after {MAX_COMMIT_ATTEMPTS} attempts: the index of {key!r} kept changing under concurrent writers"
        )

    def _folded(self, key: SessionKey, data: Any, stored: list[SessionStoreEntry]) -> Any:
        previous: SessionSummaryEntry | None = (
            {"session_id": key["session_id"], "mtime": 0, "data": data} if data is not None else None
        )
        return fold_session_summary(previous, key, stored)["data"]

    # -- reads ----------------------------------------------------------------------------------------------

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """The key's entries in append order (the SDK example's parts when no index names any), or None."""
        validate_session_key(key)
        project_key, session_id, subpath = key["project_key"], key["session_id"], key.get("subpath")
        for _ in range(MAX_COMMIT_ATTEMPTS):
            parts = await self._call(self._parts_to_load, project_key, session_id, subpath)
            chunks = await self._read_parts(parts)
            if chunks is not None:
                entries = [entry for chunk in chunks for entry in chunk]
                return entries or None
            # a part was compacted or deleted under us: read the index again
        raise RuntimeError(f"the parts of {key!r} kept changing while they were read; try again")

    async def _read_parts(self, parts: list[str]) -> list[list[SessionStoreEntry]] | None:
        """The entries of each part, fetched 16 at a time; None when one of them is gone."""
        chunks: list[list[SessionStoreEntry]] = [[] for _ in parts]
        lost = False

        async def fetch(slot: int) -> None:
            nonlocal lost
            try:
                chunks[slot] = await self._call(self._read_part, parts[slot])
            except _Lost:
                lost = True

        await _each(range(len(parts)), fetch)
        return None if lost else chunks

    def _parts_to_load(self, project_key: str, session_id: str, subpath: str | None) -> list[str]:
        found = self._get_index(self._index_name(project_key, session_id, subpath))
        if found is not None:
            return list(found[0].get("parts", []))
        key_dir = self._key_dir(project_key, session_id, subpath)
        return [key_dir + name for name, _ in self._sdk_parts(key_dir)]

    def _listed_indexes(self, project_key: str) -> list[tuple[str, str]]:
        """(session id, ETag) of every main index committed here: one ``ListObjectsV2`` per 1,000 sessions."""
        return [(session_id, item["ETag"]) for session_id, item in self._indexes_under(self._main_indexes(project_key))]

    def _listing_name(self, project_key: str) -> str:
        return f"{self._project_dir(project_key)}{_LISTING}"

    def _read_listing(self, project_key: str) -> tuple[dict[str, Any], bool]:
        """The project's listing cache (session id -> [index ETag, mtime, summary]), empty when absent or
        damaged (it is only a cache: every row is checked against the index's current ETag before use); and
        whether the object exists."""
        found = self._get(self._listing_name(project_key))
        if found is None:
            return {}, False
        try:
            data = json.loads(found[0])
            sessions = data["sessions"] if data.get("v") == 1 else {}
        except (ValueError, TypeError, KeyError, AttributeError):
            return {}, True
        return (sessions if isinstance(sessions, dict) else {}), True

    def _drop_listing(self, project_key: str) -> None:
        """Delete the listing cache of a project with no session left, so the project leaves no object behind;
        a refusal (credentials that may only read) is not an error, as for its writes."""
        from botocore.exceptions import ClientError

        if self.read_only:
            return
        try:
            self._delete_objects([self._listing_name(project_key)])
        except (ClientError, RuntimeError) as error:
            _log.debug("the listing cache of %r was not removed (%s); listings still work", project_key, error)

    def _tidy_project(self, project_key: str) -> None:
        """After a session went: drop the listing cache when no session of the project is left (one
        ``ListObjectsV2`` of at most one key)."""
        prefix = self._main_indexes(project_key)
        response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        if not response.get("Contents"):
            self._drop_listing(project_key)

    def _write_listing(self, project_key: str, rows: dict[str, list[Any]]) -> None:
        """Replace the listing cache; a refusal (read-only credentials, say) only costs the next listing its
        ``GET``s, so it is not an error."""
        from botocore.exceptions import ClientError

        if self.read_only:
            return
        body = encode_json({"v": 1, "sessions": rows}).encode()
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._listing_name(project_key), Body=body, ContentType="application/json"
            )
        except ClientError as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            _log.debug("the listing cache of %r was not written (%s); listings still work", project_key, code)

    def _sdk_sessions(self, project_key: str, known: set[str]) -> dict[str, int]:
        """Session id -> mtime of the SDK example's sessions with no index here (newest main part name)."""
        project_dir = self._project_dir(project_key)
        found: dict[str, int] = {}
        for page in self._list(project_dir, delimiter=True):
            for common in page.get("CommonPrefixes", []):
                folder = common["Prefix"][len(project_dir) : -1]
                if folder.startswith("%") and not folder.startswith(("%25", "%2F")):
                    continue  # %index, %sub
                session_id = unquote(folder)
                if session_id in known:
                    continue
                parts = self._sdk_parts(common["Prefix"])
                if parts:
                    name, modified = parts[-1]
                    match = _SDK_PART.fullmatch(name)
                    found[session_id] = int(match.group(1)) if match else _epoch_ms(modified)
        return found

    async def _indexes(self, project_key: str) -> tuple[list[str], dict[str, list[Any]]]:
        """The committed sessions of the project and, for each, [index ETag, mtime, summary].

        Rows come from the listing cache when its ETag is the one the listing just gave, else from a ``GET``
        of the index (16 at a time); the cache is rewritten when that took many ``GET``s.
        """
        listed: list[tuple[str, str]] = []
        cached: dict[str, Any] = {}
        cache_exists = False

        async def list_indexes() -> None:
            listed.extend(await self._call(self._listed_indexes, project_key))

        async def read_cache() -> None:
            nonlocal cache_exists
            rows, cache_exists = await self._call(self._read_listing, project_key)
            cached.update(rows)

        await _each([list_indexes, read_cache], lambda step: step())
        rows: dict[str, list[Any]] = {}
        missing: list[str] = []
        for session_id, etag in listed:
            row = cached.get(session_id)
            if _valid_row(row) and row[0] == etag:
                rows[session_id] = row
            else:
                missing.append(session_id)

        async def fetch(session_id: str) -> None:
            found = await self._call(self._get_index, self._index_name(project_key, session_id, None))
            if found is not None:  # else deleted since the listing
                index, etag = found
                rows[session_id] = [etag, int(index.get("mtime") or 0), index.get("summary")]

        await _each(missing, fetch)
        if not rows:
            if cache_exists:  # every session was deleted: the cache goes too, and the project with it
                await self._call(self._drop_listing, project_key)
        elif len(missing) >= max(LISTING_REWRITE_MIN_GETS, len(listed) // 32):
            ordered = {session_id: rows[session_id] for session_id, _ in listed if session_id in rows}
            await self._call(self._write_listing, project_key, ordered)
        return [session_id for session_id, _ in listed], rows

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """The project's main transcripts and their mtimes (the object store's clock at their last append)."""
        validate_project_key(project_key)
        session_ids, indexes = await self._indexes(project_key)
        rows: list[SessionStoreListEntry] = [
            {"session_id": session_id, "mtime": indexes[session_id][1]}
            for session_id in session_ids
            if session_id in indexes
        ]
        sdk_only = await self._call(self._sdk_sessions, project_key, set(session_ids))
        rows.extend({"session_id": session_id, "mtime": mtime} for session_id, mtime in sdk_only.items())
        return rows

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """The summaries of the project's sessions committed here, folded by each append.

        Sessions only the SDK's example wrote have no summary (they appear in ``list_sessions``; the listing
        helpers fold them from their transcripts).
        """
        validate_project_key(project_key)
        session_ids, indexes = await self._indexes(project_key)
        return [
            {"session_id": session_id, "mtime": row[1], "data": row[2]}
            for session_id in session_ids
            if (row := indexes.get(session_id)) is not None and row[2] is not None
        ]

    def _list_subkeys_blocking(self, project_key: str, session_id: str) -> list[str]:
        subpaths = {subpath for subpath, _ in self._indexes_under(self._sub_indexes(project_key, session_id))}
        session_dir = self._session_dir(project_key, session_id)
        for page in self._list(session_dir, delimiter=False):  # the SDK example's subagent parts
            for item in page.get("Contents", []):
                subpath, _, name = item["Key"][len(session_dir) :].rpartition("/")
                if subpath and _SDK_PART.fullmatch(name):
                    subpaths.add(subpath)
        return sorted(subpaths)

    # -- delete, compaction, retention ----------------------------------------------------------------------

    def _delete_blocking(self, project_key: str, session_id: str, subpath: str | None) -> None:
        if self._delete_key(project_key, session_id, subpath, if_match=None) and subpath is None:
            self._tidy_project(project_key)

    def _delete_key(self, project_key: str, session_id: str, subpath: str | None, *, if_match: str | None) -> bool:
        """Delete the key (the whole session without a subpath); False when ``if_match`` no longer holds.

        The index goes first, so the key leaves every listing and load at once; its parts follow. (The caller
        tidies the project afterwards: :meth:`_tidy_project`.)
        """
        from botocore.exceptions import ClientError

        self._writable()
        index_name = self._index_name(project_key, session_id, subpath)
        try:
            if if_match is not None:
                self._client.delete_object(Bucket=self.bucket, Key=index_name, IfMatch=if_match)
            else:
                self._client.delete_object(Bucket=self.bucket, Key=index_name)
        except ClientError as error:
            if if_match is not None and (self._is_conflict(error) or self._is_missing(error)):
                return False
            raise
        self._forget_session(project_key, session_id)
        if subpath is not None:
            key_dir = self._key_dir(project_key, session_id, subpath)
            self._delete_objects([key_dir + name for name, _ in self._children(key_dir)])
            return True
        names: list[str] = []
        for prefix in (
            self._session_dir(project_key, session_id),
            self._sub_indexes(project_key, session_id),
        ):
            for page in self._list(prefix, delimiter=False):
                names.extend(item["Key"] for item in page.get("Contents", []))
        self._delete_objects(names)
        return True

    async def compact(self, project_key: str, session_id: str) -> int:
        """Merge the committed parts of each key of the session into one part; returns how many parts went.

        Also removes uncommitted parts older than :data:`ORPHAN_GRACE_SECONDS`. Safe alongside appends and
        readers (see the module docstring).
        """
        validate_session_key({"project_key": project_key, "session_id": session_id})
        self._writable()
        subpaths: list[str | None] = [
            None,
            *await self.list_subkeys({"project_key": project_key, "session_id": session_id}),
        ]
        removed = 0
        for subpath in subpaths:
            removed += await self._call(self._compact_key, project_key, session_id, subpath)
        return removed

    def _compact_key(self, project_key: str, session_id: str, subpath: str | None) -> int:
        index_name = self._index_name(project_key, session_id, subpath)
        key_dir = self._key_dir(project_key, session_id, subpath)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            found = self._get_index(index_name)
            if found is None:
                return 0
            index, etag = found
            parts: list[str] = list(index.get("parts", []))
            removed = self._remove_orphans(key_dir, set(parts))
            if len(parts) <= 1:
                return removed
            try:
                entries = [entry for part in parts for entry in self._read_part(part)]
            except _Lost:
                continue
            merged = key_dir + self._new_part_name(parts)
            self._put_part(merged, entries)
            if self._put_index(index_name, {**index, "parts": [merged]}, etag) is None:
                self._delete_objects([merged])
                continue
            self._delete_objects(parts)
            return removed + len(parts)
        raise RuntimeError(f"{index_name!r} kept changing during compaction; try again")

    def _remove_orphans(self, key_dir: str, committed: set[str]) -> int:
        cutoff = time.time() - ORPHAN_GRACE_SECONDS
        orphans = [
            key_dir + name
            for name, modified in self._children(key_dir)
            if _OWN_PART.fullmatch(name) and key_dir + name not in committed and modified.timestamp() < cutoff
        ]
        if orphans:
            self._delete_objects(orphans)
        return len(orphans)

    def _close_blocking(self) -> None:
        if self._owns_client and self._built_client is not None:
            self._built_client.close()

    # -- retention (session_store.retention): project listing, index range, conditional delete --------------

    def _list_projects_blocking(self) -> list[str]:
        """The project folders under the prefix (one ``ListObjectsV2`` per 1,000 projects)."""
        projects: list[str] = []
        for page in self._list(self.prefix, delimiter=True):
            for common in page.get("CommonPrefixes", []):
                projects.append(unquote(common["Prefix"][len(self.prefix) : -1]))
        return projects

    def _prune_candidates_blocking(self, project_key: str, before_ms: int) -> list[tuple[str, int]]:
        """Sessions whose main index was last written before ``before_ms``: one ``ListObjectsV2`` of ``%index/``
        per 1,000 sessions, no object read (an index is rewritten by every append and by compaction)."""
        found: list[tuple[str, int]] = []
        for session_id, item in self._indexes_under(self._main_indexes(project_key)):
            written = _epoch_ms(item["LastModified"])
            if written < before_ms:
                found.append((session_id, written))
        return found

    def _prune_one_blocking(self, project_key: str, session_id: str, seen_mtime: int, before_ms: int) -> int | None:
        """``GET`` the index, check its mtime, then ``DELETE`` it with ``If-Match`` its ETag (an append that
        commits meanwhile changes the ETag and keeps the session), then the session's parts."""
        self._writable()
        found = self._get_index(self._index_name(project_key, session_id, None))
        if found is None:
            return None
        index, etag = found
        mtime = int(index.get("mtime") or 0)
        if mtime >= before_ms:
            return None
        deleted = self._delete_key(project_key, session_id, None, if_match=etag)
        return mtime if deleted else None

    def _after_prune_blocking(self, project_key: str) -> None:
        self._tidy_project(project_key)


async def _each(items: Iterable[T], fn: Callable[[T], Awaitable[None]]) -> None:
    """``await fn(item)`` for every item at once (the store's limiter bounds the requests in flight). The first
    error cancels the others and is raised as itself, not inside an ``ExceptionGroup``: a missing bucket or a
    refused credential is one error for the caller, however many requests met it."""
    failures: list[Exception] = []

    async def one(item: T) -> None:
        try:
            await fn(item)
        except Exception as error:
            if not failures:
                failures.append(error)
                group.cancel()

    async with compat.create_task_group() as group:
        for item in items:
            group.start_soon(one, item)
    if failures:
        raise failures[0]


def _valid_row(row: Any) -> TypeGuard[list[Any]]:
    """Whether a listing-cache row has the shape this store writes: [ETag, mtime, summary dict or None]."""
    return (
        isinstance(row, list)
        and len(row) == 3
        and isinstance(row[0], str)
        and type(row[1]) is int
        and (row[2] is None or isinstance(row[2], dict))
    )


def _part_match(name: str) -> re.Match[str] | None:
    base = name.rpartition("/")[2]
    return _OWN_PART.fullmatch(base) or _SDK_PART.fullmatch(base)


def _new_entries(
    state: _KeyState, entries: list[SessionStoreEntry], occurrences: list[int | None] | None
) -> list[SessionStoreEntry]:
    """The entries of one append that the key does not hold yet (SPEC §4 decision 8 and ``append_once``;
    a plain ``append`` keeps every entry without a uuid)."""
    copies = occurrences if occurrences is not None else [sys.maxsize] * len(entries)
    kept = plan_append_once(entries, copies, state.uuids, state.copies, identity=content_hash)
    return [entries[index] for index in kept]
