"""What the service POSTs to others (task callbacks, the CRM sync) is signed the Standard Webhooks
way: `webhook-id` (the same for every attempt of one message), `webhook-timestamp` (seconds, by
PostgreSQL's clock) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
`id.timestamp.body`). A receiver that checks the timestamp's age and remembers the ids it saw
refuses a replayed message, which an HMAC of the body alone could not."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook

if TYPE_CHECKING:
    import datetime as dt

SECRET_PREFIX = "whsec_"  # noqa: S105  (the scheme's prefix, not a key)


def signer(secret: str) -> Webhook:
    """A key given as `whsec_` and base64 is decoded, as Standard Webhooks says; any other text
    is used as its UTF-8 bytes (a key set before the scheme changed keeps working)."""
    return Webhook(secret if secret.startswith(SECRET_PREFIX) else secret.encode())


def canonical(document: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, message_id: str, at: dt.datetime, body: bytes) -> dict[str, str]:
    """The headers of one attempt at delivering `body`."""
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer(secret).sign(message_id, at, body.decode()),
    }
