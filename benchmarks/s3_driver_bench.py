"""Which S3 driver on asyncio: boto3 in threads (what ``S3SessionStore`` does) against aiobotocore (native async).

Issue 17 asked for the blocking client through ``compat.run_sync`` like the other adapters, "or a native async
path on asyncio if it measures faster". This suite measures the two on the same server in one run, asyncio only
(trio has no aiobotocore): ``OBJECTS`` ``GetObject`` calls, then as many ``PutObject`` calls, 16 in flight, each
driver alternating with the other for ``ROUNDS`` rounds:

- **boto3 + run_sync**: one boto3 client, each call through ``compat.run_sync`` under a ``CapacityLimiter(16)``,
  as the adapter's ``_call`` does (16 pooled connections);
- **aiobotocore**: one aiobotocore client (aiohttp, 16 pooled connections), calls gathered under a semaphore of 16.

It reports wall time and this process's CPU time per request (CPU counts every thread, so the thread hop is in
it) and the ratio aiobotocore / boto3. aiobotocore pins botocore to a narrow range that the bench extra's boto3
does not always meet, so it is not in an extra: ``nox -s bench_s3_driver`` installs both in one environment; in
another environment without aiobotocore this suite only says so.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import compat

from ._report import Table, run_meta, write_results
from .adapters_bench import server_urls

SUITE = "s3driver"
OBJECTS = 400
IN_FLIGHT = 16
ROUNDS = 5
BODY = b'{"type":"user","message":{"role":"user","content":"' + b"x" * 900 + b'"}}\n'


async def _boto3_round(client: Any, bucket: str, names: list[str]) -> dict[str, tuple[float, float]]:
    limiter = compat.CapacityLimiter(IN_FLIGHT)

    def get(name: str) -> None:
        client.get_object(Bucket=bucket, Key=name)["Body"].read()

    def put(name: str) -> None:
        client.put_object(Bucket=bucket, Key=name, Body=BODY)

    async def each(fn: Callable[[str], None]) -> None:
        async with compat.create_task_group() as group:
            for name in names:
                group.start_soon(lambda name=name: compat.run_sync(fn, name, limiter=limiter))

    return {"get": await _timed(lambda: each(get)), "put": await _timed(lambda: each(put))}


async def _aio_round(client: Any, bucket: str, names: list[str]) -> dict[str, tuple[float, float]]:
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def get(name: str) -> None:
        async with semaphore:
            response = await client.get_object(Bucket=bucket, Key=name)
            async with response["Body"] as body:
                await body.read()

    async def put(name: str) -> None:
        async with semaphore:
            await client.put_object(Bucket=bucket, Key=name, Body=BODY)

    async def each(fn: Callable[[str], Awaitable[None]]) -> None:
        await asyncio.gather(*(fn(name) for name in names))

    return {"get": await _timed(lambda: each(get)), "put": await _timed(lambda: each(put))}


async def _timed(call: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await call()
    return time.perf_counter() - wall, time.process_time() - cpu


async def _measure(endpoint: str, rounds: int, objects: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    import boto3
    from aiobotocore.session import get_session
    from botocore.config import Config

    bucket = f"ssdriver-{uuid.uuid4().hex[:12]}"
    config = Config(max_pool_connections=IN_FLIGHT, retries={"mode": "standard"})
    sync_client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
    sync_client.create_bucket(Bucket=bucket)
    names = [f"bench/part-{number:06d}.jsonl" for number in range(objects)]
    for name in names:
        sync_client.put_object(Bucket=bucket, Key=name, Body=BODY)
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {"boto3": {}, "aiobotocore": {}}
    async with get_session().create_client("s3", endpoint_url=endpoint, config=config) as aio_client:
        await _boto3_round(sync_client, bucket, names[:IN_FLIGHT])  # warm both pools and the thread pool
        await _aio_round(aio_client, bucket, names[:IN_FLIGHT])
        for _ in range(rounds):
            for driver, run in (
                ("boto3", _boto3_round(sync_client, bucket, names)),
                ("aiobotocore", _aio_round(aio_client, bucket, names)),
            ):
                for operation, sample in (await run).items():
                    samples[driver].setdefault(operation, []).append(sample)
    sync_client.close()
    return samples


def main(*, quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    started = time.perf_counter()
    notes: list[str] = []
    if "asyncio" not in backends:
        print(f"[{SUITE}] asyncio only (aiobotocore has no trio support); nothing to do")
        return 0
    if importlib.util.find_spec("aiobotocore") is None:
        print(f"[{SUITE}] skipped: aiobotocore is not installed; run 'nox -s bench_s3_driver'")
        return 0
    rounds, objects = (1, 32) if quick else (ROUNDS, OBJECTS)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with server_urls(notes, s3_only=True) as urls:
        if "s3" not in urls:
            print(f"[{SUITE}] skipped: no S3 server ({'; '.join(notes)})")
            return 0
        samples = asyncio.run(_measure(urls["s3"], rounds, objects))
    rows = []
    data: dict[str, Any] = {}
    for operation in ("get", "put"):
        medians = {
            driver: (
                statistics.median(wall for wall, _ in samples[driver][operation]) / objects,
                statistics.median(cpu for _, cpu in samples[driver][operation]) / objects,
            )
            for driver in samples
        }
        data[operation] = {driver: {"wall_s": wall, "cpu_s": cpu} for driver, (wall, cpu) in medians.items()}
        rows.append(
            [
                operation.upper(),
                medians["boto3"][0] * 1e3,
                medians["aiobotocore"][0] * 1e3,
                medians["aiobotocore"][0] / medians["boto3"][0],
                medians["boto3"][1] * 1e3,
                medians["aiobotocore"][1] * 1e3,
                medians["aiobotocore"][1] / medians["boto3"][1],
            ]
        )
    import aiobotocore
    import boto3

    write_results(
        SUITE,
        meta=run_meta(
            started,
            quick,
            objects=objects,
            rounds=rounds,
            in_flight=IN_FLIGHT,
            versions={"boto3": boto3.__version__, "aiobotocore": aiobotocore.__version__},
        ),
        data={"per_request": data, "samples": samples},
        tables=[
            Table(
                title=f"S3 requests on asyncio, {IN_FLIGHT} in flight, per request (median of {rounds})",
                columns=[
                    "request",
                    "boto3+run_sync wall ms",
                    "aiobotocore wall ms",
                    "aio/boto3 wall",
                    "boto3+run_sync CPU ms",
                    "aiobotocore CPU ms",
                    "aio/boto3 CPU",
                ],
                rows=rows,
                kinds=["", "ms", "ms", "x", "ms", "ms", "x"],
            )
        ],
        targets=[],
        notes=notes,
        out_dir=out_dir,
    )
    return 0
