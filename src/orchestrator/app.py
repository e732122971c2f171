"""create_app(): the Litestar application, assembled from its plugins and controllers."""

from __future__ import annotations

import contextlib
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State  # noqa: TC002  (Litestar reads it at runtime)
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Reference, SecurityScheme
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.problem_details import ProblemDetailsPlugin
from opentelemetry import trace
from redis.asyncio import Redis  # noqa: TC002  (Litestar reads it at runtime)
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from orchestrator import metrics, tracing
from orchestrator.auth.live_keys import LiveKeys
from orchestrator.auth.middleware import ApiKeyMiddleware, authorize
from orchestrator.auth.rate_limit import RateLimiter
from orchestrator.db import engine_options, prepare
from orchestrator.health import HealthController
from orchestrator.job import registry_for
from orchestrator.leads.controllers import LeadController, LeadTaskController
from orchestrator.logs import configure_logging
from orchestrator.openapi import exact_request_schemas, operation_id
from orchestrator.queue import make_queue
from orchestrator.rates import parse_limit
from orchestrator.saq_ui import (
    saq_ui_controller,
    saq_ui_dependencies,
    saq_ui_signature_namespace,
    saq_ui_static,
)
from orchestrator.schedules.controllers import ScheduleController
from orchestrator.settings import Settings, get_settings
from orchestrator.tasks.controllers import JobTypeController, TaskController
from orchestrator.web.allow import AllowEveryMethod
from orchestrator.web.deliveries import deliver, request_deliveries
from orchestrator.web.docs import docs_router, swagger_ui_plugin
from orchestrator.web.edge import Edge
from orchestrator.web.json_only import json_bodies_only
from orchestrator.web.problems import internal_error_handler, problem_details_config
from orchestrator.web.transactions import committed_session
from orchestrator.workers.controllers import WorkerController

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.plugins import PluginProtocol


def create_app(settings: Settings | None = None) -> Litestar:
    """One app per process: Granian calls this in every worker, so engines and clients are per worker."""
    settings = settings or get_settings()
    engine = prepare(create_async_engine(settings.sqlalchemy_url, **engine_options(settings)), settings)
    metrics.watch_pool(engine, "api")
    plugins: list[PluginProtocol] = []
    if tracing.start(settings, "orchestrator-api"):
        plugins.append(OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=trace.get_tracer_provider())))
    alchemy = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        # A plain session maker: advanced-alchemy's own adds listeners to every session, one of
        # which stamps updated_at with this host's clock (the database's clock decides here),
        # another of which builds an engine per commit.
        session_maker=async_sessionmaker(engine, expire_on_commit=False),
        # The request owns the transaction: handlers get `db_session`, committed by
        # `committed_session` before the answer; the hook rolls back every error answer.
        session_dependency_key="request_session",
        before_send_handler="autocommit",
        create_all=False,
    )

    registry = registry_for(settings)

    default_rate_limit = parse_limit(settings.api_rate_limit) if settings.api_rate_limit else None
    failure_limit = parse_limit(settings.api_key_failure_limit)

    @asynccontextmanager
    async def per_process(app: Litestar) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.registry = registry
        app.state.autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.queue = make_queue(settings)
        app.state.live_keys = LiveKeys(
            alchemy.create_session_maker(),
            settings.api_key_cache_s,
            # A load may take a pooled connection's wait and one statement's time, no longer.
            load_timeout_s=settings.db_pool_timeout_s + settings.db_statement_timeout_ms / 1000,
        )
        app.state.rate_limiter = RateLimiter(settings, default_rate_limit, failure_limit)
        exact_request_schemas(app.openapi_schema, registry)
        await app.state.rate_limiter.warm_up()
        try:
            yield
        finally:
            # Under Ctrl-C an embedded Redis may already be gone; nothing is left to flush.
            with contextlib.suppress(RedisError, OSError):
                await app.state.queue.disconnect()

    if not logging.getLogger().handlers:  # a worker process spawned, not forked, by Granian
        configure_logging(settings.log_level, settings.log_format)
    app = Litestar(
        route_handlers=[HealthController, saq_ui_static(), _protected()],
        plugins=[
            SQLAlchemyPlugin(config=alchemy),
            ProblemDetailsPlugin(problem_details_config(settings.max_request_body_bytes)),
            *plugins,
        ],
        dependencies={
            "db_session": Provide(committed_session),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "registry": Provide(lambda: registry, sync_to_thread=False),
            "redis": Provide(_redis_from_state, sync_to_thread=False),
            "deliveries": Provide(request_deliveries, sync_to_thread=False),
            **saq_ui_dependencies,
        },
        exception_handlers={Exception: internal_error_handler},
        after_response=deliver,
        before_send=[AllowEveryMethod()],
        signature_namespace=saq_ui_signature_namespace,
        lifespan=[per_process],
        request_max_body_size=settings.max_request_body_bytes,
        cors_config=_cors(settings),
        openapi_config=OpenAPIConfig(
            title="orchestrator",
            version="0.1.0",
            openapi_router=docs_router(),
            render_plugins=[swagger_ui_plugin()],
            components=Components(security_schemes=SECURITY_SCHEMES),
            operation_id_creator=operation_id,
        ),
        # The process's own logging (orchestrator.logs), set up by the command before Granian
        # forks its workers; the catch-all exception handler logs what it answers with a 500.
        logging_config=None,
    )
    http_metrics = settings.metrics_port != 0
    app.asgi_handler = Edge(app.asgi_handler, http_metrics=http_metrics, access_log=settings.access_log)
    return app


SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer <API key>"),
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
}


def _protected() -> Router:
    """Every route that needs an API key: looked up, rate-limited, then its scope checked."""
    return Router(
        path="/",
        route_handlers=[
            LeadController,
            TaskController,
            LeadTaskController,
            JobTypeController,
            ScheduleController,
            WorkerController,
            saq_ui_controller(),
        ],
        middleware=[DefineMiddleware(ApiKeyMiddleware)],
        guards=[authorize, json_bodies_only],
        security=[{"bearer": []}, {"apiKey": []}],
    )


def _redis_from_state(state: State) -> Redis:
    redis: Redis = state.queue.redis
    return redis


def _cors(settings: Settings) -> CORSConfig | None:
    """Off unless origins are configured: a browser on another site gets no answer to read."""
    if not settings.cors_allow_origins:
        return None
    return CORSConfig(
        allow_origins=settings.cors_allow_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Content-Type", "If-Match", "Idempotency-Key", "Authorization", "X-API-Key"],
        expose_headers=["ETag", "Location", "Retry-After", "Idempotent-Replayed"],
    )
