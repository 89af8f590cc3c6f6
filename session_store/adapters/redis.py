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
    P:{pk}:summaries              hash    session id -> {"session_id", "mtime", "data"} of confirmed ids
    P:{pk}:log, P:{pk}:log-lines  string  the listing log behind list_sessions, and its number of entries
    P:projects                    set     every project key that ever had a session (list_projects)

Redis Cluster: every key of one session shares the hash tag ``{pk:sid}``, so each append, load and delete is a
single-slot transaction. The project's index and summary hash share the tag ``{pk}`` (another slot) and are
written outside the session's transaction, so the index says how far it can be trusted: a **positive** score is
a *confirmed* id (the session's summary mtime, and its summary is in the hash); a **negative** score marks an
id *in flux* (being created, being deleted, or left so by a crash), which listing checks against the session's
own summary key (one ``GET`` each; normally none) and repairs in place. Every step is single-slot:

- creating a session: ``ZADD LT`` the id with the mark ``-mtime`` before the transaction (so a crash cannot
  leave a stored session unlisted: the mark stays and listing finds the session), then, after ``EXEC``, one
  script on ``{pk}`` confirms it (score ``mtime``, summary into the hash) if the mark is still its own; the
  project joins the registry ``P:projects`` (``SADD``, once per project and store object);
- appending to a session: after ``EXEC`` the script advances the score and the hash entry (never backwards);
  if the id is in flux it is re-marked ``-mtime`` instead (a concurrent delete's mark is never confirmed);
- deleting: mark the id ``-(now + 0.5)`` (``ZADD XX``), delete the session's keys, then remove the id and its
  hash entry only if the mark is still there (an append that recreated the session meanwhile keeps it listed);
- listing: one round trip, no per-id work on the server, where a per-id ``EXISTS``/``GET`` cost 20-30 us a
  session. ``list_sessions`` is one script returning the ids in flux (a score range, normally empty) and the
  project's *listing log*, a string to which every confirmation appends ``id\\nmtime\\n`` and every removal
  ``id\\n-\\n`` (the last pair of an id is its state; the log is rewritten from the index once it holds twice
  as many pairs as the index has ids, and built from it when missing), split and folded into a dict in C.
  ``list_session_summaries`` is ``HVALS`` of the summary hash, whose values are the rows, in one ``MULTI`` with
  a script returning the ids in flux; ids in flux are checked with
  one ``GET`` each (listed if their session exists) and, once in flux for :data:`IN_FLUX_GRACE_MS` (what a
  crash leaves), confirmed from the session's summary or removed, if the mark did not change meanwhile.

An id re-marked in flux by an append (a delete or prune had marked it) stays in flux while the session is
appended to (each append re-marks it) and costs its listings one ``GET`` until a listing confirms it, once it
has been idle for :data:`IN_FLUX_GRACE_MS`. Two windows stay: a process that dies between an append's ``EXEC`` and its confirming script leaves the id's
score and hash entry at the previous append (consistent with each other, one append behind) until the
session's next append; and a delete stalled for longer than :data:`IN_FLUX_GRACE_MS` between marking an id and
deleting the session may see a listing confirm the id meanwhile, which then stays listed (a ghost that loads
as None) until it is deleted again. Ids indexed by earlier versions (positive, no hash entry) get their summary read and
copied into the hash by the first ``list_session_summaries`` of the project, which also removes the ids such an
index still names for sessions that are gone (until then ``list_sessions`` lists them).
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
import time
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

IN_FLUX_GRACE_MS = 60_000
"""An id in flux whose session has no summary is removed from the index by listing only after this long (an
append creating it may still be on its way)."""

# The project-slot scripts (KEYS[1] = P:{pk}:sessions, KEYS[2] = P:{pk}:summaries, KEYS[3] = P:{pk}:log,
# KEYS[4] = P:{pk}:log-lines). Scores are exact integers (epoch ms < 2^53); ids in flux have negative scores.
_LOG_FUNCTIONS = """
local function rebuild_log()
  local index = redis.call('ZRANGEBYSCORE', KEYS[1], 0, '+inf', 'WITHSCORES')
  for i = 1, #index, 2 do
    if string.find(index[i], '\\n', 1, true) then
      redis.call('DEL', KEYS[3])
      redis.call('SET', KEYS[4], -1)
      return
    end
  end
  if #index == 0 then redis.call('DEL', KEYS[3]) else redis.call('SET', KEYS[3], table.concat(index, '\\n') .. '\\n') end
  redis.call('SET', KEYS[4], #index / 2)
end
local function note(id, value)
  local lines = tonumber(redis.call('GET', KEYS[4]) or '0')
  if lines < 0 then return end
  if string.find(id, '\\n', 1, true) then
    redis.call('DEL', KEYS[3])
    redis.call('SET', KEYS[4], -1)
    return
  end
  redis.call('APPEND', KEYS[3], id .. '\\n' .. value .. '\\n')
  if redis.call('INCR', KEYS[4]) > 2 * redis.call('ZCARD', KEYS[1]) + 64 then rebuild_log() end
end
"""
"""The listing log ``P:{pk}:log``: one ``id\\nmtime\\n`` line pair per confirmation and ``id\\n-\\n`` per
removal, appended by the scripts below, so that the last pair of each id is its confirmed state; rewritten from
the index once it holds more than twice as many pairs as the index has ids (``P:{pk}:log-lines`` counts them;
-1: an id holds a newline, and the project is listed from the index instead)."""

_CONFIRM_APPEND = (
    _LOG_FUNCTIONS
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local mtime = tonumber(ARGV[2])
if not score then
  redis.call('ZADD', KEYS[1], -mtime, ARGV[1])
  return 0
end
score = tonumber(score)
if score >= 0 or score == -mtime then
  if mtime > score then
    redis.call('ZADD', KEYS[1], mtime, ARGV[1])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
    note(ARGV[1], ARGV[2])
  end
  return 1
end
redis.call('ZADD', KEYS[1], -mtime, ARGV[1])
return 0
"""
)
"""After an append's EXEC (ARGV: id, mtime, summary JSON): advance a confirmed id (never backwards), confirm a
new id still carrying its creator's mark ``-mtime`` (mtimes of one session only grow, so no other append can
carry it); re-mark any other id in flux, or an id a concurrent delete removed, as ``-mtime`` for listing to
check."""

_REPAIR = (
    _LOG_FUNCTIONS
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    note(ARGV[1], '-')
  else
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
    note(ARGV[1], ARGV[3])
  end
  return 1
end
return 0
"""
)
"""If the id's score is still ARGV[2]: confirm it with mtime ARGV[3] and summary ARGV[4], or remove it (and
its hash entry) when ARGV[3] is ''. Returns 1 when it acted."""

_MARK = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and (ARGV[2] == '' or tonumber(score) == tonumber(ARGV[2])) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""
"""Mark an indexed id in flux (score ARGV[3]) if its score is still ARGV[2] ('': whatever it is)."""

_SNAPSHOT = """
local index = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {#index, table.concat(index, '\\n')}
if ARGV[1] == '1' then
  local hash = redis.call('HGETALL', KEYS[2])
  out[3] = #hash
  out[4] = table.concat(hash, '\\n')
end
return out
"""
"""The index (flat id, score list) and, with ARGV[1] == '1', the summary hash (flat id, summary JSON list), each
joined by newlines into one string, with its element count: one reply, split in C. Summary JSON never holds a
raw newline; an id that does makes the split count wrong, and the listing then uses :data:`_SNAPSHOT_JSON`."""

_LIST = (
    _LOG_FUNCTIONS
    + """
local lines = redis.call('GET', KEYS[4])
if not lines and redis.call('ZCARD', KEYS[1]) > 0 then
  rebuild_log()
  lines = redis.call('GET', KEYS[4])
end
if lines and tonumber(lines) < 0 then return {-1} end
local flux = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(0', 'WITHSCORES')
return {#flux, table.concat(flux, '\\n'), redis.call('GET', KEYS[3]) or ''}
"""
)
"""``list_sessions``: the ids in flux (a score range, normally empty) joined by newlines with their element count,
and the listing log, read as one string (no per-id work on the server: a project of 100k sessions is one
``GET`` of a few MB). Builds the log from the index the first time (an index of an earlier version); ``{-1}``
when an id holds a newline (the listing then reads the index with :data:`_SNAPSHOT`)."""

_SUMMARIES = """
local flux = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(0', 'WITHSCORES')
local confirmed = redis.call('ZCARD', KEYS[1]) - #flux / 2
local stale = 0
for i = 1, #flux, 2 do stale = stale + redis.call('HEXISTS', KEYS[2], flux[i]) end
if confirmed > redis.call('HLEN', KEYS[2]) - stale then return {-1} end
return {#flux, table.concat(flux, '\\n')}
"""
"""Before ``HVALS`` of the summary hash, in the same ``MULTI``: the ids in flux (a score range, normally empty)
joined by newlines with their element count. Every hash field is an indexed id, so when the hash holds an entry
for each confirmed id (counted, not listed) its values (each ``{"session_id", "mtime", "data"}``) are the
listing; else (an index of an earlier version) it returns ``{-1}`` and the listing reads the whole index with
:data:`_SNAPSHOT`. (``HVALS`` is sent outside the script: handing each value to Lua costs more than parsing it
in redis-py.)"""

_SNAPSHOT_JSON = """
local index = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #index do out[i] = cjson.encode(index[i]) end
local text = '[[' .. table.concat(out, ',') .. ']'
if ARGV[1] == '1' then
  local hash = redis.call('HGETALL', KEYS[2])
  local fields = {}
  for i = 1, #hash, 2 do fields[#fields + 1] = cjson.encode(hash[i]) .. ':' .. hash[i + 1] end
  text = text .. ',{' .. table.concat(fields, ',') .. '}'
end
return text .. ']'
"""
"""Like :data:`_SNAPSHOT`, as one JSON text (each element escaped by ``cjson``: slower, any id)."""

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
        self.summaries = f"{prefix}{{{_escape(project_key)}}}:summaries"
        self.log = f"{prefix}{{{_escape(project_key)}}}:log"
        self.log_lines = f"{prefix}{{{_escape(project_key)}}}:log-lines"
        self.project = [self.index, self.summaries, self.log, self.log_lines]
        """The project-slot keys, in the order the scripts take them."""
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


def _json_array(values: list[bytes | str]) -> bytes | str:
    """JSON values (as redis-py returns them: all bytes, or all str with ``decode_responses``) as one array."""
    if values and isinstance(values[0], str):
        return "[" + ",".join(cast(list[str], values)) + "]"
    return b"[" + b",".join(cast(list[bytes], values)) + b"]"


def _hash_row(session_id: str, summary_json: str) -> str:
    """The summary hash's value for a session: its summary JSON ``{"mtime", "data"}`` with the id in front, so
    the hash's values alone are the rows of ``list_session_summaries``."""
    return '{"session_id":' + encode_json(session_id) + "," + summary_json[1:]


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
        self._scripts: dict[str, Any] = {}
        self._projects_key = f"{self._prefix}projects"
        self._registered: set[str] = set()  # projects this store has added to the registry
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

        A new session is added to the project index now, marked in flux (``ZADD NX`` with score ``-mtime``),
        before its transaction: a crash in between leaves an id that listing checks and skips, never a stored
        session that is not listed. The project joins the registry behind ``list_projects`` at the same time.
        """
        session_id = key["session_id"]
        raw = pipe.get(keys.summary)
        previous: SessionSummaryEntry | None = None
        if raw is not None:
            saved = json.loads(raw)
            previous = {"session_id": session_id, "mtime": saved["mtime"], "data": saved["data"]}
        summary = fold_stamped_summary(key, previous, stored, self._server_time_ms(pipe, keys))
        if previous is None:  # on a cluster through the client: the index is in another slot than the session
            self._register_new_session(pipe, key["project_key"], keys, session_id, summary["mtime"])
        return summary["mtime"], encode_json({"mtime": summary["mtime"], "data": summary["data"]})

    # -- SessionStore, blocking halves --

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

        summary_json = ""

        def write(pipe: Pipeline) -> tuple[int | None, int]:
            nonlocal summary_json
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
            self._confirm_append(keys, session_id, mtime, summary_json)
        return stored_count

    def _load_blocking(self, project_key: str, session_id: str, subpath: str | None) -> list[SessionStoreEntry] | None:
        raw: list[bytes | str] = self._client.lrange(self._keys(project_key, session_id).entries(subpath), 0, -1)
        return [decode_entry(item) for item in raw] or None

    # -- the project index (see "Redis Cluster" in the module docstring) --

    def _script(self, source: str) -> Any:
        with self._client_lock:
            script = self._scripts.get(source)
        if script is None:
            script = self._client.register_script(source)
            with self._client_lock:
                self._scripts[source] = script
        return script

    def _register_new_session(
        self, pipe: Pipeline, project_key: str, keys: RedisKeys, session_id: str, mtime: int
    ) -> None:
        """Mark a session about to be created in flux (``-mtime``, lowering any other mark) and, the first time
        this store sees the project, add it to the project registry."""
        client = self._client if self._cluster else pipe  # pipe: watched, commands run at once
        client.zadd(keys.index, {session_id: -mtime}, lt=True)
        if project_key not in self._registered:
            client.sadd(self._projects_key, project_key)
            with self._client_lock:
                self._registered.add(project_key)

    def _confirm_append(self, keys: RedisKeys, session_id: str, mtime: int, summary_json: str) -> None:
        args = [session_id, mtime, _hash_row(session_id, summary_json)]
        self._script(_CONFIRM_APPEND)(keys=keys.project, args=args)

    def _repair(self, keys: RedisKeys, session_id: str, seen: float, summary_json: str | None) -> bool:
        """Confirm the id from ``summary_json`` (remove it when None) if its score is still ``seen``."""
        if summary_json is None:
            args = [session_id, repr(seen), "", ""]
        else:
            mtime = json.loads(summary_json)["mtime"]
            args = [session_id, repr(seen), mtime, _hash_row(session_id, summary_json)]
        return bool(self._script(_REPAIR)(keys=keys.project, args=args))

    def _mark_in_flux(self, keys: RedisKeys, session_id: str, *, if_score: float | None = None) -> float | None:
        """Mark an indexed id in flux (``-(now + 0.5)``, never an append's mark); the mark, or None when the
        id is not indexed (or no longer at ``if_score``)."""
        mark = -(time.time_ns() // 1_000_000 + 0.5)
        args = [session_id, "" if if_score is None else repr(if_score), repr(mark)]
        return mark if self._script(_MARK)(keys=keys.project, args=args) else None

    def _snapshot(self, project_key: str, *, summaries: bool) -> tuple[list[tuple[str, float]], dict[str, Any]]:
        """The project's index (id, score) and, with ``summaries``, its summary hash: one script, one round trip,
        one JSON parse."""
        keys = RedisKeys(self._prefix, project_key, "")
        args = ["1" if summaries else "0"]
        reply = self._script(_SNAPSHOT)(keys=keys.project, args=args)
        flat = _text(reply[1]).split("\n") if reply[0] else []
        hash_flat = _text(reply[3]).split("\n") if summaries and reply[2] else []
        scores: list[float]
        if len(flat) != reply[0] or (summaries and len(hash_flat) != reply[2]):  # an id holds a newline
            parsed = json.loads(self._script(_SNAPSHOT_JSON)(keys=keys.project, args=args))
            flat = parsed[0]
            scores = [float(score) for score in flat[1::2]]
            hashed: dict[str, Any] = parsed[1] if summaries else {}
        else:
            scores = json.loads("[" + ",".join(flat[1::2]) + "]")  # one parse: ints, and floats for x.5 marks
            hashed = dict(zip(hash_flat[::2], map(json.loads, hash_flat[1::2]), strict=True))
        index = list(zip(flat[::2], scores, strict=True))
        return index, hashed

    def _settle(self, project_key: str, pending: list[tuple[str, float]]) -> dict[str, dict[str, Any]]:
        """Check ids in flux (or without a hash entry) against their sessions' summaries; the summaries of the
        sessions that exist.

        An id in flux for less than :data:`IN_FLUX_GRACE_MS` is only read: its creation or delete may still be
        under way, and confirming it from a summary a delete is about to remove would leave a ghost. Older
        ones are confirmed (their session exists) or removed (it does not), each only if its score is still
        the one read. A positive id without a hash entry is an earlier version's: repaired at once (a delete
        always marks an id before it deletes the session, which changes the score).
        """
        if not pending:
            return {}
        with self._client.pipeline(transaction=False) as pipe:
            for session_id, _ in pending:
                pipe.get(self._keys(project_key, session_id).summary)
            raw_summaries = pipe.execute()
        found: dict[str, dict[str, Any]] = {}
        now_ms = time.time_ns() // 1_000_000
        for (session_id, score), raw in zip(pending, raw_summaries, strict=True):
            keys = self._keys(project_key, session_id)
            if raw is not None:
                found[session_id] = json.loads(raw)
            if score >= 0 or -score < now_ms - IN_FLUX_GRACE_MS:
                self._repair(keys, session_id, score, None if raw is None else _text(raw))
        return found

    def _list_sessions_blocking(self, project_key: str) -> list[SessionStoreListEntry]:
        keys = RedisKeys(self._prefix, project_key, "")
        reply = self._script(_LIST)(keys=keys.project, args=[])
        if reply[0] >= 0:
            flux = _text(reply[1]).split("\n") if reply[0] else []
            if len(flux) == reply[0]:  # else an id in flux holds a newline
                log = _text(reply[2]).split("\n")[:-1]  # every pair ends in a newline
                latest = dict(zip(log[0::2], log[1::2], strict=True))  # the last pair of an id is its state
                in_flux = set(flux[::2])
                rows: list[SessionStoreListEntry] = [
                    {"session_id": session_id, "mtime": int(mtime)}
                    for session_id, mtime in latest.items()
                    if mtime != "-" and session_id not in in_flux
                ]
                settled = self._settle(project_key, list(zip(flux[::2], map(float, flux[1::2]), strict=True)))
                rows.extend(
                    {"session_id": session_id, "mtime": saved["mtime"]} for session_id, saved in settled.items()
                )
                return rows
        return self._sessions_from_snapshot(project_key)

    def _sessions_from_snapshot(self, project_key: str) -> list[SessionStoreListEntry]:
        """The sessions from the whole index (an id holding a newline)."""
        index, _ = self._snapshot(project_key, summaries=False)
        rows: list[SessionStoreListEntry] = [
            {"session_id": session_id, "mtime": int(score)} for session_id, score in index if score >= 0
        ]
        settled = self._settle(project_key, [(session_id, score) for session_id, score in index if score < 0])
        rows.extend({"session_id": session_id, "mtime": saved["mtime"]} for session_id, saved in settled.items())
        return rows

    def _list_session_summaries_blocking(self, project_key: str) -> list[SessionSummaryEntry]:
        keys = RedisKeys(self._prefix, project_key, "")
        reply, values = self._summaries_reply(keys)
        if reply[0] >= 0:
            flux = _text(reply[1]).split("\n") if reply[0] else []
            if len(flux) == reply[0]:  # else an id in flux holds a newline
                summaries: list[SessionSummaryEntry] = json.loads(_json_array(values))
                if flux:
                    in_flux = set(flux[::2])
                    summaries = [row for row in summaries if row["session_id"] not in in_flux]
                settled = self._settle(project_key, list(zip(flux[::2], map(float, flux[1::2]), strict=True)))
                summaries.extend(
                    {"session_id": session_id, "mtime": saved["mtime"], "data": saved["data"]}
                    for session_id, saved in settled.items()
                )
                return summaries
        return self._summaries_from_snapshot(project_key)

    def _summaries_reply(self, keys: RedisKeys) -> tuple[Any, list[bytes | str]]:
        """``_SUMMARIES`` and ``HVALS`` in one ``MULTI`` (one slot, one round trip); loads the script if the
        server does not have it (first use, or a restart)."""
        from redis.exceptions import NoScriptError

        sha = self._script(_SUMMARIES).sha
        for _ in range(2):
            try:
                with self._client.pipeline(transaction=True) as pipe:
                    pipe.evalsha(sha, len(keys.project), *keys.project)
                    pipe.hvals(keys.summaries)
                    reply, values = pipe.execute()
                    return reply, values
            except NoScriptError:
                self._client.script_load(_SUMMARIES)
        raise RuntimeError("the Redis server keeps dropping the listing script; is SCRIPT FLUSH running?")

    def _summaries_from_snapshot(self, project_key: str) -> list[SessionSummaryEntry]:
        """The summaries from the whole index and hash (an earlier version's index, or an id with a newline)."""
        index, hashed = self._snapshot(project_key, summaries=True)
        summaries: list[SessionSummaryEntry] = []
        pending: list[tuple[str, float]] = []
        for session_id, score in index:
            saved = hashed.get(session_id) if score >= 0 else None
            if saved is None:
                pending.append((session_id, score))  # in flux, or indexed by an earlier version (no hash entry)
            else:
                summaries.append({"session_id": session_id, "mtime": saved["mtime"], "data": saved["data"]})
        settled = self._settle(project_key, pending)
        summaries.extend(
            {"session_id": session_id, "mtime": saved["mtime"], "data": saved["data"]}
            for session_id, saved in settled.items()
        )
        return summaries

    def _delete_blocking(self, project_key: str, session_id: str, subpath: str | None) -> None:
        keys = self._keys(project_key, session_id)
        if subpath is not None:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(keys.entries(subpath), keys.uuids(subpath), keys.contents(subpath))
                pipe.srem(keys.subkeys, subpath)
                pipe.execute()
            return
        mark = self._mark_in_flux(keys, session_id)
        self._delete_session(keys, before_ms=None)
        if mark is not None:
            self._repair(keys, session_id, mark, None)

    def _delete_session(self, keys: RedisKeys, *, before_ms: int | None) -> int | bool | None:
        """Delete every key of the session in one transaction; with ``before_ms``, only if its summary's mtime
        is older (WATCHed: an append landing meanwhile aborts it). Returns the deleted summary's mtime (None
        without a summary), or False when the session was kept."""

        def delete_session(pipe: Pipeline) -> int | bool | None:
            raw = pipe.get(keys.summary)
            mtime: int | None = json.loads(raw)["mtime"] if raw is not None else None
            if before_ms is not None and (mtime is None or mtime >= before_ms):
                pipe.unwatch()
                return False
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
            return mtime

        return self._transaction([keys.subkeys, keys.summary], delete_session)

    # -- retention (session_store.retention) --

    def _list_projects_blocking(self) -> list[str]:
        projects = sorted(_text(member) for member in self._client.smembers(self._projects_key))
        with self._client.pipeline(transaction=False) as pipe:
            for project_key in projects:
                pipe.exists(RedisKeys(self._prefix, project_key, "").index)
            present = pipe.execute()
        return [project_key for project_key, exists in zip(projects, present, strict=True) if exists]

    def _prune_candidates_blocking(self, project_key: str, before_ms: int) -> list[tuple[str, int]]:
        """Confirmed ids scored before ``before_ms``: ``ZRANGE BYSCORE 0 (before_ms``, an index range."""
        index = RedisKeys(self._prefix, project_key, "").index
        members = cast(
            list[tuple[bytes | str, float]],
            self._client.zrangebyscore(index, 0, f"({before_ms}", withscores=True),
        )
        return [(_text(member), int(score)) for member, score in members]

    def _prune_one_blocking(self, project_key: str, session_id: str, seen_mtime: int, before_ms: int) -> int | None:
        keys = self._keys(project_key, session_id)
        mark = self._mark_in_flux(keys, session_id, if_score=seen_mtime)
        if mark is None:
            return None  # appended to (or deleted) since it was listed
        deleted = self._delete_session(keys, before_ms=before_ms)
        if deleted is False:  # an append landed: confirm the id again from the session's summary
            raw = self._client.get(keys.summary)
            self._repair(keys, session_id, mark, _text(raw) if raw is not None else None)
            return None
        self._repair(keys, session_id, mark, None)
        return deleted if isinstance(deleted, int) else seen_mtime

    def _list_subkeys_blocking(self, project_key: str, session_id: str) -> list[str]:
        members = self._client.smembers(self._keys(project_key, session_id).subkeys)
        return sorted(_text(member) for member in members)

    def _close_blocking(self) -> None:
        if self._owns_client and self._built_client is not None:
            self._built_client.close()
