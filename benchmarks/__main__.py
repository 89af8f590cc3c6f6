"""``python -m benchmarks compat|store|adapters|scale|floor|import|s3driver|all [--quick] [--backend asyncio|trio] [--out DIR]``.

Runs the chosen suite(s), prints ratio tables and writes ``benchmarks/results/<suite>.{json,md,svg}``. A
benchmark is a report: the exit code is 0 whether targets are met or not; it is non-zero only for a usage
error or a suite that crashed.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
import traceback

SUITES = {
    "compat": "benchmarks.compat_bench",
    "store": "benchmarks.store_bench",
    "adapters": "benchmarks.adapters_bench",
    "scale": "benchmarks.scale_bench",
    "floor": "benchmarks.floor_bench",
    "import": "benchmarks.import_bench",
    "s3driver": "benchmarks.s3_driver_bench",  # asyncio only; needs aiobotocore (nox -s bench_s3_driver)
    "downstream": "benchmarks.downstream_bench",  # downloads httpcore; needs downstream/httpcore/requirements.txt
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("suite", choices=[*SUITES, "all"], help="which benchmark suite to run")
    parser.add_argument("--quick", action="store_true", help="small counts and few rounds: a smoke run of seconds")
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio", "both"],
        default="both",
        help="run on one backend only (default: both)",
    )
    parser.add_argument("--out", default=None, help="directory for the result files (default: benchmarks/results)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, so the throwaway servers and folders are removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    backends = ("asyncio", "trio") if args.backend == "both" else (args.backend,)
    names = list(SUITES) if args.suite == "all" else [args.suite]
    failed: list[str] = []
    for name in names:
        print(f"=== benchmark suite: {name}{' (quick)' if args.quick else ''} ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(SUITES[name])
            module.main(quick=args.quick, backends=backends, out_dir=args.out)
        except Exception:
            traceback.print_exc()
            print(f"[{name}] crashed; see the traceback above", file=sys.stderr)
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
