from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orchestrator.leads.crm_sync import body_of
from orchestrator.settings import Settings
from orchestrator.webhooks import signed_headers

AT = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def test_the_signature_is_standard_webhooks_over_id_timestamp_and_the_exact_body():
    body = body_of({"id": "x", "email": "a@b.c"})
    assert json.loads(body) == {"event": "lead.updated", "lead": {"id": "x", "email": "a@b.c"}}
    headers = signed_headers("k", "task-1", AT, body)
    assert headers["webhook-id"] == "task-1"
    assert headers["webhook-timestamp"] == str(int(AT.timestamp()))
    mac = hmac.new(b"k", f"task-1.{int(AT.timestamp())}.".encode() + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_a_whsec_key_is_decoded_and_a_receiver_refuses_a_replay_or_another_body():
    key = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    body = body_of({"id": "x"})
    now = dt.datetime.now(dt.UTC)
    headers = signed_headers(key, "task-1", now, body)
    Webhook(key).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(body_of({"id": "y"}), headers)
    old = signed_headers(key, "task-1", now - dt.timedelta(hours=1), body)
    with pytest.raises(WebhookVerificationError):  # too old: a replay
        Webhook(key).verify(body, old)


def test_a_webhook_without_a_secret_is_refused():
    with pytest.raises(ValueError, match="CRM_WEBHOOK_SECRET"):
        Settings(_env_file=None, crm_webhook_url="http://127.0.0.1:9/hook")  # type: ignore[call-arg]
