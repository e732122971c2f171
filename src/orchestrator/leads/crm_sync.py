"""Pushing a lead's state to the CRM webhook: signed, idempotent, with the retry rules of HTTP.

The body is canonical JSON, signed the Standard Webhooks way with CRM_WEBHOOK_SECRET (see
orchestrator.webhooks); `webhook-id` and `Idempotency-Key` are the same for every attempt of one
task, so a CRM that saw the first attempt can ignore the retry. 5xx, timeouts and connection
errors raise (the task is retried with backoff); any other non-2xx is permanent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.errors import PermanentError
from orchestrator.webhooks import canonical, signed_headers

if TYPE_CHECKING:
    import datetime as dt

    import httpx


class RemoteUnavailable(Exception):
    """The CRM answered 5xx: worth another attempt."""


def body_of(lead: dict[str, Any]) -> bytes:
    return canonical({"event": "lead.updated", "lead": lead})


async def push_lead(
    http: httpx.AsyncClient,
    url: str,
    secret: str,
    lead: dict[str, Any],
    idempotency_key: str,
    at: dt.datetime,
) -> int:
    """POST the lead's state, signed as of `at` (PostgreSQL's time); the CRM's status code on success."""
    body = body_of(lead)
    headers = signed_headers(secret, idempotency_key, at, body) | {"Idempotency-Key": idempotency_key}
    response = await http.post(url, content=body, headers=headers)  # transport errors propagate: retried
    answer = f"CRM answered {response.status_code}: {response.text[:500]}"
    if response.status_code >= 500:
        raise RemoteUnavailable(answer)
    if not response.is_success:
        raise PermanentError(answer)
    return response.status_code
