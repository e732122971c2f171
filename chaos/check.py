"""The history checker: the load suite's verifier (acknowledged writes, terminal states, effects)
and what several hosts add: no transition by an attempt that no longer held its task, every
history a chain, and every workflow's steps in order, one child each."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from load.effects import Effects
from load.verify import verify
from orchestrator.tasks.workflows import NAMED, Step, UnresolvedReference, fill

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

    from load.ledger import Ledger
    from load.verify import Verdict

# A task may end FAILED when every one of its attempts was lost to the faults: a right answer.
LOST_ATTEMPT = "worker lost"


@dataclass
class History:
    verdict: Verdict
    zombie_transitions: list[str] = field(default_factory=list)
    broken_histories: list[str] = field(default_factory=list)
    workflow_disorder: list[str] = field(default_factory=list)
    sent_after_completion: list[str] = field(default_factory=list)
    failed_unexpectedly: list[str] = field(default_factory=list)
    failed_after_lost_attempts: list[str] = field(default_factory=list)
    # What the integrators saw (a read that did not match a write, a check that raised, Locust
    # broken) and a run with nothing acknowledged: see `client_anomalies`.
    client: dict[str, list[str]] = field(default_factory=dict)

    def anomalies(self) -> dict[str, list[str]]:
        verdict = self.verdict
        return {
            "acknowledged write lost or wrong": verdict.lost_writes,
            "accepted task missing": verdict.lost_tasks,
            "task left open": verdict.unfinished_tasks,
            "task failed, not by lost attempts": self.failed_unexpectedly,
            "task completed twice": verdict.completed_twice,
            "effect of a completed task missing": verdict.lost_effects,
            "effect repeated within one attempt": verdict.repeated_effects,
            "transition by an attempt that no longer held the task": self.zombie_transitions,
            "history not a chain": self.broken_histories,
            "workflow steps out of order": self.workflow_disorder,
            "email received after its task completed": self.sent_after_completion,
            **self.client,
        }

    @property
    def ok(self) -> bool:
        return not any(self.anomalies().values())


def client_anomalies(
    summaries: dict[str, dict[str, Any]], exit_codes: dict[str, int]
) -> dict[str, list[str]]:
    """The Locust processes' own findings, by kind: each must be empty."""
    found: dict[str, list[str]] = {
        "a read did not match what was written (seen by a client)": [],
        "a client's check raised": [],
        "a client broke (Locust)": [],
    }
    for name, code in exit_codes.items():
        if code != 0:
            found["a client broke (Locust)"].append(f"{name} exited {code}")
    for name, summary in summaries.items():
        if mismatches := summary["failures_by_kind"].get("mismatch", 0):
            errors = [row["error"] for row in summary["errors"] if "mismatch" in row["error"]]
            found["a read did not match what was written (seen by a client)"].append(
                f"{name}: {mismatches}, e.g. {errors[:1]}"
            )
        for row in summary["exceptions"]:
            found["a client's check raised"].append(f"{name}: {row['count']} x {row['error'][:200]}")
        if summary["unhandled_greenlet_exception"]:
            found["a client broke (Locust)"].append(f"{name}: a greenlet crashed")
    missing = [name for name in exit_codes if name not in summaries]
    found["a client broke (Locust)"] += [f"{name} wrote no summary" for name in missing]
    return found


async def check(
    url: str, ledger: Ledger, since: dt.datetime, effects_log: Path, keep: Path | None = None
) -> History:
    """`keep`: a folder to write the run's tasks and events to."""
    history = History(await verify(url, ledger, since, effects_log))
    if not ledger.acknowledged_writes or not ledger.tasks:
        history.client["the run acknowledged nothing to check"] = ["an empty ledger proves nothing"]
    for failure in history.verdict.failed_tasks:
        if LOST_ATTEMPT in failure:
            history.failed_after_lost_attempts.append(failure)
        else:
            history.failed_unexpectedly.append(failure)
    connection = await asyncpg.connect(url)
    try:
        await _check_transitions(connection, since, history)
        await _check_workflows(connection, since, history)
        await _check_late_sends(connection, since, Effects.read(effects_log), history)
        await _check_noop_attempts(connection, since, history)
        if keep is not None:
            await _keep(connection, since, keep)
    finally:
        await connection.close()
    return history


async def _keep(connection: asyncpg.Connection[Any], since: dt.datetime, folder: Path) -> None:
    """The run's tasks and their events as JSON lines, for whoever reads a failure."""
    for table, query in (
        ("tasks", "SELECT t.* FROM tasks t WHERE t.created_at >= $1 ORDER BY t.created_at"),
        (
            "task_events",
            "SELECT e.* FROM task_events e JOIN tasks t ON t.id = e.task_id"
            " WHERE t.created_at >= $1 ORDER BY e.id",
        ),
    ):
        rows = await connection.fetch(query, since)
        with (folder / f"{table}.jsonl").open("w") as out:
            for row in rows:
                out.write(json.dumps(dict(row), default=str) + "\n")


async def _check_transitions(
    connection: asyncpg.Connection[Any], since: dt.datetime, history: History
) -> None:
    """Replay each task's events: each starts where the one before ended, and a move out of
    PROCESSING by a worker is made by the worker whose claim it follows (the reconciler writes
    the holder's id when it expires a lease; the API writes none)."""
    rows = await connection.fetch(
        """
        SELECT e.task_id::text, e.id, e.from_status, e.to_status, e.attempt, e.worker_id
        FROM task_events e JOIN tasks t ON t.id = e.task_id
        WHERE t.created_at >= $1
        ORDER BY e.task_id, e.id
        """,
        since,
    )
    task, status, holder = None, None, None
    for row in rows:
        if row["task_id"] != task:
            task, status, holder = row["task_id"], None, None
        if row["from_status"] != status:
            history.broken_histories.append(
                f"task {task}: event {row['id']} moves from {row['from_status']}, the task was {status}"
            )
        if row["from_status"] == "PROCESSING" and row["worker_id"] is not None and row["worker_id"] != holder:
            history.zombie_transitions.append(
                f"task {task}: {row['worker_id']} moved it to {row['to_status']} (attempt {row['attempt']}),"
                f" held by {holder}"
            )
        if row["to_status"] == "PROCESSING":
            holder = row["worker_id"]
        status = row["to_status"]


async def _check_noop_attempts(
    connection: asyncpg.Connection[Any], since: dt.datetime, history: History
) -> None:
    """A noop task returns the attempt that ran it: a COMPLETED one whose result names another
    attempt than the task's last was completed by a zombie, even one on its successor's worker
    (whose worker id the transition check cannot tell apart)."""
    rows = await connection.fetch(
        """
        SELECT id::text, attempts, (result ->> 'attempt')::int AS ran FROM tasks
        WHERE created_at >= $1 AND type = 'noop' AND status = 'COMPLETED'
          AND (result ->> 'attempt')::int IS DISTINCT FROM attempts
        """,
        since,
    )
    for row in rows:
        history.zombie_transitions.append(
            f"task {row['id']}: completed by attempt {row['ran']}, its last attempt is {row['attempts']}"
        )


async def _check_late_sends(
    connection: asyncpg.Connection[Any], since: dt.datetime, effects: Effects, history: History
) -> None:
    """An email may go out twice only when a process died between the server's acceptance and
    the commit, so both copies precede the task's completion. One received after it was sent by
    an attempt that had lost its task (the receivers and PostgreSQL share the machine's clock)."""
    rows = await connection.fetch(
        """
        SELECT e.task_id::text, extract(epoch FROM e.at) AS at
        FROM task_events e JOIN tasks t ON t.id = e.task_id
        WHERE t.created_at >= $1 AND t.type = 'email_send' AND e.to_status = 'COMPLETED'
        """,
        since,
    )
    for row in rows:
        received = effects.last_email_at.get(row["task_id"])
        if received is not None and received > float(row["at"]):
            history.sent_after_completion.append(
                f"task {row['task_id']}: an email came {received - float(row['at']):.3f} s after it completed"
            )


def _misread_step(payload: dict[str, Any], lead_id: str | None, children: list[dict[str, Any]]) -> str | None:
    """The first inline step whose payload is not its template filled in with the results of
    the steps before it (what `${steps.N...}` had to see)."""
    for number, (template, child) in enumerate(
        zip(payload.get("steps") or [], children, strict=False), start=1
    ):
        try:
            expected = fill(
                Step.model_validate(template), lead_id, [c["result"] for c in children[: number - 1]]
            )
        except UnresolvedReference as exc:
            return f"step {number} could not have run: {exc}"
        if template.get("type") == "noop" and expected != child["payload"]:
            return f"step {number} ran with {child['payload']}, its references give {expected}"
    return None


async def _check_workflows(connection: asyncpg.Connection[Any], since: dt.datetime, history: History) -> None:
    """A completed workflow has one child per step, numbered 1..n, each created after the one
    before it finished, and the result lists them in that order."""
    workflows = await connection.fetch(
        """
        SELECT w.id::text, w.result, w.payload, w.lead_id::text,
               coalesce(json_agg(json_build_object(
                   'id', c.id::text, 'step', c.step, 'status', c.status, 'payload', c.payload,
                   'result', c.result, 'created', c.created_at, 'finished', c.finished_at) ORDER BY c.step)
                 FILTER (WHERE c.id IS NOT NULL), '[]') AS children
        FROM tasks w LEFT JOIN tasks c ON c.parent_id = w.id
        WHERE w.type = 'workflow_execute' AND w.status = 'COMPLETED' AND w.created_at >= $1
        GROUP BY w.id
        """,
        since,
    )
    for workflow in workflows:
        children = json.loads(workflow["children"])
        result = json.loads(workflow["result"]) if workflow["result"] else {}
        listed = [step["task_id"] for step in result.get("steps", [])]
        name = f"workflow {workflow['id']}"
        payload = json.loads(workflow["payload"])
        steps = payload.get("steps") or NAMED.get(payload.get("workflow", ""), [])
        if len(children) != len(steps):
            history.workflow_disorder.append(f"{name}: {len(children)} children for {len(steps)} steps")
        elif [child["step"] for child in children] != list(range(1, len(children) + 1)):
            history.workflow_disorder.append(f"{name}: steps {[c['step'] for c in children]}")
        elif listed != [child["id"] for child in children]:
            history.workflow_disorder.append(f"{name}: its result lists {listed}, its children are others")
        elif any(child["status"] != "COMPLETED" for child in children):
            history.workflow_disorder.append(f"{name} COMPLETED with a step that did not")
        elif (wrong := _misread_step(payload, workflow["lead_id"], children)) is not None:
            history.workflow_disorder.append(f"{name}: {wrong}")
        else:
            for before, after in itertools.pairwise(children):
                if before["finished"] is None or after["created"] < before["finished"]:
                    history.workflow_disorder.append(
                        f"{name}: step {after['step']} began before step {before['step']} finished"
                    )
