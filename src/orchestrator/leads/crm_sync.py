"""Pushing a lead's state to the CRM webhook: signed, idempotent, with the retry rules of HTTP.

The body is canonical JSON; `X-Orchestrator-Signature: sha256=<hex>` is the HMAC-SHA256 of the
exact bytes sent, keyed with CRM_WEBHOOK_SECRET; `Idempotency-Key` is the same for every attempt
of one task, so a CRM that saw the first attempt can ignore the retry. 5xx, timeouts and
connection errors raise (the task is retried with backoff); any other non-2xx is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from orchestrator.errors import PermanentError

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Orchestrator-Signature"


class RemoteUnavailable(Exception):
    """The CRM answered 5xx: worth another attempt."""


def signed_body(lead: dict[str, Any], secret: str) -> tuple[bytes, str]:
    body = json.dumps({"event": "lead.updated", "lead": lead}, sort_keys=True, separators=(",", ":")).encode()
    return body, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def push_lead(
    http: httpx.AsyncClient, url: str, secret: str, lead: dict[str, Any], idempotency_key: str
) -> int:
    """POST the lead's state; the CRM's status code on success."""
    body, signature = signed_body(lead, secret)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature,
        "Idempotency-Key": idempotency_key,
    }
    response = await http.post(url, content=body, headers=headers)  # transport errors propagate: retried
    answer = f"CRM answered {response.status_code}: {response.text[:500]}"
    if response.status_code >= 500:
        raise RemoteUnavailable(answer)
    if not response.is_success:
        raise PermanentError(answer)
    return response.status_code
