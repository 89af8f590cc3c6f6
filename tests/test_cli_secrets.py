"""No store password reaches stdout, stderr or the log: every URL form through every command of the command line.

The password of every URL here contains ``S3cr3t`` (raw, percent-encoded or next to a ``%zz`` that is no
percent-encoding), so "the password was shown" is "``S3cr3t`` is in the output", whichever form a driver echoes.
Each command runs as a subprocess with ``--verbose`` (the libraries' log on stderr), as a user would:

- every URL form (malformed URLs without ``://``, userinfo on every scheme, query-string passwords, host lists,
  percent-encoded passwords and percent-encoding errors) against stores that are not there, through ``list``,
  ``show``, ``subagents``, ``resume``, ``rename``, ``tag``, ``fork``, ``delete``, ``import``, ``mirror`` and
  ``compact``;
- a Redis and a PostgreSQL server that really check a password: every command succeeds with the right one
  (the mirror banner and the reports name the store) and fails with a wrong one, never showing either.

The in-process tests pin :func:`session_store.redaction.redact_url` and :func:`~session_store.redaction.redact`
on the same forms, and a property: a percent-encoded password never survives, whatever it holds.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import processes
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import PostgresServer, RedisServer, free_port
from test_cli import SUBPROCESS_TIMEOUT_SECONDS, ClaudeHome, Cli
from test_cli_servers import LIBRARIES, BackendCli, cli_environment

from session_store.redaction import redact, redact_url, url_secrets

MARK = "S3cr3t"
"""In every password of this module; found in an output, it means a password was shown."""

PASSWORD = f"{MARK}-pw"
WRONG_PASSWORD = f"Wr0ng-{MARK}"


def shows_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert MARK not in output, output
    assert MARK.lower() not in output.lower(), output
    assert "Traceback" not in output, output


# --- every URL form, in process -----------------------------------------------------------------------------


def url_forms(port: int) -> dict[str, str]:
    """Each way a password can sit in a store URL, pointing at ``port`` on loopback (where nothing listens)."""
    host = f"127.0.0.1:{port}"
    return {
        "postgres-missing-slashes": f"postgresql:/user:{PASSWORD}@{host}/db",
        "postgres-missing-both-slashes": f"postgresql:user:{PASSWORD}@{host}/db",
        "no-scheme": f"user:{PASSWORD}@{host}/db",
        "memory-userinfo": f"memory://user:{PASSWORD}@x",
        "sqlite-userinfo": f"sqlite://user:{PASSWORD}@host/x.db",
        "postgres-userinfo": f"postgresql://user:{PASSWORD}@{host}/db",
        "postgres-percent-encoded": f"postgresql://user:{quote(PASSWORD + '/@:', safe='')}@{host}/db",
        "postgres-bad-percent-encoding": f"postgresql://user:{PASSWORD}%zz@{host}/db",
        "postgres-query-password": f"postgresql://user@{host}/db?password={PASSWORD}",
        "postgres-query-sslpassword": f"postgres://{host}/db?sslmode=disable&sslpassword={PASSWORD}",
        "postgres-host-list": f"postgresql://user:{PASSWORD}@{host},127.0.0.2:{port}/db",
        "redis-userinfo": f"redis://default:{PASSWORD}@{host}/0",
        "redis-password-only": f"redis://:{PASSWORD}@{host}/0",
        "redis-query-password": f"redis://{host}/0?password={PASSWORD}",
        "redis-query-token": f"rediss://{host}/0?prefix=x&token={PASSWORD}",
        "redis-bad-percent-encoding": f"redis://user:{PASSWORD}%zz@{host}/0",
        "redis-cluster-host-list": f"redis+cluster://u:{PASSWORD}@{host},127.0.0.2:{port}/",
        "redis-cluster-bad-port": f"rediss+cluster://u:{PASSWORD}@h1:x,h2:7001/",
    }


FORMS = sorted(url_forms(1))
REFUSED_BEFORE_CONNECTING = {
    "postgres-missing-slashes",
    "postgres-missing-both-slashes",
    "no-scheme",
    "memory-userinfo",
    "sqlite-userinfo",
    "redis-cluster-bad-port",
}
"""Forms ``open_store`` refuses (no such scheme, a host on sqlite://, anything after memory://, a bad port)."""


@pytest.mark.parametrize("form", FORMS)
def test_redact_url_hides_the_password_of_every_form(form: str) -> None:
    url = url_forms(5432)[form]

    shown = redact_url(url)

    assert MARK not in shown
    assert "***" in shown
    assert "5432" in shown or "memory" in shown or "h1:x" in shown or "host" in shown  # still says where


@pytest.mark.parametrize("form", FORMS)
def test_redact_removes_the_password_wherever_a_message_echoes_it(form: str) -> None:
    url = url_forms(5432)[form]
    secrets = url_secrets(url)
    message = f'connection to "{url}" failed: invalid percent-encoded token: "{secrets[0]}" ({secrets[-1]})'

    assert MARK not in redact(message, url=url)
    assert MARK not in redact(f"failed on {url}.")  # a URL in a text is found without being told


def test_redact_keeps_what_says_where_and_which_user() -> None:
    assert redact_url(f"postgresql://bob:{PASSWORD}@db.example:5433/app") == "postgresql://bob:***@db.example:5433/app"
    assert redact_url("sqlite:////home/me@work/sessions.db") == "sqlite:////home/me@work/sessions.db"
    assert redact_url("redis://h:6379/0?prefix=team&password=x") == "redis://h:6379/0?prefix=team&password=***"
    assert redact(f"host=db password={PASSWORD} dbname=app") == "host=db password=*** dbname=app"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20))
def test_a_percent_encoded_password_never_survives_redaction(suffix: str) -> None:
    password = MARK + suffix
    encoded = quote(password, safe="")
    for url in (
        f"postgresql://u:{encoded}@h:5432/db",
        f"redis://h/0?password={encoded}",
        f"postgresql:/u:{encoded}@h/db",
    ):
        message = f"{url} failed: bad token {password!s} / {encoded}"
        assert MARK not in redact_url(url)
        assert MARK not in redact(message, url=url)


# --- the adapters' own errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [form for form in FORMS if form.startswith(("postgres", "redis"))])
async def test_the_adapters_errors_and_reprs_show_no_password(form: str, closed_port: int) -> None:
    from session_store.adapters import open_store

    url = url_forms(closed_port)[form]
    try:
        store = open_store(url)
    except ValueError as error:  # refused before connecting: the message is redacted already
        assert MARK not in str(error)
        return
    try:
        assert MARK not in repr(store)
        with pytest.raises(Exception) as raised:
            await store.list_sessions("-work-app")
        assert MARK not in str(raised.value), raised.value
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            await close()


# --- every URL form, through every command ------------------------------------------------------------------


@dataclass
class Workspace:
    """A projects folder with one session (and a subagent), and the arguments each command takes."""

    claude_home: ClaudeHome
    session_id: str
    into: Path

    def arguments(self, command: str) -> list[str]:
        session = self.session_id
        return {
            "list": ["list"],
            "show": ["show", session],
            "subagents": ["subagents", session],
            "resume": ["resume", session, "--into", str(self.into)],
            "rename": ["rename", session, "New title"],
            "tag": ["tag", session, "release"],
            "fork": ["fork", session],
            "delete": ["delete", session],
            "import": ["import", str(self.claude_home.projects)],
            "mirror": ["mirror", str(self.claude_home.projects), "--once", "--from-start", "--interval", "0"],
            "compact": ["compact"],
        }[command]


COMMANDS = ["list", "show", "subagents", "resume", "rename", "tag", "fork", "delete", "import", "mirror", "compact"]


def make_workspace(tmp_path: Path) -> Workspace:
    workdir = tmp_path / "app"
    workdir.mkdir(exist_ok=True)
    claude_home = ClaudeHome(tmp_path / "claude" / "projects", workdir)
    session = claude_home.session("Connect to the store", "Connected.")
    claude_home.subagent(session.session_id, "a1b2c3", "Check the password", "toolu_01pw")
    return Workspace(claude_home, session.session_id, tmp_path / "resumed")


@pytest.fixture(scope="module")
def closed_port() -> int:
    return free_port()


def run_at_once(clis: dict[str, Cli], arguments: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run each named command line at the same time (they are independent); their results by name."""
    with contextlib.ExitStack() as stack:
        running = {
            name: stack.enter_context(
                processes.started(
                    cli.command(*arguments[name]),
                    env=cli.env,
                    cwd=cli.cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for name, cli in clis.items()
        }
        results = {}
        for name, process in running.items():
            out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
            results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


@pytest.mark.parametrize("form", FORMS)
def test_no_command_shows_the_password_of_any_url_form(form: str, closed_port: int, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    env = cli_environment(tmp_path, workspace.claude_home)
    url = url_forms(closed_port)[form]
    # each (form, command) runs on one backend, alternating, so both run every command and every form
    clis: dict[str, Cli] = {
        command: BackendCli(env, url, workspace.claude_home.workdir, LIBRARIES[(FORMS.index(form) + index) % 2])
        for index, command in enumerate(COMMANDS)
    }

    results = run_at_once(clis, {command: ["--verbose", *workspace.arguments(command)] for command in COMMANDS})

    for command, result in results.items():
        shows_no_secret(result)
        assert result.returncode != 0, command  # no such store: every command fails, and says so
        said = result.stdout + result.stderr  # import reports a failed session in its report, on stdout
        assert any(word in said for word in ("error", "warning", "failed")), (command, said)
    if form not in REFUSED_BEFORE_CONNECTING:  # mirror starts (its banner names the store, redacted), then fails
        assert "mirroring" in results["mirror"].stderr and "***" in results["mirror"].stderr, results["mirror"].stderr


def test_json_output_of_a_failing_import_shows_no_password(closed_port: int, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    url = url_forms(closed_port)["postgres-bad-percent-encoding"]
    cli = Cli(cli_environment(tmp_path, workspace.claude_home), url, workspace.claude_home.workdir)

    result = cli("--json", "--verbose", *workspace.arguments("import"))

    shows_no_secret(result)
    assert result.returncode == 1


# --- servers that check the password ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_with_password(redis_server_factory: Callable[..., RedisServer]) -> Iterator[RedisServer]:
    """A private Redis whose default user needs :data:`PASSWORD` (set once it answers, so start() can ping)."""
    import redis

    server = redis_server_factory(durable=False)
    with redis.Redis(host="127.0.0.1", port=server.port) as client:
        client.config_set("requirepass", PASSWORD)
    return server


@pytest.fixture(scope="module")
def postgres_with_password(postgres_server_factory: Callable[[], PostgresServer]) -> PostgresServer:
    """A private PostgreSQL whose TCP connections need a password (scram-sha-256); :data:`PASSWORD` for postgres."""
    import psycopg

    server = postgres_server_factory()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'".encode())
    (server.data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
    )
    server._run("pg_ctl", "-D", str(server.data_dir), "-w", "reload")
    return server


def server_urls(kind: str, port: int, password: str) -> dict[str, str]:
    encoded = quote(password, safe="")
    if kind == "redis":
        return {
            "userinfo": f"redis://default:{encoded}@127.0.0.1:{port}/0",
            "query": f"redis://127.0.0.1:{port}/0?password={encoded}",
        }
    return {
        "userinfo": f"postgresql://postgres:{encoded}@127.0.0.1:{port}/postgres",
        "query": f"postgresql://postgres@127.0.0.1:{port}/postgres?password={encoded}",
    }


@pytest.fixture(params=["redis", "postgres"])
def server(request: pytest.FixtureRequest) -> tuple[str, int]:
    found: RedisServer | PostgresServer = request.getfixturevalue(f"{request.param}_with_password")
    return request.param, found.port


SUCCEEDING = ["import", "list", "show", "subagents", "rename", "tag", "fork", "resume", "mirror", "delete"]


@pytest.mark.servers
@pytest.mark.parametrize("library", ["asyncio", "trio"])
@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_every_command_on_a_password_protected_server_shows_no_password(
    server: tuple[str, int], form: str, library: str, tmp_path: Path
) -> None:
    kind, port = server
    workspace = make_workspace(tmp_path)  # its own project key (workdir): tests never meet in the server
    url = server_urls(kind, port, PASSWORD)[form]
    cli = BackendCli(cli_environment(tmp_path, workspace.claude_home), url, workspace.claude_home.workdir, library)

    outputs = []
    for command in SUCCEEDING:
        result = cli("--verbose", *workspace.arguments(command))
        shows_no_secret(result)
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result.stdout + result.stderr)

    assert any("***" in output for output in outputs)  # the mirror banner names the store, redacted


@pytest.mark.servers
@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_wrong_password_is_one_error_line_that_shows_neither_password(
    server: tuple[str, int], form: str, tmp_path: Path
) -> None:
    kind, port = server
    workspace = make_workspace(tmp_path)
    url = server_urls(kind, port, WRONG_PASSWORD)[form]
    cli = Cli(cli_environment(tmp_path, workspace.claude_home), url, workspace.claude_home.workdir)

    for command in ("list", "import", "mirror"):
        result = cli("--verbose", *workspace.arguments(command))
        shows_no_secret(result)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "password" in result.stderr.lower() or "auth" in result.stderr.lower(), result.stderr
