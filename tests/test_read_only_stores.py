"""Reading without writing on the server stores: PostgreSQL and S3 opened ``read_only`` (what ``list``, ``show``,
``subagents`` and ``resume`` use) create nothing, and the command line lists with credentials that may only read.

The SQLite side of the same promise is in ``tests/test_sqlite_readonly.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from servers import _admin_execute, new_s3_bucket, s3_client
from test_cli import ClaudeHome, Cli

from session_store.adapters import open_store
from session_store.adapters.postgres import PostgresSessionStore
from session_store.adapters.s3 import S3SessionStore
from session_store.types import SessionKey, SessionStoreEntry

pytestmark = pytest.mark.servers

PROJECT = "-home-user-app"


def key(session_id: str = "s1", subpath: str | None = None) -> SessionKey:
    made: SessionKey = {"project_key": PROJECT, "session_id": session_id}
    if subpath is not None:
        made["subpath"] = subpath
    return made


def entry(uuid_: str, **fields: Any) -> SessionStoreEntry:
    return {"type": "user", "uuid": uuid_, **fields}  # type: ignore[return-value]


def fresh_table() -> str:
    return f"ro_{uuid.uuid4().hex[:12]}"


def table_exists(url: str, table: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password)}@{host}"))


@pytest.fixture
def select_only_role(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A login role that may connect and read (``SELECT`` on every table, present and future) but create nothing;
    (its URL, its name)."""
    role = f"reader_{uuid.uuid4().hex[:10]}"
    database = urlsplit(postgres_url).path.lstrip("/")
    _admin_execute(postgres_url, f"CREATE ROLE {role} LOGIN PASSWORD 'read-only-pw'")
    _admin_execute(postgres_url, f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
    _admin_execute(postgres_url, f"GRANT USAGE ON SCHEMA public TO {role}")
    _admin_execute(postgres_url, f"REVOKE CREATE ON SCHEMA public FROM {role}, PUBLIC")
    _admin_execute(postgres_url, f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}")
    try:
        yield with_user(postgres_url, role, "read-only-pw"), role
    finally:
        _admin_execute(postgres_url, f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {role}")
        _admin_execute(postgres_url, f"DROP OWNED BY {role}")
        _admin_execute(postgres_url, f"DROP ROLE {role}")


# --- PostgreSQL ---------------------------------------------------------------------------------------------


async def test_a_read_only_postgres_store_reads_a_missing_table_as_empty_and_creates_nothing(
    postgres_url: str,
) -> None:
    table = fresh_table()
    async with PostgresSessionStore(postgres_url, table=table, read_only=True) as store:
        assert await store.list_sessions(PROJECT) == []
        assert await store.list_session_summaries(PROJECT) == []
        assert await store.load(key()) is None
        assert await store.list_subkeys(key()) == []
        assert await store.list_projects() == []
    assert not table_exists(postgres_url, table)
    assert not table_exists(postgres_url, f"{table}_summaries")


async def test_a_read_only_postgres_store_reads_and_the_server_refuses_its_writes(postgres_url: str) -> None:
    table = fresh_table()
    async with PostgresSessionStore(postgres_url, table=table) as writer:
        await writer.append(key(), [entry("u1", customTitle="kept")])
    async with open_store(f"{postgres_url}?table={table}", read_only=True) as store:
        assert isinstance(store, PostgresSessionStore) and store.read_only
        assert await store.load(key()) == [entry("u1", customTitle="kept")]
        assert [row["session_id"] for row in await store.list_sessions(PROJECT)] == ["s1"]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await store.append(key(), [entry("u2")])  # the superuser's session is read-only too
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await store.delete(key())
    async with PostgresSessionStore(postgres_url, table=table) as writer:
        assert await writer.load(key()) == [entry("u1", customTitle="kept")]


async def test_a_select_only_role_lists_through_a_read_only_store(
    postgres_url: str, select_only_role: tuple[str, str]
) -> None:
    reader_url, _ = select_only_role
    table = fresh_table()
    async with PostgresSessionStore(postgres_url, table=table) as writer:
        await writer.append(key(), [entry("u1")])
        await writer.append(key(subpath="subagents/agent-a"), [entry("a1")])
    async with PostgresSessionStore(reader_url, table=table, read_only=True) as store:
        assert [row["session_id"] for row in await store.list_sessions(PROJECT)] == ["s1"]
        assert await store.list_subkeys(key()) == ["subagents/agent-a"]
        assert await store.load(key(subpath="subagents/agent-a")) == [entry("a1")]
    async with PostgresSessionStore(reader_url, table=fresh_table(), read_only=True) as store:
        assert await store.list_sessions(PROJECT) == []  # nothing to read, and no CREATE was attempted


async def test_a_missing_table_without_schema_creation_is_named_with_the_fix(postgres_url: str) -> None:
    table = fresh_table()
    async with PostgresSessionStore(postgres_url, table=table, ensure_schema=False) as store:
        with pytest.raises(psycopg.errors.UndefinedTable, match=rf"table '{table}' does not exist.*create_schema"):
            await store.list_sessions(PROJECT)


def test_the_cli_lists_an_empty_postgres_store_with_a_select_only_role(
    tmp_path: Path, select_only_role: tuple[str, str]
) -> None:
    reader_url, _ = select_only_role
    workdir = tmp_path / "app"
    workdir.mkdir()
    home = ClaudeHome(tmp_path / "claude" / "projects", workdir)
    env = {name: value for name, value in os.environ.items() if name not in {"SESSION_STORE_URL", "SESSION_STORE_DB"}}
    (tmp_path / "home").mkdir()
    env |= {"HOME": str(tmp_path / "home"), "CLAUDE_CONFIG_DIR": str(home.projects.parent), "TZ": "UTC"}
    cli = Cli(env, f"{reader_url}?table={fresh_table()}", workdir)

    listed = cli.json("list")  # before: "permission denied for schema public" from the CREATE TABLE
    refused = cli("rename", str(uuid.uuid4()), "New title")

    assert listed == []
    assert refused.returncode != 0 and "read-only-pw" not in refused.stderr + refused.stdout


# --- S3 -----------------------------------------------------------------------------------------------------


def all_objects(endpoint: str, bucket: str) -> dict[str, str]:
    client: Any = s3_client(endpoint)
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
    return found


async def test_a_read_only_s3_store_writes_no_object_not_even_its_listing_cache(s3_endpoint: str) -> None:
    bucket = new_s3_bucket(s3_endpoint)
    async with S3SessionStore(bucket, endpoint_url=s3_endpoint) as writer:
        for number in range(70):  # enough that a writable store's listing would write the cache
            await writer.append(key(f"s{number:02d}"), [entry(f"u{number}", customTitle=f"t{number}")])
    before = all_objects(s3_endpoint, bucket)

    store = open_store(f"s3://{bucket}?endpoint_url={s3_endpoint}", read_only=True)
    assert isinstance(store, S3SessionStore) and store.read_only
    async with store:
        for _ in range(2):
            assert len(await store.list_session_summaries(PROJECT)) == 70
            assert len(await store.list_sessions(PROJECT)) == 70
        assert await store.load(key("s07")) == [entry("u7", customTitle="t7")]
        with pytest.raises(PermissionError, match="read-only"):
            await store.append(key("s07"), [entry("new")])
        with pytest.raises(PermissionError, match="read-only"):
            await store.delete(key("s07"))
        with pytest.raises(PermissionError, match="read-only"):
            await store.compact(PROJECT, "s07")

    assert all_objects(s3_endpoint, bucket) == before
