"""Schemathesis against the live API and its own OpenAPI document, with every check on: no 5xx,
no answer off its schema or its documented status codes, every request the schema allows
accepted and every request it forbids refused.

Every operation gets its documented examples, the coverage phase's boundary and invalid values,
and generated cases, with a fixed seed so that a failure repeats. `make test` runs 30 cases per
operation; `make fuzz` runs FUZZ_EXAMPLES (default 300) with a seed of its own choosing.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = os.environ.get("FUZZ_EXAMPLES") or "30"
SEED = os.environ.get("FUZZ_SEED") or "1"


@pytest.mark.timeout(3600)
async def test_every_endpoint_answers_generated_input_as_its_schema_says(
    start_api, service_env, api_key, tmp_path
):
    # The fuzzer sends many wrong keys on purpose; the per-address limit on them would answer
    # 429 where the check for invalid credentials rightly expects 401.
    api = await start_api(workers=1, API_KEY_FAILURE_LIMIT="100000/second")
    env = service_env | {
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), service_env.get("PYTHONPATH")])),
    }

    fuzz = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", f"{api.base_url}/schema/openapi.json",
        "--header", f"Authorization: Bearer {api_key}",
        "--checks", "all", "--max-examples", EXAMPLES, "--workers", "2",
        "--phases", "examples,coverage,fuzzing", "--seed", SEED, "--generation-database", "none",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(fuzz.communicate(), timeout=3500)

    text = output.decode()
    assert fuzz.returncode == 0, text[-20_000:]
    # Every operation was tested, and the schema's examples were there to be sent.
    selected = re.search(r"Selected: (\d+)/(\d+)", text)
    assert selected is not None, text
    assert selected[1] == selected[2], text
    assert "✅ Examples" in text, text
    api.assert_running()
