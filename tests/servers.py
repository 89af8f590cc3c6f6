"""Throwaway PostgreSQL and Redis servers for the adapter tests (a pytest plugin).

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["servers"]``. It provides session-scoped, sync
fixtures:

- ``postgres_url``: a ``postgresql://`` URL of an empty database created for this test run (dropped at the
  end). The server is a throwaway ``initdb`` cluster on ``127.0.0.1`` on a free port in a temp dir, stopped
  afterwards, unless ``SESSION_STORE_TEST_POSTGRES_URL`` names a running server to reuse (its role needs
  ``CREATEDB``).
- ``redis_url``: a ``redis://`` URL of a throwaway ``redis-server --save ''`` on a free port, unless
  ``SESSION_STORE_TEST_REDIS_URL`` names one to reuse. Tests put their keys under a prefix starting with
  :data:`REDIS_TEST_PREFIX`; those keys are deleted at the end.
- ``redis_cluster``: a throwaway 3-master Redis Cluster on free loopback ports (``redis-server
  --cluster-enabled yes --appendonly yes`` x3 in temp dirs, joined by ``redis-cli --cluster create``, ready once
  every node reports ``cluster_state:ok``); stopped at the end. Needs ``redis-cli`` (Debian ``redis-tools``).
  Its ``node_serving(key)`` is the master serving a key's slot, for tests that stop that one.
- ``postgres_server_factory`` / ``redis_server_factory``: start a *private* server that a test may stop and
  start again (outage tests). Never reused from the environment: stopping someone else's server is not ours
  to do. ``restartable_postgres`` / ``restartable_redis`` give each test module one such server.

When the server binaries are missing, the tests that need them are skipped, except when ``CI=true``: then
they fail, so a CI machine without servers cannot pass by skipping. ``scripts/install-servers.sh`` installs
them. PostgreSQL binaries are looked up on ``PATH`` and in ``/usr/lib/postgresql/*/bin``. PostgreSQL refuses
to run as root, so under root the cluster runs as the ``postgres`` user through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

POSTGRES_URL_ENV = "SESSION_STORE_TEST_POSTGRES_URL"
REDIS_URL_ENV = "SESSION_STORE_TEST_REDIS_URL"
REDIS_TEST_PREFIX = "sstest"
SERVER_START_TIMEOUT_SECONDS = 30.0
POSTGRES_SERVICE_USER = "postgres"


def _missing(what: str, reuse_env: str) -> None:
    """Skip (locally) or fail (CI) a test whose server binaries are not installed."""
    message = f"{what} not found; run scripts/install-servers.sh (or point {reuse_env} at a running server)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


CLUSTER_BUS_PORT_OFFSET = 10000  # a cluster node also listens on port + 10000, so its port must be <= 55535


def free_port(*, cluster_bus: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    With ``cluster_bus``, a port whose Redis Cluster bus port (port + 10000) is free too: drawn from 10000-22767,
    so both lie below Linux's default ephemeral range (32768-60999), where the kernel picks ports for ``bind(0)``
    and outgoing connections (a port from there can be above 55535, which redis-server refuses in cluster mode).
    """
    if not cluster_bus:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    for _ in range(200):
        candidate = random.randint(10000, 32767 - CLUSTER_BUS_PORT_OFFSET)
        if _bindable(candidate) and _bindable(candidate + CLUSTER_BUS_PORT_OFFSET):
            return candidate
    raise RuntimeError("no free pair of ports (port, port + 10000) between 10000 and 32767 on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_until(ready: Callable[[], bool], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not become ready within {SERVER_START_TIMEOUT_SECONDS} s\n{tail}")


def _start_on_a_free_port(server: PostgresServer | RedisServer, attempts: int = 3) -> None:
    """Start ``server``; if its port was taken meanwhile (another process won the race), try a new one."""
    for attempt in range(attempts):
        try:
            server.start()
            return
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            server.port = free_port(cluster_bus=isinstance(server, RedisServer) and server.cluster_bus)


def _private_dir(prefix: str, owner: str | None) -> Path:
    """A fresh temp dir, owned by ``owner`` when we run as root (so a service user can write in it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        shutil.chown(path, user=owner)
    return path


# ----------------------------------------------------------------------------------------------- PostgreSQL


def find_postgres_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then the newest Debian cluster version."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


class PostgresServer:
    """One throwaway PostgreSQL cluster: ``initdb`` once, then ``start()`` / ``stop()`` as often as needed."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.run_as = POSTGRES_SERVICE_USER if os.geteuid() == 0 else None
        self.base_dir = _private_dir("session-store-pg-", self.run_as)
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "server.log"
        self.port = free_port()
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr}")

    def start(self) -> None:
        # fsync off: only the server process ever "crashes" in tests, never the OS, so committed data is
        # still in the page cache; synchronous_commit stays on, so a commit is in the WAL before it is acked.
        options = (
            f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean) or ``immediate`` (like a crash; WAL recovery on next start)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _with_database(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _admin_execute(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement.encode())


@pytest.fixture(scope="session")
def postgres_server_factory() -> Iterator[Callable[[], PostgresServer]]:
    """Start private PostgreSQL servers (running) that a test may stop and restart; all destroyed at the end."""
    servers: list[PostgresServer] = []

    def start_server() -> PostgresServer:
        bin_dir = find_postgres_bin_dir()
        if bin_dir is None:
            _missing("PostgreSQL (initdb/pg_ctl)", POSTGRES_URL_ENV)
            raise AssertionError("unreachable")
        server = PostgresServer(bin_dir)
        servers.append(server)
        _start_on_a_free_port(server)
        return server

    yield start_server
    for server in servers:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres_server_factory: Callable[[], PostgresServer]) -> Iterator[str]:
    """URL of a fresh, empty database on a throwaway (or ``$SESSION_STORE_TEST_POSTGRES_URL``) server."""
    base_url = os.environ.get(POSTGRES_URL_ENV) or postgres_server_factory().url
    database = f"session_store_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(base_url, f'CREATE DATABASE "{database}"')
    yield _with_database(base_url, database)
    _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# ----------------------------------------------------------------------------------------------------- Redis


class _ChildServer:
    """A throwaway server in a child process on 127.0.0.1: its private folder and log, start-up wait, stop and
    destroy. A subclass gives the probe (bytes sent on a fresh connection, the prefix its answer starts with)."""

    name = "server"
    probe = b""
    answer = b""

    def __init__(self, dir_prefix: str, *, cluster_bus: bool = False) -> None:
        self.base_dir = _private_dir(dir_prefix, None)
        self.log_file = self.base_dir / "server.log"
        self.port = free_port(cluster_bus=cluster_bus)
        self._process: subprocess.Popen[bytes] | None = None

    def _spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        with self.log_file.open("ab") as log:  # what the server prints before (or instead of) its own log
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        _wait_until(self._answers, f"{self.name} on port {self.port}", self.log_file)

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{self.name} exited with {self._process.returncode}\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(self.probe)
                return sock.recv(16).startswith(self.answer)
        except OSError:
            return False

    @property
    def running(self) -> bool:
        """Started by :meth:`start` and not stopped since (it may still have died on its own)."""
        return self._process is not None

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server: SIGTERM, or SIGKILL with ``crash=True``."""
        if self._process is None:
            return
        if crash:
            self._process.kill()
        else:
            self._process.terminate()
        self._process.wait(timeout=SERVER_START_TIMEOUT_SECONDS)
        self._process = None

    def destroy(self) -> None:
        self.stop(crash=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)


class RedisServer(_ChildServer):
    """One throwaway ``redis-server`` on 127.0.0.1; ``durable`` turns on an always-fsynced append-only file
    (after ``stop(crash=True)`` only fsynced writes survive)."""

    name = "redis-server"
    probe = b"PING\r\n"
    answer = b"+PONG"

    def __init__(self, executable: str, *, durable: bool, cluster_bus: bool = False) -> None:
        super().__init__("session-store-redis-", cluster_bus=cluster_bus)
        self.executable = executable
        self.durable = durable
        self.cluster_bus = cluster_bus
        self.extra_options: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.base_dir),
            "--save",
            "",
            "--logfile",
            str(self.log_file),
            "--daemonize",
            "no",
            *persistence,
            *self.extra_options,
        ]
        self._spawn(command)


@pytest.fixture(scope="session")
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start private Redis servers (running) that a test may stop and restart; all destroyed at the end."""
    servers: list[RedisServer] = []

    def start_server(*, durable: bool = True) -> RedisServer:
        executable = shutil.which("redis-server")
        if executable is None:
            _missing("redis-server", REDIS_URL_ENV)
            raise AssertionError("unreachable")
        server = RedisServer(executable, durable=durable)
        servers.append(server)
        _start_on_a_free_port(server)
        return server

    yield start_server
    for server in servers:
        server.destroy()


@pytest.fixture(scope="module")
def restartable_postgres(postgres_server_factory: Callable[[], PostgresServer]) -> PostgresServer:
    """A private PostgreSQL server for the tests of one module that stop and restart it."""
    return postgres_server_factory()


@pytest.fixture(scope="module")
def restartable_redis(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A private, durable Redis server for the tests of one module that stop, kill or restart it."""
    return redis_server_factory(durable=True)


def _delete_test_keys(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{REDIS_TEST_PREFIX}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(redis_server_factory: Callable[..., RedisServer]) -> Iterator[str]:
    """URL of a throwaway (or ``$SESSION_STORE_TEST_REDIS_URL``) Redis; test keys start with ``sstest``."""
    reused = os.environ.get(REDIS_URL_ENV)
    url = reused or redis_server_factory(durable=False).url
    yield url
    if reused:
        _delete_test_keys(url)


def redis_test_prefix() -> str:
    """A key prefix unique to one store under test (cleaned up by the ``redis_url`` fixture)."""
    return f"{REDIS_TEST_PREFIX}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------------- Redis Cluster


class RedisClusterServers:
    """Three ``redis-server --cluster-enabled yes`` masters on loopback (own dirs, nodes.conf, append-only file)."""

    def __init__(self, executable: str, cli: str, masters: int = 3) -> None:
        self.cli = cli
        self.nodes = [RedisServer(executable, durable=True, cluster_bus=True) for _ in range(masters)]
        for node in self.nodes:
            node.extra_options = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes) + "/"

    def start(self) -> None:
        for node in self.nodes:
            _start_on_a_free_port(node)
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        command = [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
        self.wait_until_ok()

    def state_ok(self) -> bool:
        for node in self.nodes:
            completed = subprocess.run(
                [self.cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, check=False
            )
            if "cluster_state:ok" not in completed.stdout:
                return False
        return True

    def wait_until_ok(self) -> None:
        _wait_until(self.state_ok, "Redis Cluster (cluster_state:ok on every node)")

    def _a_running_node(self) -> RedisServer:
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError("no node of the cluster is running")

    def _cli(self, node: RedisServer, *args: str) -> str:
        command = [self.cli, "-p", str(node.port), *args]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
        return completed.stdout

    def slot_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """Port of each master -> the slot ranges it serves, as ``CLUSTER NODES`` on a running node reports them."""
        ranges: dict[int, list[tuple[int, int]]] = {}
        for line in self._cli(self._a_running_node(), "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) < 8 or "master" not in fields[2].split(","):
                continue
            port = int(fields[1].partition("@")[0].rpartition(":")[2])
            ranges[port] = [
                (int(low), int(high or low))
                for low, _, high in (field.partition("-") for field in fields[8:] if not field.startswith("["))
            ]
        return ranges

    def node_serving(self, key: str) -> RedisServer:
        """The master that serves ``key``'s slot (``CLUSTER KEYSLOT``, then :meth:`slot_ranges`)."""
        slot = int(self._cli(self._a_running_node(), "cluster", "keyslot", key).strip())
        for port, ranges in self.slot_ranges().items():
            if any(low <= slot <= high for low, high in ranges):
                return next(node for node in self.nodes if node.port == port)
        raise RuntimeError(f"no master serves slot {slot} of {key!r}")

    def destroy(self) -> None:
        for node in self.nodes:
            node.destroy()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A throwaway 3-master Redis Cluster on loopback (keys under :data:`REDIS_TEST_PREFIX` prefixes)."""
    executable, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if executable is None or cli is None:
        _missing("redis-server and redis-cli (Debian: redis-server, redis-tools)", REDIS_URL_ENV)
        raise AssertionError("unreachable")
    servers = RedisClusterServers(executable, cli)
    try:
        servers.start()
        yield servers
    finally:
        servers.destroy()


# ------------------------------------------------------------------------------------------------------- S3

S3_URL_ENV = "SESSION_STORE_TEST_S3_URL"
S3_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "session-store-test",
    "AWS_SECRET_ACCESS_KEY": "session-store-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""The throwaway server accepts any credentials; the tests give boto3's default chain these (no config files)."""


class S3Server(_ChildServer):
    """A throwaway S3 server on 127.0.0.1: moto's S3 backend in a child process (``tests/s3_server.py``).

    Why moto and not Ceph's radosgw: the radosgw of Debian 12 (16.2) has no standalone ``dbstore`` backend
    (it needs a whole RADOS cluster), and sid's 20.2 cannot be installed on this machine's Debian. moto is a
    pure-Python S3 implementation from the package index that runs as one process and honours conditional
    writes; served one request at a time, those are atomic as on AWS S3. ``stop()`` loses every object (moto
    keeps them in memory).
    """

    name = "the S3 server"
    probe = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    answer = b"HTTP/1."

    def __init__(self, *, authenticate_after: int | None = None) -> None:
        super().__init__("session-store-s3-")
        self.authenticate_after = authenticate_after
        """Check credentials (moto's IAM) from this many requests on; None: never (any key is accepted)."""

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        script = Path(__file__).with_name("s3_server.py")
        env = None
        if self.authenticate_after is not None:
            env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(self.authenticate_after)}
        self._spawn([sys.executable, str(script), str(self.port)], env)


def s3_client(endpoint_url: str) -> object:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=S3_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint_url)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a throwaway S3 server (or ``$SESSION_STORE_TEST_S3_URL``), with the test credentials set
    in the environment for boto3's default chain (and so for CLI subprocesses)."""
    for name, value in S3_TEST_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    reused = os.environ.get(S3_URL_ENV)
    if reused:
        yield reused
        return
    try:
        import moto  # noqa: F401
    except ImportError:
        _missing("the moto S3 server (pip install 'moto[s3]' flask flask-cors)", S3_URL_ENV)
    server = S3Server()
    try:
        for attempt in range(3):
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = free_port()
        yield server.endpoint_url
    finally:
        server.destroy()


def new_s3_bucket(endpoint_url: str) -> str:
    """A fresh, empty bucket on the test server."""
    name = f"sstest-{uuid.uuid4().hex[:16]}"
    s3_client(endpoint_url).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh bucket for one test."""
    return new_s3_bucket(s3_endpoint)
