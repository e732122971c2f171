"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from orchestrator.app import create_app


async def test_health_is_200(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_postgres_and_redis_answer(client):
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_not_ready_is_503_problem_naming_what_is_down(settings):
    # Nothing listens on port 1: the Redis check fails fast, PostgreSQL still answers.
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "ready_timeout_s": 1.0})
    async with AsyncTestClient(app=create_app(broken)) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["checks"]["postgres"] == "ok"
    assert problem["checks"]["redis"].startswith("unavailable")
    assert "redis" in problem["detail"]


async def test_openapi_document_lists_every_endpoint(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/health", "/ready", "/leads", "/leads/{lead_id}"} <= set(schema["paths"])
    assert (await client.get("/schema")).status_code == 200


async def test_unknown_route_and_method_are_problems(client):
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_method = await client.put("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("application/problem+json")
