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


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if (found := control_in_json(value)) is not None:
        raise ValueError(found)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ValueError(f"{size} bytes of JSON; the limit is {MAX_BYTES}")
    return value


BoundedJSON = Annotated[dict[str, Any], AfterValidator(_bounded)]
