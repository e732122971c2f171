"""After a load run, PostgreSQL itself against the ledger: nothing acknowledged may be missing.

Leads: every acknowledged write is there with the acknowledged fields and version (a write
left unanswered may have landed or not, but nothing else). Tasks: every accepted task exists
and completed; every task created during the run reached a terminal state; no task reached
COMPLETED twice. Side effects, counted per task by the receivers: every completed email_send
and crm_update reached its server, and no task sent or pushed more often than it was claimed (a
handler that ran twice within one attempt). An email sent twice by a task claimed more than once
is within the documented limit (a crash between the server's answer and the commit) and is
reported, not failed.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from load.effects import Effects
from load.ledger import WRITTEN, differences
from orchestrator.tasks.status import TERMINAL_STATUSES

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

    from load.ledger import LeadClaim, Ledger

TERMINAL = sorted(str(status) for status in TERMINAL_STATUSES)  # plain strings for asyncpg


@dataclass
class Verdict:
    leads_checked: int = 0
    acknowledged_writes: int = 0
    tasks_accepted: int = 0
    tasks_in_run: int = 0
    tasks_terminal: int = 0
    lost_writes: list[str] = field(default_factory=list)
    lost_tasks: list[str] = field(default_factory=list)
    unfinished_tasks: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)
    completed_twice: list[str] = field(default_factory=list)
    emails_received: int = 0
    crm_pushes_received: int = 0
    lost_effects: list[str] = field(default_factory=list)
    repeated_effects: list[str] = field(default_factory=list)
    repeated_after_a_lost_attempt: list[str] = field(default_factory=list)  # allowed, reported

    @property
    def ok(self) -> bool:
        return not (
            self.lost_writes
            or self.lost_tasks
            or self.unfinished_tasks
            or self.failed_tasks
            or self.completed_twice
            or self.lost_effects
            or self.repeated_effects
        )


async def database_now(url: str) -> dt.datetime:
    """The server's clock: tasks of the run are those created after this."""
    connection = await asyncpg.connect(url)
    try:
        now: dt.datetime = await connection.fetchval("SELECT now()")
        return now
    finally:
        await connection.close()


async def wait_drained(url: str, since: dt.datetime, timeout_s: float) -> int:
    """Wait until every task created since `since` is terminal; the number still open at the end."""
    deadline = time.monotonic() + timeout_s
    connection = await asyncpg.connect(url)
    try:
        while True:
            open_tasks: int = await connection.fetchval(
                "SELECT count(*) FROM tasks WHERE created_at >= $1 AND status <> ALL($2::text[])",
                since,
                list(TERMINAL),
            )
            if open_tasks == 0 or time.monotonic() > deadline:
                return open_tasks
            await asyncio.sleep(1.0)
    finally:
        await connection.close()


async def verify(url: str, ledger: Ledger, since: dt.datetime, effects_log: Path | None = None) -> Verdict:
    """`effects_log`: what the receivers got; None when the run had no receivers. It is read after
    the tasks: an effect happens before its task's COMPLETED, so none completed is missed."""
    verdict = Verdict(acknowledged_writes=ledger.acknowledged_writes, tasks_accepted=len(ledger.tasks))
    connection = await asyncpg.connect(url)
    try:
        await _verify_leads(connection, ledger, verdict)
        tasks = await _verify_tasks(connection, ledger, since, verdict)
        if effects_log is not None:
            _verify_effects(tasks, Effects.read(effects_log), verdict)
    finally:
        await connection.close()
    return verdict


async def _verify_leads(connection: asyncpg.Connection[Any], ledger: Ledger, verdict: Verdict) -> None:
    columns = ", ".join(WRITTEN)
    rows = await connection.fetch(
        f"SELECT id::text, version, {columns} FROM leads WHERE lower(email) = ANY($1::text[])",
        [email.lower() for email in ledger.leads],
    )
    stored = {row["email"].lower(): _lead(row) for row in rows}
    for email, claim in ledger.leads.items():
        verdict.leads_checked += 1
        if (problem := _lead_problem(claim, stored.get(email.lower()))) is not None:
            verdict.lost_writes.append(problem)


def _lead_problem(claim: LeadClaim, row: dict[str, Any] | None) -> str | None:
    if claim.acked is None:  # created without an answer: either absent or exactly as sent
        if row is None or claim.pending is None or not _differences(claim.pending, row):
            return None
        found = "; ".join(_differences(claim.pending, row))
        return f"lead {row['id']} was never acknowledged, yet differs from what was sent: {found}"
    if row is None:
        return f"lead {claim.lead_id} ({claim.email}) acknowledged at version {claim.version} is missing"
    if row["id"] != claim.lead_id:
        return f"lead {claim.email}: acknowledged as {claim.lead_id}, stored as {row['id']}"
    if not claim.exact:
        return None
    if not _differences(claim.acked, row) and row["version"] == claim.version:
        return None
    if claim.pending is not None and not _differences(claim.pending, row):
        return None
    problems = _differences(claim.acked, row) or [
        f"version: acknowledged {claim.version}, stored {row['version']}"
    ]
    return f"lead {claim.lead_id}: {'; '.join(problems)}"


async def _verify_tasks(
    connection: asyncpg.Connection[Any], ledger: Ledger, since: dt.datetime, verdict: Verdict
) -> dict[str, asyncpg.Record]:
    """Checks the run's tasks; returns them by id."""
    rows = await connection.fetch(
        """
        SELECT t.id::text, t.type, t.status, t.error, t.attempts,
               (SELECT count(*) FROM task_events e WHERE e.task_id = t.id AND e.to_status = 'COMPLETED')
                 AS completions,
               (SELECT count(*) FROM task_events e WHERE e.task_id = t.id AND e.to_status = 'PROCESSING')
                 AS claims
        FROM tasks t
        WHERE t.created_at >= $1 OR t.id = ANY($2::uuid[])
        """,
        since,
        [claim.task_id for claim in ledger.tasks],
    )
    tasks = {row["id"]: row for row in rows}
    verdict.tasks_in_run = len(tasks)
    for row in tasks.values():
        if row["status"] in TERMINAL:
            verdict.tasks_terminal += 1
        else:
            verdict.unfinished_tasks.append(f"task {row['id']} ({row['type']}) is {row['status']}")
        if row["completions"] > 1:
            verdict.completed_twice.append(
                f"task {row['id']} ({row['type']}) completed {row['completions']} times"
            )
    changed_leads = [claim.lead_id for claim in ledger.tasks if claim.changes]
    leads = {
        row["id"]: _lead(row)
        for row in await connection.fetch(
            f"SELECT id::text, version, {', '.join(WRITTEN)} FROM leads WHERE id = ANY($1::uuid[])",
            changed_leads,
        )
    }
    for claim in ledger.tasks:
        row = tasks.get(claim.task_id)
        if row is None:
            verdict.lost_tasks.append(f"task {claim.task_id} ({claim.job_type}) was accepted and is missing")
        elif row["status"] != "COMPLETED":
            verdict.failed_tasks.append(
                f"task {claim.task_id} ({claim.job_type}) {row['status']}: {row['error']}"
            )
        elif claim.changes and (
            problems := _differences(claim.changes, leads.get(claim.lead_id or "") or {})
        ):
            verdict.lost_writes.append(
                f"lead {claim.lead_id} after task {claim.task_id}: {'; '.join(problems)}"
            )
    return tasks


def _verify_effects(tasks: dict[str, asyncpg.Record], effects: Effects, verdict: Verdict) -> None:
    verdict.emails_received = sum(effects.emails[task_id] for task_id in tasks)
    verdict.crm_pushes_received = sum(effects.pushes[task_id] for task_id in tasks)
    for task_id, row in tasks.items():
        name = f"task {task_id} ({row['type']})"
        claims = row["claims"]  # attempts started (a released attempt is not counted in `attempts`)
        if row["type"] == "email_send":
            sent = effects.emails[task_id]
            if sent > claims:
                verdict.repeated_effects.append(f"{name} sent {sent} emails in {claims} attempts")
            elif sent > 1:
                verdict.repeated_after_a_lost_attempt.append(
                    f"{name} sent {sent} emails in {claims} attempts"
                )
            elif sent == 0 and row["status"] == "COMPLETED":
                verdict.lost_effects.append(f"{name} COMPLETED, yet no email reached the server")
        elif row["type"] == "crm_update":
            # Every attempt may push (the CRM deduplicates by Idempotency-Key); more pushes
            # than attempts means a handler ran twice within one.
            pushed = effects.pushes[task_id]
            if pushed > claims:
                verdict.repeated_effects.append(f"{name} pushed {pushed} times in {claims} attempts")
            elif pushed == 0 and row["status"] == "COMPLETED":
                verdict.lost_effects.append(f"{name} COMPLETED, yet nothing reached the CRM")


def _lead(row: asyncpg.Record) -> dict[str, Any]:
    lead = dict(row)
    lead["attributes"] = json.loads(lead["attributes"])
    return lead


def _differences(expected: dict[str, Any], row: dict[str, Any]) -> list[str]:
    return differences(expected, row, wrote="acknowledged", found="stored")
