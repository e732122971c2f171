"""`orchestrator up` with no URLs: embedded servers, migrations, API; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import signal

import httpx
import psutil

from load.service import Service, free_port
from tests.factories import lead_body
from tests.helpers import bearer


def _processes_using(path: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(path in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


async def test_up_runs_on_embedded_servers_keeps_data_and_cleans_up(service_env, services, apikey, tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    # Blank URLs, as a copied .env may hold them, mean unset: embedded servers.
    env = service_env | {
        "DATA_DIR": str(data_dir),
        "API_PORT": str(port),
        "DATABASE_URL": "",
        "REDIS_URL": "",
    }
    up = Service(["up", "--workers", "1"], env, tmp_path / "up.log", port)
    services.append(up)

    data_dir.mkdir()
    stale = data_dir / "dev-api-key"
    stale.write_text("orch_stale\n")
    stale.chmod(0o644)
    up.start()
    await up.wait_ready()
    key = (data_dir / "dev-api-key").read_text().strip()
    assert key != "orch_stale"
    assert f"API key (admin, kept in {data_dir / 'dev-api-key'}): {key}" in up.log.read_text()
    # What an operator needs at start-up, and no more: not a line per Alembic plugin loaded.
    assert "plugin" not in up.log.read_text()
    assert (data_dir / "dev-api-key").stat().st_mode & 0o077 == 0  # the owner's alone
    async with httpx.AsyncClient(base_url=up.base_url, headers=bearer(key)) as client:
        created = await client.post("/leads", json=lead_body(company="Embedded"))
        assert created.status_code == 201
        assert (await client.get("/saq/api/queues")).status_code == 200
        assert (await client.get("/leads", headers={"Authorization": ""})).status_code == 401
        # `apikey` with no DATABASE_URL joins the embedded server that `up` is running.
        code, made, err = await asyncio.to_thread(
            apikey, "create", "--name", "ci", "--scope", "read", env=env
        )
        assert code == 0, err
        assert (await client.get("/leads", headers=bearer(made.strip()))).status_code == 200
    assert up.stop(signal.SIGTERM) == 0
    assert _processes_using(str(data_dir)) == [], up.log.read_text()

    up.start()
    await up.wait_ready()
    async with httpx.AsyncClient(base_url=up.base_url, headers=bearer(key)) as client:  # the same key
        read = await client.get(created.headers["location"])
    assert up.log.read_text().count(key) == 1  # shown when made, not on every start
    assert read.status_code == 200
    assert read.json()["company"] == "Embedded"
    up.stop(signal.SIGINT)
    assert _processes_using(str(data_dir)) == [], up.log.read_text()


async def test_a_clean_stop_after_a_crash_stops_the_embedded_server_the_crash_left(
    service_env, services, tmp_path
):
    data_dir = tmp_path / "data"
    port = free_port()
    env = service_env | {"DATA_DIR": str(data_dir), "API_PORT": str(port), "WORKER_PROCESSES": "1"}
    up = Service(["up", "--workers", "1"], env, tmp_path / "up.log", port)
    services.append(up)
    try:
        up.start()
        await up.wait_ready()
        up.stop(signal.SIGKILL)  # every process of `up`; PostgreSQL runs on, detached
        assert _processes_using(str(data_dir / "postgres")), "the crash took PostgreSQL with it"

        up.start()  # joins the server the crash left running
        await up.wait_ready()
        assert up.stop(signal.SIGTERM) == 0
        assert _processes_using(str(data_dir)) == [], up.log.read_text()
    finally:
        for process in _processes_using(str(data_dir)):  # whatever a failure left behind
            process.kill()
