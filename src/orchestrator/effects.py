"""Side effects a task performs once, whichever of its attempts run, and only while an attempt
still holds the task.

A claim is a `task_effects` row inserted in the caller's transaction. Until that transaction
ends, PostgreSQL makes any other attempt's claim of the same effect wait (a unique key in
flight); once it commits, the effect is done for good and later claims return False; if it
rolls back (the effect failed, the process died, its session was cut), the next claim wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

CLAIM = text(
    "INSERT INTO task_effects (task_id, name, attempt) VALUES (:id, :name, :attempt)"
    " ON CONFLICT (task_id, name) DO NOTHING RETURNING attempt"
)
# Read after the claim: a claim that waited for another attempt's transaction must not act on a
# task that attempt's end (or a cancel meanwhile) took away from this one.
HOLDS_THE_TASK = text("SELECT 1 FROM tasks WHERE id = :id AND attempts = :attempt AND status = 'PROCESSING'")
# A holder frozen or cut off mid-effect keeps its claim (and the next attempt waiting) until its
# session is ended: after `hold_s`, which must outlast the effect itself. A claim waiting for
# another attempt's may wait as long (statement_timeout would cut it short and cost an attempt).
BOUND_THE_HOLD = text(
    "SELECT set_config('idle_in_transaction_session_timeout', :ms, true),"
    " set_config('statement_timeout', :ms, true)"
)


class Superseded(Exception):
    """This attempt no longer holds its task: it was cancelled, or taken over after its lease ran
    out. Its effects are not performed; the runner records nothing for it."""


async def claim(session: AsyncSession, task_id: uuid.UUID, attempt: int, name: str, hold_s: float) -> bool:
    """True when this attempt is to perform `name` (commit the transaction once it is done);
    False when an earlier attempt did. Raises Superseded when this attempt no longer holds the task."""
    await session.execute(BOUND_THE_HOLD, {"ms": str(max(1, round(hold_s * 1000)))})
    won = (await session.execute(CLAIM, {"id": task_id, "name": name, "attempt": attempt})).first()
    if won is not None:
        await ensure_current(session, task_id, attempt)
    return won is not None


async def ensure_current(session: AsyncSession, task_id: uuid.UUID, attempt: int) -> None:
    if (await session.execute(HOLDS_THE_TASK, {"id": task_id, "attempt": attempt})).first() is None:
        raise Superseded(f"attempt {attempt} of task {task_id} no longer holds it")
