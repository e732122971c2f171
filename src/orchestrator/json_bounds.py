"""Bounds on free-form JSON (lead attributes, task payloads): refused with 422 naming the limit.
Its keys and strings are plain text (orchestrator.plain_text).

The request body as a whole is bounded by MAX_REQUEST_BODY_BYTES (413); these keep one field
from being a whole body's worth of nesting or bytes, which every later read would pay for.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator

from orchestrator.plain_text import control_in_json

MAX_DEPTH = 32
MAX_BYTES = 64 * 1024


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels. Iterative, and it stops at the limit: a
    value nested up to the decoder's own limit (about 1,000) must not overflow Python's stack
    here, or in any recursive walk after this one."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def check_bounds(value: dict[str, Any]) -> dict[str, Any]:
    """Depth, plain text and size of free-form JSON: a ValueError naming the broken bound."""
    if _deeper_than(value, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if (found := control_in_json(value)) is not None:
        raise ValueError(found)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ValueError(f"{size} bytes of JSON; the limit is {MAX_BYTES}")
    return value


BoundedJSON = Annotated[dict[str, Any], AfterValidator(check_bounds)]
