"""Schemathesis against the live API and its own OpenAPI document: no 5xx, no answer off-schema.

Every operation gets its documented examples, the coverage phase's boundary and invalid
values, and 30 generated cases (valid and invalid), with a fixed seed so a failure repeats.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from load.service import Service, free_port

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest.mark.timeout(600)
async def test_every_endpoint_survives_generated_input(settings, service_env, services, tmp_path):
    env = service_env | {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_dsn}
    port = free_port()
    api = Service(["api", "--workers", "1", "--port", str(port)], env, tmp_path / "api.log", port)
    services.append(api)
    api.start()
    await api.wait_ready()

    fuzz = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{api.base_url}/schema/openapi.json",
        "--checks", CHECKS, "--max-examples", "30", "--workers", "2",
        "--phases", "examples,coverage,fuzzing", "--seed", "1", "--generation-database", "none",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(fuzz.communicate(), timeout=540)

    assert fuzz.returncode == 0, output.decode()[-20_000:]
    api.assert_running()
