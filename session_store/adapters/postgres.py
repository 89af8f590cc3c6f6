"""``PostgresSessionStore``: session transcripts in PostgreSQL, for stores shared by many machines.

Implements the ``SessionStore`` contract of reference §1.7 (all six methods), improving on the reference
adapter of §13.3 with the decisions of SPEC §4: ``subpath == ""`` raises ``ValueError`` and
``append(key, [])`` creates nothing (decision 2); entries are idempotent by ``uuid`` per key, the summary of
reference §5.1 is folded inside the append's transaction under a row lock, and every mtime comes from the
server's clock (decision 8).

Driver: psycopg 3 with a sync ``psycopg_pool.ConnectionPool``, driven through ``compat.run_sync`` with a
``compat.CapacityLimiter`` of ``max_size`` tokens, so the store works under asyncio and trio alike
(psycopg's async API is asyncio-only). psycopg is imported when a store is built; without it the error names
the extra to install: ``pip install 'session-store-compat[postgres]'``.

Schema (``create_schema()`` is idempotent and serialized by an advisory lock; it runs on first use unless
``ensure_schema=False``), for a validated table name ``T`` (:data:`TABLE_NAME_PATTERN`):

- ``T``: one row per entry (``seq`` identity, ``project_key``, ``session_id``, ``subpath`` = ``''`` for the
  main transcript, ``uuid``, ``entry``). A partial unique index on ``(project_key, session_id, subpath,
  uuid)`` makes uuids idempotent (``ON CONFLICT DO NOTHING``). ``entry`` is ``json``, not ``jsonb``: it keeps
  the text as written, so loads are exact and ``\\u0000`` (which ``jsonb`` rejects) is accepted.
  ``content_hash``: the SHA-256 of the canonical JSON of an entry without a uuid (NULL otherwise), indexed per
  key, so ``append_once`` counts the entries equal to one (docs/behaviour.md, "Exactly-once import and
  mirror"); ``create_schema()`` adds the column to an older table and fills it for rows stored without it.
- ``T_summaries``: one row per main transcript with ``mtime`` (epoch ms) and the fold's opaque ``data``.
  ``list_sessions`` and ``list_session_summaries`` read this table, so both report the same mtime.
  An index on ``(project_key, mtime)`` (``T_summaries_mtime_idx``) serves retention's range
  ``mtime < cutoff`` (:mod:`session_store.retention`); ``create_schema()`` adds it to existing tables.

Round trips: a subpath append is one ``INSERT ... SELECT FROM unnest(...)`` statement (pipelined in a
transaction that first takes the key's advisory lock when the batch has entries without a uuid, so
``append_once`` counts them); a main append is two pipelined exchanges (lock the summary row, insert the batch
and see which uuids were new; then write the folded summary and commit). ``append_once`` adds one exchange after
taking the lock: counting the rows equal to the batch's uuid-less entries (``content_hash = ANY(...)``). The mtime is ``GREATEST(previous + 1, clock_timestamp() in ms)``. Identifiers are
composed with ``psycopg.sql``; every value is a bound parameter.

Read-only (``read_only=True``, what the command line's ``list``, ``show``, ``subagents`` and ``resume`` use): no
schema is created or migrated (no DDL, no advisory lock, no ``content_hash`` backfill), every pooled connection
runs ``SET default_transaction_read_only = on`` so the server refuses any write (``ReadOnlySqlTransaction``), and
a table that does not exist reads as an empty store. So a role with only ``SELECT``, a hot standby, or a
database where nothing was stored yet can be listed.

Connections: a pooled connection idle for more than :data:`PING_IDLE_CONNECTIONS_AFTER_SECONDS` is checked
before use (busy connections skip the check), so stale connections left by a server restart are replaced
instead of failing the next operations. Waiting for a connection is bounded by ``timeout`` seconds: while the
server is down, operations fail with ``psycopg.OperationalError`` (``psycopg_pool.PoolTimeout`` once no
connection is left). A reconnection attempt that keeps failing is abandoned after ``timeout / 2`` and the next
operation starts a fresh one, so once the server is back the store reconnects within ``timeout``. The very
first use connects once directly, so a server that is down or a wrong DSN fails at once with libpq's message.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, LiteralString
from urllib.parse import urlsplit

from ..exactly_once import content_hash, plan_append_once
from ..redaction import redact
from ..summary import fold_session_summary
from ..types import SessionKey, SessionStoreEntry, SessionStoreListEntry, SessionSummaryEntry
from ..validation import encode_json
from ._threaded import ThreadedSessionStore, encode_entry, entry_uuid, require_driver, unique_in_batch

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool

__all__ = ["DEFAULT_TABLE", "PING_IDLE_CONNECTIONS_AFTER_SECONDS", "TABLE_NAME_PATTERN", "PostgresSessionStore"]

DEFAULT_TABLE = "session_entries"
TABLE_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
"""Table names are an identifier of at most 40 characters (so ``T_summaries`` and index names stay under
PostgreSQL's 63-byte limit)."""

PING_IDLE_CONNECTIONS_AFTER_SECONDS = 1.0
"""A pooled connection unused for longer is pinged before it is handed out (like HikariCP's bypass window)."""

BACKFILL_BATCH_ROWS = 1000
"""Rows hashed per statement when ``create_schema`` fills ``content_hash`` for rows stored without it."""

_MAIN_SUBPATH = ""  # the main transcript's subpath column; "" is never a valid subpath (SPEC §4 decision 2)
_CLOCK_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def validate_table_name(table: str) -> str:
    """Return ``table`` if it is a safe identifier, else raise ``ValueError`` saying what is allowed."""
    if not isinstance(table, str) or not TABLE_NAME_PATTERN.fullmatch(table):
        raise ValueError(
            f"table name {table!r} is not allowed: use 1-40 characters from [A-Za-z0-9_], "
            "not starting with a digit (e.g. 'session_entries')"
        )
    return table


def _lock_name(table: str, project_key: str, session_id: str, subpath: str) -> str:
    """The advisory-lock name of one key (parts length-prefixed so no two keys share a name)."""
    return f"{table}:{len(project_key)}:{project_key}:{len(session_id)}:{session_id}:{subpath}"


def _describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password (never raises: a host list or a bad port is shown as written)."""
    if "://" not in dsn:
        return "the configured server"
    parts = urlsplit(dsn)
    try:
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"
    except ValueError:  # a host list (h1:5432,h2:5432) or a port that is not a number
        return parts.netloc.rpartition("@")[2] + parts.path


class _Statements:
    """Every SQL statement of the store, composed once for a validated table name."""

    def __init__(self, table: str) -> None:
        from psycopg import sql

        names = {
            "entries": sql.Identifier(table),
            "summaries": sql.Identifier(f"{table}_summaries"),
            "key_index": sql.Identifier(f"{table}_key_idx"),
            "uuid_index": sql.Identifier(f"{table}_uuid_idx"),
            "mtime_index": sql.Identifier(f"{table}_summaries_mtime_idx"),
            "content_index": sql.Identifier(f"{table}_content_idx"),
            "unhashed_index": sql.Identifier(f"{table}_unhashed_idx"),
            "clock_ms": sql.SQL(_CLOCK_MS),
        }

        def compose(text: LiteralString) -> sql.Composed:
            return sql.SQL(text).format(**names)

        self.schema_lock = sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(table))
        relations = [table, f"{table}_summaries"] + [
            f"{table}{suffix}"
            for suffix in ("_key_idx", "_uuid_idx", "_summaries_mtime_idx", "_content_idx", "_unhashed_idx")
        ]
        # Whether the schema is complete already: then the DDL below is skipped, so that a store opening while
        # others append takes no table lock (an ALTER TABLE queued between the two tables an append writes
        # deadlocks with it).
        self.schema_complete = sql.SQL(
            "SELECT bool_and(to_regclass(quote_ident(name)) IS NOT NULL) AND EXISTS ("
            " SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(quote_ident({}))"
            " AND attname = 'content_hash' AND NOT attisdropped)"
            " FROM unnest({}::text[]) AS name"
        ).format(sql.Literal(table), sql.Literal(relations))
        self.schema = [
            compose(
                "CREATE TABLE IF NOT EXISTS {entries} ("
                " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " project_key text NOT NULL, session_id text NOT NULL, subpath text NOT NULL,"
                " uuid text, entry json NOT NULL, content_hash text)"
            ),
            compose("ALTER TABLE {entries} ADD COLUMN IF NOT EXISTS content_hash text"),
            compose(
                "CREATE INDEX IF NOT EXISTS {content_index} ON {entries}"
                " (project_key, session_id, subpath, content_hash) WHERE content_hash IS NOT NULL"
            ),
            compose(
                "CREATE INDEX IF NOT EXISTS {unhashed_index} ON {entries} (seq)"
                " WHERE uuid IS NULL AND content_hash IS NULL"
            ),
            compose("CREATE INDEX IF NOT EXISTS {key_index} ON {entries} (project_key, session_id, subpath, seq)"),
            compose(
                "CREATE UNIQUE INDEX IF NOT EXISTS {uuid_index} ON {entries} (project_key, session_id, subpath, uuid)"
                " WHERE uuid IS NOT NULL"
            ),
            compose(
                "CREATE TABLE IF NOT EXISTS {summaries} ("
                " project_key text NOT NULL, session_id text NOT NULL, mtime bigint NOT NULL, data json NOT NULL,"
                " PRIMARY KEY (project_key, session_id))"
            ),
            compose("CREATE INDEX IF NOT EXISTS {mtime_index} ON {summaries} (project_key, mtime)"),
        ]
        self.unhashed_rows = compose(
            "SELECT seq, entry FROM {entries} WHERE uuid IS NULL AND content_hash IS NULL ORDER BY seq LIMIT %s"
        )
        self.fill_hashes = compose(
            "UPDATE {entries} SET content_hash = filled.content_hash"
            " FROM unnest(%s::bigint[], %s::text[]) AS filled(seq, content_hash) WHERE {entries}.seq = filled.seq"
        )
        self.lock_key = sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))")
        self.count_equal = compose(
            "SELECT content_hash, count(*) FROM {entries}"
            " WHERE project_key = %s AND session_id = %s AND subpath = %s AND content_hash = ANY(%s::text[])"
            " GROUP BY content_hash"
        )
        self.insert_entries = compose(
            "INSERT INTO {entries} (project_key, session_id, subpath, uuid, entry, content_hash)"
            " SELECT %s, %s, %s, batch.uuid, batch.entry, batch.content_hash"
            " FROM unnest(%s::text[], %s::json[], %s::text[]) WITH ORDINALITY AS batch(uuid, entry, content_hash, ord)"
            " ORDER BY batch.ord"
            " ON CONFLICT (project_key, session_id, subpath, uuid) WHERE uuid IS NOT NULL DO NOTHING"
            " RETURNING uuid"
        )
        self.create_summary_row = compose(
            "INSERT INTO {summaries} (project_key, session_id, mtime, data) VALUES (%s, %s, 0, '{{}}')"
            " ON CONFLICT DO NOTHING"
        )
        self.lock_summary_row = compose(
            "SELECT mtime, data FROM {summaries} WHERE project_key = %s AND session_id = %s FOR UPDATE"
        )
        self.write_summary = compose(
            "UPDATE {summaries} SET mtime = GREATEST(mtime + 1, {clock_ms}), data = %s::json"
            " WHERE project_key = %s AND session_id = %s"
        )
        self.load = compose(
            "SELECT entry FROM {entries} WHERE project_key = %s AND session_id = %s AND subpath = %s ORDER BY seq"
        )
        self.list_sessions = compose("SELECT session_id, mtime FROM {summaries} WHERE project_key = %s")
        self.list_summaries = compose("SELECT session_id, mtime, data FROM {summaries} WHERE project_key = %s")
        self.delete_subkey = compose(
            "DELETE FROM {entries} WHERE project_key = %s AND session_id = %s AND subpath = %s"
        )
        self.delete_summary = compose("DELETE FROM {summaries} WHERE project_key = %s AND session_id = %s")
        self.delete_session = compose("DELETE FROM {entries} WHERE project_key = %s AND session_id = %s")
        # retention: a loose index scan for the projects (one search per project), an index range for the
        # sessions to prune, and a conditional delete (the summary row's lock waits for an append in flight,
        # whose newer mtime then keeps the session; the entries go only if the summary row went)
        self.list_projects = compose(
            "WITH RECURSIVE projects(project_key) AS ("
            " SELECT min(project_key) FROM {summaries}"
            " UNION ALL SELECT (SELECT min(s.project_key) FROM {summaries} s WHERE s.project_key > p.project_key)"
            " FROM projects p WHERE p.project_key IS NOT NULL"
            ") SELECT project_key FROM projects WHERE project_key IS NOT NULL"
        )
        self.prune_candidates = compose(
            "SELECT session_id, mtime FROM {summaries} WHERE project_key = %s AND mtime < %s"
        )
        self.prune_summary = compose(
            "DELETE FROM {summaries} WHERE project_key = %s AND session_id = %s AND mtime < %s RETURNING mtime"
        )
        self.prune_entries = compose(
            "DELETE FROM {entries} WHERE project_key = %s AND session_id = %s"
            " AND NOT EXISTS (SELECT 1 FROM {summaries} WHERE project_key = %s AND session_id = %s)"
        )
        self.list_subkeys = compose(
            "SELECT subpath FROM {entries} WHERE project_key = %s AND session_id = %s AND subpath <> ''"
            " GROUP BY subpath ORDER BY min(seq)"
        )


def _read_only_session(conn: psycopg.Connection[Any]) -> None:
    """Pool ``configure`` hook of a read-only store: the server refuses every write on this connection."""
    conn.execute("SET default_transaction_read_only = on")


def _probe_timeout(timeout: float) -> int:
    """libpq's ``connect_timeout`` (whole seconds, at least 2) for the first connection of a store."""
    return max(2, min(10, int(timeout)))


class PostgresSessionStore(ThreadedSessionStore):
    """A ``SessionStore`` in a PostgreSQL table (see the module docstring for the schema and guarantees).

    ``dsn``: a libpq connection string or ``postgresql://`` URL. ``table``: the entries table (validated;
    summaries go to ``{table}_summaries``). ``min_size`` / ``max_size``: pool bounds (``max_size`` also bounds
    the worker threads). ``timeout``: seconds to wait for a connection before ``PoolTimeout``.
    ``ensure_schema``: create the tables on first use (set False when migrations own the schema).
    ``read_only``: read without creating anything, and let the server refuse writes (see the module docstring).
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        ensure_schema: bool = True,
        read_only: bool = False,
    ) -> None:
        self.table = validate_table_name(table)
        if min_size < 0 or max_size < 1 or min_size > max_size:
            raise ValueError(
                f"pool sizes need 0 <= min_size <= max_size and max_size >= 1; got {min_size=}, {max_size=}"
            )
        require_driver("psycopg", store="PostgresSessionStore", extra="postgres")
        require_driver("psycopg_pool", store="PostgresSessionStore", extra="postgres")
        super().__init__(max_threads=max_size)
        self.dsn = dsn
        self._timeout = timeout
        self.read_only = read_only
        self._ensure_schema = ensure_schema and not read_only
        self._sql = _Statements(self.table)
        self._pool: ConnectionPool[Any] | None = None
        self._min_size, self._max_size = min_size, max_size
        self._ready_lock = threading.Lock()
        self._schema_ready = False
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        read_only = ", read_only=True" if self.read_only else ""
        return f"PostgresSessionStore({_describe_dsn(self.dsn)!r}, table={self.table!r}{read_only})"

    async def create_schema(self) -> None:
        """Create the tables and indexes if they do not exist (idempotent, safe to race from many processes)."""
        await self._call(self._create_schema_blocking)

    # -- connections --

    def _ready_pool(self) -> ConnectionPool[Any]:
        with self._ready_lock:
            if self._pool is None:
                import psycopg
                from psycopg_pool import ConnectionPool

                # One direct connection first: a server that is down or a DSN that is wrong fails now, with
                # libpq's own message, instead of after the pool has retried for ``timeout`` seconds.
                try:
                    psycopg.connect(self.dsn, connect_timeout=_probe_timeout(self._timeout)).close()
                except psycopg.Error as error:  # OperationalError; ProgrammingError for a DSN libpq cannot parse
                    raise type(error)(
                        f"cannot connect to PostgreSQL at {_describe_dsn(self.dsn)} (is the server up and the DSN "
                        f"right?): {redact(str(error).strip(), url=self.dsn)}"
                    ) from error

                pool: ConnectionPool[Any] = ConnectionPool(
                    self.dsn,
                    kwargs={"autocommit": True},
                    configure=_read_only_session if self.read_only else None,
                    timeout=self._timeout,
                    reconnect_timeout=self._timeout / 2,
                    check=self._check_connection,
                    name=f"session-store-{self.table}",
                    open=False,
                    min_size=self._min_size,
                    max_size=self._max_size,
                )
                pool.open(wait=False)
                self._pool = pool
            if self._ensure_schema and not self._schema_ready:
                self._create_schema_on(self._pool)
                self._schema_ready = True
            return self._pool

    def _check_connection(self, conn: psycopg.Connection[Any]) -> None:
        last_used = self._last_used.get(conn)
        if last_used is None or time.monotonic() - last_used > PING_IDLE_CONNECTIONS_AFTER_SECONDS:
            from psycopg_pool import ConnectionPool

            ConnectionPool.check_connection(conn)

    @contextmanager
    def _connection(self, pool: ConnectionPool[Any] | None = None) -> Iterator[psycopg.Connection[Any]]:
        from psycopg_pool import PoolTimeout

        if pool is None:
            pool = self._ready_pool()
        try:
            with pool.connection() as conn:
                yield conn
                self._last_used[conn] = time.monotonic()
        except PoolTimeout as error:
            raise PoolTimeout(
                f"no PostgreSQL connection to {_describe_dsn(self.dsn)} within {self._timeout} s "
                f"(is the server up and the DSN right?): {redact(str(error), url=self.dsn)}"
            ) from error

    def _create_schema_on(self, pool: ConnectionPool[Any]) -> None:
        with self._connection(pool) as conn, conn.transaction():
            conn.execute(self._sql.schema_lock)
            row = conn.execute(self._sql.schema_complete).fetchone()
            if not (row and row[0]):
                for statement in self._sql.schema:
                    conn.execute(statement)
            # rows stored before content_hash existed (or by an older version since): hash them now; the
            # partial index makes this a cheap check once every row has its hash
            while rows := conn.execute(self._sql.unhashed_rows, (BACKFILL_BATCH_ROWS,)).fetchall():
                conn.execute(self._sql.fill_hashes, ([seq for seq, _ in rows], [content_hash(e) for _, e in rows]))

    def _create_schema_blocking(self) -> None:
        self._create_schema_on(self._ready_pool())

    # -- SessionStore, blocking halves --

    def _write_blocking(
        self,
        key: SessionKey,
        subpath: str | None,
        entries: list[SessionStoreEntry],
        occurrences: list[int | None] | None,
    ) -> int:
        """``append`` (``occurrences`` None) or ``append_once``; returns how many entries were stored.

        The key is locked before anything is read: a main transcript by its summary row (``FOR UPDATE``), a
        subagent transcript by a transaction-level advisory lock on the key, taken when the batch has entries
        without a uuid (so concurrent ``append_once`` calls count each other's rows). ``append_once`` then
        counts the rows equal to each uuid-less entry (one round trip) and inserts what the rule lets through.
        """
        import psycopg

        project_key, session_id = key["project_key"], key["session_id"]
        column_subpath = subpath or _MAIN_SUBPATH
        hashes = {id(entry): content_hash(entry) for entry in entries if entry_uuid(entry) is None}
        with self._connection() as conn:
            if subpath is not None and occurrences is None and not hashes:
                # only uuid entries: the unique index decides alone, one statement, one round trip
                batch = unique_in_batch(entries)
                inserted = conn.execute(
                    self._sql.insert_entries, self._insert_params(key, column_subpath, batch, hashes)
                )
                return len(inserted.fetchall())
            with conn.pipeline(), conn.transaction():
                if subpath is None:
                    conn.execute(self._sql.create_summary_row, (project_key, session_id))
                    previous_row = conn.execute(self._sql.lock_summary_row, (project_key, session_id))
                else:
                    conn.execute(self._sql.lock_key, (_lock_name(self.table, project_key, session_id, subpath),))
                if occurrences is None:
                    batch = unique_in_batch(entries)
                else:
                    wanted = sorted(set(hashes.values()))
                    held: dict[str, int] = {}
                    if wanted:
                        counted = conn.execute(self._sql.count_equal, (project_key, session_id, column_subpath, wanted))
                        held = {digest: count for digest, count in counted.fetchall()}
                    kept = plan_append_once(entries, occurrences, frozenset(), held, lambda e: hashes[id(e)])
                    batch = [entries[index] for index in kept]
                if not batch:
                    raise psycopg.Rollback()
                inserted = conn.execute(
                    self._sql.insert_entries, self._insert_params(key, column_subpath, batch, hashes)
                )
                new_uuids = {uuid for (uuid,) in inserted.fetchall()}
                stored = [e for e in batch if (uuid := entry_uuid(e)) is None or uuid in new_uuids]
                if subpath is not None:
                    return len(stored)
                if not stored:
                    raise psycopg.Rollback()  # a fully repeated batch changes nothing, not even the mtime
                mtime, data = previous_row.fetchone() or (0, {})
                previous: SessionSummaryEntry = {"session_id": session_id, "mtime": mtime, "data": data}
                summary = fold_session_summary(previous, key, stored)
                summary_json = encode_json(summary["data"])
                conn.execute(self._sql.write_summary, (summary_json, project_key, session_id))
                return len(stored)
        return 0  # rolled back: nothing stored

    @staticmethod
    def _insert_params(
        key: SessionKey, column_subpath: str, batch: list[SessionStoreEntry], hashes: dict[int, str]
    ) -> tuple[object, ...]:
        return (
            key["project_key"],
            key["session_id"],
            column_subpath,
            [entry_uuid(entry) for entry in batch],
            [encode_entry(entry) for entry in batch],
            [hashes.get(id(entry)) for entry in batch],
        )

    def _rows(self, statement: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of one read; with ``read_only``, none when the table does not exist (nothing stored yet)."""
        import psycopg

        with self._connection() as conn:
            try:
                return conn.execute(statement, params).fetchall()
            except psycopg.errors.UndefinedTable as error:
                if self.read_only:
                    return []
                raise psycopg.errors.UndefinedTable(
                    f"table {self.table!r} does not exist in {_describe_dsn(self.dsn)}: nothing was stored under this "
                    "table name, or the schema was not created (PostgresSessionStore(..., ensure_schema=True) or "
                    f"await store.create_schema()): {redact(str(error).strip(), url=self.dsn)}"
                ) from error

    def _load_blocking(self, project_key: str, session_id: str, subpath: str | None) -> list[SessionStoreEntry] | None:
        rows = self._rows(self._sql.load, (project_key, session_id, subpath or _MAIN_SUBPATH))
        return [entry for (entry,) in rows] or None

    def _list_sessions_blocking(self, project_key: str) -> list[SessionStoreListEntry]:
        rows = self._rows(self._sql.list_sessions, (project_key,))
        return [{"session_id": session_id, "mtime": mtime} for session_id, mtime in rows]

    def _list_session_summaries_blocking(self, project_key: str) -> list[SessionSummaryEntry]:
        rows = self._rows(self._sql.list_summaries, (project_key,))
        return [{"session_id": session_id, "mtime": mtime, "data": data} for session_id, mtime, data in rows]

    def _delete_blocking(self, project_key: str, session_id: str, subpath: str | None) -> None:
        with self._connection() as conn:
            if subpath is not None:
                conn.execute(self._sql.delete_subkey, (project_key, session_id, subpath))
                return
            # The summary row goes first: its row lock waits for an append in flight, and the entries
            # delete that follows then sees (and removes) what that append committed.
            with conn.pipeline(), conn.transaction():
                conn.execute(self._sql.delete_summary, (project_key, session_id))
                conn.execute(self._sql.delete_session, (project_key, session_id))

    def _list_subkeys_blocking(self, project_key: str, session_id: str) -> list[str]:
        rows = self._rows(self._sql.list_subkeys, (project_key, session_id))
        return [subpath for (subpath,) in rows]

    # -- retention (session_store.retention) --

    def _list_projects_blocking(self) -> list[str]:
        rows = self._rows(self._sql.list_projects, ())
        return [project_key for (project_key,) in rows]

    def _prune_candidates_blocking(self, project_key: str, before_ms: int) -> list[tuple[str, int]]:
        rows = self._rows(self._sql.prune_candidates, (project_key, before_ms))
        return [(session_id, mtime) for session_id, mtime in rows]

    def _prune_one_blocking(self, project_key: str, session_id: str, seen_mtime: int, before_ms: int) -> int | None:
        with self._connection() as conn, conn.pipeline(), conn.transaction():
            deleted = conn.execute(self._sql.prune_summary, (project_key, session_id, before_ms))
            conn.execute(self._sql.prune_entries, (project_key, session_id, project_key, session_id))
            row = deleted.fetchone()
        return None if row is None else int(row[0])

    def _close_blocking(self) -> None:
        with self._ready_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
