"""Routes marked ONE_STATEMENT run without BEGIN and COMMIT: each must be exactly one statement,
or a failure between two of them would leave half a write behind."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from orchestrator.web.transactions import ONE_STATEMENT

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient


class Statements:
    """Every statement the app's engine runs, but the API-key loads of the auth middleware, and
    whether it ran outside a transaction (the driver connection in autocommit)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.autocommit: list[bool] = []

    def __call__(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "api_keys" not in statement:
            self.seen.append(" ".join(statement.split())[:120])
            self.autocommit.append(conn.connection.dbapi_connection.autocommit)


async def _statements_of(
    client: AsyncTestClient[Litestar], method: str, path: str, **kwargs: Any
) -> Statements:
    statements = Statements()
    event.listen(Engine, "before_cursor_execute", statements)
    try:
        response = await client.request(method, path, **kwargs)
    finally:
        event.remove(Engine, "before_cursor_execute", statements)
    assert response.status_code < 300, response.text
    return statements


async def test_every_one_statement_route_runs_one_statement(client: AsyncTestClient[Litestar]) -> None:
    lead = (await client.post("/leads", json={"email": f"one-{uuid.uuid4().hex}@example.com"})).json()
    requests = {
        ("GET", "/leads/{lead_id:uuid}"): {"path": f"/leads/{lead['id']}"},
        ("POST", "/tasks"): {"path": "/tasks", "json": {"type": "noop", "lead_id": lead["id"]}},
        ("POST", "/leads"): {"path": "/leads", "json": {"email": f"two-{uuid.uuid4().hex}@example.com"}},
        ("PUT", "/leads/{lead_id:uuid}"): {"path": f"/leads/{lead['id']}", "json": {"phone": "+12125550100"}},
    }
    marked = {
        (method, route.path)
        for route in client.app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.opt.get(ONE_STATEMENT)
        for method in handler.http_methods
    }
    assert marked, "no route is marked ONE_STATEMENT"
    assert marked <= set(requests), f"a marked route this test does not send: {marked - set(requests)}"
    for method, route in sorted(marked):
        kwargs = dict(requests[method, route])
        statements = await _statements_of(client, method, kwargs.pop("path"), **kwargs)
        assert len(statements.seen) == 1, f"{method} {route} ran {statements.seen}"
        assert statements.autocommit == [True], f"{method} {route} ran in a transaction"


async def test_an_idempotency_key_puts_the_write_back_in_a_transaction(
    client: AsyncTestClient[Litestar],
) -> None:
    """The key's claim, the write and the stored answer commit together, or not at all."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"email": f"key-{uuid.uuid4().hex}@example.com"}
    statements = await _statements_of(client, "POST", "/leads", json=body, headers=headers)
    assert len(statements.seen) == 3, statements.seen
    assert not any(statements.autocommit), statements.seen


async def test_a_request_refused_before_its_handler_takes_no_connection(
    client: AsyncTestClient[Litestar],
) -> None:
    """A malformed request must not hold one of the pool's connections (nor wait for one)."""
    checkouts: list[object] = []

    def count(*args: Any) -> None:
        checkouts.append(args)

    event.listen(Pool, "checkout", count)
    try:
        for path in (f"/leads/{uuid.uuid4()}", "/tasks"):
            response = await client.request("PUT" if "leads" in path else "POST", path, json={"email": 1})
            assert response.status_code == 422, response.text
    finally:
        event.remove(Pool, "checkout", count)
    assert checkouts == []
