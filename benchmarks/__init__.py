"""Side-by-side benchmarks for session-store-compat (a report, never a test: they always exit 0).

Suites (``python -m benchmarks compat|store|adapters|all [--quick]``, also ``nox -s bench``):

- ``compat``   native asyncio / trio primitive vs ``compat`` vs anyio, per backend, as ns/op and ratios
  (:mod:`benchmarks.compat_bench`);
- ``store``    the mirror batcher, the store-backed listing slow path and resume materialization, against the
  public SDK's anyio-based batcher (:mod:`benchmarks.store_bench`);
- ``adapters`` appends, loads and listings for each storage adapter on each backend
  (:mod:`benchmarks.adapters_bench`).

Every suite prints its tables and writes ``benchmarks/results/<suite>.json``, ``<suite>.md`` (markdown tables)
and ``<suite>.svg`` (a bar chart drawn without third-party packages; ``<suite>.png`` too when matplotlib is
importable). Read the numbers relative to each other, not as absolutes: they come from whatever machine ran them.
"""
