"""email_send through a real SMTP server on 127.0.0.1 (aiosmtpd), never sending twice."""

from __future__ import annotations

import email
import uuid
from email import policy
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from load.service import free_port
from orchestrator.queue import make_queue
from tests.helpers import submit, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage


pytestmark = pytest.mark.usefixtures("workers")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"

    def with_id(self, message_id: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["Message-ID"] == message_id]


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def worker_extra_env(inbox: tuple[Inbox, int]) -> dict[str, str]:
    return {"SMTP_URL": f"smtp://127.0.0.1:{inbox[1]}", "EMAIL_FROM": "sales@example.com"}


async def lead(api, **fields: Any) -> dict[str, Any]:
    body = {"email": f"{uuid.uuid4().hex}@example.com", "first_name": "Ada"} | fields
    return (await api.post("/leads", json=body)).json()


async def test_a_templated_email_reaches_the_smtp_server_once_with_escaped_html(api, inbox):
    handler, _ = inbox
    target = await lead(api, company="<b>Acme & Co</b>")
    payload = {
        "lead_id": target["id"],
        "subject": "Welcome, {first_name}",
        "text": "Hello {first_name} from {company}",
        "html": "<p>Hello {first_name} from {company}</p>",
    }
    task = await wait_for(api, await submit(api, "email_send", payload))
    assert task["status"] == "COMPLETED", task["error"]
    message_id = f"<task-{task['id']}@orchestrator>"
    assert task["result"]["message_id"] == message_id
    [message] = handler.with_id(message_id)
    assert message["To"] == target["email"]
    assert message["From"] == "sales@example.com"
    assert message["Subject"] == "Welcome, Ada"
    assert message.get_body(("plain",)).get_content().strip() == "Hello Ada from <b>Acme & Co</b>"
    html_part = message.get_body(("html",)).get_content()
    assert "&lt;b&gt;Acme &amp; Co&lt;/b&gt;" in html_part


async def test_a_task_delivered_again_after_the_server_accepted_does_not_send_again(api, settings, inbox):
    handler, _ = inbox
    target = await lead(api)
    payload = {"lead_id": target["id"], "subject": "Once", "text": "only once"}
    task = await wait_for(api, await submit(api, "email_send", payload))
    assert task["status"] == "COMPLETED"
    # As if the worker had died after the send: the task runs again, as attempt 2.
    engine = create_async_engine(settings.sqlalchemy_url)
    async with engine.begin() as db:
        await db.execute(
            text("UPDATE tasks SET status = 'PENDING', finished_at = NULL WHERE id = :id"),
            {"id": uuid.UUID(task["id"])},
        )
    await engine.dispose()
    queue = make_queue(settings)
    try:
        await queue.enqueue("run_task", key=f"{task['id']}:1", task_id=task["id"], timeout=0, retries=1)
    finally:
        await queue.disconnect()
    again = await wait_for(api, task["id"])
    assert again["attempts"] == 2
    assert again["result"]["already_sent"] is True
    assert len(handler.with_id(task["result"]["message_id"])) == 1


@pytest.mark.parametrize(
    "name",
    [
        "=?utf-8?q?Eve=0D=0ABcc:_attacker@evil.example?=",  # RFC 2047 words decode to CR LF
        "=?utf-8?b?RXZlDQpCY2M6IGF0dGFja2VyQGV2aWwuZXhhbXBsZQ==?=",
        "Eve\r\nBcc: attacker@evil.example",
        "=?utf-8?q?Eve=0D=0A=0D=0A<h1>owned</h1>?=" + "x" * 80,  # a body of the attacker's
    ],
)
async def test_a_lead_name_cannot_add_a_header_or_replace_the_body(api, inbox, name):
    handler, _ = inbox
    target = await lead(api, first_name=name)
    payload = {"lead_id": target["id"], "subject": "Hello {first_name}", "text": "Our offer for {first_name}"}
    task = await wait_for(api, await submit(api, "email_send", payload))
    assert task["status"] == "COMPLETED", task["error"]
    [message] = handler.with_id(task["result"]["message_id"])
    headers = {key.lower() for key in message}
    assert headers <= {
        "from",
        "to",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }, headers
    assert message.get_body(("plain",)).get_content().startswith("Our offer for ")
    assert "owned" not in message.get_body(("plain",)).get_content().split("Our offer for ", 1)[0]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"to": "a@example.com", "subject": "Hi {password}", "text": "x"}, "payload.subject"),
        ({"subject": "Hi", "text": "x"}, "payload"),
        ({"to": "not-an-email", "subject": "Hi", "text": "x"}, "payload.to"),
        ({"to": "a@example.com", "subject": "Hi"}, "payload"),
    ],
)
async def test_bad_email_payloads_are_422_naming_the_field(api, payload, field):
    response = await api.post("/tasks", json={"type": "email_send", "payload": payload})
    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}


async def test_a_recipient_that_would_decode_to_a_line_break_fails_unsent(api, inbox):
    handler, _ = inbox
    to = "=?utf-8?q?a=0D=0ABcc=3Ax?=@example.com"  # a valid address; decoded, two header lines
    # As a free `to` it is refused at submit (not a plain address); as a lead's own address it
    # reaches the message, which must refuse it.
    refused = await api.post(
        "/tasks", json={"type": "email_send", "payload": {"to": to, "subject": "Hi", "text": "x"}}
    )
    assert refused.status_code == 422
    target = await lead(api, email=to)
    task_id = await submit(api, "email_send", {"lead_id": target["id"], "subject": "Hi", "text": "x"})
    task = await wait_for(api, task_id)
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1  # the same message would be refused again
    assert "cannot be built" in task["error"]
    assert handler.with_id(f"<task-{task_id}@orchestrator>") == []


async def test_a_workflow_step_cannot_mail_outside_the_allowed_domains(api, inbox):
    # Step payloads are checked when the step is due, by the worker, under the same rule.
    handler, _ = inbox
    sent_before = len(handler.messages)
    step = {"type": "email_send", "payload": {"to": "victim@evil-example.org", "subject": "Hi", "text": "x"}}
    task = await wait_for(api, await submit(api, "workflow_execute", {"steps": [step]}), timeout_s=30)
    assert task["status"] == "FAILED"
    assert "EMAIL_ALLOWED_DOMAINS" in task["error"]
    assert task["children"] == []
    assert len(handler.messages) == sent_before
