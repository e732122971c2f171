from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from orchestrator.leads.crm_sync import signed_body
from orchestrator.settings import Settings


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    body, signature = signed_body({"id": "x", "email": "a@b.c"}, "k")
    assert json.loads(body) == {"event": "lead.updated", "lead": {"id": "x", "email": "a@b.c"}}
    assert signature == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_a_webhook_without_a_secret_is_refused():
    with pytest.raises(ValueError, match="CRM_WEBHOOK_SECRET"):
        Settings(_env_file=None, crm_webhook_url="http://127.0.0.1:9/hook")  # type: ignore[call-arg]
