"""Idempotency-Key on POST: the same key and body replays the first response; another body is 422."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Response
from litestar.params import HeaderParameter
from pydantic import BaseModel

from orchestrator.idempotency import KEY_MAX_LENGTH, StoredResponse, claim_key, fingerprint, remember_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar import Request
    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.auth.keys import Caller

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=KEY_MAX_LENGTH,
        description="Retry-safe: the same key and body within 24 h returns the first response",
    ),
]


async def idempotent(
    session: AsyncSession,
    request: Request[Any, Any, Any],
    key: str | None,
    request_body: Any,
    create: Callable[[], Awaitable[Response[Any]]],
) -> Response[Any]:
    """Run `create` once per key: a repeat with the same body gets the stored response back.

    Keys belong to the API key that sent them (two integrators may pick the same one) and to
    the operation.
    """
    if key is None:
        return await create()
    caller: Caller = request.user
    scope = f"{caller.key_id} {request.method} {request.scope['path_template']}"
    replay = await claim_key(session, scope, key, fingerprint(request_body))
    if replay is not None:
        headers = replay.headers | {"Idempotent-Replayed": "true"}
        return Response(replay.body, status_code=replay.status_code, headers=headers)
    response = await create()
    body = (
        response.content.model_dump(mode="json")
        if isinstance(response.content, BaseModel)
        else response.content
    )
    stored = StoredResponse(response.status_code or 200, dict(response.headers), body)
    await remember_response(session, scope, key, stored)
    return response
