from __future__ import annotations

import re
import uuid

import pytest

from orchestrator.errors import Unprocessable
from orchestrator.pagination import decode_cursor, encode_cursor
from orchestrator.schema import ROOT
from orchestrator.settings import Settings, to_asyncpg_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5/db", "postgresql+asyncpg://u:p@h:5/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        (
            "postgresql://postgres:@/db?host=/tmp/sock",
            "postgresql+asyncpg://postgres:@/db?host=%2Ftmp%2Fsock",
        ),
    ],
)
def test_database_urls_are_given_the_asyncpg_driver(url, expected):
    assert to_asyncpg_url(url) == expected


def test_cursor_round_trip_and_garbage():
    value = uuid.uuid4()
    assert decode_cursor(encode_cursor(value)) == value
    with pytest.raises(Unprocessable):
        decode_cursor("not a cursor")


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert [name.upper() for name in Settings.model_fields if name.upper() not in documented] == []


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_url_is_unset(blank, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", blank)
    monkeypatch.setenv("REDIS_URL", blank)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.database_url, settings.redis_url) == (None, None)


def test_an_empty_rate_limit_still_means_no_limit(monkeypatch):
    monkeypatch.setenv("API_RATE_LIMIT", "")
    assert Settings(_env_file=None).api_rate_limit is None  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"task_lease_s": 2.0, "task_heartbeat_s": 1.0}, "TASK_HEARTBEAT_S"),
        ({"task_lease_s": 15.0, "task_heartbeat_s": 15.0}, "TASK_LEASE_S"),
        ({"reconcile_grace_s": 0}, "RECONCILE_GRACE_S"),
    ],
)
def test_settings_that_contradict_each_other_are_refused_naming_them(values, named):
    with pytest.raises(ValueError, match=f"(?i){named}"):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_heartbeat_well_inside_the_lease_is_accepted():
    values = {"task_lease_s": 3.0, "task_heartbeat_s": 0.3, "reconcile_grace_s": 1.0}
    assert Settings(_env_file=None, **values).task_heartbeat_s == 0.3  # type: ignore[call-arg]
