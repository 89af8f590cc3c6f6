"""Temp-dir leak checks shared by the test modules: ``tempfile`` is pointed at a per-test folder, so "nothing
leaked" is "that folder is empty".

``temp_root`` is a fixture, registered for every test module through ``pytest_plugins`` in ``conftest.py``;
``leftovers`` is a plain function (sync: it lists one folder, and the async tests call it between awaits).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tempfile.mkdtemp`` (resume's temp config dirs, among others) creates folders during the test."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def leftovers(root: Path) -> list[str]:
    """The names left in ``root``, sorted: ``[]`` once everything created there was removed."""
    return sorted(path.name for path in root.iterdir())
