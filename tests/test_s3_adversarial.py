"""Adversarial tests of the S3 listing cache, the concurrent-request helper, read-only stores and setup errors.

Each test attacks a promise of docs/behaviour.md ("S3 object storage", "Retention") or of the adapters'
docstrings as a careless user or a concurrent process would. Seven of them found bugs, since fixed: an emptied
or pruned project kept its listing cache (and so stayed in ``list_projects``), a refused cache delete failed the
listing, an unreachable endpoint's password reached the traceback, a caller's client's endpoint was called "AWS
S3", a read-only store asked for write permissions, and a fork refused by a read-only store claimed a partial
fork. The others are attacks the code survives, kept as regression tests.
"""

from __future__ import annotations

import json
import time
import traceback
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import test_s3
from servers import free_port, s3_client
from test_s3 import compat_run, entry, keyed_client, objects, put_sdk_part, store_for

import compat
from session_store import fork_session_via_store, project_key_for_directory, prune_sessions
from session_store.adapters import s3 as s3_module
from session_store.adapters.postgres import PostgresSessionStore
from session_store.adapters.s3 import S3SessionStore
from session_store.importing import import_transcript_file
from session_store.types import SessionKey

pytestmark = pytest.mark.servers

PROJECT = "-home-user-adversary"

credential_checking_server = test_s3.checking_server  # the fixture, under a name of this module
HOSTILE_IDS = [
    *("%listing.json", "%index", "%sub", "a/b", "é🙂", "", ".json", "%25", "%2F", "x" * 300),
    *(" ", "a+b", "\t", "?#&=", "\x7f", "\x01", "a b%20c", "~!*'()"),
]
"""Session ids a careless or hostile caller may use ("\\n" is left out: the test server cannot carry it)."""


def session(session_id: str, project_key: str = PROJECT) -> SessionKey:
    return {"project_key": project_key, "session_id": session_id}


def delete_everything_but_the_cache(endpoint: str, bucket: str) -> None:
    client: Any = s3_client(endpoint)
    for name in objects(endpoint, bucket):
        if not name.endswith("%listing.json"):
            client.delete_object(Bucket=bucket, Key=name)


# --- the listing cache and the projects it leaves behind ---------------------------------------------------


async def test_pruning_every_session_of_a_project_leaves_no_object_and_no_project(
    s3_endpoint: str, s3_bucket: str
) -> None:
    """A user prunes a project whose listing cache exists (any project listed once with 64+ sessions).
    Before the fix: every session goes, but ``%listing.json`` stays; ``list_projects()`` (and so the next
    ``prune --older-than`` over every project) still reports the project. It should, and does: the last session's removal
    leaves no object, as ``delete`` followed by a listing already does."""
    async with store_for(s3_endpoint, s3_bucket) as store:
        for number in range(70):
            await store.append(session(f"s{number:02d}"), [entry(f"u{number}")])
        assert len(await store.list_sessions(PROJECT)) == 70  # writes the listing cache
        assert f"{PROJECT}/%listing.json" in objects(s3_endpoint, s3_bucket)
        pruned = await prune_sessions(store, older_than=0)
        assert len(pruned) == 70
        assert await store.list_projects() == []
    assert objects(s3_endpoint, s3_bucket) == []


async def test_a_listing_racing_the_deletion_of_every_session_leaves_no_permanent_cache(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process lists while another deletes every session of the project between the lister's ``LIST`` and
    its ``GET``s (here: right after the ``LIST`` answered). Before the fix: the lister writes ``{"v": 1, "sessions": {}}``, and since later listings only delete a
    cache that has rows, the project is a ghost for good: ``list_projects()`` names it and the object never
    goes. It should, and does: an empty project leaves no object once listed again (or no empty cache is ever written)."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    async with store_for(s3_endpoint, s3_bucket) as writer:
        for number in range(3):
            await writer.append(session(f"s{number}"), [entry(f"u{number}")])
    client: Any = s3_client(s3_endpoint)
    deleted: list[str] = []

    def concurrent_delete(parsed: dict[str, Any], **_: Any) -> None:
        prefix = str(parsed.get("Prefix", ""))
        if prefix.endswith(("%index/", "%25index%2F")) and not deleted:
            deleted.append(prefix)
            delete_everything_but_the_cache(s3_endpoint, s3_bucket)

    client.meta.events.register("after-call.s3.ListObjectsV2", concurrent_delete)
    async with S3SessionStore(s3_bucket, client=client) as lister:
        assert await lister.list_sessions(PROJECT) == []  # the sessions went between the LIST and the GETs
    assert deleted
    async with store_for(s3_endpoint, s3_bucket) as store:
        for _ in range(2):
            assert await store.list_sessions(PROJECT) == []
            assert await store.list_session_summaries(PROJECT) == []
        assert await store.list_projects() == []
    assert objects(s3_endpoint, s3_bucket) == []


async def test_hostile_session_ids_never_collide_with_the_cache_or_the_indexes(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session ids and a project key spelled like the store's own objects (``%listing.json``, ``%index``,
    ``%sub``), with ``/``, ``%``, unicode, empty, or long, are each their own session: they list (from the
    cache too), load, keep their summaries, and their project key comes back exact from ``list_projects``."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    project = "p%/%listing.json/é"
    async with store_for(s3_endpoint, s3_bucket, prefix="team") as store:
        for number, session_id in enumerate(HOSTILE_IDS):
            await store.append(session(session_id, project), [entry(f"u{number}", customTitle=f"t{number}")])
        expected = {session_id: f"t{number}" for number, session_id in enumerate(HOSTILE_IDS)}
        for _ in range(2):  # the first listing writes the cache, the second reads it
            summaries = await store.list_session_summaries(project)
            assert {row["session_id"]: row["data"]["custom_title"] for row in summaries} == expected
            assert sorted(row["session_id"] for row in await store.list_sessions(project)) == sorted(HOSTILE_IDS)
        assert f"team/{quote(project, safe='').replace('%C3%A9', 'é')}/%listing.json" in objects(s3_endpoint, s3_bucket)
        assert await store.list_projects() == [project]
        for number, session_id in enumerate(HOSTILE_IDS):
            assert await store.load(session(session_id, project)) == [entry(f"u{number}", customTitle=f"t{number}")]


async def test_sdk_example_sessions_mixed_with_indexed_ones_and_the_cache_all_list_once(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket shared with the SDK's example store: its sessions (parts, no index) sit beside sessions written
    here and the listing cache. Every session lists exactly once, from the cache or not; adopting an SDK
    session moves it to the indexed rows without a duplicate; deleting an indexed one drops its cached row."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    sdk_ids = [str(uuid.UUID(int=number)) for number in range(1, 4)]
    for number, session_id in enumerate(sdk_ids):
        line = json.dumps(entry(f"sdk{number}", message={"role": "user", "content": "from the SDK"}))
        put_sdk_part(
            s3_endpoint, s3_bucket, f"{PROJECT}/{session_id}/part-17335000000{number:02d}-abcdef.jsonl", [line]
        )
    async with store_for(s3_endpoint, s3_bucket) as store:
        for number in range(3):
            await store.append(session(f"own{number}"), [entry(f"u{number}", customTitle=f"t{number}")])

        async def listed() -> list[str]:
            return sorted(row["session_id"] for row in await store.list_sessions(PROJECT))

        assert await listed() == sorted([*sdk_ids, "own0", "own1", "own2"])
        assert await listed() == sorted([*sdk_ids, "own0", "own1", "own2"])  # from the cache now
        await store.append(session(sdk_ids[0]), [entry("adopted", customTitle="adopted")])
        await store.delete(session("own1"))
        assert await listed() == sorted([*sdk_ids, "own0", "own2"])
        titles = {row["session_id"]: row["data"]["custom_title"] for row in await store.list_session_summaries(PROJECT)}
        assert titles == {sdk_ids[0]: "adopted", "own0": "t0", "own2": "t2"}


async def test_a_session_deleted_and_recreated_under_the_same_id_never_shows_its_old_cached_row(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache holds a session's row; the session is deleted and written again (same id, same first entry,
    by another process). The listing shows the new session's title and mtime, never the cached ones."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    async with store_for(s3_endpoint, s3_bucket) as store:
        await store.append(session("again"), [entry("u1", customTitle="old")])
        [old] = await store.list_session_summaries(PROJECT)  # cached now
        async with store_for(s3_endpoint, s3_bucket) as other:
            await other.delete(session("again"))
            await other.append(session("again"), [entry("u1", customTitle="new")])
        [new] = await store.list_session_summaries(PROJECT)
        assert new["data"]["custom_title"] == "new"
        assert new["mtime"] >= old["mtime"]
        [row] = await store.list_sessions(PROJECT)
        assert row["mtime"] == new["mtime"]


async def test_a_listing_cancelled_at_any_point_leaves_nothing_a_later_listing_believes(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listings cancelled after growing delays (so at the LIST, the cache GET, the index GETs, the cache PUT)
    while sessions are renamed in between: no warning (never-awaited coroutine, unraisable error in a task),
    and every later listing shows each session's last title."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    sessions = 20
    titles = {f"s{number:02d}": f"t{number}" for number in range(sessions)}
    async with store_for(s3_endpoint, s3_bucket) as store:
        for session_id, title in titles.items():
            await store.append(session(session_id), [entry(None, customTitle=title)])
        for step, delay in enumerate([0, 0.0005, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15]):
            with compat.move_on_after(delay):
                await store.list_session_summaries(PROJECT)
            renamed = f"s{(step * 7) % sessions:02d}"
            titles[renamed] = f"renamed-{step}"
            await store.append(session(renamed), [entry(None, customTitle=titles[renamed])])
            rows = await store.list_session_summaries(PROJECT)
            assert {row["session_id"]: row["data"]["custom_title"] for row in rows} == titles


# --- setup errors --------------------------------------------------------------------------------------------


async def test_an_unreachable_endpoint_with_a_password_never_shows_it_in_the_traceback() -> None:
    """A library user points the store at ``http://user:PASSWORD@host:port`` (an S3-compatible gateway behind
    basic auth) that is down, and logs the error with ``logger.exception``. Before the fix: the ConnectionError's own line
    is clean but its ``__cause__`` (printed in every traceback) is ``Could not connect to the endpoint URL:
    "http://user:PASSWORD@..."``. It should, and does: no part of the traceback holds the password (redact the cause, or
    raise ``from None`` with the redacted endpoint in the message)."""
    endpoint = f"http://user:hunter2-secret@127.0.0.1:{free_port()}"
    async with S3SessionStore("some-bucket", endpoint_url=endpoint) as store:
        with pytest.raises(ConnectionError) as raised:
            await store.list_sessions(PROJECT)
    printed = "".join(traceback.format_exception(raised.value))
    assert "hunter2-secret" not in printed


async def test_a_missing_bucket_behind_an_endpoint_with_a_password_names_the_endpoint_redacted(
    s3_endpoint: str,
) -> None:
    """The rewritten setup error names the endpoint, and with a password in it shows it redacted."""
    endpoint = s3_endpoint.replace("http://", "http://user:hunter2-secret@")
    async with S3SessionStore("no-such-bucket-adv", endpoint_url=endpoint) as store:
        with pytest.raises(Exception, match=r"does not exist at http://user:\*\*\*@127\.0\.0\.1") as raised:
            await store.list_session_summaries(PROJECT)
    assert "hunter2-secret" not in "".join(traceback.format_exception(raised.value))


# --- read-only stores through the library's writing functions -----------------------------------------------


def transcript(session_id: str) -> list[Any]:
    first = str(uuid.uuid4())
    return [
        {"type": "user", "uuid": first, "sessionId": session_id, "message": {"role": "user", "content": "hi"}},
        {
            "type": "assistant",
            "uuid": str(uuid.uuid4()),
            "parentUuid": first,
            "sessionId": session_id,
            "message": {"role": "assistant", "content": "hello"},
        },
    ]


async def test_a_read_only_s3_store_refuses_prune_fork_and_import_and_the_bucket_is_unchanged(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """``prune_sessions``, ``fork_session_via_store`` and ``import_transcript_file`` given a read-only store
    raise ``PermissionError`` (a dry run still reports), and no object is written, changed or deleted."""
    directory = "/home/user/adversary"
    project = project_key_for_directory(directory)
    source = str(uuid.uuid4())
    async with store_for(s3_endpoint, s3_bucket) as writer:
        await writer.append(session(source, project), transcript(source))
    client: Any = s3_client(s3_endpoint)

    def snapshot() -> dict[str, str]:
        return {
            name: client.head_object(Bucket=s3_bucket, Key=name)["ETag"] for name in objects(s3_endpoint, s3_bucket)
        }

    before = snapshot()
    async with store_for(s3_endpoint, s3_bucket, read_only=True) as store:
        assert [pruned.session_id for pruned in await prune_sessions(store, older_than=0, dry_run=True)] == [source]
        with pytest.raises(PermissionError, match="read-only"):
            await prune_sessions(store, older_than=0)
        with pytest.raises(PermissionError, match="read-only"):
            await fork_session_via_store(store, source, directory)
        local = str(uuid.uuid4())
        transcript_file = tmp_path / "projects" / project / f"{local}.jsonl"
        transcript_file.parent.mkdir(parents=True)
        transcript_file.write_text("".join(json.dumps(line) + "\n" for line in transcript(local)))
        with pytest.raises(PermissionError, match="read-only"):
            await import_transcript_file(transcript_file, store)
    assert snapshot() == before


async def test_a_fork_refused_by_a_read_only_store_does_not_claim_a_partial_fork(
    s3_endpoint: str, s3_bucket: str
) -> None:
    """A user forks through a store opened read-only. Before the fix: ``PermissionError`` with the note "the fork <id> may
    be partly written: removing it failed (PermissionError: ...); delete session <id> ... once the store is
    reachable", sending them to look for a session that does not exist (the append was refused before any
    request). It should, and does: the ``PermissionError`` alone (skip the undo for an error raised before anything was
    sent, e.g. PermissionError)."""
    directory = "/home/user/adversary"
    project = project_key_for_directory(directory)
    source = str(uuid.uuid4())
    async with store_for(s3_endpoint, s3_bucket) as writer:
        await writer.append(session(source, project), transcript(source))
    async with store_for(s3_endpoint, s3_bucket, read_only=True) as store:
        with pytest.raises(PermissionError) as raised:
            await fork_session_via_store(store, source, directory)
    notes = " ".join(getattr(raised.value, "__notes__", []))
    assert "partly written" not in notes


# --- PostgreSQL read-only ------------------------------------------------------------------------------------


def with_options(url: str, options: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


async def test_a_read_only_postgres_store_follows_the_dsns_search_path_and_reads_views(postgres_url: str) -> None:
    """A DSN with ``options=-c search_path=...``: the read-only store reads the table of that schema (not the
    one of the same name in ``public``), reads a view standing in for the table, and reads a table that exists
    only in a schema off the path as empty, creating nothing anywhere."""
    schema = f"adv_{uuid.uuid4().hex[:8]}"
    table = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    scoped = with_options(postgres_url, f"-c search_path={schema}")
    async with PostgresSessionStore(scoped, table=table) as writer:
        await writer.append(session("in-schema"), [entry("u1", customTitle="schema")])
    async with PostgresSessionStore(postgres_url, table=table) as writer:
        await writer.append(session("in-public"), [entry("u2", customTitle="public")])
    async with PostgresSessionStore(scoped, table=table, read_only=True) as store:
        assert [row["session_id"] for row in await store.list_sessions(PROJECT)] == ["in-schema"]
        assert await store.load(session("in-schema")) == [entry("u1", customTitle="schema")]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE VIEW {schema}.v_{table} AS SELECT * FROM {schema}.{table}")
        conn.execute(f"CREATE VIEW {schema}.v_{table}_summaries AS SELECT * FROM {schema}.{table}_summaries")
    async with PostgresSessionStore(scoped, table=f"v_{table}", read_only=True) as store:
        [summary] = await store.list_session_summaries(PROJECT)
        assert summary["data"]["custom_title"] == "schema"
        assert await store.load(session("in-schema")) == [entry("u1", customTitle="schema")]
    elsewhere = with_options(postgres_url, "-c search_path=pg_catalog")
    async with PostgresSessionStore(elsewhere, table=table, read_only=True) as store:
        assert await store.list_sessions(PROJECT) == []
        assert await store.load(session("in-schema")) is None
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE %s AND relkind IN ('r', 'v')", (f"%{table}%",)
        ).fetchone()
    assert row is not None and row[0] == 6  # two tables in each schema, two views; nothing else was created


# --- more listing-cache attacks -------------------------------------------------------------------------------


async def test_listed_mtimes_never_go_back_and_summaries_are_never_older_than_the_listing(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process appends, a lister alternates ``list_sessions`` and ``list_session_summaries``
    (the cache rewritten on every change): each session's mtime never goes backwards from one listing to the
    next, and a summary's mtime is never older than the ``list_sessions`` mtime read just before it."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    sessions = [f"s{number}" for number in range(5)]
    done = compat.Event()
    seen: dict[str, int] = {}
    checks = 0

    async def appender(store: S3SessionStore) -> None:
        for step in range(30):
            await store.append(session(sessions[step % len(sessions)]), [entry(None, customTitle=f"t{step}")])
        done.set()

    async def lister(store: S3SessionStore) -> None:
        nonlocal checks
        while not done.is_set():
            listed = {row["session_id"]: row["mtime"] for row in await store.list_sessions(PROJECT)}
            summaries = {row["session_id"]: row["mtime"] for row in await store.list_session_summaries(PROJECT)}
            for session_id, mtime in listed.items():
                assert summaries[session_id] >= mtime >= seen.get(session_id, 0)
                seen[session_id] = summaries[session_id]
                checks += 1

    async with store_for(s3_endpoint, s3_bucket) as writer, store_for(s3_endpoint, s3_bucket) as reader:
        for session_id in sessions:
            await writer.append(session(session_id), [entry(None, customTitle="start")])
        async with compat.create_task_group() as group:
            group.start_soon(appender, writer)
            group.start_soon(lister, reader)
    assert checks >= len(sessions)


async def test_a_failed_index_get_is_raised_as_itself_and_writes_no_cache(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One index ``GET`` of a listing fails (a 500 from the object store): the caller gets that ``ClientError``
    itself (not an ``ExceptionGroup``), the listing writes no cache built from the other ``GET``s, and once
    the fault is gone the next listing is whole."""
    from botocore.exceptions import ClientError

    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    async with store_for(s3_endpoint, s3_bucket) as writer:
        for number in range(20):
            await writer.append(session(f"s{number:02d}"), [entry(f"u{number}", customTitle=f"t{number}")])
    client: Any = s3_client(s3_endpoint)
    faulty = [True]

    def fail_one(params: dict[str, Any], **_: Any) -> None:
        if faulty[0] and params["Key"].endswith("%index/s07.json"):
            raise ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an error"}}, "GetObject")

    client.meta.events.register("provide-client-params.s3.GetObject", fail_one)
    async with S3SessionStore(s3_bucket, client=client) as store:
        with pytest.raises(ClientError) as raised:
            await store.list_session_summaries(PROJECT)
        assert type(raised.value) is ClientError and raised.value.response["Error"]["Code"] == "InternalError"
        assert f"{PROJECT}/%listing.json" not in objects(s3_endpoint, s3_bucket)
        faulty[0] = False
        titles = {row["session_id"]: row["data"]["custom_title"] for row in await store.list_session_summaries(PROJECT)}
        assert titles == {f"s{number:02d}": f"t{number}" for number in range(20)}


async def test_a_read_only_postgres_store_refuses_schema_creation_and_pruning_and_changes_nothing(
    postgres_url: str,
) -> None:
    """On a read-only PostgreSQL store, ``create_schema()`` on a missing table and a real prune fail (the server
    refuses), a dry-run prune and the reads work, and the table and its rows are as they were."""
    table = f"adv_{uuid.uuid4().hex[:10]}"
    async with PostgresSessionStore(postgres_url, table=f"{table}_missing", read_only=True) as store:
        with pytest.raises(psycopg.Error):
            await store.create_schema()
    async with PostgresSessionStore(postgres_url, table=table) as writer:
        await writer.append(session("old"), [entry("u1")])
        await writer.append({**session("old"), "subpath": "subagents/agent-a"}, [entry("a1")])
    async with PostgresSessionStore(postgres_url, table=table, read_only=True) as store:
        assert [pruned.session_id for pruned in await prune_sessions(store, older_than=0, dry_run=True)] == ["old"]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await prune_sessions(store, older_than=0)
        assert await store.list_subkeys(session("old")) == ["subagents/agent-a"]
        assert await store.list_projects() == [PROJECT]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NULL", (f"{table}_missing",)).fetchone()
        assert row == (True,)
    async with PostgresSessionStore(postgres_url, table=table) as writer:
        assert await writer.load(session("old")) == [entry("u1")]
        assert await writer.load({**session("old"), "subpath": "subagents/agent-a"}) == [entry("a1")]


async def test_closing_a_store_right_after_a_cancelled_listing_leaves_no_thread_error(
    s3_endpoint: str, s3_bucket: str
) -> None:
    """A listing is cancelled while its index ``GET``s are still in flight in worker threads (they run on:
    ``abandon_on_cancel``), and the store is closed at once, closing the boto3 client under them. Nothing
    escapes as an unhandled thread exception or a warning, and a new store lists every session."""
    async with store_for(s3_endpoint, s3_bucket) as writer:
        for number in range(8):
            await writer.append(session(f"s{number}"), [entry(f"u{number}")])
    client: Any = s3_client(s3_endpoint)
    entered: list[str] = []

    def slow(params: dict[str, Any], **_: Any) -> None:
        if "%index/" in params["Key"]:
            entered.append(params["Key"])
            time.sleep(0.3)

    client.meta.events.register("provide-client-params.s3.GetObject", slow)
    store = S3SessionStore(s3_bucket, client=client)
    async with compat.create_task_group() as group:
        group.start_soon(store.list_session_summaries, PROJECT)
        while not entered:  # cancel once the index GETs are under way
            await compat.sleep(0.005)
        group.cancel()
    await store.close()
    client.close()
    await compat.sleep(0.6)  # let the abandoned threads finish against the closed client
    async with store_for(s3_endpoint, s3_bucket) as fresh:
        assert len(await fresh.list_sessions(PROJECT)) == 8


async def test_a_refused_delete_of_an_emptied_projects_cache_is_not_an_error(s3_endpoint: str, s3_bucket: str) -> None:
    """A dashboard lists with credentials that may only read, through a store opened the library's default way
    (``read_only`` not passed), a project whose sessions were all deleted (or pruned) elsewhere while its
    listing cache stayed. Before the fix: ``list_sessions`` raises the AccessDenied of the cache's removal. The docs say a
    refused cache write is logged at debug level and the listing goes on. It should, and does: ``[]`` (catch the refusal of
    that delete like a refused cache ``PUT``)."""
    from botocore.exceptions import ClientError

    async with store_for(s3_endpoint, s3_bucket) as writer:
        for number in range(70):
            await writer.append(session(f"s{number:02d}"), [entry(f"u{number}")])
        assert len(await writer.list_sessions(PROJECT)) == 70  # writes the cache
        for number in range(70):
            await writer.delete(session(f"s{number:02d}"))
    client: Any = s3_client(s3_endpoint)

    def refuse_deletes(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "DeleteObjects")

    client.meta.events.register("provide-client-params.s3.DeleteObjects", refuse_deletes)
    client.meta.events.register("provide-client-params.s3.DeleteObject", refuse_deletes)
    async with S3SessionStore(s3_bucket, client=client) as reader:
        assert await reader.list_sessions(PROJECT) == []
        assert await reader.list_session_summaries(PROJECT) == []


async def test_a_setup_error_through_a_callers_client_names_that_clients_endpoint(s3_endpoint: str) -> None:
    """A caller passes their own boto3 client for an S3-compatible server and the bucket is missing. Before the fix: the
    message says the bucket does not exist "at AWS S3", sending them to the wrong service. It should, and does: the client's
    endpoint (redacted), here ``http://127.0.0.1:...``."""
    async with S3SessionStore("no-such-bucket-adv", client=s3_client(s3_endpoint)) as store:
        with pytest.raises(Exception, match=r"does not exist at http://127\.0\.0\.1"):
            await store.list_sessions(PROJECT)


async def test_access_denied_on_a_read_only_store_asks_only_for_read_permissions(
    credential_checking_server: tuple[str, str, str, str],
) -> None:
    """``session-store list`` (a read-only store) with credentials that may do nothing. Before the fix: "the store needs
    s3:ListBucket ... and s3:GetObject, s3:PutObject and s3:DeleteObject". It should, and does: a read-only store names
    s3:ListBucket and s3:GetObject only."""
    endpoint, bucket, key_id, secret = credential_checking_server
    async with S3SessionStore(bucket, client=keyed_client(endpoint, key_id, secret), read_only=True) as store:
        with pytest.raises(Exception, match="s3:ListBucket") as raised:
            await store.list_sessions(PROJECT)
    assert "PutObject" not in str(raised.value) and "DeleteObject" not in str(raised.value)


async def test_compaction_between_list_and_get_and_an_append_before_the_cache_put_give_no_stale_row(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process compacts a session right after the lister's ``LIST`` (so the ETag listed is gone when
    the lister ``GET``s the index), and appends to another session right before the lister writes the cache
    (so a row it writes is stale at once). That listing shows each session as it was when its index was read,
    and the next one, from the cache, shows the append."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    async with store_for(s3_endpoint, s3_bucket) as writer:
        for step in range(3):
            await writer.append(session("compacted"), [entry(f"c{step}", customTitle=f"c{step}")])
        await writer.append(session("renamed"), [entry("r0", customTitle="before")])
    other = store_for(s3_endpoint, s3_bucket)
    client: Any = s3_client(s3_endpoint)
    done: list[str] = []

    def compact_after_list(parsed: dict[str, Any], **_: Any) -> None:
        prefix = str(parsed.get("Prefix", ""))
        if prefix.endswith(("%index/", "%25index%2F")) and "compacted" not in done:
            done.append("compacted")
            assert other._compact_key(PROJECT, "compacted", None) == 3

    def append_before_cache_put(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("%listing.json") and "renamed" not in done:
            done.append("renamed")
            other._write_blocking(session("renamed"), None, [entry("r1", customTitle="after")], None)

    client.meta.events.register("after-call.s3.ListObjectsV2", compact_after_list)
    client.meta.events.register("provide-client-params.s3.PutObject", append_before_cache_put)
    try:
        async with S3SessionStore(s3_bucket, client=client) as lister:
            first = {
                row["session_id"]: row["data"]["custom_title"] for row in await lister.list_session_summaries(PROJECT)
            }
            assert done == ["compacted", "renamed"]
            assert first == {"compacted": "c2", "renamed": "before"}
            second = {row["session_id"]: row for row in await lister.list_session_summaries(PROJECT)}
            assert {session_id: row["data"]["custom_title"] for session_id, row in second.items()} == {
                "compacted": "c2",
                "renamed": "after",
            }
            listed = {row["session_id"]: row["mtime"] for row in await lister.list_sessions(PROJECT)}
            assert listed == {session_id: row["mtime"] for session_id, row in second.items()}
            assert await lister.load(session("compacted")) == [
                entry(f"c{step}", customTitle=f"c{step}") for step in range(3)
            ]
    finally:
        await other.close()


def test_the_clis_reading_commands_write_no_object_on_s3(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    """``session-store list``, ``show`` and ``subagents`` on a project big enough that a writable listing would
    write the listing cache: the bucket is byte for byte as before (no cache, no adoption, no index)."""
    from test_cli import ClaudeHome, Cli
    from test_s3 import cli_env

    home = ClaudeHome(tmp_path / "claude" / "projects", tmp_path / "app")
    home.workdir.mkdir()
    project = project_key_for_directory(str(home.workdir))
    sdk_session = str(uuid.uuid4())
    put_sdk_part(
        s3_endpoint,
        s3_bucket,
        f"team/{project}/{sdk_session}/part-1733500000000-abcdef.jsonl",
        [json.dumps(line) for line in transcript(sdk_session)],
    )

    async def seed() -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(70)]
        async with store_for(s3_endpoint, s3_bucket, prefix="team") as writer:
            for session_id in ids:
                await writer.append(session(session_id, project), transcript(session_id))
        return ids

    ids: list[str] = compat_run(seed)
    client: Any = s3_client(s3_endpoint)
    before = {name: client.head_object(Bucket=s3_bucket, Key=name)["ETag"] for name in objects(s3_endpoint, s3_bucket)}
    cli = Cli(
        cli_env(tmp_path, CLAUDE_CONFIG_DIR=str(home.projects.parent)),
        f"s3://{s3_bucket}/team?endpoint_url={s3_endpoint}",
        home.workdir,
    )
    for _ in range(2):
        assert len(cli.json("list")) == 71
    assert "hello" in cli.ok("show", sdk_session)
    assert "hello" in cli.ok("show", ids[0])
    cli.ok("subagents", ids[0])
    after = {name: client.head_object(Bucket=s3_bucket, Key=name)["ETag"] for name in objects(s3_endpoint, s3_bucket)}
    assert after == before
