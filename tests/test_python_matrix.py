"""The Pythons the project declares are the Pythons it tests: pyproject, noxfile and README agree on 3.11-3.15."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MATRIX = ["3.11", "3.12", "3.13", "3.14", "3.15"]


def noxfile_versions() -> list[str]:
    """Every version the noxfile's ``tests`` sessions cover: ``PYTHONS`` candidates and ``SID_PYTHONS``."""
    tree = ast.parse((REPO / "noxfile.py").read_text("utf-8"))
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] in (
            ["SID_PYTHONS"],
            ["PYTHONS"],
        ):
            found += [c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return sorted(set(found), key=lambda v: tuple(map(int, v.split("."))))


def test_the_noxfile_tests_every_declared_python() -> None:
    assert noxfile_versions() == MATRIX


def test_pyproject_classifiers_and_requires_python_agree_with_the_matrix() -> None:
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    classified = [
        c.rpartition(":: ")[2]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert classified == MATRIX
    assert project["requires-python"] == f">={MATRIX[0]}"


def test_the_readme_names_the_same_range() -> None:
    assert f"CPython {MATRIX[0]} to {MATRIX[-1]}" in (REPO / "README.md").read_text("utf-8")
