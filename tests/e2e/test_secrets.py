"""Secrets (database password, webhook secret, SMTP password, API keys) never reach a log or an answer."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from load.service import Service, free_port
from orchestrator.auth.keys import issue_key, revoke_key
from orchestrator.auth.models import Scope
from orchestrator.db import in_transaction
from tests.factories import lead_body
from tests.helpers import bearer, settings_env

SECRETS = {
    "db": "pw-db-5e4c1a",
    "webhook": "whsec-5e4c1b",
    "smtp": "pw-smtp-5e4c1c",
    "callback": "whsec_" + base64.b64encode(b"callback-key-5e4c1d-of-24").decode(),
}


async def test_no_secret_appears_in_logs_task_errors_or_problem_bodies(settings, tmp_path):
    secrets = SECRETS | {
        "api key": await issue_key(settings, "secrets-test", Scope.WRITE),
        "revoked api key": await issue_key(settings, "secrets-test-revoked", Scope.ADMIN),
    }
    await in_transaction(settings, lambda session: revoke_key(session, "secrets-test-revoked"))
    # PostgreSQL here trusts local connections, so a password in the URL is accepted and unused.
    database_url = make_url(str(settings.database_url)).set(password=SECRETS["db"])
    env = settings_env(settings) | {
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "DEBUG",
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        "CRM_WEBHOOK_URL": "http://127.0.0.1:9/crm",  # nothing listens: every push fails
        "CRM_WEBHOOK_SECRET": SECRETS["webhook"],
        "SMTP_URL": f"smtp://mailer:{SECRETS['smtp']}@127.0.0.1:9",
        "CALLBACK_SECRET": SECRETS["callback"],
    }
    port = free_port()
    api = Service(["api", "--workers", "1", "--port", str(port)], env, tmp_path / "api.log", port)
    worker = Service(["worker", "--processes", "1"], env, tmp_path / "worker.log")
    answers: list[str] = []
    try:
        api.start()
        worker.start()
        await api.wait_ready()
        async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(secrets["api key"])) as client:
            lead = (await client.post("/leads", json=lead_body())).json()
            email = {
                "type": "email_send",
                "payload": {"lead_id": lead["id"], "subject": "Hi", "text": "Hi"},
                "callback_url": "http://127.0.0.1:9/callbacks",  # nothing listens: signed, and failing
                "max_attempts": 2,
            }
            email_id = (await client.post("/tasks", json=email)).json()["id"]
            for request in (
                client.get("/saq/api/queues", auth=("x", secrets["revoked api key"])),
                client.get("/saq/api/queues"),  # a write key: 403
                client.get("/leads", headers=bearer(secrets["revoked api key"])),
                client.post("/leads", content=b"{not json", headers={"Content-Type": "application/json"}),
                client.get("/ready"),
            ):
                answers.append((await request).text)
            # Until a send and a push have each failed and been retried, errors recorded.
            async with asyncio.timeout(60):
                while not _retried_failures(tasks := await _every_task(client, email_id)):  # noqa: ASYNC110  (state another process writes)
                    await asyncio.sleep(0.2)
            answers += [json.dumps(task) for task in tasks]
        # The failures did happen, and their errors are in the answers.
        assert any("SMTPConnectError" in answer for answer in answers)
        assert any("crm_update" in answer and "connection attempts failed" in answer for answer in answers)
    finally:
        api.kill_leftovers()
        worker.kill_leftovers()

    seen = "\n".join([api.log.read_text(), worker.log.read_text(), *answers])
    assert [name for name, secret in secrets.items() if secret in seen] == []


async def _every_task(client: httpx.AsyncClient, email_id: str) -> list[dict[str, Any]]:
    ids = {email_id, *(t["id"] for t in (await client.get("/tasks")).json()["items"])}
    return [(await client.get(f"/tasks/{task_id}")).json() for task_id in sorted(ids)]


def _retried_failures(tasks: list[dict[str, Any]]) -> bool:
    def failed_again(job_type: str, error: str) -> bool:
        return any(
            t["type"] == job_type and t["attempts"] >= 2 and error in (t["error"] or "") for t in tasks
        )

    callback_failed = any(callback["last_error"] for t in tasks for callback in t.get("callbacks", []))
    return (
        failed_again("email_send", "SMTPConnectError")
        and failed_again("crm_update", "connection attempts failed")
        and callback_failed
    )
