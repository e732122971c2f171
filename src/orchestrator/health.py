"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.settings import Settings
from orchestrator.web.problems import problems

if TYPE_CHECKING:
    from collections.abc import Awaitable


async def _check(probe: Awaitable[Any], timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await probe
    except Exception as exc:  # any failure means "not ready"; the kind is enough for an operator
        return f"unavailable ({type(exc).__name__})"
    return "ok"


async def _ping_postgres(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _ping_redis(redis: Redis) -> None:
    await redis.ping()


class HealthController(Controller):
    tags = ["health"]

    @get("/health")
    async def health(self) -> dict[str, str]:
        """The process is up and serving; says nothing about its dependencies."""
        return {"status": "ok"}

    @get("/ready", responses=problems(public=True))
    async def ready(
        self,
        db_engine: NamedDependency[AsyncEngine],
        redis: NamedDependency[Redis],
        settings: NamedDependency[Settings],
    ) -> Response[dict[str, Any]]:
        """200 when PostgreSQL and Redis both answer within the readiness timeout, else 503."""
        postgres, redis_state = await asyncio.gather(
            _check(_ping_postgres(db_engine), settings.ready_timeout_s),
            _check(_ping_redis(redis), settings.ready_timeout_s),
        )
        checks = {"postgres": postgres, "redis": redis_state}
        if all(state == "ok" for state in checks.values()):
            return Response({"status": "ok", "checks": checks}, status_code=HTTP_200_OK)
        failing = ", ".join(f"{name} {state}" for name, state in checks.items() if state != "ok")
        body = {
            "type": "about:blank",
            "status": HTTP_503_SERVICE_UNAVAILABLE,
            "title": "Service Unavailable",
            "detail": f"Not ready: {failing}",
            "checks": checks,
        }
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE, media_type="application/problem+json")
