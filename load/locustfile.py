"""Integrators under load: they write leads and read every field back, and run every job type.

    uv run locust -f load/locustfile.py --host http://127.0.0.1:8000      (or `make load`)

Each user owns the leads it creates: nobody else writes them, so whatever it last wrote is
exactly what every read (and, afterwards, PostgreSQL) must show; a difference is a failure
naming the lead. Jobs that rewrite a lead get a lead of their own. Connection errors (a
restart window) are retried with the same Idempotency-Key and reported as such.

Options on top of Locust's (load/options.py): --ledger FILE (record acknowledged writes for
load/verify.py), --think-time MIN:MAX, --task-timeout S, --retry-window S, --summary-json FILE.
Weights: LOAD_WEIGHTS="put_lead=5,workflow=0" (names as in WEIGHTS). Tags: leads, tasks and
one per job type, e.g. `--tags leads` or `--exclude-tags workflow`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust import FastHttpUser, events, tag, task

from load.ledger import WRITTEN, differences
from load.locust_summary import CONNECTION_ERROR, summarise
from load.options import Run, add_options
from orchestrator.tasks.status import TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from locust.contrib.fasthttp import ResponseContextManager
    from locust.env import Environment

STATUSES = ("new", "contacted", "qualified", "unqualified", "converted", "lost")

WEIGHTS = {
    "create_lead": 2,
    "read_lead": 4,
    "put_lead": 3,
    "patch_lead": 3,
    "list_leads": 2,
    "noop": 2,
    "crm_update": 1,
    "lead_process": 1,
    "email_send": 1,
    "workflow": 1,
    "inline_workflow": 1,
}
for _item in filter(None, os.environ.get("LOAD_WEIGHTS", "").replace(" ", "").split(",")):
    _name, _, _value = _item.partition("=")
    if _name not in WEIGHTS or not _value.isdigit():
        raise SystemExit(f"LOAD_WEIGHTS: expected name=int with a name of {sorted(WEIGHTS)}, got {_item!r}")
    WEIGHTS[_name] = int(_value)


# Up to this many seconds of sleep in each noop task (LOAD_NOOP_SLEEP_S; none by default).
NOOP_SLEEP_S = float(os.environ.get("LOAD_NOOP_SLEEP_S") or 0)

events.init_command_line_parser.add_listener(add_options)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    Run.configure(options)
    if options.api_key:
        Integrator.default_headers = {"Authorization": f"Bearer {options.api_key}"}


class Reply:
    """One answered request, still open so that a check can mark it failed."""

    def __init__(self, response: ResponseContextManager, retried: bool) -> None:
        self.response, self.retried = response, retried
        self.status = response.status_code
        self.failed = self.status == 0  # already reported as a connection error

    @property
    def data(self) -> Any:
        return self.response.json()

    @property
    def etag(self) -> str:
        headers = self.response.headers
        return str(headers.get("ETag", "")) if headers is not None else ""

    def fail(self, message: str) -> bool:
        if not self.failed:
            self.response.failure(message)
            self.failed = True
        return False

    def expect(self, *statuses: int) -> bool:
        if self.status in statuses:
            self.response.success()
            return True
        body = (self.response.text or "")[:300]
        return self.fail(f"expected {'/'.join(map(str, statuses))}, got {self.status}: {body}")


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 for the flat attribute patches the users send."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class Integrator(FastHttpUser):
    network_timeout = 30.0
    connection_timeout = 5.0

    def wait_time(self) -> float:
        return random.uniform(*Run.think)

    def on_start(self) -> None:
        self.leads: dict[str, dict[str, Any]] = {}  # own leads: id -> last acknowledged state
        self.etags: dict[str, str] = {}

    # -- the integrator's actions ---------------------------------------------------------------

    @tag("leads")
    @task(WEIGHTS["create_lead"])
    def create_lead(self) -> None:
        state = self._create(new_fields(), exact=True)
        if state is not None:
            self.leads[state["id"]] = state
            self._read_back(state["id"])

    @tag("leads")
    @task(WEIGHTS["read_lead"])
    def read_lead(self) -> None:
        if lead_id := self._own_lead():
            self._read_back(lead_id)

    @tag("leads")
    @task(WEIGHTS["put_lead"])
    def put_lead(self) -> None:
        if lead_id := self._own_lead():
            fields = new_fields(email=self.leads[lead_id]["email"])
            self._write("PUT", lead_id, fields, fields)

    @tag("leads")
    @task(WEIGHTS["patch_lead"])
    def patch_lead(self) -> None:
        if lead_id := self._own_lead():
            old = self.leads[lead_id]
            stale = next(iter(old["attributes"]), "nothing")
            patch: dict[str, Any] = {
                "company": f"Patched {random.randrange(10**6)} Ltd",
                "status": random.choice(STATUSES),
                "attributes": {f"k{random.randrange(5)}": random.randrange(10**6), stale: None},
            }
            expected = {name: old[name] for name in WRITTEN} | patch
            expected["attributes"] = merge_patch(old["attributes"], patch["attributes"])
            self._write("PATCH", lead_id, patch, expected)

    @tag("leads")
    @task(WEIGHTS["list_leads"])
    def list_leads(self) -> None:
        lead_id = self._own_lead()
        if lead_id is None or random.random() < 0.3:
            with self._call("GET", "/leads?limit=50", name="/leads?limit") as reply:
                if reply.expect(200) and not isinstance(reply.data.get("items"), list):
                    reply.fail("GET /leads: no items list")
            return
        own = self.leads[lead_id]
        with self._call("GET", "/leads", name="/leads?email", params={"email": own["email"]}) as reply:
            if reply.expect(200):
                items = reply.data["items"]
                if [item["id"] for item in items] != [lead_id]:
                    reply.fail(
                        f"mismatch: GET /leads?email={own['email']} gave {len(items)} leads, not {lead_id}"
                    )
                elif problems := differences(self._expected(lead_id), items[0]):
                    reply.fail(f"mismatch: lead {lead_id} in the list: {'; '.join(problems)}")

    @tag("tasks", "noop")
    @task(WEIGHTS["noop"])
    def noop(self) -> None:
        echo = {"n": random.randrange(10**9)}
        payload: dict[str, Any] = {"echo": echo}
        if NOOP_SLEEP_S:  # tasks that are still running when a fault strikes
            payload["sleep_s"] = round(random.uniform(0, NOOP_SLEEP_S), 2)
        result = self._run_task("noop", payload, None)
        if result is not None and result["result"]["echo"] != echo:
            self._task_event("noop", 0, f"mismatch: task {result['id']} echoed {result['result']}")

    @tag("tasks", "email_send")
    @task(WEIGHTS["email_send"])
    def email_send(self) -> None:
        if lead_id := self._own_lead():
            payload = {
                "lead_id": lead_id,
                "subject": "Hello {first_name}",
                "text": "Hi {first_name} of {company}",
            }
            self._run_task("email_send", payload, lead_id)

    @tag("tasks", "crm_update")
    @task(WEIGHTS["crm_update"])
    def crm_update(self) -> None:
        if (lead := self._create(new_fields(), exact=False)) is None:
            return
        changes = {"status": random.choice(STATUSES), "score": random.randrange(101)}
        payload = {"lead_id": lead["id"], "changes": changes}
        if self._run_task("crm_update", payload, lead["id"], changes) is not None:
            self._read_lead(lead["id"], lambda read: differences(changes, read), "after its job")

    @tag("tasks", "lead_process")
    @task(WEIGHTS["lead_process"])
    def lead_process(self) -> None:
        local = f"(212) {random.randint(200, 999)}-{random.randrange(10_000):04d}"
        if (lead := self._create(new_fields(phone=local), exact=False)) is None:
            return
        if self._run_task("lead_process", {"lead_id": lead["id"]}, lead["id"]) is not None:
            e164 = "+1212" + "".join(ch for ch in local[6:] if ch.isdigit())
            self._read_lead(lead["id"], lambda read: processed(read, e164), "after its job")

    @tag("tasks", "workflow")
    @task(WEIGHTS["workflow"])
    def workflow(self) -> None:
        if (lead := self._create(new_fields(), exact=False)) is None:
            return
        done = self._run_task("workflow_execute", {"workflow": "new_lead_followup"}, lead["id"])
        if done is not None and [child["status"] for child in done["children"]] != ["COMPLETED"] * 3:
            self._task_event("workflow_execute", 0, f"task {done['id']}: steps {done['children']}")

    @tag("tasks", "workflow")
    @task(WEIGHTS["inline_workflow"])
    def inline_workflow(self) -> None:
        """Steps that read earlier steps' results: the last must see exactly what they returned."""
        n = random.randrange(10**9)
        steps = [
            {"type": "noop", "payload": {"echo": {"n": n}}},
            {"type": "noop", "payload": {"echo": {"previous": "${steps.1.echo.n}"}}},
            {
                "type": "noop",
                "payload": {"echo": {"first": "${steps.1.echo}", "second": "${steps.2.echo.previous}"}},
            },
        ]
        done = self._run_task("workflow_execute", {"steps": steps}, None)
        if done is not None and done["children"][-1]["result"]["echo"] != {"first": {"n": n}, "second": n}:
            self._task_event("workflow_execute", 0, f"task {done['id']}: steps saw {done['children']}")

    # -- leads ----------------------------------------------------------------------------------

    def _own_lead(self) -> str | None:
        if not self.leads:
            self.create_lead()
        return random.choice(list(self.leads)) if self.leads else None

    def _expected(self, lead_id: str) -> dict[str, Any]:
        return {name: self.leads[lead_id][name] for name in (*WRITTEN, "version")}

    def _create(self, fields: dict[str, Any], *, exact: bool) -> dict[str, Any] | None:
        if Run.ledger:
            Run.ledger.intent(fields["email"], fields)
        key = str(uuid.uuid4())  # the same on every retry: one lead, however many attempts
        with self._call(
            "POST", "/leads", name="/leads", json=fields, headers={"Idempotency-Key": key}
        ) as reply:
            if not reply.expect(201):
                return None
            state: dict[str, Any] = reply.data
            if problems := differences(fields, state):
                reply.fail(f"mismatch: created lead {state['id']}: {'; '.join(problems)}")
                return None
            self.etags[state["id"]] = reply.etag
        if Run.ledger:
            Run.ledger.lead(state, exact=exact)
        return state

    def _write(self, method: str, lead_id: str, body: dict[str, Any], expected: dict[str, Any]) -> None:
        """PUT or PATCH with If-Match; read every field back from the answer and from a GET."""
        old = self.leads[lead_id]
        if Run.ledger:
            Run.ledger.intent(old["email"], expected, lead_id)
        headers = {"If-Match": self.etags[lead_id]}
        with self._call(
            method, f"/leads/{lead_id}", name=f"/leads/[id] {method}", json=body, headers=headers
        ) as reply:
            if reply.retried and reply.status == 412:
                # The first attempt may have landed before the connection dropped: the lead says.
                reply.response.success()
                if (state := self._read_lead(lead_id)) is None or differences(expected, state):
                    reply.fail(f"mismatch: lead {lead_id}: a retried {method} left {state}, wrote {expected}")
                    return
            elif not reply.expect(200):
                return
            else:
                state = reply.data
                if problems := differences(expected, state):
                    reply.fail(f"mismatch: lead {lead_id} after {method}: {'; '.join(problems)}")
                    return
                if state["version"] != old["version"] + 1 and not reply.retried:
                    reply.fail(
                        f"mismatch: lead {lead_id} went from version {old['version']} to {state['version']}"
                    )
                    return
                self.etags[lead_id] = reply.etag
        self.leads[lead_id] = state
        if Run.ledger:
            Run.ledger.lead(state)
        self._read_back(lead_id)

    def _read_back(self, lead_id: str) -> None:
        self._read_lead(lead_id, lambda read: differences(self._expected(lead_id), read))

    def _read_lead(
        self,
        lead_id: str,
        problems_of: Callable[[dict[str, Any]], list[str]] = lambda _: [],
        context: str = "reads back",
    ) -> dict[str, Any] | None:
        """GET the lead; what `problems_of` finds in it fails the read, naming the lead."""
        with self._call("GET", f"/leads/{lead_id}", name="/leads/[id]") as reply:
            if not reply.expect(200):
                return None
            state: dict[str, Any] = reply.data
            if problems := problems_of(state):
                reply.fail(f"mismatch: lead {lead_id} {context}: {'; '.join(problems)}")
                return None
            self.etags[lead_id] = reply.etag
            return state

    # -- tasks ----------------------------------------------------------------------------------

    def _run_task(
        self,
        job_type: str,
        payload: dict[str, Any],
        lead_id: str | None,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Submit, then poll until a terminal state; the wait is reported as a TASK 'request'."""
        body = {"type": job_type, "payload": payload, "lead_id": lead_id}
        started = time.perf_counter()
        key = str(uuid.uuid4())
        with self._call(
            "POST", "/tasks", name=f"/tasks {job_type}", json=body, headers={"Idempotency-Key": key}
        ) as r:
            if not r.expect(202):
                return None
            task_id = r.data["id"]
        if Run.ledger:
            Run.ledger.task(task_id, job_type, lead_id, changes or {})
        deadline, pause = started + Run.task_timeout_s, 0.05
        while time.perf_counter() < deadline:
            gevent.sleep(pause)
            pause = min(pause * 1.5, 1.0)
            with self._call("GET", f"/tasks/{task_id}", name="/tasks/[id]") as reply:
                if not reply.expect(200):
                    continue
                current: dict[str, Any] = reply.data
            if current["status"] in TERMINAL_STATUSES:
                elapsed_ms = (time.perf_counter() - started) * 1000
                if current["status"] != "COMPLETED":
                    self._task_event(
                        job_type, elapsed_ms, f"task {task_id} {current['status']}: {current['error']}"
                    )
                    return None
                self._task_event(job_type, elapsed_ms)
                return current
        self._task_event(
            job_type, Run.task_timeout_s * 1000, f"task {task_id} unfinished after {Run.task_timeout_s} s"
        )
        return None

    def _task_event(self, job_type: str, elapsed_ms: float, error: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type="TASK",
            name=job_type,
            response_time=elapsed_ms,
            response_length=0,
            exception=Exception(error) if error else None,
            context={},
        )

    # -- HTTP -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self, method: str, path: str, *, name: str, **kwargs: Any) -> Iterator[Reply]:
        """One logical request; a connection error is recorded, then retried for a while."""
        deadline, retried, pause = time.monotonic() + Run.retry_window_s, False, 0.25
        while True:
            with self.client.request(method, path, name=name, catch_response=True, **kwargs) as response:
                if response.status_code == 0 and time.monotonic() < deadline:
                    response.failure(f"{CONNECTION_ERROR} (retried): {type(response.error).__name__}")
                    retried = True
                else:
                    if response.status_code == 0:
                        response.failure(f"{CONNECTION_ERROR} (gave up): {response.error!r}")
                    yield Reply(response, retried)
                    return
            gevent.sleep(pause)
            pause = min(pause * 2, 2.0)


def new_fields(email: str | None = None, phone: str | None = None) -> dict[str, Any]:
    """Every writable field, in the form the API stores it (so a read must give it back as is)."""
    n = uuid.uuid4().hex[:12]
    return {
        "first_name": random.choice(["Ada", "Grace", "Linus", "Barbara", "Ken"]),
        "last_name": f"Load{n}",
        "email": email or f"load-{n}@example.com",
        "phone": phone or f"+1212{random.randint(200, 999)}{random.randrange(10_000):04d}",
        "company": f"Company {random.randrange(1000)}",
        "source": random.choice(["web", "referral", "ads", "event"]),
        "status": random.choice(STATUSES),
        "score": random.randrange(101),
        "attributes": {"campaign": f"c{random.randrange(50)}", "tags": ["load", n[:4]], "nested": {"n": 1}},
    }


def processed(lead: dict[str, Any], e164: str) -> list[str]:
    problems = []
    if lead["phone"] != e164:
        problems.append(f"phone {lead['phone']!r}, expected {e164!r}")
    if lead["score"] is None or lead["attributes"].get("email_valid") is not True:
        problems.append(f"not scored/validated: score {lead['score']}, attributes {lead['attributes']}")
    return problems


@events.quitting.add_listener
def _write_summary(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if Run.ledger:
        Run.ledger.close()
    if options is None or not options.summary_json:
        return
    Path(options.summary_json).write_text(json.dumps(summarise(environment), indent=2), encoding="utf-8")
