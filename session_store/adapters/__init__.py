"""Storage adapters for ``session_store`` and ``open_store(url)``, which picks one from a connection string.

SPEC §5: SQLite (embedded default), PostgreSQL and Redis, each implementing the whole ``SessionStore`` contract
of reference §1.7 with this project's decisions (SPEC §4 decision 2: ``subpath == ""`` raises ``ValueError``,
``append(key, [])`` is a no-op; decision 8: idempotent by uuid, summaries folded atomically, one storage
clock). They run their blocking drivers in worker threads through ``compat``, so each works under asyncio and
trio. The PostgreSQL and Redis drivers are optional and imported only when such a store is built; a missing
driver raises :class:`MissingDriverError` (an ``ImportError``) naming the pip extra that installs it.

Connection strings understood by :func:`open_store`:

============================  ===========================================================================
``sqlite://``                 the default SQLite file (``$SESSION_STORE_DB``, else
                              ``~/.local/share/session-store/sessions.db``)
``sqlite:///relative.db``     a SQLite file relative to the working directory
``sqlite:////abs/path.db``    an absolute SQLite path (three slashes, then the path's own leading slash)
``sqlite:///:memory:``        a private in-memory SQLite database
``memory://``                 :class:`session_store.memory.InMemorySessionStore` (process-local)
``postgresql://...``          :class:`PostgresSessionStore` (``postgres://`` too; libpq URL, query options kept;
                              ``?table=NAME`` picks the entries table and is not passed to libpq)
``redis://...``               :class:`RedisSessionStore` (``rediss://`` for TLS; ``?prefix=NAME`` picks the key
                              prefix and is not passed to redis-py)
``redis+cluster://h:p,h:p/``  :class:`RedisSessionStore` on a Redis Cluster (redis-py's ``RedisCluster``; the
                              hosts are startup nodes; ``rediss+cluster://`` for TLS; ``?prefix=`` as above)
``s3://bucket/prefix``        :class:`S3SessionStore` (``?endpoint_url=`` for an S3-compatible server,
                              ``?region=``; credentials from boto3's chain, never from the URL)
============================  ===========================================================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..memory import InMemorySessionStore
from ..redaction import redact_url
from ..types import SessionStore
from ._threaded import MissingDriverError, ThreadedSessionStore
from .postgres import PostgresSessionStore
from .redis import RedisSessionStore
from .s3 import S3SessionStore
from .sqlite import SQLiteSessionStore, default_database_path

__all__ = [
    "SUPPORTED_SCHEMES",
    "MissingDriverError",
    "PostgresSessionStore",
    "RedisSessionStore",
    "S3SessionStore",
    "SQLiteSessionStore",
    "ThreadedSessionStore",
    "default_database_path",
    "open_store",
]

SUPPORTED_SCHEMES = (
    "sqlite",
    "memory",
    "postgresql",
    "postgres",
    "redis",
    "rediss",
    "redis+cluster",
    "rediss+cluster",
    "s3",
)


def _sqlite_path(rest: str) -> str | None:
    """The file named after ``sqlite://``: None for the default, else the path after the third slash.

    SQLite URLs take no query options: ``?mode=ro`` and the like raise ``ValueError`` instead of being ignored.
    Messages show the URL through :func:`~session_store.redaction.redact_url` (a host part may hold a password).
    """
    shown = redact_url(f"sqlite://{rest}")
    location, _, query = rest.partition("?")
    if query:
        raise ValueError(
            f"SQLite URL {shown!r} has query options, which the SQLite store does not take; "
            "remove them (the file name is all it needs)"
        )
    if not location:
        return None
    if not location.startswith("/"):
        raise ValueError(f"SQLite URL {shown!r} names a host; use 'sqlite:///relative.db' or 'sqlite:////abs/path.db'")
    path = unquote(location[1:])
    if not path:
        return None
    return path


def open_store(url: str, *, read_only: bool = False, **options: Any) -> SessionStore:
    """The store a connection string names (see the table in the module docstring).

    ``options`` are passed to the store's constructor (e.g. ``table=`` for PostgreSQL, ``prefix=`` for Redis).
    ``read_only=True`` opens a SQLite file read-only (``SQLiteSessionStore(read_only=True)``: no directory, file,
    schema or journal-mode change, so a read-only file or mount can be read), a PostgreSQL store without DDL on
    read-only connections (``PostgresSessionStore(read_only=True)``) and an S3 store that writes no object
    (``S3SessionStore(read_only=True)``); Redis and memory ignore it.
    Nothing is connected yet: the first call on the store connects. Raises ``TypeError`` for a URL that is not
    a str, ``ValueError`` for an unknown scheme, a ``memory://`` URL with anything after the scheme, a SQLite
    URL with a host or query options, a bad PostgreSQL ``table=`` or a Redis ``prefix=`` with braces (before
    anything is connected), and :class:`MissingDriverError` when the scheme's driver is not installed.
    """
    if not isinstance(url, str):
        raise TypeError(f"open_store() takes a store URL str such as 'sqlite:///sessions.db', got {type(url).__name__}")
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in SUPPORTED_SCHEMES:
        # name only the scheme: the rest of a URL may hold a password
        what = f"scheme {scheme + '://'!r}" if separator else f"{redact_url(url)!r} (no scheme://)"
        raise ValueError(
            f"unsupported store URL {what}: use one of "
            + ", ".join(f"{name}://" for name in SUPPORTED_SCHEMES)
            + " (e.g. 'sqlite:///sessions.db')"
        )
    if scheme == "memory":
        if rest:
            shown = redact_url(url)
            raise ValueError(f"'memory://' takes nothing after the scheme, got {shown!r}; use 'memory://'")
        return InMemorySessionStore(**options)
    if scheme == "sqlite":
        return SQLiteSessionStore(_sqlite_path(rest), **({"read_only": True} if read_only else {}) | options)
    read_only_option = {"read_only": True} if read_only else {}
    if scheme == "s3":
        return _s3_store(rest, read_only_option | options)
    if scheme in ("postgresql", "postgres"):
        url, table = _take_query_option(url, "table")
        return PostgresSessionStore(url, **({"table": table} if table is not None else {}) | read_only_option | options)
    url, prefix = _take_query_option(url, "prefix")
    return RedisSessionStore(url, **({"prefix": prefix} if prefix is not None else {}) | options)


S3_QUERY_OPTIONS = ("endpoint_url", "region")


def _s3_store(rest: str, options: dict[str, Any]) -> SessionStore:
    """The :class:`S3SessionStore` of ``s3://bucket/prefix?endpoint_url=...&region=...`` (``rest`` is after ``s3://``)."""
    from .s3 import S3SessionStore

    location, _, query = rest.partition("?")
    bucket, _, prefix = location.partition("/")
    if "@" in bucket:  # never echo it: it may hold a secret key
        raise ValueError(
            "an s3:// URL takes no credentials before the bucket; give them through the environment "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), ~/.aws/credentials or an instance role"
        )
    if not bucket:
        raise ValueError("s3:// URL names no bucket; use 's3://BUCKET/PREFIX?endpoint_url=...&region=...'")
    settings: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in S3_QUERY_OPTIONS:
            raise ValueError(
                f"s3:// URL option {name!r} is not one the S3 store takes; use "
                + " and ".join(f"{option}=" for option in S3_QUERY_OPTIONS)
                + " (credentials come from the environment, never from the URL)"
            )
        if name in settings:
            raise ValueError(f"the store URL gives {name}= more than once; give it once")
        settings[name] = value
    return S3SessionStore(unquote(bucket), prefix=unquote(prefix), **settings | options)


def _take_query_option(url: str, name: str) -> tuple[str, str | None]:
    """Remove ``name=value`` from the URL's query (the driver would reject it); return the URL and the value."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    values = [value for key, value in pairs if key == name]
    if not values:
        return url, None
    if len(values) > 1:
        raise ValueError(f"the store URL gives {name}= {len(values)} times; give it once")
    rest = urlencode([(key, value) for key, value in pairs if key != name])
    return urlunsplit(parts._replace(query=rest)), values[0]
