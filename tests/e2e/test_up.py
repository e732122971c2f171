"""`orchestrator up` with no URLs: embedded servers, migrations, API; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import signal

import httpx
import psutil

from load.service import Service, free_port
from tests.factories import lead_body


def _processes_using(path: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(path in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


async def test_up_runs_on_embedded_servers_keeps_data_and_cleans_up(service_env, services, tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    env = service_env | {"DATA_DIR": str(data_dir), "API_PORT": str(port)}
    up = Service(["up", "--workers", "1"], env, tmp_path / "up.log", port)
    services.append(up)

    up.start()
    await up.wait_ready()
    async with httpx.AsyncClient(base_url=up.base_url) as client:
        created = await client.post("/leads", json=lead_body(company="Embedded"))
        assert created.status_code == 201
    assert up.stop(signal.SIGTERM) == 0
    assert _processes_using(str(data_dir)) == [], up.log.read_text()

    up.start()
    await up.wait_ready()
    async with httpx.AsyncClient(base_url=up.base_url) as client:
        read = await client.get(created.headers["location"])
    assert read.status_code == 200
    assert read.json()["company"] == "Embedded"
    up.stop(signal.SIGINT)
    assert _processes_using(str(data_dir)) == [], up.log.read_text()
