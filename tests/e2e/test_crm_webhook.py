"""crm_update pushing to a real HTTP server on 127.0.0.1 that checks the signature with the
Standard Webhooks library, as a CRM would."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.helpers import submit, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.usefixtures("workers")

SECRET = "whsec_" + base64.b64encode(b"webhook-secret-for-tests").decode()  # (a test fixture)


class FakeCrm(ThreadingHTTPServer):
    """Answers a lead's updates with the statuses planned for it, in order (then 200)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CrmHandler)
        self.plans: dict[str, list[int]] = {}
        self.received: list[dict[str, Any]] = []
        # A lead's planned answers wait for this while its id is in `held`; `arrived` says one is waiting.
        self.held: set[str] = set()
        self.arrived = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/leads"


class CrmHandler(BaseHTTPRequestHandler):
    server: FakeCrm

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        lead = json.loads(body)["lead"]
        try:
            Webhook(SECRET).verify(body, dict(self.headers.items()))
            signed = True
        except WebhookVerificationError:
            signed = False
        # Plans apply to the test's own update; the push that creating the lead triggers gets 200.
        planned = (lead["status"] == "contacted" and self.server.plans.get(lead["id"])) or [200]
        status = planned.pop(0) if signed else 401
        if lead["id"] in self.server.held and lead["status"] == "contacted":
            self.server.arrived.set()
            self.server.release.wait(timeout=30)
        self.server.received.append(
            {
                "lead": lead,
                "signed": signed,
                "key": self.headers.get("Idempotency-Key"),
                "webhook_id": self.headers.get("webhook-id"),
                "status": status,
            }
        )
        answer = json.dumps({"ok": status < 300, "detail": f"planned {status}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def crm() -> Iterator[FakeCrm]:
    server = FakeCrm()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def worker_extra_env(crm: FakeCrm) -> dict[str, str]:
    return {"CRM_WEBHOOK_URL": crm.url, "CRM_WEBHOOK_SECRET": SECRET}


async def new_lead(api) -> dict[str, Any]:
    """A lead whose own crm_update (recorded by its creation) has finished, so that it cannot
    push the state the test's update is about to write."""
    response = await api.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com", "company": "Acme"})
    lead = response.json()
    for task in (await api.get(f"/leads/{lead['id']}/tasks")).json()["items"]:
        await wait_for(api, task["id"], timeout_s=30)
    return lead


async def crm_update(api, crm: FakeCrm, plan: list[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lead = await new_lead(api)
    crm.plans[lead["id"]] = list(plan)
    payload = {"lead_id": lead["id"], "changes": {"status": "contacted"}}
    task = await wait_for(api, await submit(api, "crm_update", payload, lead_id=lead["id"]), timeout_s=30)
    calls = [
        call
        for call in crm.received
        if call["lead"]["id"] == lead["id"] and call["lead"]["status"] == "contacted"
    ]
    return task, calls


async def test_the_lead_state_is_pushed_signed_with_a_stable_idempotency_key(api, crm):
    task, calls = await crm_update(api, crm, [200])
    assert task["status"] == "COMPLETED"
    assert task["result"]["crm_sync"] == "sent"
    assert len(calls) == 1
    assert calls[0]["signed"]
    assert calls[0]["key"] == f"task-{task['id']}"
    assert calls[0]["lead"]["version"] == task["result"]["lead_version"]


async def test_a_5xx_is_retried_with_the_same_idempotency_key(api, crm):
    task, calls = await crm_update(api, crm, [500, 503, 200])
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 3
    assert [call["status"] for call in calls] == [500, 503, 200]
    assert {call["key"] for call in calls} == {f"task-{task['id']}"}
    assert {call["webhook_id"] for call in calls} == {f"task-{task['id']}"}
    assert all(call["signed"] for call in calls)


async def test_a_4xx_fails_at_once_with_the_remote_answer(api, crm):
    task, calls = await crm_update(api, crm, [400])
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1
    assert "CRM answered 400" in task["error"]
    assert "planned 400" in task["error"]
    assert len(calls) == 1


async def test_a_retry_pushes_again_without_writing_its_changes_over_a_newer_write(api, crm):
    """Attempt 1 applies the changes, then its push fails; meanwhile the user writes the lead and
    is acknowledged. Attempt 2 must push the lead as it now is, not apply the old changes again."""
    lead = await new_lead(api)
    crm.plans[lead["id"]] = [500, 200]
    crm.held.add(lead["id"])
    payload = {"lead_id": lead["id"], "changes": {"status": "contacted"}}
    task_id = await submit(api, "crm_update", payload, lead_id=lead["id"])
    assert await asyncio.to_thread(crm.arrived.wait, 30)
    current = (await api.get(f"/leads/{lead['id']}")).json()
    assert current["status"] == "contacted"
    newer = await api.patch(f"/leads/{lead['id']}", json={"status": "qualified"})
    assert newer.status_code == 200, newer.text
    crm.release.set()
    task = await wait_for(api, task_id, timeout_s=30)
    assert task["status"] == "COMPLETED", task["error"]
    assert task["attempts"] == 2
    assert (await api.get(f"/leads/{lead['id']}")).json()["status"] == "qualified"
    assert task["result"]["lead_version"] == newer.json()["version"]


async def test_changes_that_would_leave_the_lead_unreachable_fail_at_once(api, crm):
    lead = await new_lead(api)  # an email, no phone
    payload = {"lead_id": lead["id"], "changes": {"email": None}}
    task = await wait_for(api, await submit(api, "crm_update", payload, lead_id=lead["id"]), timeout_s=30)
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1  # the same change would be refused again: no retry
    assert "neither an email nor a phone" in task["error"]
    assert (await api.get(f"/leads/{lead['id']}")).json()["email"] == lead["email"]
