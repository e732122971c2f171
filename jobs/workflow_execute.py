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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from sqlalchemy import select, text

from orchestrator.errors import Unprocessable
from orchestrator.job import JobContext, JobType, PermanentError, RetryPolicy, Suspend
from orchestrator.json_types import present
from orchestrator.tasks import transitions
from orchestrator.tasks.models import Task
from orchestrator.tasks.status import TERMINAL_STATUSES, TaskStatus
from orchestrator.tasks.workflows import (
    LEAD,
    NAMED,
    NESTED,
    Step,
    UnresolvedReference,
    fill,
    filled_from_here,
)

# Steps recorded by workers older than step numbers (a rolling deploy) come after, as recorded.
STEP_ORDER = (Task.step.asc().nulls_last(), Task.created_at, Task.id)
# Fallback only: a step's end wakes the workflow at once.
POLL_S = 15.0
# A workflow may run workflows as steps: this many levels at most, and this many tasks in the
# whole tree, counted at submit time (a nested workflow's steps are all in the request).
MAX_DEPTH = 3
MAX_TREE_TASKS = 200


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

    _tasks: int = PrivateAttr(default=1)

    @model_validator(mode="after")
    def _one_workflow(self, info: ValidationInfo) -> Self:
        if (self.workflow is None) == (self.steps is None):
            raise ValueError("give either `workflow` (a name) or `steps`")
        if self.workflow is not None and self.workflow not in NAMED:
            raise ValueError(f"unknown workflow {self.workflow!r}; known: {', '.join(sorted(NAMED))}")
        context = info.context or {}
        known, depth = context.get("job_types"), context.get("depth", 1)
        for number, step in enumerate(self.resolved_steps(), start=1):
            if known is not None and step.type not in known:
                raise ValueError(f"step {number}: unknown job type {step.type!r}")
            for ref in filled_from_here(step):
                if ref.startswith("${steps.") and not 1 <= int(ref.split(".")[1].rstrip("}")) < number:
                    raise ValueError(f"step {number}: {ref} refers to no step that runs before it")
            self._tasks += _nested_tasks(number, step, context, depth) if step.type == NESTED else 1
        if self._tasks > MAX_TREE_TASKS:
            raise ValueError(
                f"this workflow would make {self._tasks} tasks with its nested workflows;"
                f" one request makes at most {MAX_TREE_TASKS} tasks"
            )
        return self

    @property
    def tasks_made(self) -> int:
        """This task and every task its steps and nested workflows will make."""
        return self._tasks

    def resolved_steps(self) -> list[Step]:
        return NAMED[self.workflow] if self.workflow is not None else list(self.steps or [])


def _nested_tasks(number: int, step: Step, context: dict[str, Any], depth: int) -> int:
    """The tasks a nested workflow makes, itself included; ValueError when it is not one that
    can be known in full now."""
    if depth >= MAX_DEPTH:
        raise ValueError(f"step {number}: workflows nest at most {MAX_DEPTH} deep")
    if refs := [ref for ref in filled_from_here(step) if ref != LEAD]:
        raise ValueError(
            f"step {number}: a nested workflow takes only {LEAD} from this one, not {refs[0]};"
            " its steps are written out in full"
        )
    # Its lead is only known when it runs; any lead id checks the shape.
    payload = fill(step, str(uuid.UUID(int=0)), [])
    try:
        nested = WorkflowPayload.model_validate(payload, context=context | {"depth": depth + 1})
    except ValidationError as exc:
        reasons = (str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        raise ValueError(f"step {number}: " + "; ".join(reasons)) from None
    return nested._tasks


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
            raw = fill(step, str(lead_id) if lead_id else None, [child.result for child in children])
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
