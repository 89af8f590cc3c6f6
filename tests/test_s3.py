"""S3SessionStore against a real S3 server on loopback (tests/servers.py: moto's S3 in a child process).

The adapter suite of tests/test_adapters.py (conformance included) runs on S3 too; this module covers what
only S3 has: reading and adopting the SDK example's layout, the commit protocol under concurrent writers in
two processes, uncommitted parts, compaction racing readers and writers, and the ``s3://`` URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from servers import S3Server, new_s3_bucket, s3_client

import compat
from session_store import list_sessions_from_store, list_subagents_from_store
from session_store.adapters import open_store
from session_store.adapters import s3 as s3_module
from session_store.adapters.s3 import S3SessionStore
from session_store.conformance import run_session_store_conformance
from session_store.types import SessionKey, SessionStoreEntry

pytestmark = pytest.mark.servers

SESSION = "0f2d6a4e-1b7c-4c1e-9a43-5f0e8d2b7c11"
PROJECT = "-home-user-project"


def entry(uuid: str | None, **fields: Any) -> SessionStoreEntry:
    body: dict[str, Any] = {"type": "user", **fields}
    if uuid is not None:
        body["uuid"] = uuid
    return body  # type: ignore[return-value]


def key(subpath: str | None = None) -> SessionKey:
    base: SessionKey = {"project_key": PROJECT, "session_id": SESSION}
    if subpath is not None:
        base["subpath"] = subpath
    return base


def objects(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    client: Any = s3_client(endpoint)
    names: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(names)


def put_sdk_part(endpoint: str, bucket: str, name: str, lines: list[str]) -> None:
    """An object exactly as the SDK's example S3 store writes it."""
    client: Any = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key=name, Body=("\n".join(lines) + "\n").encode())


def store_for(endpoint: str, bucket: str, **options: Any) -> S3SessionStore:
    return S3SessionStore(bucket, endpoint_url=endpoint, **options)


async def test_the_sdk_profile_of_the_conformance_suite_passes(s3_endpoint: str) -> None:
    await run_session_store_conformance(lambda: store_for(s3_endpoint, new_s3_bucket(s3_endpoint)), profile="sdk")


async def test_reads_the_sdk_examples_layout_and_adopts_it_on_append(s3_endpoint: str, s3_bucket: str) -> None:
    session_dir = f"team/{PROJECT}/{SESSION}/"
    first = {"type": "user", "uuid": "u1", "message": {"role": "user", "content": "hello from the SDK"}}
    second = {"type": "assistant", "uuid": "a1", "parentUuid": "u1", "message": {"role": "assistant", "content": "hi"}}
    put_sdk_part(s3_endpoint, s3_bucket, session_dir + "part-1733500000000-a1b2c3.jsonl", [json.dumps(first)])
    put_sdk_part(
        s3_endpoint, s3_bucket, session_dir + "part-1733500000001-0d0e0f.jsonl", [json.dumps(second), "{not json"]
    )
    sub = {"type": "user", "uuid": "s1", "isSidechain": True, "message": {"role": "user", "content": "task"}}
    put_sdk_part(
        s3_endpoint, s3_bucket, session_dir + "subagents/agent-x/part-1733500000002-abcdef.jsonl", [json.dumps(sub)]
    )
    async with store_for(s3_endpoint, s3_bucket, prefix="team") as store:
        assert await store.load(key()) == [first, second]  # the malformed line skipped, as the SDK does
        assert await store.list_sessions(PROJECT) == [{"session_id": SESSION, "mtime": 1733500000001}]
        assert await store.list_subkeys({"project_key": PROJECT, "session_id": SESSION}) == ["subagents/agent-x"]
        assert await store.load(key("subagents/agent-x")) == [sub]
        [info] = await list_sessions_from_store(store, "/home/user/project")  # the key of that directory
        assert (info.session_id, info.summary) == (SESSION, "hello from the SDK")
        assert await list_subagents_from_store(store, SESSION, "/home/user/project") == ["x"]

        third = entry("u2", message={"role": "user", "content": "and from here"})
        await store.append(key(), [dict(second), third])  # type: ignore[list-item]  # a1 is already held: dropped
        assert await store.load(key()) == [first, second, third]
        [row] = await store.list_sessions(PROJECT)
        assert row["mtime"] > 1733500000001
        [summary] = await store.list_session_summaries(PROJECT)
        assert summary["mtime"] == row["mtime"]
    async with store_for(s3_endpoint, s3_bucket, prefix="team") as fresh:  # a new process sees the same
        assert await fresh.load(key()) == [first, second, third]


async def test_a_part_nobody_committed_is_never_read_and_compaction_removes_it(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store_for(s3_endpoint, s3_bucket) as store:
        await store.append(key(), [entry("u1")])
        # a writer that died between writing its part and committing the index
        orphan = f"{PROJECT}/{SESSION}/part-{int(time.time() * 1000):013d}-abcdef-ss.jsonl"
        put_sdk_part(s3_endpoint, s3_bucket, orphan, [json.dumps(entry("ghost"))])
        assert await store.load(key()) == [entry("u1")]
        await store.append(key(), [entry("ghost")])  # not a duplicate of anything committed
        assert await store.load(key()) == [entry("u1"), entry("ghost")]
        assert await store.compact(PROJECT, SESSION) == 2  # the young orphan stays: its writer may still commit
        assert orphan in objects(s3_endpoint, s3_bucket)
        monkeypatch.setattr("session_store.adapters.s3.ORPHAN_GRACE_SECONDS", -1.0)
        assert await store.compact(PROJECT, SESSION) == 1
        assert orphan not in objects(s3_endpoint, s3_bucket)
        assert await store.load(key()) == [entry("u1"), entry("ghost")]


async def test_compaction_leaves_no_window_for_readers_and_keeps_deduplicating(
    s3_endpoint: str, s3_bucket: str
) -> None:
    expected = [entry(f"u{number}", n=number) for number in range(12)]
    async with store_for(s3_endpoint, s3_bucket) as store:
        for item in expected:
            await store.append(key(), [item])
        seen: list[list[SessionStoreEntry] | None] = []
        done = compat.Event()

        async def reader() -> None:
            async with store_for(s3_endpoint, s3_bucket) as other:
                while not done.is_set():
                    seen.append(await other.load(key()))

        async with compat.create_task_group() as group:
            group.start_soon(reader)
            assert await store.compact(PROJECT, SESSION) == 12
            done.set()
        assert seen and all(result == expected for result in seen)
        parts = [name for name in objects(s3_endpoint, s3_bucket, f"{PROJECT}/{SESSION}/")]
        assert len(parts) == 1
        await store.append(key(), [entry("u3", n=3), entry("new")])  # u3 is held: only "new" is stored
        assert await store.load(key()) == [*expected, entry("new")]


async def test_compaction_racing_appends_loses_nothing(s3_endpoint: str, s3_bucket: str) -> None:
    async with store_for(s3_endpoint, s3_bucket) as store, store_for(s3_endpoint, s3_bucket) as writer:
        await store.append(key(), [entry("first")])

        async def append_many() -> None:
            for number in range(8):
                await writer.append(key(), [entry(f"w{number}")])

        async def compact_often() -> None:
            for _ in range(4):
                await store.compact(PROJECT, SESSION)

        async with compat.create_task_group() as group:
            group.start_soon(append_many)
            group.start_soon(compact_often)
        assert await store.load(key()) == [entry("first"), *[entry(f"w{number}") for number in range(8)]]


async def test_writers_that_lose_a_race_leave_no_part_behind(s3_endpoint: str, s3_bucket: str) -> None:
    stores = [store_for(s3_endpoint, s3_bucket) for _ in range(3)]

    async def write(number: int) -> None:
        for batch in range(4):
            await stores[number].append(key(), [entry(f"{number}-{batch}"), entry(None, tag=f"{number}")])

    async with compat.create_task_group() as group:
        for number in range(3):
            group.start_soon(write, number)
    loaded = await stores[0].load(key()) or []
    for number in range(3):
        mine = [item["uuid"] for item in loaded if str(item.get("uuid", "")).startswith(f"{number}-")]
        assert mine == [f"{number}-{batch}" for batch in range(4)]  # each once, in this writer's order
    assert len(loaded) == 24
    index = json.loads(
        s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=f"{PROJECT}/%index/{SESSION}.json")["Body"].read()  # type: ignore[attr-defined]
    )
    assert sorted(index["parts"]) == objects(s3_endpoint, s3_bucket, f"{PROJECT}/{SESSION}/")
    for store in stores:
        await store.close()


WRITER = textwrap.dedent(
    """
    import sys
    import compat
    from session_store.adapters.s3 import S3SessionStore

    endpoint, bucket, name, backend = sys.argv[1:5]

    async def main():
        async with S3SessionStore(bucket, endpoint_url=endpoint) as store:
            key = {"project_key": "p", "session_id": "s"}
            for number in range(15):
                batch = [{"type": "user", "uuid": f"{name}-{number}"}, {"type": "user", "uuid": f"shared-{number}"}]
                await store.append(key, batch)
                await store.append_once(key, [{"type": "tag", "tag": f"t{number}"}], [0])

    if backend == "trio":
        import trio
        trio.run(main)
    else:
        import asyncio
        asyncio.run(main())
    """
)


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_two_processes_writing_one_session_keep_every_entry_once_in_order(
    s3_endpoint: str, s3_bucket: str, runner: str, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = str(Path(__file__).resolve().parent.parent)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), s3_endpoint, s3_bucket, name, runner],
            cwd=root,
            env={**__import__("os").environ, "PYTHONPATH": root},
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()

    async def read() -> list[SessionStoreEntry] | None:
        async with S3SessionStore(s3_bucket, endpoint_url=s3_endpoint) as store:
            return await store.load({"project_key": "p", "session_id": "s"})

    loaded = compat_run(read) or []
    uuids = [item.get("uuid") for item in loaded if "uuid" in item]
    for name in ("a", "b", "shared"):
        assert [uuid for uuid in uuids if str(uuid).startswith(f"{name}-")] == [f"{name}-{n}" for n in range(15)]
    tags = [item["tag"] for item in loaded if item.get("type") == "tag"]
    assert sorted(tags) == sorted(f"t{number}" for number in range(15))  # append_once: each once across both


def compat_run(fn: Any) -> Any:
    import asyncio

    return asyncio.run(fn())


async def test_append_once_counts_copies_of_entries_without_uuid(s3_endpoint: str, s3_bucket: str) -> None:
    tag = entry(None, type="tag", tag="x")
    async with store_for(s3_endpoint, s3_bucket) as store:
        assert await store.append_once(key(), [tag, tag], [0, 1]) == 2
        assert await store.append_once(key(), [tag, tag, entry("u1")], [0, 1, None]) == 1
        assert await store.append_once(key(), [tag], [2]) == 1
        assert await store.load(key()) == [tag, tag, entry("u1"), tag]
        await store.append(key(), [tag])  # plain append always stores an entry without uuid
        assert await store.append_once(key(), [tag], [3]) == 0


async def test_delete_removes_every_object_of_the_session(s3_endpoint: str, s3_bucket: str) -> None:
    async with store_for(s3_endpoint, s3_bucket) as store:
        await store.append(key(), [entry("u1")])
        await store.append(key("subagents/agent-a"), [entry("s1")])
        await store.append({"project_key": PROJECT, "session_id": "other"}, [entry("o1")])
        await store.delete(key("subagents/agent-a"))
        assert await store.list_subkeys({"project_key": PROJECT, "session_id": SESSION}) == []
        await store.delete(key())
        assert await store.load(key()) is None
        assert [row["session_id"] for row in await store.list_sessions(PROJECT)] == ["other"]
        assert all("other" in name for name in objects(s3_endpoint, s3_bucket))


async def test_open_store_builds_an_s3_store_from_a_url(s3_endpoint: str, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/some/prefix?endpoint_url={s3_endpoint}&region=us-east-1")
    assert isinstance(store, S3SessionStore)
    async with store:
        await store.append(key(), [entry("u1")])
        assert await store.load(key()) == [entry("u1")]
    assert all(name.startswith("some/prefix/") for name in objects(s3_endpoint, s3_bucket))


@pytest.mark.parametrize(
    "url, message",
    [
        ("s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/p", "takes no credentials"),
        ("s3:///prefix", "names no bucket"),
        ("s3://bucket?aws_secret_access_key=wJalrXUtnFEMI", "not one the S3 store takes"),
        ("s3://bucket?region=a&region=b", "more than once"),
    ],
)
def test_bad_s3_urls_are_refused_without_echoing_secrets(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        open_store(url)
    assert "wJalrXUtnFEMI" not in str(raised.value)


def test_the_cli_imports_lists_shows_and_compacts_on_s3(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    from test_cli import ClaudeHome, Cli

    home = ClaudeHome(tmp_path / "claude" / "projects", tmp_path / "app")
    home.workdir.mkdir()
    builder = home.session("how do I compact?", "merge the parts")
    env = {key: value for key, value in __import__("os").environ.items() if key != "SESSION_STORE_URL"}
    env |= {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(home.projects.parent), "TZ": "UTC"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    cli = Cli(env, f"s3://{s3_bucket}/team?endpoint_url={s3_endpoint}", home.workdir)
    cli.ok("import")
    [row] = cli.json("list")
    assert row["session_id"] == builder.session_id
    assert "merge the parts" in cli.ok("show", builder.session_id)
    cli.ok("rename", builder.session_id, "parts")  # each mutation appends a part
    cli.ok("tag", builder.session_id, "s3")
    result = cli.json("compact", builder.session_id)
    assert result["parts_removed"] == 3
    session_parts = [name for name in objects(s3_endpoint, s3_bucket) if f"/{builder.session_id}/part-" in name]
    assert len(session_parts) == 1
    assert "merge the parts" in cli.ok("show", builder.session_id)
    [row] = cli.json("list")
    assert (row["custom_title"], row["tag"]) == ("parts", "s3")
    nothing = Cli(env, "memory://", home.workdir)("compact")
    assert nothing.returncode == 1 and "keeps no parts to compact" in nothing.stderr


def counting_client(endpoint: str, counts: dict[str, list[str]], *, refuse_listing_writes: bool = False) -> Any:
    """A client of the test server that records the key of every GetObject and PutObject it sends (and, with
    ``refuse_listing_writes``, answers a write of a listing cache with AccessDenied, as read-only credentials
    would)."""
    from botocore.exceptions import ClientError

    client: Any = s3_client(endpoint)

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        counts.setdefault(model.name, []).append(params["Key"])
        if refuse_listing_writes and model.name == "PutObject" and params["Key"].endswith("%listing.json"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    client.meta.events.register("provide-client-params.s3.GetObject", record)
    client.meta.events.register("provide-client-params.s3.PutObject", record)
    return client


def index_gets(counts: dict[str, list[str]]) -> int:
    return sum("%index/" in name for name in counts.get("GetObject", []))


async def seed_titled(store: S3SessionStore, count: int) -> None:
    async def one(number: int) -> None:
        await store.append(
            {"project_key": PROJECT, "session_id": f"s{number:03d}"}, [entry(f"u{number}", customTitle=f"t{number}")]
        )

    async with compat.create_task_group() as group:
        for number in range(count):
            group.start_soon(one, number)


async def test_listings_use_the_listing_cache_only_where_its_etag_still_holds(s3_endpoint: str, s3_bucket: str) -> None:
    counts: dict[str, list[str]] = {}
    sessions = 70  # more than LISTING_REWRITE_MIN_GETS, so the first listing writes the cache
    async with S3SessionStore(s3_bucket, client=counting_client(s3_endpoint, counts)) as store:
        await seed_titled(store, sessions)
        counts.clear()
        cold = {row["session_id"]: row for row in await store.list_session_summaries(PROJECT)}
        assert index_gets(counts) == sessions
        assert f"{PROJECT}/%listing.json" in objects(s3_endpoint, s3_bucket)
        assert cold["s007"]["data"]["custom_title"] == "t7"

        counts.clear()
        warm_rows = await store.list_sessions(PROJECT)
        warm = {row["session_id"]: row["mtime"] for row in warm_rows}
        assert index_gets(counts) == 0
        assert warm == {session_id: row["mtime"] for session_id, row in cold.items()}

        await store.append({"project_key": PROJECT, "session_id": "s003"}, [entry("u3b", customTitle="renamed")])
        await store.delete({"project_key": PROJECT, "session_id": "s005"})
        counts.clear()
        after = {row["session_id"]: row for row in await store.list_session_summaries(PROJECT)}
        assert index_gets(counts) == 1  # only the session whose index changed
        assert after["s003"]["data"]["custom_title"] == "renamed"
        assert after["s003"]["mtime"] >= cold["s003"]["mtime"]
        assert "s005" not in after and len(after) == sessions - 1
        listed = {row["session_id"]: row["mtime"] for row in await store.list_sessions(PROJECT)}
        assert listed == {session_id: row["mtime"] for session_id, row in after.items()}


@pytest.mark.parametrize(
    "cache",
    [
        b"\x00not json",
        b'{"v": 2, "sessions": {}}',
        b'{"v": 1, "sessions": []}',
        b'{"v": 1, "sessions": {"s001": ["\\"wrong-etag\\"", 1, {"custom_title": "forged"}]}}',
        b'{"v": 1, "sessions": {"s001": "not a row"}}',
    ],
)
async def test_a_damaged_or_stale_listing_cache_is_never_believed(
    s3_endpoint: str, s3_bucket: str, cache: bytes
) -> None:
    async with store_for(s3_endpoint, s3_bucket) as store:
        await seed_titled(store, 3)
        client: Any = s3_client(s3_endpoint)
        client.put_object(Bucket=s3_bucket, Key=f"{PROJECT}/%listing.json", Body=cache)
        summaries = {
            row["session_id"]: row["data"]["custom_title"] for row in await store.list_session_summaries(PROJECT)
        }
        assert summaries == {"s000": "t0", "s001": "t1", "s002": "t2"}
        assert sorted(row["session_id"] for row in await store.list_sessions(PROJECT)) == ["s000", "s001", "s002"]


async def test_a_refused_listing_cache_write_costs_gets_but_is_not_an_error(s3_endpoint: str, s3_bucket: str) -> None:
    counts: dict[str, list[str]] = {}
    client = counting_client(s3_endpoint, counts, refuse_listing_writes=True)
    async with S3SessionStore(s3_bucket, client=client) as store:
        await seed_titled(store, 70)
        for _ in range(2):
            counts.clear()
            assert len(await store.list_sessions(PROJECT)) == 70
            assert index_gets(counts) == 70
    assert f"{PROJECT}/%listing.json" not in objects(s3_endpoint, s3_bucket)


async def test_a_project_whose_sessions_are_all_deleted_leaves_no_object(s3_endpoint: str, s3_bucket: str) -> None:
    async with store_for(s3_endpoint, s3_bucket) as store:
        await seed_titled(store, 70)
        assert len(await store.list_session_summaries(PROJECT)) == 70
        for number in range(70):
            await store.delete({"project_key": PROJECT, "session_id": f"s{number:03d}"})
        assert await store.list_sessions(PROJECT) == []
        assert await store.list_session_summaries(PROJECT) == []
    assert objects(s3_endpoint, s3_bucket) == []


# --- setting a store up: the bucket, the credentials, the permissions ---------------------------------------


def cli_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "SESSION_STORE_URL"}
    env |= {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"), "TZ": "UTC"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env | overrides


def keyed_client(endpoint: str, key_id: str, secret: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint)


@pytest.fixture(scope="module")
def checking_server() -> Iterator[tuple[str, str, str, str]]:
    """An S3 server that checks credentials (moto's IAM) once its first few requests are spent: on them an IAM
    user with no policy and its key are made, and a bucket; then requests with an unknown key use up the rest.
    (endpoint, bucket, that user's key id, its secret)."""
    server = S3Server(authenticate_after=8)  # the start-up probe, the three setup calls, and room to spare
    try:
        server.start()
        client: Any = s3_client(server.endpoint_url)
        iam: Any = (
            __import__("boto3")
            .session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
            .client("iam", endpoint_url=server.endpoint_url)
        )
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        client.create_bucket(Bucket="checked")
        stranger = keyed_client(server.endpoint_url, "AKIASTRANGERSTRANGER", "x")
        for _ in range(8):
            try:
                stranger.list_objects_v2(Bucket="checked")  # still a free request: credentials unchecked
            except ClientError as error:
                assert error.response["Error"]["Code"] == "InvalidAccessKeyId", error
                break
        else:
            raise AssertionError("the S3 server never started checking credentials")
        yield server.endpoint_url, "checked", key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        server.destroy()


async def test_a_missing_bucket_is_named_with_the_fix(s3_endpoint: str) -> None:
    async with store_for(s3_endpoint, "no-such-bucket-here") as store:
        for call in (lambda: store.list_sessions(PROJECT), lambda: store.append(key(), [entry("u1")])):
            with pytest.raises(
                ClientError, match="bucket 'no-such-bucket-here' does not exist at http://127"
            ) as raised:
                await call()
            assert "aws s3 mb s3://no-such-bucket-here" in str(raised.value)
            assert raised.value.response["Error"]["Code"] == "NoSuchBucket"  # still the error a caller catches


@pytest.mark.parametrize(
    "which, code, says",
    [
        ("unknown key", "InvalidAccessKeyId", "does not know this access key id: check AWS_ACCESS_KEY_ID"),
        ("wrong secret", "SignatureDoesNotMatch", "secret access key does not belong to this access key id"),
        ("no permission", "AccessDenied", "s3:ListBucket on the bucket and s3:GetObject, s3:PutObject"),
    ],
)
async def test_refused_credentials_are_explained_without_the_secret(
    checking_server: tuple[str, str, str, str], which: str, code: str, says: str
) -> None:
    endpoint, bucket, key_id, secret = checking_server
    credentials = {
        "unknown key": ("AKIAUNKNOWNUNKNOWN00", secret),
        "wrong secret": (key_id, "not-the-secret-" + secret[:8]),
        "no permission": (key_id, secret),
    }[which]
    async with S3SessionStore(bucket, client=keyed_client(endpoint, *credentials)) as store:
        with pytest.raises(ClientError, match=says) as raised:
            await store.list_sessions(PROJECT)
    assert raised.value.response["Error"]["Code"] == code
    assert credentials[1] not in str(raised.value)


def test_the_cli_says_where_credentials_come_from_and_never_prints_a_secret(
    checking_server: tuple[str, str, str, str], tmp_path: Path
) -> None:
    from test_cli import Cli, error_line

    endpoint, bucket, key_id, secret = checking_server
    url = f"s3://{bucket}/team?endpoint_url={endpoint}"
    (tmp_path / "claude").mkdir()
    nowhere = str(tmp_path / "absent")
    no_credentials = cli_env(tmp_path, AWS_SHARED_CREDENTIALS_FILE=nowhere, AWS_CONFIG_FILE=nowhere)
    no_credentials |= {"AWS_EC2_METADATA_DISABLED": "true"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        no_credentials.pop(name, None)
    wrong = cli_env(tmp_path, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY="wrong-" + secret)
    denied = cli_env(tmp_path, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)

    cases = (("none", no_credentials), ("wrong", wrong), ("denied", denied))
    lines = {name: error_line(Cli(env, url, tmp_path)("list")) for name, env in cases}
    verbose = [Cli(env, url, tmp_path)("list", "--verbose") for _, env in cases]  # botocore's debug log too

    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE" in lines["none"]
    assert "secret access key does not belong" in lines["wrong"]
    assert f"access to bucket '{bucket}'" in lines["denied"]
    for result in verbose:
        assert result.returncode == 1
        assert secret not in result.stdout + result.stderr
        assert secret[:12] not in result.stdout + result.stderr


async def test_listers_racing_appenders_never_leave_a_stale_row_behind(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores list (and so rewrite the listing cache, here after every second changed session) while two
    others rename sessions; once the writers stop, every listing shows each session's last title and mtime,
    however the cache writes interleaved with the appends and with each other."""
    monkeypatch.setattr(s3_module, "LISTING_REWRITE_MIN_GETS", 1)
    cache_writes: list[str] = []
    original_write = S3SessionStore._write_listing

    def counted_write(self: S3SessionStore, project_key: str, rows: dict[str, list[Any]]) -> None:
        cache_writes.append(project_key)
        original_write(self, project_key, rows)

    monkeypatch.setattr(S3SessionStore, "_write_listing", counted_write)
    sessions = 70
    last_title: dict[str, str] = {}
    writers_done = compat.Event()

    async def rename(store: S3SessionStore, writer: int) -> None:
        for step in range(40):
            session_id = f"s{(writer * 31 + step * 7) % sessions:03d}"
            title = f"w{writer}-{step}"
            await store.append({"project_key": PROJECT, "session_id": session_id}, [entry(None, customTitle=title)])
            last_title[session_id] = title  # appends to one session are serialized by the index's ETag

    async def lister(store: S3SessionStore) -> None:
        while not writers_done.is_set():
            rows = await store.list_session_summaries(PROJECT)
            assert len(rows) == sessions
            await compat.checkpoint()

    stores = [store_for(s3_endpoint, s3_bucket) for _ in range(4)]
    try:
        await seed_titled(stores[0], sessions)
        async with compat.create_task_group() as group:
            group.start_soon(lister, stores[2])
            group.start_soon(lister, stores[3])
            async with compat.create_task_group() as writers:
                writers.start_soon(rename, stores[0], 0)
                writers.start_soon(rename, stores[1], 1)
            writers_done.set()
        assert len(cache_writes) > 2  # the cache was rewritten while the appends went on
        for store in stores[2:]:
            titles = {
                row["session_id"]: row["data"]["custom_title"] for row in await store.list_session_summaries(PROJECT)
            }
            expected = {f"s{number:03d}": last_title.get(f"s{number:03d}", f"t{number}") for number in range(sessions)}
            assert titles == expected
        fresh = store_for(s3_endpoint, s3_bucket)
        stores.append(fresh)
        assert {row["session_id"]: row["mtime"] for row in await fresh.list_sessions(PROJECT)} == {
            row["session_id"]: row["mtime"] for row in await stores[2].list_session_summaries(PROJECT)
        }
    finally:
        for store in stores:
            await store.close()


async def test_object_names_over_s3s_limit_are_refused_before_any_request(s3_endpoint: str, s3_bucket: str) -> None:
    long_id = "s" * 980  # the index name adds the project folder, "%index/" and ".json": over 1,024 bytes
    async with store_for(s3_endpoint, s3_bucket, prefix="team") as store:
        with pytest.raises(ValueError, match=r"would be 1,0\d\d bytes long, over the 1,024 bytes S3 allows: shorten"):
            await store.append({"project_key": PROJECT, "session_id": long_id}, [entry("u1")])
        fits = "s" * 900
        await store.append({"project_key": PROJECT, "session_id": fits}, [entry("u1")])
        assert await store.load({"project_key": PROJECT, "session_id": fits}) == [entry("u1")]
    assert not [name for name in objects(s3_endpoint, s3_bucket) if long_id in name]
