"""Schemathesis against the live API and its own OpenAPI document: no 5xx, no answer off-schema.

Every operation gets its documented examples, the coverage phase's boundary and invalid
values, and 30 generated cases (valid and invalid), with a fixed seed so a failure repeats.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest.mark.timeout(600)
async def test_every_endpoint_survives_generated_input(start_api, service_env, api_key, tmp_path):
    api = await start_api(workers=1)

    fuzz = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{api.base_url}/schema/openapi.json",
        "--header", f"Authorization: Bearer {api_key}",
        "--checks", CHECKS, "--max-examples", "30", "--workers", "2",
        "--phases", "examples,coverage,fuzzing", "--seed", "1", "--generation-database", "none",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=service_env, cwd=tmp_path,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(fuzz.communicate(), timeout=540)

    assert fuzz.returncode == 0, output.decode()[-20_000:]
    api.assert_running()
