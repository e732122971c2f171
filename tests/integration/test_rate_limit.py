"""A request rate per API key, counted in Redis: one count for all API processes, 429 past it."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from litestar.testing import AsyncTestClient
from pydantic import ValidationError

from orchestrator.app import create_app
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from orchestrator.settings import Settings
from tests.helpers import bearer


async def limited_key(settings: Settings, rate_limit: str) -> str:
    return await issue_key(settings, f"limited-{uuid.uuid4().hex[:8]}", Scope.READ, rate_limit)


async def test_past_its_limit_a_key_gets_429_with_retry_after_and_others_do_not(client, settings, api_key):
    key = await limited_key(settings, "5/minute")
    answers = [(await client.get("/jobs", headers=bearer(key))).status_code for _ in range(7)]
    refused = await client.get("/jobs", headers=bearer(key))

    assert answers == [200] * 5 + [429] * 2
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["limit"] == "5 per 1 minute"
    assert "rate limit of 5 per 1 minute" in refused.json()["detail"]
    assert (await client.get("/jobs", headers=bearer(api_key))).status_code == 200


async def test_the_count_is_shared_by_every_api_process(settings):
    key = await limited_key(settings, "6/minute")
    async with (
        AsyncTestClient(app=create_app(settings)) as one,
        AsyncTestClient(app=create_app(settings)) as two,
    ):
        answers = [(await client.get("/jobs", headers=bearer(key))).status_code for client in (one, two) * 4]
    assert sorted(answers) == [200] * 6 + [429] * 2


async def test_the_default_limit_applies_to_keys_without_their_own(settings):
    key = await issue_key(settings, f"default-{uuid.uuid4().hex[:8]}", Scope.READ)
    async with AsyncTestClient(
        app=create_app(settings.model_copy(update={"api_rate_limit": "2/minute"}))
    ) as client:
        answers = [(await client.get("/jobs", headers=bearer(key))).status_code for _ in range(3)]
    assert answers == [200, 200, 429]


async def test_with_redis_unreachable_requests_are_let_through(settings):
    key = await limited_key(settings, "1/minute")
    no_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0", "redis_timeout_s": 0.5})
    async with AsyncTestClient(app=create_app(no_redis)) as client:
        answers = [(await client.get("/jobs", headers=bearer(key))).status_code for _ in range(3)]
    assert answers == [200, 200, 200]  # 1/minute: Redis would have refused the second


@pytest.mark.parametrize("value", ["lots", "100/fortnight", "-1/second"])
def test_a_limit_that_does_not_parse_is_refused_at_start_up(value):
    with pytest.raises(ValidationError, match="not a rate limit"):
        Settings(_env_file=None, api_rate_limit=value)  # type: ignore[call-arg]


async def test_the_window_moves_the_oldest_requests_out(client, settings):
    key = await limited_key(settings, "2/second")
    first = [(await client.get("/jobs", headers=bearer(key))).status_code for _ in range(3)]
    await asyncio.sleep(1.1)  # both counted requests are now over a second old
    assert first == [200, 200, 429]
    assert (await client.get("/jobs", headers=bearer(key))).status_code == 200


async def test_a_redis_that_hangs_does_not_hold_requests(settings):
    """A server that accepts and never answers: each check gives up early, then they pause."""
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = await limited_key(settings, "1/minute")
    silent = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    try:
        async with AsyncTestClient(app=create_app(silent)) as client:
            began = time.monotonic()
            answers = [(await client.get("/jobs", headers=bearer(key))).status_code for _ in range(5)]
            took = time.monotonic() - began
    finally:
        server.close()
    assert answers == [200] * 5
    assert took < settings.redis_timeout_s  # the client's own timeout would have held each one 5 s


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0/second", "1 to 100,000"),
        ("1000000/second", "1 to 100,000"),
        ("10/second;100/minute", "one rate limit only"),
        ("1" * 60 + "/second", "at most 50 characters"),
    ],
)
def test_limits_that_cannot_be_kept_are_refused_naming_why(value, reason):
    with pytest.raises(ValidationError, match=reason):
        Settings(_env_file=None, api_rate_limit=value)  # type: ignore[call-arg]
