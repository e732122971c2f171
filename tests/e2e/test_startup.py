"""Start-up failures as a new user meets them: one line naming the setting and what to do, a
non-zero exit, no traceback, and nothing started before the check that failed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from load.databases import create_database, drop_database
from load.service import free_port
from orchestrator.settings import to_libpq_url


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The command as a user runs it; a command that does not stop by itself (a check that
    failed to fail) is killed with every process it started."""
    command = [sys.executable, "-m", "orchestrator", *args]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as process:
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            raise AssertionError(
                f"`orchestrator {' '.join(args)}` did not stop by itself:\n{output}"
            ) from None
    return process.returncode, output


def _said_plainly(output: str, *words: str) -> None:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], output


@pytest.fixture
def urls(settings) -> dict[str, str]:
    return {"DATABASE_URL": str(settings.database_url), "REDIS_URL": settings.redis_dsn}


def test_up_on_a_taken_port_says_so_before_starting_anything(service_env, tmp_path):
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _run(service_env | {"DATA_DIR": str(data_dir)}, "up", "--port", str(port))
    assert code == 1
    _said_plainly(output, "API_PORT", f"127.0.0.1:{port}", "already in use", "--port")
    assert not data_dir.exists()  # no embedded server was started, no migration, no worker


def test_api_on_a_taken_port_says_so(service_env, urls):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, output = _run(service_env | urls, "api", "--port", str(taken.getsockname()[1]))
    assert code == 1
    _said_plainly(output, "API_PORT", "already in use")


def test_worker_against_a_database_that_does_not_exist_names_it(service_env, urls, settings):
    missing = to_libpq_url(str(settings.database_url), "orchestrator_no_such_database")
    code, output = _run(service_env | urls | {"DATABASE_URL": missing}, "worker", "--processes", "1")
    assert code == 1
    _said_plainly(output, "DATABASE_URL", "orchestrator_no_such_database", "does not exist")


async def test_worker_against_a_database_without_the_schema_says_to_migrate(service_env, urls, settings):
    # A database of its own, made empty here: the server's maintenance database may hold anything.
    admin = to_libpq_url(str(settings.database_url), "postgres")
    bare = await create_database(admin, "orchestrator_bare")
    try:
        env = service_env | urls | {"DATABASE_URL": bare}
        code, output = await asyncio.to_thread(_run, env, "worker", "--processes", "1")
    finally:
        await drop_database(admin, bare)
    assert code == 1
    _said_plainly(output, "DATABASE_URL", "orchestrator migrate")


def test_worker_against_a_redis_that_does_not_answer_names_it(service_env, urls):
    silent = f"redis://127.0.0.1:{free_port()}/0"
    code, output = _run(service_env | urls | {"REDIS_URL": silent}, "worker", "--processes", "1")
    assert code == 1
    _said_plainly(output, "REDIS_URL", silent)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://someone:hunter2@127.0.0.1:{port}/orchestrator",
        "postgresql://someone@127.0.0.1:{port}/orchestrator?password=hunter2",
    ],
)
def test_migrate_against_a_database_that_does_not_answer_names_it_and_no_password(service_env, url):
    port = free_port()
    code, output = _run(service_env | {"DATABASE_URL": url.format(port=port)}, "migrate")
    assert code == 1
    _said_plainly(output, "DATABASE_URL", f"127.0.0.1:{port}/orchestrator", "cannot use", "start the server")
    assert "hunter2" not in output


def test_the_check_connects_as_the_service_does_with_its_url_options(service_env, settings):
    # What PgBouncer in transaction mode needs; asyncpg alone would refuse the option.
    url = (
        make_url(str(settings.database_url))
        .update_query_dict({"prepared_statement_cache_size": "0"})
        .render_as_string(hide_password=False)
    )
    code, output = _run(service_env | {"DATABASE_URL": url}, "migrate")
    assert code == 0, output


@pytest.mark.parametrize("url", ["redis://:pa/ss@127.0.0.1:6379/0", "redis://127.0.0.1:port/0"])
def test_a_redis_url_that_does_not_parse_is_one_line_without_its_password(service_env, urls, url):
    code, output = _run(service_env | urls | {"REDIS_URL": url}, "worker", "--processes", "1")
    assert code == 1
    _said_plainly(output, "REDIS_URL")
    assert "ss@" not in output


def test_a_setting_that_does_not_parse_is_named(service_env, urls):
    code, output = _run(service_env | urls | {"API_RATE_LIMIT": "lots"}, "migrate")
    assert code == 1
    _said_plainly(output, "invalid settings", "API_RATE_LIMIT", "not a rate limit")


def test_an_empty_database_url_means_unset(service_env):
    # What a copied .env may hold: `migrate` needs a server it is told about, and says so.
    code, output = _run(service_env | {"DATABASE_URL": "", "REDIS_URL": " "}, "migrate")
    assert code == 2
    assert "Traceback" not in output
    assert "DATABASE_URL not set" in output
