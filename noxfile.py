"""Sessions: tests per Python x backend, lint, typecheck, bench.

``nox`` alone runs tests (3.11, 3.12, 3.13 x asyncio, trio), lint and typecheck; ``nox -s bench`` runs the
benchmarks. The interpreters come from pyenv: ``scripts/test.sh`` sets ``PYENV_VERSION`` so all three are visible.
"""

from __future__ import annotations

import os

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
BACKENDS = ["asyncio", "trio"]

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the machine's interpreters, never fetch one
os.environ.setdefault("UV_PYTHON_PREFERENCE", "only-system")


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """The test suite with every async test on one backend (sync tests run in both sessions)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"COMPAT_TEST_BACKENDS": backend},
    )


@nox.session(python="3.11")
@nox.parametrize("backend", BACKENDS)
def soak(session: nox.Session, backend: str) -> None:
    """The long variants of the sweep, fault, property and load suites (tests/soak.py), on one backend."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"COMPAT_TEST_BACKENDS": backend, "SESSION_STORE_SOAK": "1"},
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on compat and session_store."""
    session.install("-e", ".[trio,postgres,redis]", "mypy")
    session.run("mypy", "--strict", "compat", "session_store")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks (native vs compat vs anyio; ours vs the SDK), printed as ratio tables."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *(session.posargs or ["all"]))
