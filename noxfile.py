"""Sessions: tests per Python x backend, lint, typecheck, bench.

``nox`` alone runs tests (3.11 to 3.15 x asyncio, trio), tests_trio_oldest (compat's tests on the oldest trio
it supports), lint, typecheck and the asgi-lifespan and stamina downstream suites (they download those two sdists
and their test tools: 30-45 s each); ``nox -s bench`` runs the benchmarks. The interpreters come from pyenv:
``scripts/test.sh`` sets ``PYENV_VERSION`` so every one pyenv has is visible. A version in ``SID_PYTHONS`` that no ``pythonX.Y`` on PATH provides (pyenv has no 3.14 or 3.15 on
Debian 12) runs instead inside the cached Debian sid root of ``scripts/sid-root.sh`` (built on first use; needs
root), with the same suite and its own PostgreSQL and Redis; its session has the same name (``tests-3.14``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

SID_PYTHONS = ["3.14", "3.15"]  # from Debian sid (scripts/sid-root.sh) when the machine has no such python
IN_SID_ROOT = [version for version in SID_PYTHONS if shutil.which(f"python{version}") is None]
PYTHONS = [version for version in ["3.11", "3.12", "3.13", *SID_PYTHONS] if version not in IN_SID_ROOT]
BACKENDS = ["asyncio", "trio"]

nox.options.sessions = [
    "tests",
    *(f"tests-{version}" for version in IN_SID_ROOT),
    "tests_trio_oldest",
    "lint",
    "typecheck",
    "downstream_asgi_lifespan",  # about 30 s each with a fresh venv: the sdist, its test tools and both suite runs
    "downstream_stamina",
]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the machine's interpreters, never fetch one
os.environ.setdefault("UV_PYTHON_PREFERENCE", "only-system")


DOORS_PYTHON = "3.11"
"""The CPython whose test sessions also run the door and load suites (tests/conftest.py ``DOOR_MODULES``)."""


def _selection(version: str, posargs: list[str]) -> list[str]:
    """pytest arguments: what was given, else the whole suite on 3.11 and all but the door suites elsewhere."""
    if posargs or version == DOORS_PYTHON:
        return list(posargs)
    return ["-m", "not doors"]


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """The test suite with every async test on one backend (sync tests run in both sessions); the door and load
    suites only on CPython 3.11 unless test arguments are given."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        *_selection(str(session.python), session.posargs),
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
        "bash", "scripts/sid-root.sh", "run", "sh", "-ec", SID_TESTS, version, backend,
        *_selection(version, session.posargs),
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


TRIO_OLDEST = "0.23.0"  # compat._backend.OLDEST_TRIO: older trio sets no sniffio.thread_local (a test checks both)
ANYIO_FOR_TRIO_OLDEST = "4.10.0"  # the anyio of the interop tests; later releases call trio APIs 0.23 lacks


@nox.session(python="3.11")
def tests_trio_oldest(session: nox.Session) -> None:
    """compat's own tests (tests/test_compat_*.py) on the oldest trio compat supports, async tests on trio.

    The project is installed without its ``[trio]`` extra (which asks for a newer trio for session_store).
    """
    from pathlib import Path

    session.install(
        "-e", ".", f"trio=={TRIO_OLDEST}", f"anyio=={ANYIO_FOR_TRIO_OLDEST}",
        "pytest>=8", "pytest-asyncio>=0.24", "pytest-trio>=0.8", "hypothesis>=6",
    )  # fmt: skip
    files = sorted(str(path) for path in Path("tests").glob("test_compat_*.py"))
    session.run("pytest", "-p", "no:cacheprovider", *(session.posargs or files), env={"COMPAT_TEST_BACKENDS": "trio"})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on compat, session_store and session_store_sdk_hook."""
    session.install("-e", ".[trio,postgres,redis]", "mypy")
    session.run("mypy", "--strict", "compat", "session_store", "session_store_sdk_hook.py")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks (native vs compat vs anyio; ours vs the SDK), printed as ratio tables."""
    # 'downstream' runs httpcore (its test requirements), asgi-lifespan (nothing more) and stamina (tenacity)
    session.install("-e", ".[bench]", "-r", "downstream/httpcore/requirements.txt", "tenacity>=9,<10")
    session.run("python", "-m", "benchmarks", *(session.posargs or ["all"]))


@nox.session(python="3.11")
def bench_s3_driver(session: nox.Session) -> None:
    """boto3 in threads (the S3 adapter's driver) against aiobotocore on asyncio, one server, one run.

    Its own environment: aiobotocore pins botocore to a narrow range, so pip picks the boto3 that matches it.
    """
    session.install("-e", ".[s3]", "aiobotocore", "moto[s3]>=5.0.20", "flask", "flask-cors", "waitress>=3", "pytest")
    session.run("python", "-m", "benchmarks", "s3driver", "--backend", "asyncio", *session.posargs)


@nox.session(python="3.11")
def downstream_httpcore(session: nox.Session) -> None:
    """httpcore 1.0.9's own test suite, original and with its ``_synchronization.py`` on ``compat`` (not a default
    session).

    ``downstream/httpcore/run.py`` downloads the sdist into the system temp dir (never the repository), vendors
    ``compat`` into a second copy, runs the suite in both (asyncio and trio through anyio's pytest plugin), prints
    both counts and fails if any outcome differs. Extra arguments go to pytest.
    """
    session.install("pip", "-r", "downstream/httpcore/requirements.txt")
    session.run("python", "downstream/httpcore/run.py", *session.posargs)


@nox.session(python="3.11")
def downstream_asgi_lifespan(session: nox.Session) -> None:
    """asgi-lifespan 2.1.0's own test suite, original and with its ``_concurrency`` package on ``compat`` (a default
    session: about 30 s).

    ``downstream/asgi_lifespan/run.py`` (through ``downstream/sdist_suite.py``) downloads the sdist into the system
    temp dir (never the repository), vendors ``compat`` into a second copy as ``asgi_lifespan/_vendored_compat``,
    runs the suite in both (asyncio and trio through its own conftest), prints both counts and fails if any outcome
    differs. Extra arguments go to pytest.
    """
    session.install("pip", "-r", "downstream/asgi_lifespan/requirements.txt")
    session.run("python", "downstream/asgi_lifespan/run.py", *session.posargs)


@nox.session(python="3.11")
def downstream_stamina(session: nox.Session) -> None:
    """stamina 26.1.0's own test suite, original and with its async sleep on ``compat`` (a default session: about
    40 s).

    ``downstream/stamina/run.py`` (through ``downstream/sdist_suite.py``) downloads the sdist into the system temp
    dir (never the repository), vendors ``compat`` into a second copy as ``stamina/_vendored_compat``, installs
    each tree into a folder of its own, runs the suite in both (asyncio and trio through anyio's pytest plugin),
    prints both counts and fails if any outcome differs. Extra arguments go to pytest.
    """
    session.install("pip", "-r", "downstream/stamina/requirements.txt")
    session.run("python", "downstream/stamina/run.py", *session.posargs)


SDK_VERSIONS = ["0.2.95", "0.2.190"]  # = session_store.sdk.TESTED_SDK_VERSIONS (a test checks they agree)
"""The oldest and newest claude-agent-sdk that ``session_store.sdk.install()`` accepts: what sdk_e2e and
downstream_sdk run against."""
DOWNSTREAM_SDK_TESTS = [  # reference §16 (the delta: 0.2.189 adds no session-store test file)
    "tests/test_session_store_anyio.py",
    "tests/test_transcript_mirror.py",
    "tests/test_session_resume.py",
    "tests/test_sessions.py",
    "tests/test_session_helpers_store.py",
    "tests/test_session_store_conformance.py",
    "tests/test_task_compat.py",
    "tests/test_session_mutations.py",
    "tests/test_session_import.py",
    "tests/test_session_summary.py",
]


def _sdk_sdist(session: nox.Session, version: str, purpose: str) -> Path:
    """Download claude-agent-sdk ``version``'s sdist (pure Python: the wheels bundle a 430 MB CLI) into a fresh
    folder of the system temp dir, never the repository; unpack it and return the unpacked folder."""
    import shutil
    import tarfile
    import tempfile

    work = Path(tempfile.gettempdir()) / f"session-store-{purpose}-{version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    session.install("pip")
    session.run(
        "python", "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        f"claude-agent-sdk=={version}", "--dest", str(work),
    )  # fmt: skip
    (sdist,) = work.glob("claude_agent_sdk-*.tar.gz")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # 3.11.4+: refuse links and paths that leave the folder
            archive.extractall(work, filter="data")
        else:
            archive.extractall(work)  # the pinned sdist from the package index, on an old 3.11
    return work / f"claude_agent_sdk-{version}"


@nox.session(python="3.11")
@nox.parametrize("version", SDK_VERSIONS)
def sdk_e2e(session: nox.Session, version: str) -> None:
    """tests/test_sdk_e2e.py and tests/test_sdk_install.py on claude-agent-sdk ``version`` (not a default session).

    The SDK is installed from its sdist (downloaded at run time), so no bundled CLI: the tests drive the SDK's
    real ``query()`` and ``ClaudeSDKClient`` with the stand-in CLI ``tests/fake_claude_cli.py``, stock and with
    ``session_store.sdk.install()``, on asyncio, trio and anyio-on-trio, into every adapter. Extra arguments go
    to pytest.
    """
    sdk = _sdk_sdist(session, version, "sdk-e2e")
    session.install("-e", ".[test]", str(sdk))
    session.run(
        "python", "-c", f"import claude_agent_sdk as s; assert s.__version__ == {version!r}, s.__version__",
    )  # fmt: skip
    session.run(
        "pytest", "-p", "no:cacheprovider", "tests/test_sdk_e2e.py", "tests/test_sdk_install.py", *session.posargs
    )


@nox.session(python="3.11")
@nox.parametrize("version", SDK_VERSIONS)
def downstream_sdk(session: nox.Session, version: str) -> None:
    """The Claude Agent SDK's own session-store tests, run on ``session_store.sdk`` (not a default session).

    Downloads the SDK's sdist (the versions of ``sdk_e2e``) into a fresh folder in the system temp dir, never
    into the repository, installs the SDK's runtime dependencies (not the SDK: its own ``src`` is on the path
    through its pytest config), and runs the test files with ``downstream/sdk/plugin.py``, which maps the SDK's
    session-store modules to ``session_store.sdk`` and applies ``downstream/sdk/expected_failures.toml`` (the same
    16 tests on both versions). The SDK's conftest runs every async test on asyncio and trio. Extra arguments go
    to pytest.
    """
    import tomllib

    repo = Path(__file__).resolve().parent
    sdk = _sdk_sdist(session, version, "downstream-sdk")
    with (sdk / "pyproject.toml").open("rb") as file:
        sdk_dependencies = tomllib.load(file)["project"]["dependencies"]
    session.install(".[trio]", "pytest>=8", "anyio[trio]>=4", *sdk_dependencies)
    session.chdir(sdk)
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-p", "downstream.sdk.plugin",
        *DOWNSTREAM_SDK_TESTS, *session.posargs,
        env={"PYTHONPATH": str(repo)},
    )  # fmt: skip
