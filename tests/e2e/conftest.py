"""Real `orchestrator` processes on loopback, stopped with real signals."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from load.service import Service, free_port
from orchestrator.db import in_transaction
from tests.helpers import TEST_RATE_LIMIT, app_client, settings_env

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path

    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from orchestrator.settings import Settings


@pytest.fixture(autouse=True)
async def no_schedule_left(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A schedule a test made (the fuzzer makes many) would fire into every later test's workers."""
    yield
    if "settings" in request.fixturenames:
        settings: Settings = request.getfixturevalue("settings")
        await in_transaction(settings, lambda session: session.execute(text("DELETE FROM schedules")))


@pytest.fixture
def service_env() -> dict[str, str]:
    """The caller's environment minus settings that would leak into the service under test."""
    keep = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "API_PORT"}}
    return keep | {
        "PYTHONUNBUFFERED": "1",
        "API_RATE_LIMIT": TEST_RATE_LIMIT,
        "API_KEY_FAILURE_LIMIT": TEST_RATE_LIMIT,
        "TEST_JOB_TYPES": "true",
        "METRICS_PORT": "0",
    }


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.kill_leftovers()


@pytest.fixture
def start_api(
    settings: Settings, service_env: dict[str, str], services: list[Service], tmp_path: Path
) -> Callable[..., Awaitable[Service]]:
    """`orchestrator api` on a free port against the session's servers, ready when returned."""

    async def start(workers: int = 2, **extra_env: str) -> Service:
        # The session's own queue too: on a shared Redis the default one may be anybody's.
        env = service_env | {
            "DATABASE_URL": str(settings.database_url),
            "REDIS_URL": settings.redis_dsn,
            "QUEUE_NAME": settings.queue_name,
        }
        env |= extra_env
        port = free_port()
        args = ["api", "--workers", str(workers), "--port", str(port)]
        api = Service(args, env, tmp_path / "api.log", port)
        services.append(api)
        api.start()
        await api.wait_ready()
        return api

    return start


@pytest.fixture
def apikey(service_env: dict[str, str], settings: Settings) -> Callable[..., tuple[int, str, str]]:
    """`orchestrator apikey ...` as a user runs it, on the session's database unless `env` says
    otherwise: (exit code, stdout, stderr)."""

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "apikey", *args],
            env=service_env | (env if env is not None else {"DATABASE_URL": str(settings.database_url)}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    return run


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    """Settings a module gives its workers on top of the session's (override in the module)."""
    return {}


@pytest.fixture(scope="module")
def worker_service(
    settings: Settings, worker_extra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """`orchestrator worker --processes 2` for the tests of one module."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= settings_env(settings) | {"PYTHONUNBUFFERED": "1"} | worker_extra_env
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = Service(["worker", "--processes", "2", "--concurrency", "10"], env, log)
    worker.start()
    yield worker
    worker.kill_leftovers()


@pytest.fixture
def workers(worker_service: Service) -> Service:
    """The module's worker processes, checked alive before each test that uses them."""
    worker_service.assert_running()
    return worker_service


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for email_send's .eml files (point EMAIL_OUTBOX_DIR at it)."""
    return tmp_path_factory.mktemp("outbox")


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """A folder for the `flaky` job's marker files: one per attempt started or cancelled."""
    return tmp_path


@pytest.fixture(scope="module")
async def api(settings: Settings, api_key: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with app_client(settings, api_key) as client:
        yield client
