"""The request's transaction: committed after its handler returns, before the answer is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.di import NamedDependency  # noqa: TC002  (Litestar reads it at runtime)
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: TC002  (Litestar reads it at runtime)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator


async def committed_session(
    request_session: NamedDependency[AsyncSession],
) -> AsyncGenerator[AsyncSession, None]:
    """The request's session, committed once its handler has returned and before a byte is sent.

    A COMMIT that fails (the database going away) thus becomes an error answer through the usual
    handlers. advanced-alchemy's autocommit hook commits later, while the response is being
    sent, and on failure only logs at debug level: the client got a 2xx for a write that never
    landed. That hook still rolls back every error that is raised and closes the session; a
    handler therefore raises its errors (DomainError and friends) rather than returning them.
    """
    yield request_session
    await request_session.commit()
