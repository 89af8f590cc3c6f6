"""httpcore's connection pool with its original synchronization layer vs the compat-backed one; then asgi-lifespan
and stamina (:mod:`benchmarks.downstream_libs_bench`).

httpcore 1.0.9's sdist is downloaded at run time (``downstream/httpcore/run.py`` through ``downstream/sdist_suite.py``: system temp dir,
never the repository) and unpacked twice, the second copy with ``compat`` vendored and
``downstream/httpcore/_synchronization.py`` in place. Both copies are imported into this process under the name
``httpcore`` one after the other (each keeps its own modules), and the same requests run through an
``AsyncConnectionPool`` of each, interleaved round by round (:mod:`benchmarks._timing`); reported is the median
µs per request and ``compat/original`` (below 1 means the compat copy is faster).

Rows, per backend (asyncio, trio):

* ``memory``: an in-memory network backend (below) answering every request at once, with one checkpoint per
  read so concurrent requests interleave: the pool's own cost, synchronization included;
* ``loopback``: the network backend httpcore's ``AutoBackend`` picks (anyio's on asyncio, trio's on trio; set
  explicitly, since the copies' lazy imports cannot run once they are out of ``sys.modules``) against a small HTTP/1.1 keep-alive server of this module on
  127.0.0.1 (an asyncio server in a thread, at most :data:`MAX_SERVER_CONNECTIONS` connections, stopped after the
  run);
* ``sequential``: one request after another; ``20 concurrent``: batches of :data:`CONCURRENCY` requests started
  together in a task group (reported per request).

Needs httpcore's dependencies (``h11``, ``certifi``; see ``downstream/httpcore/requirements.txt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

import compat

from . import downstream_libs_bench
from ._report import Table, run_meta, write_results
from ._timing import Impl, interleave

SUITE = "downstream"
CONCURRENCY = 20
MAX_SERVER_CONNECTIONS = 64
BODY = b"x" * 64
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)

perf_ns = time.perf_counter_ns


def import_tree(tree: Path) -> ModuleType:
    """``import httpcore`` from ``tree``, then take it (and its submodules) out of ``sys.modules`` again."""
    for name in [name for name in sys.modules if name == "httpcore" or name.startswith("httpcore.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        module = importlib.import_module("httpcore")
        for lazy in ("_async.connection_pool", "_backends.anyio", "_backends.trio"):  # imported on first use
            importlib.import_module(f"httpcore.{lazy}")
    except ModuleNotFoundError as exc:
        raise SystemExit(
            f"httpcore's dependency {exc.name!r} is missing: pip install -r downstream/httpcore/requirements.txt"
        ) from exc
    finally:
        sys.path.remove(str(tree))
        for name in [name for name in sys.modules if name == "httpcore" or name.startswith("httpcore.")]:
            del sys.modules[name]
    return module


def memory_backend(httpcore: ModuleType) -> Any:
    """An ``AsyncNetworkBackend`` whose streams answer each request with :data:`RESPONSE`."""

    class Stream(httpcore.AsyncNetworkStream):  # type: ignore[name-defined,misc]  # a module loaded at run time
        def __init__(self) -> None:
            self._pending = b""

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
            if buffer.endswith(b"\r\n\r\n"):  # the end of a GET's head: answer it
                self._pending += RESPONSE

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
            await compat.checkpoint()
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return data

        async def aclose(self) -> None:
            return None

        def get_extra_info(self, info: str) -> Any:
            return None

    class Backend(httpcore.AsyncNetworkBackend):  # type: ignore[name-defined,misc]
        async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> Any:
            await compat.checkpoint()
            return Stream()

    return Backend()


@contextlib.contextmanager
def loopback_server() -> Iterator[str]:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 (asyncio, in a thread); yields its URL; stopped on exit."""
    started = threading.Event()
    state: dict[str, Any] = {}
    slots = threading.BoundedSemaphore(MAX_SERVER_CONNECTIONS)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not slots.acquire(blocking=False):
            writer.close()
            return
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            slots.release()
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = stop = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        started.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="downstream-bench-server", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the loopback HTTP server did not start within 10 s")
    try:
        yield f"http://127.0.0.1:{state['port']}/"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def network_backend(httpcore: ModuleType, network: str) -> Any:
    if network == "memory":
        return memory_backend(httpcore)
    if compat.current_backend() == "trio":
        return httpcore._backends.trio.TrioBackend()
    return httpcore._backends.anyio.AnyIOBackend()


def sequential_impl(httpcore: ModuleType, url: str, network: str) -> Impl:
    async def run(n: int) -> int:
        backend = network_backend(httpcore, network)
        async with httpcore.AsyncConnectionPool(network_backend=backend, max_connections=CONCURRENCY) as pool:
            await pool.request("GET", url)  # connect outside the timed part
            t0 = perf_ns()
            for _ in range(n):
                response = await pool.request("GET", url)
                assert response.status == 200 and response.content == BODY
            return perf_ns() - t0

    return run


def concurrent_impl(httpcore: ModuleType, url: str, network: str) -> Impl:
    async def one(pool: Any) -> None:
        response = await pool.request("GET", url)
        assert response.status == 200 and response.content == BODY

    async def batch(pool: Any) -> None:
        async with compat.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(one, pool)

    async def run(n: int) -> int:  # n requests, in batches of CONCURRENCY
        backend = network_backend(httpcore, network)
        async with httpcore.AsyncConnectionPool(network_backend=backend, max_connections=CONCURRENCY) as pool:
            await batch(pool)  # open the connections outside the timed part
            t0 = perf_ns()
            for _ in range(max(1, n // CONCURRENCY)):
                await batch(pool)
            return (perf_ns() - t0) * n // (max(1, n // CONCURRENCY) * CONCURRENCY)

    return run


async def measure(trees: dict[str, ModuleType], url: str, rounds: int, target_ms: float) -> list[dict[str, Any]]:
    rows = []
    for network in ("memory", "loopback"):
        for pattern, make in (("sequential", sequential_impl), (f"{CONCURRENCY} concurrent", concurrent_impl)):
            impls = {name: make(httpcore, url, network) for name, httpcore in trees.items()}
            measured = await interleave(impls, rounds=rounds, target_ms=target_ms)
            ratios = [c / o for c, o in zip(measured["compat"].samples, measured["original"].samples, strict=True)]
            rows.append(
                {
                    "network": network,
                    "pattern": pattern,
                    "original_us": measured["original"].median / 1000,
                    "compat_us": measured["compat"].median / 1000,
                    "compat_over_original": statistics.median(ratios),
                    "requests_per_round": {name: m.ops_per_round for name, m in measured.items()},
                    "spread": {name: round(m.spread, 3) for name, m in measured.items()},
                }
            )
    return rows


def main(*, quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    rounds, target_ms = (3, 20.0) if quick else (9, 150.0)
    started = time.perf_counter()
    httpcore = downstream_libs_bench._downstream("httpcore.run").HTTPCORE
    roots = downstream_libs_bench.trees(httpcore)
    trees = {name: import_tree(root) for name, root in roots.items()}
    results: dict[str, list[dict[str, Any]]] = {}
    with loopback_server() as url:
        for backend in backends:
            if backend == "asyncio":
                results[backend] = asyncio.run(measure(trees, url, rounds, target_ms))
            else:
                results[backend] = trio.run(measure, trees, url, rounds, target_ms)
    tables = [
        Table(
            title=f"httpcore {httpcore.version} pool, {backend} (µs/request, median of {rounds} interleaved rounds)",
            columns=["network", "requests", "original µs", "compat µs", "compat/original"],
            rows=[
                [row["network"], row["pattern"], row["original_us"], row["compat_us"], row["compat_over_original"]]
                for row in rows
            ],
        )
        for backend, rows in results.items()
    ]
    library_tables, library_results, versions, library_notes = downstream_libs_bench.run(quick=quick, backends=backends)
    write_results(
        SUITE,
        meta=run_meta(started, quick, httpcore=httpcore.version, **versions, trio=trio.__version__, rounds=rounds),
        data={"backends": results, "libraries": library_results},
        tables=tables + library_tables,
        targets=[],
        notes=[
            "compat/original below 1: the compat-backed code is faster; see benchmarks/downstream_bench.py "
            "(httpcore) and benchmarks/downstream_libs_bench.py (asgi-lifespan, stamina)",
            *library_notes,
        ],
        out_dir=out_dir,
    )
    return 0
