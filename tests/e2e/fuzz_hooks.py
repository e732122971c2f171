"""Schemathesis hooks of the fuzz tests (SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks).

Generated requests reuse a few Idempotency-Key values across different bodies, which the API
rightly refuses (422, as the IETF Idempotency-Key draft asks): each request that carries a
key the schema allows gets a fresh one, so that the body is what is being tested. Keys too long
are left as generated, to be refused.

The run generates in two threads, and on CPython before 3.11.8 two threads inside `ast.parse`
(Hypothesis describes lambdas with it) share one recursion counter and can end in a
SystemError: parsing is serialised in this process (a lock costs nothing where the bug is fixed).
"""

from __future__ import annotations

import ast
import threading
import uuid
from typing import Any

import schemathesis

from orchestrator.idempotency import KEY_MAX_LENGTH


def _serialise_ast_parse() -> None:
    parse, lock = ast.parse, threading.RLock()

    def serialised(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    ast.parse = serialised


_serialise_ast_parse()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    for container in (case.headers, kwargs.get("headers")):
        for name, key in list((container or {}).items()):
            if name.lower() == "idempotency-key" and isinstance(key, str) and _well_formed(key):
                container[name] = str(uuid.uuid4())


def _well_formed(key: str) -> bool:
    return len(key) <= KEY_MAX_LENGTH
