from __future__ import annotations

import uuid

import pytest

from orchestrator.leads.models import Lead, LeadStatus
from orchestrator.leads.quality import normalise, normalise_phone, score


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", ("+14155552671", True)),
        ("+44 20 7946 0958", "US", ("+442079460958", True)),
        ("020 7946 0958", "GB", ("+442079460958", True)),
        ("555-5678", "US", ("555-5678", False)),  # too short: kept as sent
        ("call me", "US", ("call me", False)),
        (None, "US", (None, False)),
    ],
)
def test_phones_become_e164_or_stay_as_sent(raw, region, expected):
    assert normalise_phone(raw, region) == expected


def test_names_are_trimmed_and_email_lower_cased():
    lead = Lead(first_name="  Ada ", last_name="Love  lace", email=" Ada@Example.COM ", phone=None)
    clean = normalise(lead, "US")
    assert (clean.first_name, clean.last_name, clean.email) == ("Ada", "Love lace", "ada@example.com")
    assert clean.email_valid


def test_score_follows_the_documented_rules():
    lead = Lead(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        phone="+14155552671",
        company="Analytical",
        source="referral",
        status=LeadStatus.QUALIFIED,
    )
    clean = normalise(lead, "US")
    assert score(lead, clean, None) == 25 + 20 + 15 + 10 + 20 + 10
    assert score(lead, clean, uuid.uuid4()) == 100 - 40
    bare = Lead(email="not-an-email", status=LeadStatus.NEW)
    assert score(bare, normalise(bare, "US"), uuid.uuid4()) == 0
