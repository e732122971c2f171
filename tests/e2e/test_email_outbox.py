"""email_send with no SMTP server: an RFC 5322 .eml file in the outbox folder."""

from __future__ import annotations

import email
import uuid
from email import policy

import pytest

from tests.helpers import submit, wait_for

pytestmark = pytest.mark.usefixtures("workers")


@pytest.fixture(scope="module")
def worker_extra_env(outbox) -> dict[str, str]:
    return {"EMAIL_OUTBOX_DIR": str(outbox)}


async def test_without_smtp_the_message_is_an_eml_file(api, outbox):
    payload = {"to": f"{uuid.uuid4().hex}@example.com", "subject": "Files", "text": "hello from the outbox"}
    task = await wait_for(api, await submit(api, "email_send", payload))
    assert task["status"] == "COMPLETED", task["error"]
    assert task["result"]["transport"] == "file"
    [path] = outbox.glob(f"task-{task['id']}*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == payload["to"]
    assert message["Message-ID"] == task["result"]["message_id"]
    assert message.get_content().strip() == "hello from the outbox"
