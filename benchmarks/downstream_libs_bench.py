"""asgi-lifespan and stamina, each with its own dispatch code vs the compat-backed one (part of ``downstream``).

Each library's sdist is fetched and unpacked twice at run time by ``downstream/sdist_suite.py`` (system temp dir,
never the repository), the second copy with ``compat`` vendored and our dispatch code in place, exactly as in
``nox -s downstream_<name>``. Both copies are imported into this process under the library's own name one after
the other (each keeps its own modules), and the same work runs through each, interleaved round by round
(:mod:`benchmarks._timing`); reported is the median µs per operation and ``compat/original`` (below 1: the compat
copy is faster). Time is the CPU time of the benchmark's thread (``time.thread_time_ns``), not wall time: the
operations never wait for I/O or a timer (every sleep is 0 s), so on an idle machine the two agree, while on a
shared one wall time also counts the time the process sat descheduled, which swamped these sub-millisecond rows
(rounds spread by 0.4-3.9x of the median in a wall-clock run under a load average of 14 on 2 cores). Rows, per
backend (asyncio, trio):

* asgi-lifespan, ``startup + shutdown``: ``async with LifespanManager(app): pass`` around a bare ASGI lifespan
  app (receive, send complete, twice): backend detection, two events, the bounded queue, two deadlines and the
  background task, the library's whole dispatch layer; ``20 concurrent``: 20 managers at once in a task group
  (reported per manager);
* stamina, ``1 retry``: an ``@stamina.retry``-decorated coroutine that fails once and then returns, with waits of
  0 s and no retry hooks (stamina logs each retry by default): one call of the replaced async sleep (a checkpoint)
  per operation, plus tenacity's own retry machinery; ``5 retries``: fails five times first.

stamina needs ``tenacity`` (``downstream/stamina/requirements.txt``); without it its rows are left out with a note.
Its trees are pip-installed into folders of their own, as in its session.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import pkgutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

import compat

from ._report import Table
from ._timing import Impl, interleave

CONCURRENCY = 20
cpu_ns = time.thread_time_ns  # see the module docstring: CPU time of this thread, not wall time
MessageDict = dict[str, Any]


def _downstream(name: str) -> ModuleType:
    """``downstream.<name>`` from the repository root (not on ``sys.path`` when the project is installed)."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"downstream.{name}")


class Copy:
    """One copy of a library, imported from its own folder; :meth:`activate` puts its modules in ``sys.modules``.

    Both copies use the library's own name, so only one can be in ``sys.modules`` at a time, and the libraries
    import some of their modules lazily (asgi-lifespan's backends): each measured run activates its copy first,
    outside the timed part.
    """

    def __init__(self, package: str, root: Path) -> None:
        self.package = package
        self._forget()
        sys.path.insert(0, str(root))
        try:
            self.module = importlib.import_module(package)
            for info in pkgutil.walk_packages(self.module.__path__, prefix=f"{package}."):
                try:
                    importlib.import_module(info.name)
                except ModuleNotFoundError as exc:  # an optional dependency of one submodule (structlog, ...)
                    if exc.name is None or exc.name.startswith(package):
                        raise
            self.modules = {name: sys.modules[name] for name in self._names()}
        finally:
            sys.path.remove(str(root))
            self._forget()

    def _names(self) -> list[str]:
        return [name for name in sys.modules if name == self.package or name.startswith(self.package + ".")]

    def _forget(self) -> None:
        for name in self._names():
            del sys.modules[name]

    def activate(self) -> ModuleType:
        if sys.modules.get(self.package) is not self.module:
            self._forget()
            sys.modules.update(self.modules)
        return self.module


def trees(library: Any) -> dict[str, Path]:
    """``{"original": import root, "compat": import root}`` for ``library`` (a ``sdist_suite.Library``)."""
    suite = _downstream("sdist_suite")
    work: Path = library.default_work() / "bench"
    sdist = suite.fetch_sdist(library, library.default_work())
    made = {
        "original": suite.unpack(sdist, work / "original"),
        "compat": suite.make_copy(library, sdist, work / "compat"),
    }
    return {name: suite.import_root(library, tree, work) for name, tree in made.items()}


# asgi-lifespan


async def lifespan_app(scope: MessageDict, receive: Callable[[], Any], send: Callable[[MessageDict], Any]) -> None:
    """The smallest ASGI app that supports the lifespan protocol."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


def lifespan_sequential(asgi_lifespan: Copy) -> Impl:
    manager_class = asgi_lifespan.module.LifespanManager

    async def run(n: int) -> int:
        asgi_lifespan.activate()
        t0 = cpu_ns()
        for _ in range(n):
            async with manager_class(lifespan_app):
                pass
        return cpu_ns() - t0

    return run


def lifespan_concurrent(asgi_lifespan: Copy) -> Impl:
    manager_class = asgi_lifespan.module.LifespanManager

    async def one() -> None:
        async with manager_class(lifespan_app):
            await compat.checkpoint()

    async def run(n: int) -> int:  # n managers, in batches of CONCURRENCY
        batches = max(1, n // CONCURRENCY)
        asgi_lifespan.activate()
        t0 = cpu_ns()
        for _ in range(batches):
            async with compat.create_task_group() as tg:
                for _ in range(CONCURRENCY):
                    tg.start_soon(one)
        return (cpu_ns() - t0) * n // (batches * CONCURRENCY)

    return run


# stamina


def retrying(copy: Copy, failures: int) -> Impl:
    stamina = copy.activate()
    stamina.instrumentation.set_on_retry_hooks([])  # no logging per retry: measure the retry path itself

    @stamina.retry(on=ValueError, attempts=failures + 1, wait_initial=0, wait_max=0, wait_jitter=0)
    async def flaky(state: list[int]) -> int:
        state[0] += 1
        if state[0] <= failures:
            raise ValueError("not yet")
        return state[0]

    async def run(n: int) -> int:
        copy.activate()
        t0 = cpu_ns()
        for _ in range(n):
            assert await flaky([0]) == failures + 1
        return cpu_ns() - t0

    return run


# (library, row label, implementation factory)
Row = tuple[str, str, Callable[[Copy], Impl]]


def _rows(libraries: dict[str, dict[str, Copy]]) -> list[Row]:
    rows: list[Row] = []
    if "asgi-lifespan" in libraries:
        rows += [
            ("asgi-lifespan", "startup + shutdown", lifespan_sequential),
            ("asgi-lifespan", f"startup + shutdown, {CONCURRENCY} concurrent", lifespan_concurrent),
        ]
    if "stamina" in libraries:
        rows += [
            ("stamina", "1 retry (wait 0)", lambda stamina: retrying(stamina, 1)),
            ("stamina", "5 retries (wait 0)", lambda stamina: retrying(stamina, 5)),
        ]
    return rows


async def measure(libraries: dict[str, dict[str, Copy]], rounds: int, target_ms: float) -> list[dict[str, Any]]:
    results = []
    for library, label, make in _rows(libraries):
        impls = {name: make(module) for name, module in libraries[library].items()}
        measured = await interleave(impls, rounds=rounds, target_ms=target_ms)
        ratios = [c / o for c, o in zip(measured["compat"].samples, measured["original"].samples, strict=True)]
        results.append(
            {
                "library": library,
                "operation": label,
                "original_us": measured["original"].median / 1000,
                "compat_us": measured["compat"].median / 1000,
                "compat_over_original": statistics.median(ratios),
                "ops_per_round": {name: m.ops_per_round for name, m in measured.items()},
                "spread": {name: round(m.spread, 3) for name, m in measured.items()},
            }
        )
    return results


def load_libraries() -> tuple[dict[str, dict[str, Copy]], dict[str, str], list[str]]:
    """Both copies of each library that can run here, their versions, and notes on the ones left out."""
    libraries: dict[str, dict[str, Copy]] = {}
    versions: dict[str, str] = {}
    notes: list[str] = []
    asgi = _downstream("asgi_lifespan.run").ASGI_LIFESPAN
    roots = trees(asgi)
    libraries["asgi-lifespan"] = {name: Copy("asgi_lifespan", root) for name, root in roots.items()}
    versions["asgi-lifespan"] = asgi.version
    if importlib.util.find_spec("tenacity") is None:
        notes.append("stamina left out: it needs tenacity (pip install -r downstream/stamina/requirements.txt)")
    else:
        stamina = _downstream("stamina.run").STAMINA
        roots = trees(stamina)
        libraries["stamina"] = {name: Copy("stamina", root) for name, root in roots.items()}
        versions["stamina"] = stamina.version
    return libraries, versions, notes


def run(
    *, quick: bool, backends: tuple[str, ...]
) -> tuple[list[Table], dict[str, list[dict[str, Any]]], dict[str, str], list[str]]:
    """Measure every library on ``backends``: (tables, rows per backend, versions, notes)."""
    rounds, target_ms = (3, 20.0) if quick else (9, 150.0)
    libraries, versions, notes = load_libraries()
    results: dict[str, list[dict[str, Any]]] = {}
    for backend in backends:
        if backend == "asyncio":
            results[backend] = asyncio.run(measure(libraries, rounds, target_ms))
        else:
            results[backend] = trio.run(measure, libraries, rounds, target_ms)
    named = ", ".join(f"{name} {version}" for name, version in versions.items())
    tables = [
        Table(
            title=f"{named}, {backend} (µs/operation, median of {rounds} interleaved rounds)",
            columns=["library", "operation", "original µs", "compat µs", "compat/original"],
            rows=[
                [row["library"], row["operation"], row["original_us"], row["compat_us"], row["compat_over_original"]]
                for row in rows
            ],
        )
        for backend, rows in results.items()
    ]
    return tables, results, versions, notes
