"""`workflow_execute`: run a named or inline workflow, one child task per step.

Each run of this handler looks at the children so far: a running step makes it wait (the task
goes back to PENDING without holding a worker slot, and is woken when the step ends); a
completed one makes it record and deliver the next; a failed one fails the workflow naming the
step. Only the worker holding the workflow's current attempt may add a step, under a row lock,
and the step count decides which step comes next: after any crash the workflow resumes from
the last completed step and runs every step exactly once.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, model_validator
from sqlalchemy import select, text

from orchestrator.errors import Unprocessable
from orchestrator.job import JobContext, JobType, PermanentError, RetryPolicy, Suspend
from orchestrator.json_types import present
from orchestrator.tasks import transitions
from orchestrator.tasks.models import Task
from orchestrator.tasks.status import TERMINAL_STATUSES, TaskStatus
from orchestrator.tasks.workflows import NAMED, Step, UnresolvedReference, references, resolve

# Steps recorded by workers older than step numbers (a rolling deploy) come after, as recorded.
STEP_ORDER = (Task.step.asc().nulls_last(), Task.created_at, Task.id)
# Fallback only: a step's end wakes the workflow at once.
POLL_S = 15.0


class WorkflowPayload(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [present("workflow"), present("steps", "array")],
            "examples": [
                {"workflow": "new_lead_followup"},
                {"steps": [{"type": "noop", "payload": {"echo": {"score": 1}}}, {"type": "noop"}]},
            ],
        },
    )

    workflow: Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(NAMED)})] | None = Field(
        default=None, description=f"A named workflow: {', '.join(sorted(NAMED))}"
    )
    steps: list[Step] | None = Field(
        default=None, min_length=1, max_length=50, description="An inline workflow"
    )
    lead_id: uuid.UUID | None = Field(default=None, description="Default: the task's lead_id")

    @model_validator(mode="after")
    def _one_workflow(self, info: ValidationInfo) -> Self:
        if (self.workflow is None) == (self.steps is None):
            raise ValueError("give either `workflow` (a name) or `steps`")
        if self.workflow is not None and self.workflow not in NAMED:
            raise ValueError(f"unknown workflow {self.workflow!r}; known: {', '.join(sorted(NAMED))}")
        known = (info.context or {}).get("job_types")
        for number, step in enumerate(self.resolved_steps(), start=1):
            if known is not None and step.type not in known:
                raise ValueError(f"step {number}: unknown job type {step.type!r}")
            for ref in references(step.payload):
                if ref.startswith("${steps.") and int(ref.split(".")[1].rstrip("}")) >= number:
                    raise ValueError(f"step {number}: {ref} refers to a step that runs later")
        return self

    def resolved_steps(self) -> list[Step]:
        return NAMED[self.workflow] if self.workflow is not None else list(self.steps or [])


async def handle(ctx: JobContext, payload: WorkflowPayload) -> dict[str, Any]:
    steps = payload.resolved_steps()
    lead_id = payload.lead_id or ctx.lead_id
    async with ctx.sessions() as session, session.begin():
        # The row lock serialises this with any other run of the workflow, and only the worker
        # holding its current attempt gets the row: a presumed-dead one adds no step.
        owned = await session.scalar(
            text(
                "SELECT 1 FROM tasks WHERE id = :id AND status = 'PROCESSING' AND attempts = :attempt"
                " FOR NO KEY UPDATE"
            ),
            {"id": ctx.task_id, "attempt": ctx.attempt},
        )
        if owned is None:
            raise Suspend("no longer this worker's attempt", POLL_S)
        children = list(
            (
                await session.scalars(select(Task).where(Task.parent_id == ctx.task_id).order_by(*STEP_ORDER))
            ).all()
        )
        if children:
            last, number = children[-1], len(children)
            if last.status not in TERMINAL_STATUSES:
                raise Suspend(f"step {number} ({last.type}) is {last.status}", POLL_S)
            if last.status != TaskStatus.COMPLETED:
                raise PermanentError(
                    f"step {number} ({last.type}, task {last.id}) ended {last.status}: {last.error}"
                )
        if len(children) == len(steps):
            return {
                "steps": [
                    {"step": n, "type": child.type, "task_id": str(child.id), "result": child.result}
                    for n, child in enumerate(children, start=1)
                ]
            }
        number, step = len(children) + 1, steps[len(children)]
        try:
            raw = resolve(
                step.payload, str(lead_id) if lead_id else None, [child.result for child in children]
            )
            checked = ctx.job_types.check(step.type, raw)
        except (UnresolvedReference, Unprocessable) as exc:
            raise PermanentError(f"step {number} ({step.type}): {exc}") from None
        child = await transitions.record(
            session,
            type=step.type,
            payload=checked.stored(),
            max_attempts=checked.job_type.retry.max_attempts,
            lead_id=lead_id,
            parent_id=ctx.task_id,
            step=number,
        )
    raise Suspend(f"step {number} ({step.type}) started", POLL_S, deliver=[child])


job = JobType(
    name="workflow_execute",
    payload=WorkflowPayload,
    handler=handle,
    description="Run a named or inline workflow: an ordered list of steps, each a child task.",
    timeout_s=60,
    retry=RetryPolicy(max_attempts=5, backoff_base_s=1.0, backoff_max_s=60.0),
)
