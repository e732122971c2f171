"""What the service POSTs to others (task callbacks, the CRM sync) is signed the Standard Webhooks
way: `webhook-id` (the same for every attempt of one message), `webhook-timestamp` (seconds, by
PostgreSQL's clock) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
`id.timestamp.body`). A receiver that checks the timestamp's age and remembers the ids it saw
refuses a replayed message, which an HMAC of the body alone could not."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from standardwebhooks.webhooks import Webhook

from orchestrator.settings import signing_key

SECRET_PREFIX = "whsec_"  # noqa: S105  (the scheme's prefix, not a key)
# Deprecated: sent only with a key that is not a whsec_ one, until the CRM's key is replaced.
LEGACY_SIGNATURE = "X-Orchestrator-Signature"


def signer(secret: str) -> Webhook:
    """A key given as `whsec_` and base64 is decoded, as Standard Webhooks says; any other text
    is used as its UTF-8 bytes (a CRM key set before the scheme changed keeps working)."""
    return Webhook(signing_key(secret))


def canonical(document: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, message_id: str, at: dt.datetime, body: bytes) -> dict[str, str]:
    """The headers of one attempt at delivering `body`. A key that is not a `whsec_` one (a CRM
    key set before the scheme) also gets the old `X-Orchestrator-Signature` (the HMAC of the
    body alone), so that a CRM can move to the new headers before the key changes."""
    at = at.astimezone(dt.UTC)  # the library reads the time as UTC whatever its offset
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer(secret).sign(message_id, at, body.decode()),
    }
    if not secret.startswith(SECRET_PREFIX):
        digest = hmac.new(signing_key(secret), body, hashlib.sha256).hexdigest()
        headers[LEGACY_SIGNATURE] = f"sha256={digest}"
    return headers
