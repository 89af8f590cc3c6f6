"""The benchmarks still run (a smoke run in --quick mode); their numbers are a report, not a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("suite", ["compat", "store"])
def test_benchmark_suite_runs_and_writes_its_results(suite: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", suite, "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads((tmp_path / f"{suite}.json").read_text())
    assert results["meta"]["quick"] is True
    assert (tmp_path / f"{suite}.md").read_text().strip()
    assert "compat/native" in completed.stdout if suite == "compat" else "entries/s" in completed.stdout
