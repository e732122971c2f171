"""Routes marked ONE_STATEMENT run without BEGIN and COMMIT: each must be exactly one statement,
or a failure between two of them would leave half a write behind."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from orchestrator.web.transactions import ONE_STATEMENT

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient


class Statements:
    """Every statement the app's engine runs, but the API-key loads of the auth middleware."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "api_keys" not in statement:
            self.seen.append(" ".join(statement.split())[:120])


async def _statements_of(
    client: AsyncTestClient[Litestar], method: str, path: str, **kwargs: Any
) -> list[str]:
    statements = Statements()
    event.listen(Engine, "before_cursor_execute", statements)
    try:
        response = await client.request(method, path, **kwargs)
    finally:
        event.remove(Engine, "before_cursor_execute", statements)
    assert response.status_code < 300, response.text
    return statements.seen


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
        assert len(statements) == 1, f"{method} {route} ran {len(statements)} statements: {statements}"
