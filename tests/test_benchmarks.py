"""The benchmarks still run (a smoke run in --quick mode); their numbers are a report, not a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks <args>`` from the repository root; asserts it exited 0 (showing stderr's tail)."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


@pytest.mark.parametrize("suite", ["compat", "store"])
def test_benchmark_suite_runs_and_writes_its_results(suite: str, tmp_path: Path) -> None:
    completed = run_benchmark(suite, "--quick", "--out", str(tmp_path), timeout=120)
    results = json.loads((tmp_path / f"{suite}.json").read_text())
    assert results["meta"]["quick"] is True
    assert (tmp_path / f"{suite}.md").read_text().strip()
    assert "compat/native" in completed.stdout if suite == "compat" else "entries/s" in completed.stdout


def test_downstream_benchmark_runs_httpcore_both_ways(tmp_path: Path) -> None:
    for name in ("h11", "certifi"):  # httpcore's own dependencies: downstream/httpcore/requirements.txt
        pytest.importorskip(name, reason="the downstream benchmark needs downstream/httpcore/requirements.txt")
    completed = run_benchmark("downstream", "--quick", "--out", str(tmp_path), timeout=180)
    results = json.loads((tmp_path / "downstream.json").read_text())
    assert {row["network"] for rows in results["backends"].values() for row in rows} == {"memory", "loopback"}
    assert "compat/original" in completed.stdout


def test_scale_benchmark_runs_fits_slopes_and_checks_what_it_read(tmp_path: Path) -> None:
    completed = run_benchmark("scale", "--quick", "--out", str(tmp_path), timeout=180)
    results = json.loads((tmp_path / "scale.json").read_text())
    assert results["meta"]["quick"] is True
    assert "python" in results["meta"] and "versions" in results["meta"]
    assert {"memory", "sqlite"} <= set(results["adapters"])
    for name, adapter in results["adapters"].items():
        for backend, data in adapter["backends"].items():
            assert [row["size"] for row in data["sizes"]] == [10, 100], (name, backend)
            assert all(row["ok"] for row in data["sizes"]), (name, backend, data["sizes"])
            assert set(data["slopes"]) == {"load", "list_sessions", "list_session_summaries"}
            assert data["resume_files"] >= 1 and data["append_entries_per_s"] > 0
    assert any(row["adapter"] == "sqlite" and row["ratio"] > 0 for row in results["floor"])
    assert "slope" in completed.stdout and "adapter/floor" in completed.stdout


def test_floor_benchmark_runs_and_reports_a_ratio_per_adapter_and_backend(tmp_path: Path) -> None:
    run_benchmark("floor", "--quick", "--backend", "trio", "--out", str(tmp_path), timeout=120)
    rows = json.loads((tmp_path / "floor.json").read_text())["rows"]
    assert {row["backend"] for row in rows} == {"trio"}
    assert "sqlite" in {row["adapter"] for row in rows}
    assert all(row["ratio"] > 0 and row["floor_s"] > 0 for row in rows)
