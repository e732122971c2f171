"""CORS is off unless origins are configured, and then allows exactly those."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from orchestrator.app import create_app

ORIGIN = "https://app.example.com"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}


async def test_without_configured_origins_no_cors_header_is_sent(client):
    read = await client.get("/leads", headers={"Origin": ORIGIN})
    preflight = await client.options("/leads", headers=PREFLIGHT)

    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_configured_origins_are_allowed_and_no_others(settings):
    app = create_app(settings.model_copy(update={"cors_allow_origins": [ORIGIN]}))
    async with AsyncTestClient(app=app) as client:
        allowed = await client.options("/leads", headers=PREFLIGHT)
        read = await client.get("/leads", headers={"Origin": ORIGIN})
        other = await client.get("/leads", headers={"Origin": "https://evil.example.net"})

    assert allowed.status_code in {200, 204}
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert read.headers["access-control-allow-origin"] == ORIGIN
    assert "etag" in read.headers.get("access-control-expose-headers", "").lower()
    assert "access-control-allow-origin" not in other.headers
