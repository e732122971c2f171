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
    # A key set before the scheme: the old header too, until the CRM's key is replaced.
    assert headers["X-Orchestrator-Signature"] == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_a_whsec_key_is_decoded_and_a_receiver_refuses_a_replay_or_another_body():
    key = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
    body = body_of({"id": "x"})
    now = dt.datetime.now(dt.UTC)
    headers = signed_headers(key, "task-1", now, body)
    assert "X-Orchestrator-Signature" not in headers
    Webhook(key).verify(body, headers)
    # The same moment in another offset signs the same second.
    paris = now.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert signed_headers(key, "task-1", paris, body) == headers
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(body_of({"id": "y"}), headers)
    old = signed_headers(key, "task-1", now - dt.timedelta(hours=1), body)
    with pytest.raises(WebhookVerificationError):  # too old: a replay
        Webhook(key).verify(body, old)


def test_a_webhook_without_a_secret_is_refused():
    with pytest.raises(ValueError, match="CRM_WEBHOOK_SECRET"):
        Settings(_env_file=None, crm_webhook_url="http://127.0.0.1:9/hook")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("whsec_", "24 to 64 bytes"),
        ("whsec_a", "standard base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
    ],
)
def test_a_whsec_key_that_does_not_decode_stops_the_start(key, why):
    with pytest.raises(ValueError, match=why):
        Settings(_env_file=None, crm_webhook_url="http://127.0.0.1:9/hook", crm_webhook_secret=key)  # type: ignore[call-arg]


def test_a_callback_key_must_be_a_whsec_one():
    with pytest.raises(ValueError, match="CALLBACK_SECRET: a Standard Webhooks key"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            callback_allowed_hosts=["hooks.example.com"],
            callback_secret="plain",  # noqa: S106  (a refused key)
        )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (["Hooks.Example.COM."], ["hooks.example.com"]),
        (["*.Bücher.example"], ["*.xn--bcher-kva.example"]),
        (["[::1]", "127.0.0.1"], ["::1", "127.0.0.1"]),
    ],
)
def test_allowed_hosts_are_kept_as_a_parsed_url_reads_them(given, kept):
    key = "whsec_" + base64.b64encode(bytes(24)).decode()
    settings = Settings(_env_file=None, callback_allowed_hosts=given, callback_secret=key)  # type: ignore[call-arg]
    assert settings.callback_allowed_hosts == kept


@pytest.mark.parametrize(
    "entry", ["https://hooks.example.com", "hooks.example.com:8443", "hooks.example.com/in", "*"]
)
def test_an_allowed_host_with_a_scheme_port_or_path_stops_the_start(entry):
    key = "whsec_" + base64.b64encode(bytes(24)).decode()
    with pytest.raises(ValueError, match="CALLBACK_ALLOWED_HOSTS"):
        Settings(_env_file=None, callback_allowed_hosts=[entry], callback_secret=key)  # type: ignore[call-arg]
