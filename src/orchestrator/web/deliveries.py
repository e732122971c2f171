"""Enqueue after commit: services add the tasks they record to the request's `Deliveries`; the
app's after_response hook hands them to SAQ once the answer (and so the COMMIT) is done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.queue import Deliveries, enqueue

if TYPE_CHECKING:
    from litestar import Request

_STATE_KEY = "task_deliveries"


def request_deliveries(request: Request[Any, Any, Any]) -> Deliveries:
    """The `deliveries` dependency: one collection per request."""
    deliveries: Deliveries | None = request.state.get(_STATE_KEY)
    if deliveries is None:
        deliveries = request.state[_STATE_KEY] = Deliveries()
    return deliveries


async def deliver(request: Request[Any, Any, Any]) -> None:
    """The app's after_response hook."""
    deliveries: Deliveries | None = request.state.get(_STATE_KEY)
    if deliveries is not None and deliveries.pending:
        app_state = request.app.state
        await enqueue(app_state.queue, deliveries.pending, app_state.settings.saq_job_ttl_s)
