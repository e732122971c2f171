"""Mutants of the delivery protocol, the reconciler, effects, auth and input checks: each a small
change that breaks a promise, with the tests that must fail because of it.

`quick` mutants are killed by integration tests alone (seconds); CI runs those, and
`make mutants` runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass

TRANSITIONS = "src/orchestrator/tasks/transitions.py"
RECONCILER = "src/orchestrator/runner/reconciler.py"
EXECUTE = "src/orchestrator/runner/execute.py"
LIMITS = "src/orchestrator/runner/limits.py"
LIMITS_TESTS = ("tests/integration/test_job_limits.py",)
VERIFY = "load/verify.py"
REPORT = "load/report.py"
LOAD_VERIFY_TESTS = ("tests/integration/test_load_verify.py",)
LOAD_REPORT_TESTS = ("tests/integration/test_load_report.py",)
CHAOS_TESTS = ("tests/e2e/test_chaos.py",)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    quick: bool = False
    every: bool = False  # replace every occurrence of `old` (else it must occur exactly once)


MUTANTS = [
    Mutant(
        "a zombie's finish lands: no attempt guard on RETRY, FAIL, RELEASE, SUSPEND",
        TRANSITIONS,
        "WHERE t.id = old.id AND t.status = 'PROCESSING' AND t.attempts = :attempt",
        "WHERE t.id = old.id AND t.status = 'PROCESSING'",
        ("tests/integration/test_transitions.py",),
        quick=True,
        every=True,
    ),
    Mutant(
        "a zombie's completion lands: no attempt guard on COMPLETE_MANY",
        TRANSITIONS,
        "WHERE t.id = d.id AND t.status = 'PROCESSING' AND t.attempts = d.attempt",
        "WHERE t.id = d.id AND t.status = 'PROCESSING'",
        ("tests/integration/test_transitions.py",),
        quick=True,
    ),
    Mutant(
        "a zombie renews a lease it lost: no attempt guard on HEARTBEAT",
        TRANSITIONS,
        "WHERE id = :id AND status = 'PROCESSING' AND attempts = :attempt",
        "WHERE id = :id AND status = 'PROCESSING'",
        ("tests/integration/test_transitions.py",),
        quick=True,
    ),
    Mutant(
        "a claim takes a cancelled task",
        TRANSITIONS,
        "t.status IN ('PENDING', 'RETRY')",
        "t.status IN ('PENDING', 'RETRY', 'CANCELLED')",
        ("tests/integration/test_transitions.py",),
        quick=True,
        every=True,  # both guards of CLAIM_MANY: the rows it locks, and the rows it moves
    ),
    Mutant(
        "two deliveries in one claim batch both get the task",
        TRANSITIONS,
        "return Claimed([moved.pop(task_id, None) for task_id in ids], held)",
        "return Claimed([moved.get(task_id) for task_id in ids], held)",
        ("tests/integration/test_claim_batch.py",),
        quick=True,
    ),
    Mutant(
        "a lease is never extended",
        TRANSITIONS,
        "UPDATE tasks SET lease_until = now() + make_interval(secs => :lease_s)",
        "UPDATE tasks SET lease_until = lease_until",
        ("tests/e2e/test_runner.py::test_a_handler_running_past_several_leases_keeps_its_task_by_renewing",),
    ),
    Mutant(
        "the reconciler does nothing",
        RECONCILER,
        '    its own: a scan that fails (a statement timeout, Redis away) undoes no step before it."""\n',
        '    its own: a scan that fails (a statement timeout, Redis away) undoes no step before it."""\n'
        "    return 0\n",
        ("tests/integration/test_reconciler.py",),
        quick=True,
    ),
    Mutant(
        "a job id left without its data counts as will-run",
        RECONCILER,
        "        if job is None:  # only its id is left",
        "        if job is None:\n            continue\n        if job is None:  # only its id is left",
        ("tests/integration/test_reconciler.py::test_a_job_redis_partly_lost_is_delivered_again",),
        quick=True,
    ),
    Mutant(
        "the due scan always starts over",
        RECONCILER,
        "last = rows[-1] if len(rows) == limit else None",
        "last = None",
        (
            "tests/integration/test_reconciler.py::"
            "test_due_tasks_rightly_queued_do_not_hide_a_lost_one_behind_the_scan_window",
        ),
        quick=True,
    ),
    Mutant(
        "a failed step's lease expiry does not wake its workflow",
        RECONCILER,
        "    await wake_workflows(engine, queue, expired.ended_steps_of, settings.saq_job_ttl_s)\n",
        "",
        ("tests/integration/test_wakeups.py",),
        quick=True,
    ),
    Mutant(
        "a wake-up that lands while the workflow runs is dropped",
        TRANSITIONS,
        "run_at = CASE WHEN old.run_at > old.updated_at THEN now()",
        "run_at = CASE WHEN false THEN now()",
        ("tests/integration/test_wakeups.py",),
        quick=True,
    ),
    Mutant(
        "an effect is claimed by an attempt that no longer holds its task",
        "src/orchestrator/effects.py",
        "    if won is not None:\n        await ensure_current(session, task_id, attempt)\n",
        "",
        ("tests/integration/test_effects.py",),
        quick=True,
    ),
    Mutant(
        "crm_update applies its changes on every attempt",
        "jobs/crm_update.py",
        'and await ctx.once(session, "apply changes")',
        "",
        (
            "tests/e2e/test_crm_webhook.py::test_a_retry_pushes_again_without_writing_its_changes_over_a_newer_write",
        ),
    ),
    Mutant(
        "email_send sends without claiming the send",
        "jobs/email_send.py",
        'if not await ctx.once(session, "send", hold_s=ctx.timeout_s + SEND_DEADLINE_S + 30):',
        "if False:",
        ("tests/e2e/test_email_attempts.py",),
    ),
    Mutant(
        "a send under way is cut when the worker stops",
        "jobs/email_send.py",
        "await ctx.protect(_send_and_record(ctx, session, message, recipient))",
        "await _send_and_record(ctx, session, message, recipient)",
        ("tests/e2e/test_email_shutdown.py",),
    ),
    Mutant(
        "workflow steps are ordered by their ids (a host's clock)",
        "jobs/workflow_execute.py",
        "STEP_ORDER = (Task.step.asc().nulls_last(), Task.created_at, Task.id)",
        "STEP_ORDER = (Task.id,)",
        (
            "tests/e2e/test_clocks.py::test_a_step_recorded_by_a_worker_whose_clock_is_behind_still_comes_second",
        ),
    ),
    Mutant(
        "an immediate task's delivery is timed by the host's clock",
        "src/orchestrator/queue.py",
        "return cls(task.id, task.attempts, max(0.0, (task.run_at - task.updated_at).total_seconds()))",
        "return cls(task.id, task.attempts, max(0.0, task.run_at.timestamp() - time.time()))",
        (
            "tests/e2e/test_clocks.py::"
            "test_an_immediate_task_runs_at_once_when_the_api_and_worker_clocks_are_behind",
        ),
    ),
    Mutant(
        "SAQ's abort poll may stop a live run",
        "src/orchestrator/runner/worker.py",
        "    async def abort(self, abort_threshold: float) -> None:",
        "    async def _abort_off(self, abort_threshold: float) -> None:",
        ("tests/e2e/test_slow_claim.py",),
    ),
    Mutant(
        "a read-only key may write",
        "src/orchestrator/auth/middleware.py",
        "_require(connection, Scope.READ if method in SAFE_METHODS else Scope.WRITE)",
        "_require(connection, Scope.READ)",
        ("tests/integration/test_auth.py",),
        quick=True,
    ),
    Mutant(
        "a write key reaches the operators' SAQ UI",
        "src/orchestrator/auth/middleware.py",
        "    _require(connection, Scope.ADMIN)",
        "    _require(connection, Scope.WRITE)",
        ("tests/integration/test_saq_ui.py", "tests/integration/test_auth.py"),
        quick=True,
    ),
    Mutant(
        "control characters pass",
        "src/orchestrator/plain_text.py",
        '_CONTROL = re.compile(r"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]")',
        '_CONTROL = re.compile(r"[^\\s\\S]")',
        ("tests/integration/test_control_characters.py",),
        quick=True,
    ),
    Mutant(
        "the verifier ignores the acknowledged version",
        VERIFY,
        'if not _differences(claim.acked, row) and row["version"] == claim.version:',
        "if not _differences(claim.acked, row):",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the verifier ignores the changes a completed task owed its lead",
        VERIFY,
        "elif claim.changes and (",
        "elif False and claim.changes and (",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the verifier ignores a lead stored under another id than acknowledged",
        VERIFY,
        'if row["id"] != claim.lead_id:',
        "if False:",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the verifier accepts an unanswered create that landed with other content",
        VERIFY,
        "if row is None or claim.pending is None or not _differences(claim.pending, row):",
        "if True:",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the verifier holds a lead handed to jobs to its first state",
        VERIFY,
        "    if not claim.exact:\n        return None\n",
        "",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the verifier lets an email go out twice",
        VERIFY,
        "if sent > claims:",
        "if sent > claims + 1:",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the verifier lets a completed task's email or push go missing",
        VERIFY,
        'and row["status"] == "COMPLETED":',
        'and row["status"] == "NEVER":',
        LOAD_VERIFY_TESTS,
        quick=True,
        every=True,
    ),
    Mutant(
        "the verifier lets a handler push twice in one attempt",
        VERIFY,
        "if pushed > claims:",
        "if False:",
        LOAD_VERIFY_TESTS,
        quick=True,
    ),
    Mutant(
        "the load report passes a run whose Locust broke",
        REPORT,
        'if summary["run"]["locust_exit_code"] != 0:',
        "if False:",
        LOAD_REPORT_TESTS,
        quick=True,
    ),
    Mutant(
        "the load report passes a run whose checks raised",
        REPORT,
        'if exceptions := summary["exceptions"]:',
        "if exceptions := []:",
        LOAD_REPORT_TESTS,
        quick=True,
    ),
    Mutant(
        "the load report passes an empty ledger",
        REPORT,
        'if verification["acknowledged_writes"] == 0 and verification["tasks_accepted"] == 0:',
        "if False:",
        LOAD_REPORT_TESTS,
        quick=True,
    ),
    Mutant(
        "OPTIONS lists the methods of one handler only (Litestar 2's own answer)",
        "src/orchestrator/app.py",
        "before_send=[AllowEveryMethod()],",
        "before_send=[],",
        ("tests/integration/test_openapi.py",),
        quick=True,
    ),
    Mutant(
        "a malformed If-Match is taken for a stale one",
        "src/orchestrator/leads/controllers.py",
        "        pattern=IF_MATCH_PATTERN,\n",
        "",
        ("tests/integration/test_openapi.py",),
        quick=True,
    ),
    Mutant(
        'numbers are read from text ("5")',
        "src/orchestrator/json_types.py",
        "if isinstance(value, bool) or not isinstance(value, int | float):",
        "if False:",
        ("tests/integration/test_openapi.py",),
        quick=True,
        every=True,
    ),
    Mutant(
        "a lead change the stored lead refuses is retried",
        "src/orchestrator/errors.py",
        "class RefusedChange(Conflict, PermanentError):",
        "class RefusedChange(Conflict):",
        ("tests/e2e/test_crm_webhook.py::test_changes_that_would_leave_the_lead_unreachable_fail_at_once",),
    ),
    Mutant(
        "a lead's name may open an RFC 2047 encoded word in the subject",
        "src/orchestrator/mail/render.py",
        'message["Subject"] = sender, to, _header_text(subject)',
        'message["Subject"] = sender, to, subject',
        ("tests/e2e/test_email.py::test_a_lead_name_cannot_add_a_header_or_replace_the_body",),
    ),
    Mutant(
        "free-form JSON may nest to any depth",
        "src/orchestrator/json_bounds.py",
        "    if _deeper_than(value, MAX_DEPTH):",
        "    if _deeper_than(value, 100_000):",
        ("tests/integration/test_limits.py",),
        quick=True,
    ),
    Mutant(
        "a nested workflow's references are filled in by the outer one (a result becomes tasks)",
        "jobs/workflow_execute.py",
        "    if refs := [ref for ref in filled_from_here(step) if ref != LEAD]:",
        "    if False:",
        ("tests/integration/test_task_trees.py",),
        quick=True,
    ),
    Mutant(
        "a request may make any number of tasks",
        "jobs/workflow_execute.py",
        "        if self._tasks > MAX_TREE_TASKS:",
        "        if False:",
        ("tests/integration/test_task_trees.py",),
        quick=True,
    ),
    Mutant(
        "workflows nest without end",
        "jobs/workflow_execute.py",
        "    if depth >= MAX_DEPTH:",
        "    if False:",
        ("tests/integration/test_task_trees.py",),
        quick=True,
    ),
    Mutant(
        "a wrong key is counted before the lookup: valid keys behind a shared address get 429",
        "src/orchestrator/auth/middleware.py",
        "        caller = await live_keys.find(key)\n        if caller is None:",
        "        address = connection.client.host if connection.client else 'unknown'\n"
        "        await rate_limiter.count_failure(address)\n"
        "        caller = await live_keys.find(key)\n        if caller is None:",
        ("tests/integration/test_auth.py",),
        quick=True,
    ),
    Mutant(
        "an unknown key is not looked up again: a key made a moment ago is refused",
        "src/orchestrator/auth/live_keys.py",
        "            await self._loaded_since(asked)\n",
        "",
        ("tests/integration/test_auth.py",),
        quick=True,
    ),
    Mutant(
        "Basic is taken on every route (a browser's saved login reaches the JSON API)",
        "src/orchestrator/auth/middleware.py",
        "    if not _for_browsers(path):",
        "    if False:",
        ("tests/integration/test_cross_site.py",),
        quick=True,
    ),
    Mutant(
        "a POST to /saq from another site's page is taken",
        "src/orchestrator/auth/middleware.py",
        "    _refuse_other_sites(connection)\n",
        "",
        ("tests/integration/test_cross_site.py",),
        quick=True,
    ),
    Mutant(
        "JSON endpoints read any content type",
        "src/orchestrator/web/json_only.py",
        "    if not JSON_MEDIA_TYPE.fullmatch(media_type):",
        "    if False:",
        ("tests/integration/test_cross_site.py",),
        quick=True,
    ),
    Mutant(
        "email_send mails anyone",
        "jobs/email_send.py",
        "if not allowed or not re.fullmatch(recipient_pattern(allowed), to):",
        "if False:",
        ("tests/integration/test_email_recipients.py",),
        quick=True,
    ),
    Mutant(
        "test job types run in production",
        "src/orchestrator/job.py",
        "if not isinstance(job, JobType) or (job.for_tests and not test_types):",
        "if not isinstance(job, JobType):",
        ("tests/integration/test_job_types.py",),
        quick=True,
    ),
    Mutant(
        "a task's timeout may exceed its type's",
        "src/orchestrator/tasks/services.py",
        "    if data.timeout_s is not None and data.timeout_s > checked.job_type.timeout_s:",
        "    if False:",
        ("tests/integration/test_job_types.py",),
        quick=True,
    ),
    Mutant(
        "a batch's workflows are bounded one by one, not together",
        "src/orchestrator/tasks/services.py",
        "    if (made := sum(payload.tasks_made for payload in checked)) > BATCH_MAX:",
        "    if (made := 0) > BATCH_MAX:",
        ("tests/integration/test_task_trees.py",),
        quick=True,
    ),
    Mutant(
        "a key load stuck on a dead connection holds every request",
        "src/orchestrator/auth/live_keys.py",
        "                async with asyncio.timeout(self._load_timeout_s):",
        "                async with asyncio.timeout(None):",
        ("tests/integration/test_auth.py",),
        quick=True,
    ),
    Mutant(
        "every key reads a failed attempt's traceback",
        "src/orchestrator/tasks/controllers.py",
        "context = {SHOW_TRACEBACKS: request.user.scope.allows(Scope.ADMIN)}",
        "context = {SHOW_TRACEBACKS: True}",
        ("tests/integration/test_task_history_redaction.py",),
        quick=True,
    ),
    # The chaos run's checker, against the builds issue 13 names: each must be reported as an
    # anomaly of its kind by the short run CI makes.
    Mutant(
        "a zombie's completion lands (the chaos run)",
        TRANSITIONS,
        "WHERE t.id = d.id AND t.status = 'PROCESSING' AND t.attempts = d.attempt",
        "WHERE t.id = d.id AND t.status = 'PROCESSING'",
        CHAOS_TESTS,
    ),
    Mutant(
        "the reconciler switched off (the chaos run)",
        "src/orchestrator/runner/worker.py",
        "        background.append(asyncio.create_task(reconcile_forever(engine, queue, settings)))",
        "        pass",
        CHAOS_TESTS,
    ),
    Mutant(
        "an email sent before its delivery is claimed (the chaos run)",
        "jobs/email_send.py",
        '        if not await ctx.once(session, "send", hold_s=ctx.timeout_s + SEND_DEADLINE_S + 30):',
        "        if ctx.settings.smtp_url is not None:\n"
        "            await send_smtp(message, ctx.settings.smtp_url.get_secret_value())\n"
        '        if not await ctx.once(session, "send", hold_s=ctx.timeout_s + SEND_DEADLINE_S + 30):',
        CHAOS_TESTS,
    ),
    Mutant(
        "a PUT ignores its If-Match (the one-statement write's WHERE)",
        "src/orchestrator/leads/services.py",
        "WHERE leads.id = :id AND (:any_version OR leads.version = ANY(:versions))",
        "WHERE leads.id = :id AND (:any_version OR leads.version = ANY(:versions) OR true)",
        ("tests/integration/test_leads_write.py",),
        quick=True,
    ),
    Mutant(
        'a PUT\'s If-Match compares tags as numbers ("01" matches version 1)',
        "src/orchestrator/etags.py",
        """_VERSION_TAG = re.compile(r'"([1-9][0-9]{0,9})"')""",
        """_VERSION_TAG = re.compile(r'"([0-9]+)"')""",
        ("tests/integration/test_leads_write.py",),
        quick=True,
    ),
    Mutant(
        "a PUT that changes nothing moves the version",
        "src/orchestrator/leads/services.py",
        "THEN leads.version + 1 ELSE leads.version END",
        "THEN leads.version + 1 ELSE leads.version + 1 END",
        ("tests/integration/test_leads_write.py",),
        quick=True,
    ),
    Mutant(
        "a one-statement route runs outside a transaction with an Idempotency-Key",
        "src/orchestrator/web/transactions.py",
        '        and "idempotency-key" not in request.headers\n',
        "",
        ("tests/integration/test_one_statement.py",),
        quick=True,
    ),
    Mutant(
        "a lead write reads the lead unlocked (racing writes without If-Match get 412)",
        "src/orchestrator/leads/services.py",
        "    lead = await session.get(Lead, lead_id, with_for_update=lock, populate_existing=True)",
        "    lead = await session.get(Lead, lead_id)",
        ("tests/e2e/test_lead_races.py",),
    ),
    Mutant(
        "a deadlock or a statement timeout is a 500, not a 503 to retry",
        "src/orchestrator/web/problems.py",
        "    if transient(exc):\n",
        "    if False:\n",
        ("tests/e2e/test_deadlocks.py",),
    ),
    Mutant(
        "retention deletes a workflow whose step was sent back (its old finished_at left set)",
        "src/orchestrator/runner/retention.py",
        "    WHERE id = ANY(CAST(:ids AS UUID[])) AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')\n",
        "    WHERE id = ANY(CAST(:ids AS UUID[]))\n",
        ("tests/integration/test_retention.py",),
        quick=True,
    ),
    Mutant(
        "retention deletes a workflow with a step not finished, or finished recently",
        "src/orchestrator/runner/retention.py",
        "    WHERE id = ANY(CAST(:ids AS UUID[])) AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')\n"
        "      AND finished_at < now() - make_interval(secs => :keep_s)\n",
        "    WHERE id = ANY(CAST(:ids AS UUID[]))\n",
        ("tests/integration/test_retention.py",),
        quick=True,
    ),
    Mutant(
        "retention deletes a workflow's steps one by one, the workflow left without them",
        "src/orchestrator/runner/retention.py",
        "        WHERE parent_id IS NULL AND status",
        "        WHERE status",
        ("tests/integration/test_retention.py",),
        quick=True,
    ),
    Mutant(
        "retention waits on a row a retry holds, stalling its round",
        "src/orchestrator/runner/retention.py",
        "        ORDER BY finished_at LIMIT :batch\n        FOR UPDATE SKIP LOCKED\n",
        "        ORDER BY finished_at LIMIT :batch\n        FOR UPDATE\n",
        ("tests/integration/test_retention.py",),
        quick=True,
    ),
    Mutant(
        "a type's concurrency limit is not kept",
        LIMITS,
        "free = max(0, limit.concurrency - running.get(name, 0))",
        "free = len(rows)",
        LIMITS_TESTS,
        quick=True,
    ),
    Mutant(
        "a type's concurrency limit is counted without its lock: two claims at once both see a slot",
        LIMITS,
        '    await db.execute(LOCK, {"names": names})\n',
        "",
        ("tests/e2e/test_job_limits.py::test_a_concurrency_limit_is_never_exceeded_by_200_tasks",),
    ),
    Mutant(
        "a concurrency key lets a later task go first",
        LIMITS,
        'head is None or head.id != row.id or head.status == "PROCESSING"',
        'head is not None and head.status == "PROCESSING"',
        LIMITS_TESTS,
        quick=True,
    ),
    Mutant(
        "a rate limit grants every start asked for",
        LIMITS,
        "least(:wanted, :amount - cardinality(starts))",
        ":wanted",
        LIMITS_TESTS,
        quick=True,
    ),
    Mutant(
        "a held-back delivery is never delivered again by its worker",
        EXECUTE,
        "            ctx[REDELIVER] = task.delivery  # type: ignore[literal-required]\n",
        "",
        LIMITS_TESTS,
        quick=True,
    ),
    Mutant(
        "ticks missed by a late round are skipped, not caught up",
        "src/orchestrator/schedules/ticks.py",
        "cron.between(window, schedule.now, TICKS_PER_ROUND) or ",
        "",
        ("tests/integration/test_schedules.py",),
        quick=True,
    ),
    Mutant(
        "a round fires the first missed tick after downtime, not the latest",
        "src/orchestrator/schedules/cron.py",
        "        ticks = self._ticks(moment.replace(microsecond=0) + _SECOND, backwards=True)",
        "        ticks = self._ticks(moment - dt.timedelta(days=3650), backwards=True)",
        ("tests/integration/test_schedules.py", "tests/unit/test_cron.py"),
        quick=True,
    ),
]
