"""Schemathesis against the live API and its own OpenAPI document, with every check on: no 5xx,
no answer off its schema or its documented status codes, every request the schema allows
accepted and every request it forbids refused.

Every operation gets its documented examples, the coverage phase's boundary and invalid values,
and generated cases, with a fixed seed so that a failure repeats. `make test` runs 30 cases per
operation; `make fuzz` runs FUZZ_EXAMPLES (default 300) with a seed of its own choosing.

Schemathesis sends what the document describes: JSON bodies. What it does not send is sent by
hand: bodies under other content types (415 unless JSON), and JSON nested to every depth up to
past the decoder's limit (a 4xx, never a 5xx).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.json_bounds import MAX_DEPTH
from orchestrator.web.json_only import JSON_MEDIA_TYPE

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = os.environ.get("FUZZ_EXAMPLES") or "30"
SEED = os.environ.get("FUZZ_SEED") or "1"
# msgspec refuses JSON nested deeper than this before any of our code sees it (400).
DECODER_DEPTH = 1000


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


# Media types a client may send: JSON's own spellings, its +json kin, and the ones a page on
# another site can send without asking (forms, plain text), with parameters and odd cases.
_JSON_TYPES = [
    "application/json",
    "APPLICATION/JSON",
    "application/merge-patch+json",
    "application/vnd.api+json",
]
_OTHER_TYPES = [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json",
    "application/jsonx", "application/x-json", "application/json-seq", "*/*", "application/*", "json", "",
]  # fmt: skip
_PARAMETERS = ["", "; charset=utf-8", ";charset=UTF-8", " ; q=1", "; boundary=--x"]


def _media_types(rng: random.Random, count: int) -> list[tuple[str, bool]]:
    """(Content-Type, is it JSON) pairs: each listed type, then random types and parameters."""
    tokens = ["application", "text", "json", "x-json", "vnd.a+json", "plain", "xml", "form-data", "+json"]
    pairs = [(media_type, True) for media_type in _JSON_TYPES] + [
        (media_type, False) for media_type in _OTHER_TYPES
    ]
    for _ in range(count):
        media_type = f"{rng.choice(tokens)}/{rng.choice(tokens)}"
        is_json = bool(JSON_MEDIA_TYPE.fullmatch(media_type))
        pairs.append((media_type + rng.choice(_PARAMETERS), is_json))
    return pairs


async def _body_operations(client: httpx.AsyncClient) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of the document that takes a body: (method, path, a valid body)."""
    lead = (await client.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    # Paused: it must never fire into the tests that come after.
    schedule = (
        await client.post(
            "/schedules",
            json={"name": uuid.uuid4().hex, "type": "noop", "cron": "0 3 1 1 *", "enabled": False},
        )
    ).json()
    bodies = {"/leads": {"email": "x@example.com"}, "/tasks": {"type": "noop"}, "/tasks/batch": {"tasks": []}}
    document = (await client.get("/schema/openapi.json")).json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                template = path.split("/{")[0]
                path = path.replace("{lead_id}", lead["id"]).replace("{schedule_id}", schedule["id"])
                found.append((method.upper(), path, bodies.get(template, {})))
    return found


async def test_every_body_takes_json_only_and_any_depth_is_a_4xx(start_api, api_key):
    api = await start_api(workers=1)
    rng = random.Random(SEED)
    async with httpx.AsyncClient(
        base_url=api.base_url, headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        operations = await _body_operations(client)
        assert {path.split("/{")[0] for _, path, _ in operations} >= {"/leads", "/tasks", "/tasks/batch"}
        for method, path, body in operations:
            for media_type, is_json in _media_types(rng, int(EXAMPLES)):
                headers = {"Content-Type": media_type, "If-Match": "*"}
                response = await client.request(method, path, content=json.dumps(body), headers=headers)
                if is_json:
                    assert response.status_code not in (415, 500), (method, path, media_type, response.text)
                else:
                    assert response.status_code == 415, (method, path, media_type, response.text)
            # Every depth up to past the decoder's limit, as the whole body and inside it.
            for depth in range(1, DECODER_DEPTH + 20):
                for content in ("[" * depth + "]" * depth, _nested_in(body, depth)):
                    response = await client.request(
                        method,
                        path,
                        content=content,
                        headers={"Content-Type": "application/json", "If-Match": "*"},
                    )
                    assert response.status_code < 500, (method, path, depth, response.text[:500])
                    if depth > MAX_DEPTH + 2:
                        assert 400 <= response.status_code < 500, (method, path, depth, response.text[:500])
    api.assert_running()


def _nested_in(body: dict[str, Any], depth: int) -> str:
    """`body` with a free-form value nested `depth` deep, written by hand (json.dumps recurses)."""
    deep = '{"a":' * (depth - 1) + "1" + "}" * (depth - 1)
    field = "payload" if "type" in body else "attributes" if "email" in body or not body else "tasks"
    if field == "tasks":
        return f'{{"tasks":[{{"type":"noop","payload":{{"echo":{deep}}}}}]}}'
    return json.dumps(body)[:-1] + ("," if body else "") + f'"{field}":{{"echo":{deep}}}}}'
