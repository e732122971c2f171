"""What a client's text may hold: no control characters (C0, DEL, C1) but tab, line feed and
carriage return.

PostgreSQL refuses NUL in text (a 500 if it got that far); the others have no business in a
lead or a payload, and would reach logs, CSV exports, terminals and mail headers. Refused with
a 4xx naming the field, before anything is stored.
"""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# For query parameters, which Litestar checks against a pattern.
NO_CONTROLS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


def _refused(value: str) -> str | None:
    found = _CONTROL.search(value)
    return f"contains the control character U+{ord(found[0]):04X}" if found else None


def plain(value: str) -> str:
    if (reason := _refused(value)) is not None:
        raise ValueError(reason)
    return value


def control_in_json(value: Any, path: str = "") -> str | None:
    """Where in free-form JSON a key or a string holds a control character, and which; None if
    nowhere."""
    if isinstance(value, str):
        return f"{path or 'the value'} {reason}" if (reason := _refused(value)) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if (reason := _refused(key)) is not None:
                return f"the key {key!r} {reason}"
            if (found := control_in_json(item, f"{path}.{key}" if path else key)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := control_in_json(item, f"{path}[{index}]")) is not None:
                return found
    return None
