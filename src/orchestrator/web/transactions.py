"""The request's transaction: committed after its handler returns, before the answer is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request  # noqa: TC002  (Litestar reads it at runtime)
from litestar.di import NamedDependency  # noqa: TC002  (Litestar reads it at runtime)
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: TC002  (Litestar reads it at runtime)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from orchestrator.settings import Settings

# A route handler's `opt` flag: everything it reads or writes is one SQL statement (unless the
# request carries an Idempotency-Key, whose claim and answer join the write). A statement is
# atomic on its own, so the route runs without BEGIN and COMMIT: one round trip, not three.
ONE_STATEMENT = "one_statement"
ONE_STATEMENT_OPT: dict[str, Any] = {ONE_STATEMENT: True}


async def committed_session(
    request: Request[Any, Any, Any], request_session: NamedDependency[AsyncSession]
) -> AsyncGenerator[AsyncSession, None]:
    """The request's session, committed once its handler has returned and before a byte is sent.

    A COMMIT that fails (the database going away) thus becomes an error answer through the usual
    handlers. advanced-alchemy's autocommit hook commits later, while the response is being
    sent, and on failure only logs at debug level: the client got a 2xx for a write that never
    landed. That hook still rolls back every error that is raised and closes the session; a
    handler therefore raises its errors (DomainError and friends) rather than returning them.
    """
    if _one_statement(request):
        # The same pool, in autocommit; a connection is only taken by the first statement (a
        # request refused before its handler takes none), and its isolation is reset on return.
        request_session.bind = request.app.state.autocommit_engine
    yield request_session
    await request_session.commit()


def _one_statement(request: Request[Any, Any, Any]) -> bool:
    settings: Settings = request.app.state.settings
    # Through a transaction pooler, a statement outside a transaction may be parsed on one
    # server connection and run on another, and SET LOCAL needs a transaction: always one there.
    return (
        bool(request.route_handler.opt.get(ONE_STATEMENT))
        and "idempotency-key" not in request.headers
        and not settings.db_transaction_pooler
    )
