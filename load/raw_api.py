"""The equal-work baseline of `load/bench_api.py`: the API's hot routes as plain Litestar
handlers on raw asyncpg, with no ORM, no validation models and no idempotency.

Each does the same work as the service's route, statement for statement and call for call:
the key looked up by its hash in memory, one rate-limit hit in Redis (the same moving-window
script), one SQL statement (a lead write with its crm_update task and that task's first event;
a task with its event; one SELECT), and the SAQ enqueue after the response is sent. It writes
into the same tables, indexes and constraints, so what remains between the two is the cost of
the service's own layers.

    python -m load.raw_api --port 8100 --workers 2     (DATABASE_URL, REDIS_URL, QUEUE_NAME)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import uuid
from typing import Any

import asyncpg
from limits import parse as parse_limit
from litestar import Litestar, Request, Response, get, post, put
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import HTTPException, NotAuthorizedException, TooManyRequestsException
from uuid_utils.compat import uuid7

from orchestrator.auth.rate_limit import RateLimiter
from orchestrator.queue import Delivery, enqueue, make_queue
from orchestrator.settings import Settings, to_libpq_url

JOB_TTL_S = 600
LEAD_FIELDS = ("first_name", "last_name", "email", "phone", "company", "source", "status", "score")
# The lead's columns in the order of its JSON answer.
LEAD_COLUMNS = "id, first_name, last_name, email, phone, company, source, status, score, attributes, version, created_at, updated_at"  # noqa: E501

# What the service's SyncedWrites.create does in a flush and transitions.record: the lead, its
# crm_update task and the task's first event, here in one statement.
_CRM_TASK = """
    task AS (
        INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, run_at)
        SELECT $11, 'crm_update', 'PENDING', jsonb_build_object('lead_id', lead.id::text), 0, 5,
               lead.id, now()
        FROM lead
        RETURNING id, attempts, run_at, updated_at
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt)
        SELECT id, NULL, 'PENDING', 0 FROM task
    )
    SELECT lead.*, task.id AS task_id, task.attempts AS task_attempts, task.run_at AS task_run_at,
           task.updated_at AS task_updated_at
    FROM lead, task
"""
CREATE_LEAD = f"""
    WITH lead AS (
        INSERT INTO leads (id, first_name, last_name, email, phone, company, source, status, score,
                           attributes, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'new'), $9, $10, 1)
        RETURNING {LEAD_COLUMNS}
    ), {_CRM_TASK}
"""
REPLACE_LEAD = f"""
    WITH lead AS (
        UPDATE leads SET first_name = $2, last_name = $3, email = $4, phone = $5, company = $6,
                         source = $7, status = coalesce($8, 'new'), score = $9, attributes = $10,
                         version = version + 1, updated_at = now()
        WHERE id = $1
        RETURNING {LEAD_COLUMNS}
    ), {_CRM_TASK}
"""
SUBMIT_TASK = """
    WITH task AS (
        INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, run_at)
        VALUES ($1, $2, 'PENDING', $3, 0, 3, $4, now())
        RETURNING *
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt)
        SELECT id, NULL, 'PENDING', 0 FROM task
    )
    SELECT * FROM task
"""
GET_LEAD = f"SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1"


class Deliverable:
    def __init__(self, row: asyncpg.Record, prefix: str = "") -> None:
        self.id = row[f"{prefix}id"]
        self.attempts = row[f"{prefix}attempts"]
        self.run_at = row[f"{prefix}run_at"]
        self.updated_at = row[f"{prefix}updated_at"]


def _lead_json(row: asyncpg.Record) -> dict[str, Any]:
    return {name: row[name] for name in LEAD_COLUMNS.split(", ")}


async def _caller(request: Request[Any, Any, Any]) -> None:
    """The same work as the service's middleware: the key's hash looked up, one hit counted."""
    state = request.app.state
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    found = state.api_keys.get(hashlib.sha256(key.encode()).hexdigest()) if scheme == "Bearer" else None
    if found is None:
        raise NotAuthorizedException("wrong key")
    key_id, limit = found
    if not await state.limiter._hit(limit, f"key:{key_id}"):
        raise TooManyRequestsException("rate limit")


def _enqueued(request: Request[Any, Any, Any], task: Deliverable) -> BackgroundTask:
    return BackgroundTask(enqueue, request.app.state.queue, [Delivery.of(task)], JOB_TTL_S)


def _lead_args(lead_id: uuid.UUID, data: dict[str, Any]) -> list[Any]:
    return [
        lead_id,
        *(data.get(name) for name in LEAD_FIELDS),
        json.dumps(data.get("attributes", {})),
        uuid7(),
    ]


@post("/leads", status_code=201)
async def create_lead(request: Request[Any, Any, Any], data: dict[str, Any]) -> Response[Any]:
    await _caller(request)
    lead_id = uuid7()
    try:
        row = await request.app.state.pool.fetchrow(CREATE_LEAD, *_lead_args(lead_id, data))
    except asyncpg.UniqueViolationError:
        raise HTTPException(status_code=409, detail="email taken") from None
    return Response(
        _lead_json(row),
        status_code=201,
        headers={"ETag": f'"{row["version"]}"', "Location": f"/leads/{lead_id}"},
        background=_enqueued(request, Deliverable(row, "task_")),
    )


@put("/leads/{lead_id:uuid}")
async def replace_lead(
    request: Request[Any, Any, Any], lead_id: uuid.UUID, data: dict[str, Any]
) -> Response[Any]:
    await _caller(request)
    row = await request.app.state.pool.fetchrow(REPLACE_LEAD, *_lead_args(lead_id, data))
    if row is None:
        raise HTTPException(status_code=404, detail="no such lead")
    return Response(
        _lead_json(row),
        headers={"ETag": f'"{row["version"]}"'},
        background=_enqueued(request, Deliverable(row, "task_")),
    )


@get("/leads/{lead_id:uuid}")
async def get_lead(request: Request[Any, Any, Any], lead_id: uuid.UUID) -> Response[Any]:
    await _caller(request)
    row = await request.app.state.pool.fetchrow(GET_LEAD, lead_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no such lead")
    return Response(_lead_json(row), headers={"ETag": f'"{row["version"]}"'})


@post("/tasks", status_code=202)
async def submit_task(request: Request[Any, Any, Any], data: dict[str, Any]) -> Response[Any]:
    await _caller(request)
    lead_id = data.get("lead_id")
    row = await request.app.state.pool.fetchrow(
        SUBMIT_TASK,
        uuid7(),
        data["type"],
        json.dumps(data.get("payload", {})),
        uuid.UUID(lead_id) if lead_id else None,
    )
    task = dict(row)
    return Response(
        task,
        status_code=202,
        headers={"Location": f"/tasks/{row['id']}"},
        background=_enqueued(request, Deliverable(row)),
    )


async def _start(app: Litestar) -> None:
    settings = Settings()
    pool_max = settings.db_pool_size + settings.db_max_overflow
    app.state.pool = await asyncpg.create_pool(
        to_libpq_url(str(settings.database_url)),
        min_size=settings.db_pool_size,
        max_size=pool_max,
        init=_json_codecs,
        # No reset round trip on release (asyncpg's default runs one): these handlers leave no
        # session state behind, and the baseline should be the leanest the driver allows.
        reset=_keep,
    )
    rows = await app.state.pool.fetch(
        "SELECT id, key_hash, rate_limit FROM api_keys WHERE rate_limit IS NOT NULL"
    )
    app.state.api_keys = {row["key_hash"]: (row["id"], parse_limit(row["rate_limit"])) for row in rows}
    app.state.limiter = RateLimiter(settings, None, parse_limit(settings.api_key_failure_limit))
    app.state.queue = make_queue(settings)


async def _keep(_: asyncpg.Connection) -> None:
    return None


async def _json_codecs(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=str, decoder=json.loads, schema="pg_catalog")


async def _stop(app: Litestar) -> None:
    await app.state.pool.close()
    await app.state.queue.disconnect()


def create_app() -> Litestar:
    return Litestar(
        [create_lead, replace_lead, get_lead, submit_task],
        on_startup=[_start],
        on_shutdown=[_stop],
        openapi_config=None,
        debug=bool(os.environ.get("RAW_API_DEBUG")),
    )


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The service's Granian settings (orchestrator.cli.service.serve_api).
    Granian(
        "load.raw_api:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address="127.0.0.1",
        port=args.port,
        workers=args.workers,
        loop=Loops.uvloop,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
