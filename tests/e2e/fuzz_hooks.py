"""Schemathesis hooks of the fuzz tests (SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks).

Generated requests reuse a few Idempotency-Key values across different bodies, which the API
rightly refuses (422, as the IETF Idempotency-Key draft asks): each request that carries a
key the schema allows gets a fresh one, so that the body is what is being tested. Keys too long
are left as generated, to be refused.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

from orchestrator.idempotency import KEY_MAX_LENGTH


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    for container in (case.headers, kwargs.get("headers")):
        for name, key in list((container or {}).items()):
            if name.lower() == "idempotency-key" and isinstance(key, str) and _well_formed(key):
                container[name] = str(uuid.uuid4())


def _well_formed(key: str) -> bool:
    return len(key) <= KEY_MAX_LENGTH
