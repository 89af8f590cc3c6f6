"""``RedisSessionStore``: session transcripts in Redis (6.2 or newer), for fast stores shared by many machines.

Implements the ``SessionStore`` contract of reference §1.7 (all six methods), improving on the reference
adapter of §13.2 with the decisions of SPEC §4: ``subpath == ""`` raises ``ValueError`` and
``append(key, [])`` creates nothing (decision 2); entries are idempotent by ``uuid`` per key, the summary of
reference §5.1 is folded inside the append's ``WATCH``/``MULTI``/``EXEC`` transaction, and every mtime is
the Redis server's ``TIME`` (decision 8).

Driver: redis-py's sync client, driven through ``compat.run_sync`` with a ``compat.CapacityLimiter``, so the
store works under asyncio and trio alike (``redis.asyncio`` is asyncio-only). redis-py is imported when a store
is built; without it the error names the extra: ``pip install 'session-store-compat[redis]'``.

Key layout (``P`` is the prefix, default ``session-store``; ``pk``, ``sid`` and subpaths are escaped so that
``%``, ``:``, ``{`` and ``}`` become ``%25``, ``%3A``, ``%7B`` and ``%7D``, which keeps keys unambiguous)::

    P:{pk:sid}:main               list    the main transcript, one JSON string per entry
    P:{pk:sid}:sub:<subpath>      list    a subagent transcript
    P:{pk:sid}:uuids:main         set     uuids held by the main transcript (idempotency)
    P:{pk:sid}:uuids:sub:<subpath> set    uuids held by that subkey
    P:{pk:sid}:contents:main      hash    content hash -> count of the uuid-less entries, and the marker "*"
    P:{pk:sid}:contents:sub:<subpath> hash  the same for that subkey (append_once counts equal entries here)
    P:{pk:sid}:subkeys            set     the session's subpaths (raw)
    P:{pk:sid}:summary            string  {"mtime": epoch ms, "data": the fold's opaque data}
    P:{pk}:sessions               zset    session id -> mtime: the index behind list_sessions

Redis Cluster: every key of one session shares the hash tag ``{pk:sid}``, so each append, load and delete is a
single-slot transaction. The project index carries the tag ``{pk}`` (another slot) and is written outside the
session's transaction: before it when a session is created (``ZADD NX``, so a crash cannot leave a stored
session unlisted) and after it to advance the score (``ZADD GT``); a delete removes the id after deleting the
session. Listing therefore checks each indexed id against its summary and skips ids whose session is gone.
A delete racing an append of the same session may leave that session out of the index until its next append.
Configure ``maxmemory-policy noeviction``: an evicted key silently loses transcript lines.

Append: ``WATCH`` the key's uuid set (and the summary for a main append), read which uuids are known, read the
summary and ``TIME``, then ``MULTI``: ``RPUSH`` the new entries, ``SADD`` their uuids, write the folded summary
(or record the subpath), ``EXEC``. A concurrent writer makes ``EXEC`` fail and the append starts over, at most
:data:`MAX_TRANSACTION_ATTEMPTS` times. redis-py never silently re-sends a watched transaction after a
connection error, so a dropped connection cannot double an append. An append with entries without a uuid also
watches the key's count hash and adds their content hashes to it; ``append_once`` reads the counts there (a key
stored before the counts existed is counted from its list once, and the marker field records that) and stores
only what docs/behaviour.md's "Exactly-once import and mirror" rule lets through.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from ..exactly_once import content_hash, plan_append_once
from ..redaction import redact
from ..types import SessionKey, SessionStoreEntry, SessionStoreListEntry, SessionSummaryEntry
from ..validation import encode_json
from ._threaded import (
    ThreadedSessionStore,
    decode_entry,
    encode_entry,
    entry_uuid,
    fold_stamped_summary,
    require_driver,
    unique_in_batch,
)

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline
    from redis.cluster import RedisCluster

__all__ = ["COUNTED_MARKER", "DEFAULT_PREFIX", "MAX_TRANSACTION_ATTEMPTS", "RedisKeys", "RedisSessionStore"]

DEFAULT_PREFIX = "session-store"
MAX_TRANSACTION_ATTEMPTS = 100
"""How often an append or delete retries after a concurrent writer invalidated its ``WATCH``."""

COUNTED_MARKER = "*"
"""Field of a count hash meaning "every entry of the key is counted" (content hashes are 64 hex digits)."""

T = TypeVar("T")


class HeldCounts(NamedTuple):
    """Entries a key holds per content hash; ``recount``: the hash lacked its marker and must be rewritten."""

    counts: dict[str, int]
    recount: bool


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisKeys:
    """The Redis keys of one session (see the layout in the module docstring)."""

    def __init__(self, prefix: str, project_key: str, session_id: str) -> None:
        self._session = f"{prefix}{{{_escape(project_key)}:{_escape(session_id)}}}"
        self.index = f"{prefix}{{{_escape(project_key)}}}:sessions"
        self.summary = f"{self._session}:summary"
        self.subkeys = f"{self._session}:subkeys"

    def entries(self, subpath: str | None) -> str:
        return f"{self._session}:main" if subpath is None else f"{self._session}:sub:{_escape(subpath)}"

    def uuids(self, subpath: str | None) -> str:
        return f"{self._session}:uuids:main" if subpath is None else f"{self._session}:uuids:sub:{_escape(subpath)}"

    def contents(self, subpath: str | None) -> str:
        if subpath is None:
            return f"{self._session}:contents:main"
        return f"{self._session}:contents:sub:{_escape(subpath)}"


def _normalized_prefix(prefix: str) -> str:
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"Redis key prefix {prefix!r} must not contain '{{' or '}}' (they would break hash tags)")
    prefix = prefix.rstrip(":")
    return f"{prefix}:" if prefix else ""


def cluster_client(url: str, *, max_connections: int, connect: bool = True) -> RedisCluster | None:
    """A ``redis.cluster.RedisCluster`` for ``redis+cluster://[user:password@]host:port[,host:port...][/0]``.

    ``rediss+cluster://`` connects with TLS; ``redis://`` with ``cluster=True`` is accepted too. The hosts are
    startup nodes (any of the cluster's nodes will do). Raises ``ValueError`` for a database other than 0
    (a cluster has only one) or a URL without a host. ``connect=False`` only checks the URL (returns None).
    """
    from urllib.parse import unquote, urlsplit

    from redis.cluster import ClusterNode, RedisCluster

    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    path = path.partition("?")[0]
    credentials, _, hosts = netloc.rpartition("@")
    if path not in ("", "0"):
        raise ValueError(f"Redis Cluster URL names database {path!r}; a cluster has only database 0, remove it")
    nodes = []
    for host_port in hosts.split(","):
        parts = urlsplit(f"//{host_port}")
        if not parts.hostname:
            raise ValueError(f"Redis Cluster URL has no host in {host_port!r}; use 'redis+cluster://host:port'")
        nodes.append(ClusterNode(parts.hostname, parts.port or 6379))  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    username, _, password = credentials.partition(":")
    if not connect:
        return None
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=scheme.lower().startswith("rediss"),
        max_connections=max_connections,
    )


class RedisSessionStore(ThreadedSessionStore):
    """A ``SessionStore`` in Redis (see the module docstring for the key layout and guarantees).

    ``url_or_client``: a ``redis://`` / ``rediss://`` URL (the store then owns, and closes, its client), or a
    sync ``redis.Redis`` client you own (``decode_responses`` may be either). ``prefix``: namespace of every key.
    Redis Cluster: a ``redis+cluster://host:port[,host:port...]`` URL (or ``cluster=True`` with a ``redis://``
    URL, or a ``redis.cluster.RedisCluster`` you own); every key of a session is in one slot, and the summary's
    mtime is the clock of the node that holds it.
    ``max_connections``: bound on concurrent calls (and the pool size of a client built from a URL).
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis | RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_connections: int = 10,
        cluster: bool = False,
    ) -> None:
        require_driver("redis", store="RedisSessionStore", extra="redis")
        import redis
        from redis.cluster import RedisCluster

        super().__init__(max_threads=max_connections)
        self._prefix = _normalized_prefix(prefix)
        self._owns_client = isinstance(url_or_client, str)
        self._url = url_or_client if isinstance(url_or_client, str) else None  # to redact errors with
        self._lazy_cluster: Callable[[], RedisCluster] | None = None
        self._built_client: redis.Redis | RedisCluster | None = None
        self._client_lock = threading.Lock()
        if isinstance(url_or_client, str):
            scheme = url_or_client.partition("://")[0].lower()
            self._cluster = cluster or scheme.endswith("+cluster")
            if self._cluster:
                url = url_or_client
                cluster_client(url, max_connections=1, connect=False)  # a bad URL raises here, before connecting
                # RedisCluster connects when built: built on the first call instead (open_store connects nothing).
                # A call holds its transaction's connection and, on a cluster, one more for TIME or the index.
                self._lazy_cluster = lambda: cast(
                    "RedisCluster", cluster_client(url, max_connections=2 * max_connections)
                )
            else:
                self._built_client = redis.Redis.from_url(url_or_client, max_connections=max_connections)
        else:
            self._built_client = url_or_client
            self._cluster = isinstance(url_or_client, RedisCluster)

    @property
    def _client(self) -> redis.Redis | RedisCluster:
        with self._client_lock:
            if self._built_client is None:
                assert self._lazy_cluster is not None
                self._built_client = self._lazy_cluster()
            return self._built_client

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self._prefix!r})"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            return await super()._call(fn, *args)
        except RedisConnectionError as error:
            message = redact(str(error), url=self._url)
            raise RedisConnectionError(f"{message} (is the Redis server up and the URL right?)") from error

    def _keys(self, project_key: str, session_id: str) -> RedisKeys:
        return RedisKeys(self._prefix, project_key, session_id)

    def _transaction(self, watch: list[str], body: Callable[[Pipeline], T]) -> T:
        """Run ``body(pipe)`` with ``watch`` watched, again while a concurrent write invalidates it."""
        from redis.exceptions import WatchError

        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*watch)
                    return body(pipe)
                except WatchError:
                    continue
        raise RuntimeError(
            f"gave up after {MAX_TRANSACTION_ATTEMPTS} attempts: {watch} kept changing under concurrent writers"
        )

    def _server_time_ms(self, pipe: Pipeline, keys: RedisKeys) -> int:
        if self._cluster:  # TIME names no key: ask the node holding the session's slot
            node = cast("RedisCluster", self._client).get_node_from_key(keys.summary)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            seconds, microseconds = cast("RedisCluster", self._client).time(target_nodes=node)
        else:
            seconds, microseconds = pipe.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    def _fold_summary(
        self, pipe: Pipeline, key: SessionKey, keys: RedisKeys, stored: list[SessionStoreEntry]
    ) -> tuple[int, str]:
        """Read the watched summary and the server clock; return the new mtime and the folded summary JSON.

        A new session is added to the project index now (``ZADD NX``), before its transaction: a crash
        in between leaves an id that listing skips, never a stored session that is not listed.
        """
        session_id = key["session_id"]
        raw = pipe.get(keys.summary)
        previous: SessionSummaryEntry | None = None
        if raw is not None:
            saved = json.loads(raw)
            previous = {"session_id": session_id, "mtime": saved["mtime"], "data": saved["data"]}
        summary = fold_stamped_summary(key, previous, stored, self._server_time_ms(pipe, keys))
        if previous is None:  # on a cluster through the client: the index is in another slot than the session
            (self._client if self._cluster else pipe).zadd(keys.index, {session_id: summary["mtime"]}, nx=True)
        return summary["mtime"], encode_json({"mtime": summary["mtime"], "data": summary["data"]})

    # -- SessionStore, blocking halves --

    def _append_blocking(self, key: SessionKey, subpath: str | None, entries: list[SessionStoreEntry]) -> None:
        self._write_blocking(key, subpath, entries, None)

    def _append_once_blocking(
        self, key: SessionKey, subpath: str | None, entries: list[SessionStoreEntry], occurrences: list[int | None]
    ) -> int:
        return self._write_blocking(key, subpath, entries, occurrences)

    def _held_counts(self, pipe: Pipeline, keys: RedisKeys, subpath: str | None, wanted: list[str]) -> HeldCounts:
        """How many entries equal to each of ``wanted`` the key holds (read under ``WATCH``).

        A key whose count hash lacks :data:`COUNTED_MARKER` was written before the counts existed (or never):
        its entries are counted from the list, and the whole count is rewritten with the next ``EXEC``.
        """
        values = pipe.hmget(keys.contents(subpath), [COUNTED_MARKER, *wanted])
        if values[0] is not None:
            return HeldCounts({digest: int(v) for digest, v in zip(wanted, values[1:], strict=True) if v}, False)
        counts: Counter[str] = Counter()
        for raw in pipe.lrange(keys.entries(subpath), 0, -1):
            entry = decode_entry(raw)
            if entry_uuid(entry) is None:
                counts[content_hash(entry)] += 1
        return HeldCounts(dict(counts), True)

    def _write_blocking(
        self,
        key: SessionKey,
        subpath: str | None,
        entries: list[SessionStoreEntry],
        occurrences: list[int | None] | None,
    ) -> int:
        """``append`` (``occurrences`` None) or ``append_once`` in one watched transaction; how many were stored."""
        session_id = key["session_id"]
        keys = self._keys(key["project_key"], session_id)
        hashes = {id(entry): content_hash(entry) for entry in entries if entry_uuid(entry) is None}
        uuids = list(dict.fromkeys(uuid for entry in entries if (uuid := entry_uuid(entry)) is not None))
        watched = [keys.uuids(subpath)] if subpath is not None else [keys.uuids(None), keys.summary]
        if hashes:
            watched.append(keys.contents(subpath))

        def write(pipe: Pipeline) -> tuple[int | None, int]:
            presence = pipe.smismember(keys.uuids(subpath), uuids) if uuids else []
            known = {uuid for uuid, present in zip(uuids, presence, strict=True) if present}
            held = self._held_counts(pipe, keys, subpath, sorted(set(hashes.values()))) if hashes else None
            if occurrences is None:
                stored = [entry for entry in unique_in_batch(entries) if entry_uuid(entry) not in known]
            else:
                counts = held.counts if held is not None else {}
                kept = plan_append_once(entries, occurrences, known, counts, lambda e: hashes[id(e)])
                stored = [entries[index] for index in kept]
            if not stored:
                return None, 0
            mtime, summary_json = self._fold_summary(pipe, key, keys, stored) if subpath is None else (None, "")
            pipe.multi()
            pipe.rpush(keys.entries(subpath), *[encode_entry(entry) for entry in stored])
            stored_uuids = [uuid for entry in stored if (uuid := entry_uuid(entry)) is not None]
            if stored_uuids:
                pipe.sadd(keys.uuids(subpath), *stored_uuids)
            if held is not None:
                added = Counter(hashes[id(entry)] for entry in stored if entry_uuid(entry) is None)
                if held.recount:
                    fields: dict[Any, Any] = {COUNTED_MARKER: 1, **(Counter(held.counts) + added)}
                    pipe.hset(keys.contents(subpath), mapping=fields)
                else:
                    for digest, count in added.items():
                        pipe.hincrby(keys.contents(subpath), digest, count)
            if subpath is None:
                pipe.set(keys.summary, summary_json)
            else:
                pipe.sadd(keys.subkeys, subpath)
            pipe.execute()
            return mtime, len(stored)

        mtime, stored_count = self._transaction(watched, write)
        if mtime is not None:
            self._client.zadd(keys.index, {session_id: mtime}, gt=True)
        return stored_count

    def _load_blocking(self, project_key: str, session_id: str, subpath: str | None) -> list[SessionStoreEntry] | None:
        raw: list[bytes | str] = self._client.lrange(self._keys(project_key, session_id).entries(subpath), 0, -1)
        return [decode_entry(item) for item in raw] or None

    def _indexed_sessions(self, project_key: str) -> list[tuple[str, float]]:
        index = RedisKeys(self._prefix, project_key, "").index
        members = cast(list[tuple[bytes | str, float]], self._client.zrange(index, 0, -1, withscores=True))
        return [(_text(member), score) for member, score in members]

    def _list_sessions_blocking(self, project_key: str) -> list[SessionStoreListEntry]:
        indexed = self._indexed_sessions(project_key)
        with self._client.pipeline(transaction=False) as pipe:
            for session_id, _ in indexed:
                pipe.exists(self._keys(project_key, session_id).summary)
            present = pipe.execute()
        return [
            {"session_id": session_id, "mtime": int(score)}
            for (session_id, score), exists in zip(indexed, present, strict=True)
            if exists
        ]

    def _list_session_summaries_blocking(self, project_key: str) -> list[SessionSummaryEntry]:
        indexed = self._indexed_sessions(project_key)
        with self._client.pipeline(transaction=False) as pipe:
            for session_id, _ in indexed:
                pipe.get(self._keys(project_key, session_id).summary)
            raw_summaries = pipe.execute()
        summaries: list[SessionSummaryEntry] = []
        for (session_id, _), raw in zip(indexed, raw_summaries, strict=True):
            if raw is not None:
                saved = json.loads(raw)
                summaries.append({"session_id": session_id, "mtime": saved["mtime"], "data": saved["data"]})
        return summaries

    def _delete_blocking(self, project_key: str, session_id: str, subpath: str | None) -> None:
        keys = self._keys(project_key, session_id)
        if subpath is not None:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(keys.entries(subpath), keys.uuids(subpath), keys.contents(subpath))
                pipe.srem(keys.subkeys, subpath)
                pipe.execute()
            return

        def delete_session(pipe: Pipeline) -> None:
            subpaths = [_text(member) for member in pipe.smembers(keys.subkeys)]
            pipe.multi()
            pipe.delete(
                keys.entries(None),
                keys.uuids(None),
                keys.contents(None),
                keys.summary,
                keys.subkeys,
                *[keys.entries(sub) for sub in subpaths],
                *[keys.uuids(sub) for sub in subpaths],
                *[keys.contents(sub) for sub in subpaths],
            )
            pipe.execute()

        self._transaction([keys.subkeys], delete_session)
        self._client.zrem(keys.index, session_id)

    def _list_subkeys_blocking(self, project_key: str, session_id: str) -> list[str]:
        members = self._client.smembers(self._keys(project_key, session_id).subkeys)
        return sorted(_text(member) for member in members)

    def _close_blocking(self) -> None:
        if self._owns_client and self._built_client is not None:
            self._built_client.close()
