"""Query parameters that several endpoints share."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from orchestrator.pagination import CURSOR_PATTERN, PAGE_SIZE_MAX

Cursor = Annotated[
    str | None,
    Parameter(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page"),
]
Limit = Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX, description="Items per page")]
