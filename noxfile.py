"""Sessions: tests per Python x backend, lint, typecheck, bench.

``nox`` alone runs tests (3.11 to 3.15 x asyncio, trio), lint and typecheck; ``nox -s bench`` runs the
benchmarks. The interpreters come from pyenv: ``scripts/test.sh`` sets ``PYENV_VERSION`` so every one pyenv has
is visible. A version in ``SID_PYTHONS`` that no ``pythonX.Y`` on PATH provides (pyenv has no 3.14 or 3.15 on
Debian 12) runs instead inside the cached Debian sid root of ``scripts/sid-root.sh`` (built on first use; needs
root), with the same suite and its own PostgreSQL and Redis; its session has the same name (``tests-3.14``).
"""

from __future__ import annotations

import os
import shutil

import nox

SID_PYTHONS = ["3.14", "3.15"]  # from Debian sid (scripts/sid-root.sh) when the machine has no such python
IN_SID_ROOT = [version for version in SID_PYTHONS if shutil.which(f"python{version}") is None]
PYTHONS = [version for version in ["3.11", "3.12", "3.13", *SID_PYTHONS] if version not in IN_SID_ROOT]
BACKENDS = ["asyncio", "trio"]

nox.options.sessions = ["tests", *(f"tests-{version}" for version in IN_SID_ROOT), "lint", "typecheck"]
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


SID_TESTS = """
venv=/opt/session-store-venvs/python$0
"$venv/bin/python" -c pass 2>/dev/null || { rm -rf "$venv"; "python$0" -m venv "$venv"; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
COMPAT_TEST_BACKENDS=$1 && export COMPAT_TEST_BACKENDS && shift
"$venv/bin/python" --version
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
"""


def _tests_in_sid_root(session: nox.Session, version: str, backend: str) -> None:
    """The ``tests`` session for ``version``, run inside the sid root (a venv there, the repository at /repo)."""
    session.run(
        "bash", "scripts/sid-root.sh", "run", "sh", "-ec", SID_TESTS, version, backend, *session.posargs,
        external=True,
    )  # fmt: skip


for _version in IN_SID_ROOT:

    @nox.session(name=f"tests-{_version}", python=False)
    @nox.parametrize("backend", BACKENDS)
    def _tests_sid(session: nox.Session, backend: str, version: str = _version) -> None:
        """The test suite on one backend, on a CPython from Debian sid (see scripts/sid-root.sh)."""
        _tests_in_sid_root(session, version, backend)


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
