"""``SQLiteSessionStore``: the embedded default store, one SQLite file shared safely by many processes.

Implements the ``SessionStore`` contract of reference §1.7 (all six methods) on the standard library's
``sqlite3``, with the project's decisions of SPEC §4: ``subpath == ""`` raises ``ValueError`` and
``append(key, [])`` creates nothing (decision 2); entries are idempotent by ``uuid`` per key, the summary
sidecar of reference §5.1 is folded inside the append's transaction, and its ``mtime`` (also the
``list_sessions`` mtime) is one clock forced strictly increasing per project (decision 8), so the sessions
of a project list in commit order even when several appends land within one millisecond.

Where the database lives: the ``path`` argument; else ``$SESSION_STORE_DB``; else
``$XDG_DATA_HOME/session-store/sessions.db``, i.e. ``~/.local/share/session-store/sessions.db`` by default.
Missing parent directories are created on first use. ``":memory:"`` gives a private in-memory database.

Concurrency: the database runs in WAL mode (readers never block the writer) with ``synchronous=NORMAL`` (a
committed append survives a crash of the process; a power loss may drop the last transactions) and a busy
timeout of :data:`BUSY_TIMEOUT_SECONDS`. Every append is one ``BEGIN IMMEDIATE`` transaction: it takes the
write lock before reading the uuids and the summary, so the read-fold-write of concurrent appenders, in this
process or in others, is serialized and nothing is lost or folded twice. Within one store, one connection is
used from worker threads one call at a time (``compat.run_sync`` with a limiter of one).

Read-only (``read_only=True``, what the command line's ``list``, ``show``, ``subagents`` and ``resume`` use):
the file is opened with a ``mode=ro`` URI and nothing is created or changed (no folder, no file, no schema, no
journal mode), so a file without write permission, ``chattr +i`` or on a read-only mount can be read. SQLite
itself needs the ``-wal``/``-shm`` files to read a WAL database: in a writable folder it creates them (empty;
the next writer reuses them); in a read-only folder the file is opened ``immutable=1`` instead, unless a
write-ahead log is pending there (an error naming it). A file that does not exist yet reads as an empty store
and is not created. Writing through a read-only store fails with SQLite's ``attempt to write a readonly
database``.

Errors: every ``sqlite3.Error`` a store call raises names the database file (same class, ``sqlite_errorcode``
and ``sqlite_errorname``), e.g. ``file is not a database (session store database /x/sessions.db)``.

Layout: ``session_entries`` (one row per entry, ``subpath = ''`` for the main transcript, ordered by the
rowid ``seq``; a partial unique index on ``(project_key, session_id, subpath, uuid)`` makes uuids idempotent, and
``content_hash``, the SHA-256 of the canonical JSON of an entry without a uuid, indexed per key, lets
``append_once`` count the entries equal to one; see "Exactly-once import and mirror" in docs/behaviour.md)
and ``session_summaries`` (one row per main transcript: ``mtime`` and the fold's opaque ``data``).
``PRAGMA user_version`` records :data:`SCHEMA_VERSION`; opening a version-1 file upgrades it (adds and fills
``content_hash``), and a version newer than this code is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ..exactly_once import content_hash
from ..keys import checked_path
from ..types import (
    SessionKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from ..validation import encode_json
from ._threaded import (
    ThreadedSessionStore,
    decode_entry,
    encode_entry,
    entry_uuid,
    fold_stamped_summary,
    next_mtime,
)

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "DATABASE_PATH_ENV",
    "PRUNE_CANDIDATES_SQL",
    "SCHEMA_VERSION",
    "SQLiteSessionStore",
    "default_database_path",
]

DATABASE_PATH_ENV = "SESSION_STORE_DB"
"""Environment variable naming the database file used when no path is given."""

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a statement waits for another process's write lock before failing with ``database is locked``."""

WAL_SWITCH_RETRY_SECONDS = 0.01

T = TypeVar("T")

SCHEMA_VERSION = 2
"""1: entries and summaries; 2: ``content_hash`` of the entries without a uuid (``append_once``), backfilled."""

_MAIN_SUBPATH = ""  # the main transcript's subpath column; "" is never a valid subpath (SPEC §4 decision 2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session_entries (
    seq INTEGER PRIMARY KEY,
    project_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    subpath TEXT NOT NULL,
    uuid TEXT,
    entry TEXT NOT NULL,
    content_hash TEXT
);
CREATE INDEX IF NOT EXISTS session_entries_by_key ON session_entries (project_key, session_id, subpath, seq);
CREATE UNIQUE INDEX IF NOT EXISTS session_entries_uuid ON session_entries (project_key, session_id, subpath, uuid)
    WHERE uuid IS NOT NULL;
CREATE TABLE IF NOT EXISTS session_summaries (
    project_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    mtime INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (project_key, session_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_summaries_by_mtime ON session_summaries (project_key, mtime);
"""

# Created after the version-2 upgrade, which adds the column to a version-1 file.
_CONTENT_INDEX = (
    "CREATE INDEX IF NOT EXISTS session_entries_content ON session_entries "
    "(project_key, session_id, subpath, content_hash) WHERE content_hash IS NOT NULL"
)

_COUNT_EQUAL = (
    "SELECT count(*) FROM session_entries WHERE project_key = ? AND session_id = ? AND subpath = ? AND content_hash = ?"
)


def _add_content_hashes(conn: sqlite3.Connection) -> None:
    """Upgrade to version 2: add ``content_hash`` if missing and fill it for the rows without a uuid."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(session_entries)")}
    if "content_hash" not in columns:
        conn.execute("ALTER TABLE session_entries ADD COLUMN content_hash TEXT")
    rows = conn.execute("SELECT seq, entry FROM session_entries WHERE uuid IS NULL AND content_hash IS NULL")
    conn.executemany(
        "UPDATE session_entries SET content_hash = ? WHERE seq = ?",
        [(content_hash(decode_entry(text)), seq) for seq, text in rows.fetchall()],
    )


PRUNE_CANDIDATES_SQL = "SELECT session_id, mtime FROM session_summaries WHERE project_key = ? AND mtime < ?"
"""The sessions retention would prune: a range search on ``session_summaries_by_mtime`` (``EXPLAIN QUERY PLAN``:
``SEARCH session_summaries USING COVERING INDEX session_summaries_by_mtime (project_key=? AND mtime<?)``)."""


def default_database_path() -> Path:
    """``$SESSION_STORE_DB``, else ``$XDG_DATA_HOME/session-store/sessions.db`` (``~/.local/share`` default)."""
    configured = os.environ.get(DATABASE_PATH_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "session-store" / "sessions.db"


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (persistent; a no-op once done), retrying while another process holds it.

    SQLite does not call the busy handler for this pragma, so two processes opening a new file at once would
    otherwise see ``database is locked`` here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorname", "") != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(WAL_SWITCH_RETRY_SECONDS)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _directory_error(path: str) -> IsADirectoryError:
    return IsADirectoryError(
        f"the session store database {path!r} is a directory; name a file in it instead, "
        f"e.g. {str(Path(path) / 'sessions.db')!r}"
    )


def _empty_database() -> sqlite3.Connection:
    """A private in-memory database with the store's tables: what a read-only store reads before a file exists."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.executescript(_SCHEMA)
    conn.execute("PRAGMA query_only = ON")  # writes fail as they would on the read-only file
    return conn


def _naming_database(error: sqlite3.Error, path: str) -> sqlite3.Error:
    """``error`` again (same class, code and name) with the database file in its message, if it is not there."""
    message = str(error)
    if path in message:
        return error
    named = type(error)(f"{message} (session store database {path})")
    for attribute in ("sqlite_errorcode", "sqlite_errorname"):
        if hasattr(error, attribute):
            setattr(named, attribute, getattr(error, attribute))
    return named


class SQLiteSessionStore(ThreadedSessionStore):
    """A ``SessionStore`` in one SQLite file (see the module docstring for path resolution and locking)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        super().__init__(max_threads=1)
        path = default_database_path() if path is None else checked_path(path, "the SQLite database path")
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self.read_only = read_only and self.path != ":memory:"
        self._conn: sqlite3.Connection | None = None
        self._empty: sqlite3.Connection | None = None  # read-only, before the file exists
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteSessionStore({self.path!r}{', read_only=True' if self.read_only else ''})"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await super()._call(fn, *args)
        except sqlite3.Error as error:
            named = _naming_database(error, self.path)
            if named is error:
                raise
            raise named from error

    # -- connection --

    def _connection(self) -> sqlite3.Connection:
        with self._open_lock:
            if self._conn is None:
                if not self.read_only:
                    self._conn = self._open()
                else:
                    conn = self._open_read_only()
                    if conn is None:  # no database yet: read as empty, and look again on the next call
                        if self._empty is None:
                            self._empty = _empty_database()
                        return self._empty
                    self._conn = conn
            return self._conn

    def _open_read_only(self) -> sqlite3.Connection | None:
        """A ``mode=ro`` connection (``immutable=1`` on a read-only directory); None if there is no store yet.

        Nothing is created or changed: no directory, no file, no schema, no journal mode. In a writable directory
        SQLite itself adds the ``-wal``/``-shm`` files a reader of a WAL database needs (a writer reuses them).
        Where they cannot be created (a read-only directory or mount) and no write-ahead log is pending, the file
        is opened ``immutable=1``; a pending log there cannot be read, which is an error naming it.
        """
        path = Path(self.path)
        if path.is_dir():
            raise _directory_error(self.path)
        if not path.exists():
            return None
        uri = f"file:{quote(str(path.absolute()))}?mode=ro"
        try:
            conn = self._probed(uri)
        except sqlite3.OperationalError as error:
            # a read-only mount says CANTOPEN, a folder without write permission READONLY_CANTINIT (or the like)
            name = getattr(error, "sqlite_errorname", "")
            if not (name == "SQLITE_CANTOPEN" or name.startswith("SQLITE_READONLY")) or os.access(path.parent, os.W_OK):
                raise
            wal = Path(f"{self.path}-wal")
            if wal.exists() and wal.stat().st_size > 0 and not Path(f"{self.path}-shm").exists():
                raise sqlite3.OperationalError(
                    f"cannot read {self.path} read-only: its write-ahead log {wal} is pending and reading it needs "
                    f"{self.path}-shm, which cannot be created in the read-only folder {path.parent}; open the store "
                    "once where it is writable (any command) to checkpoint the log"
                ) from error
            conn = self._probed(uri + "&immutable=1")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            self._check_version(version)
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except BaseException:
            conn.close()
            raise
        if not tables:
            conn.close()
            return None
        if not {"session_entries", "session_summaries"} <= tables:
            conn.close()
            raise sqlite3.OperationalError(
                f"{self.path} is a SQLite database but not a session store (it has no session_entries and "
                "session_summaries tables); check --store / $SESSION_STORE_DB"
            )
        return conn

    @staticmethod
    def _probed(uri: str) -> sqlite3.Connection:
        """``uri`` opened and read once (SQLite opens the file, and a WAL database's index, only when asked)."""
        conn = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has session-store schema version {version}, newer than the {SCHEMA_VERSION} "
                "this version of session-store-compat understands; upgrade the package to open it"
            )

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            if Path(self.path).is_dir():
                raise _directory_error(self.path)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise sqlite3.OperationalError(f"cannot open the session store database {self.path!r}: {error}") from error
        try:
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            with self._transaction(conn):
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                self._check_version(version)
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                if version < SCHEMA_VERSION:
                    _add_content_hashes(conn)
                conn.execute(_CONTENT_INDEX)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.OperationalError as error:
            conn.close()
            if self.path == ":memory:" or self._writable():
                raise
            raise _naming_database(
                error,
                f"{self.path}, which is read-only (or in a read-only folder); "
                "the commands that only read (list, show, subagents, resume) still work",
            ) from error
        except BaseException:
            conn.close()
            raise
        return conn

    def _writable(self) -> bool:
        """Whether this process may write the database file and create its journal beside it."""
        path = Path(self.path)
        return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (take the write lock now, waiting up to the busy timeout) ... ``COMMIT``."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- SessionStore, blocking halves --

    def _write_blocking(
        self,
        key: SessionKey,
        subpath: str | None,
        entries: list[SessionStoreEntry],
        occurrences: list[int | None] | None,
    ) -> int:
        """``append`` (``occurrences`` None) or ``append_once``, in one write transaction; how many were stored.

        A uuid the key holds is skipped by the unique index; for ``append_once``, an entry without a uuid with
        occurrence n is skipped when the key holds more than n rows with its ``content_hash`` (rows inserted
        earlier in this transaction included).
        """
        project_key, session_id = key["project_key"], key["session_id"]
        column_subpath = subpath or _MAIN_SUBPATH
        with self._transaction(self._connection()) as conn:
            stored: list[SessionStoreEntry] = []
            for index, entry in enumerate(entries):
                uuid = entry_uuid(entry)
                digest = None if uuid is not None else content_hash(entry)
                if digest is not None and occurrences is not None:
                    (held,) = conn.execute(_COUNT_EQUAL, (project_key, session_id, column_subpath, digest)).fetchone()
                    if held > (occurrences[index] or 0):
                        continue
                cursor = conn.execute(
                    "INSERT INTO session_entries (project_key, session_id, subpath, uuid, entry, content_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (project_key, session_id, column_subpath, uuid, encode_entry(entry), digest),
                )
                if cursor.rowcount == 1:
                    stored.append(entry)
            if subpath is not None or not stored:
                return len(stored)
            row = conn.execute(
                "SELECT mtime, data FROM session_summaries WHERE project_key = ? AND session_id = ?",
                (project_key, session_id),
            ).fetchone()
            previous: SessionSummaryEntry | None = (
                {"session_id": session_id, "mtime": row[0], "data": json.loads(row[1])} if row else None
            )
            # One clock per project, strictly increasing: listing order is commit order, even within one ms.
            (latest,) = conn.execute(
                "SELECT max(mtime) FROM session_summaries WHERE project_key = ?", (project_key,)
            ).fetchone()
            summary = fold_stamped_summary(key, previous, stored, next_mtime(_now_ms(), latest or 0))
            conn.execute(
                "INSERT INTO session_summaries (project_key, session_id, mtime, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (project_key, session_id) DO UPDATE SET mtime = excluded.mtime, data = excluded.data",
                (project_key, session_id, summary["mtime"], encode_json(summary["data"])),
            )
            return len(stored)

    def _load_blocking(self, project_key: str, session_id: str, subpath: str | None) -> list[SessionStoreEntry] | None:
        rows = self._connection().execute(
            "SELECT entry FROM session_entries WHERE project_key = ? AND session_id = ? AND subpath = ? ORDER BY seq",
            (project_key, session_id, subpath or _MAIN_SUBPATH),
        )
        entries = [decode_entry(text) for (text,) in rows]
        return entries or None

    def _list_sessions_blocking(self, project_key: str) -> list[SessionStoreListEntry]:
        rows = self._connection().execute(
            "SELECT session_id, mtime FROM session_summaries WHERE project_key = ?", (project_key,)
        )
        return [{"session_id": session_id, "mtime": mtime} for session_id, mtime in rows]

    def _list_session_summaries_blocking(self, project_key: str) -> list[SessionSummaryEntry]:
        rows = self._connection().execute(
            "SELECT session_id, mtime, data FROM session_summaries WHERE project_key = ?", (project_key,)
        )
        return [
            {"session_id": session_id, "mtime": mtime, "data": json.loads(data)} for session_id, mtime, data in rows
        ]

    def _delete_blocking(self, project_key: str, session_id: str, subpath: str | None) -> None:
        with self._transaction(self._connection()) as conn:
            if subpath is not None:
                conn.execute(
                    "DELETE FROM session_entries WHERE project_key = ? AND session_id = ? AND subpath = ?",
                    (project_key, session_id, subpath),
                )
                return
            conn.execute(
                "DELETE FROM session_entries WHERE project_key = ? AND session_id = ?", (project_key, session_id)
            )
            conn.execute(
                "DELETE FROM session_summaries WHERE project_key = ? AND session_id = ?", (project_key, session_id)
            )

    def _list_subkeys_blocking(self, project_key: str, session_id: str) -> list[str]:
        rows = self._connection().execute(
            "SELECT subpath FROM session_entries WHERE project_key = ? AND session_id = ? AND subpath <> ? "
            "GROUP BY subpath ORDER BY MIN(seq)",
            (project_key, session_id, _MAIN_SUBPATH),
        )
        return [subpath for (subpath,) in rows]

    # -- retention (session_store.retention) --

    def _list_projects_blocking(self) -> list[str]:
        # A loose index scan of session_summaries' primary key: one search per project, not a row per session.
        rows = self._connection().execute(
            "WITH RECURSIVE projects(project_key) AS ("
            " SELECT min(project_key) FROM session_summaries"
            " UNION ALL SELECT (SELECT min(project_key) FROM session_summaries WHERE project_key > projects.project_key)"
            " FROM projects WHERE projects.project_key IS NOT NULL"
            ") SELECT project_key FROM projects WHERE project_key IS NOT NULL"
        )
        return [project_key for (project_key,) in rows]

    def _prune_candidates_blocking(self, project_key: str, before_ms: int) -> list[tuple[str, int]]:
        rows = self._connection().execute(PRUNE_CANDIDATES_SQL, (project_key, before_ms))
        return [(session_id, mtime) for session_id, mtime in rows]

    def _prune_one_blocking(self, project_key: str, session_id: str, seen_mtime: int, before_ms: int) -> int | None:
        with self._transaction(self._connection()) as conn:  # BEGIN IMMEDIATE: no append can interleave
            row = conn.execute(
                "DELETE FROM session_summaries WHERE project_key = ? AND session_id = ? AND mtime < ? RETURNING mtime",
                (project_key, session_id, before_ms),
            ).fetchone()
            if row is None:
                return None  # appended to (or deleted) since it was listed
            conn.execute(
                "DELETE FROM session_entries WHERE project_key = ? AND session_id = ?", (project_key, session_id)
            )
            mtime: int = row[0]
            return mtime

    def _close_blocking(self) -> None:
        with self._open_lock:
            for conn in (self._conn, self._empty):
                if conn is not None:
                    conn.close()
            self._conn = self._empty = None
