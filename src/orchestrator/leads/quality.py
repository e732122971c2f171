"""Lead quality rules: normalisation, duplicate detection and the score. Used by lead_process.

The score (0-100) is a sum of plain rules, so a sales team can read why a lead got it:

| rule                                   | points |
|----------------------------------------|--------|
| the email is syntactically valid       | +25    |
| the phone parses to a valid number     | +20    |
| a company is given                     | +15    |
| both first and last name are given     | +10    |
| source `referral`                      | +20    |
| source `web`, `website` or `inbound`   | +10    |
| any other source                       | +5     |
| status `qualified` or `converted`      | +10    |
| the lead duplicates an earlier one     | -40    |

clamped to 0..100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select

from orchestrator.leads.models import Lead, LeadStatus

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

SOURCE_POINTS = {"referral": 20, "web": 10, "website": 10, "inbound": 10}


@dataclass(frozen=True)
class Normalised:
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    email_valid: bool
    phone_valid: bool


def normalise(lead: Lead, default_region: str) -> Normalised:
    """Trimmed names, lower-case email, E.164 phone (the raw value kept when it does not parse)."""
    email = lead.email.strip().lower() if lead.email else None
    phone, phone_valid = normalise_phone(lead.phone, default_region)
    return Normalised(
        first_name=_trimmed(lead.first_name),
        last_name=_trimmed(lead.last_name),
        email=email,
        phone=phone,
        email_valid=email is not None and email_is_valid(email),
        phone_valid=phone_valid,
    )


def normalise_phone(raw: str | None, default_region: str) -> tuple[str | None, bool]:
    if raw is None or not raw.strip():
        return raw, False
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return raw, False
    if not phonenumbers.is_valid_number(number):
        return raw, False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True


def email_is_valid(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


async def find_original(
    session: AsyncSession, lead: Lead, email: str | None, phone: str | None
) -> Lead | None:
    """The earliest other lead with the same normalised email or phone."""
    matches = []
    if email:
        matches.append(func.lower(Lead.email) == email)
    if phone:
        matches.append(Lead.phone == phone)
    if not matches:
        return None
    # uuid7 ids are time-ordered: the smallest is the earliest lead.
    query = select(Lead).where(Lead.id != lead.id, or_(*matches)).order_by(Lead.id).limit(1)
    original: Lead | None = (await session.scalars(query)).first()
    return original


def score(lead: Lead, normalised: Normalised, duplicate_of: uuid.UUID | None) -> int:
    points = 25 * normalised.email_valid + 20 * normalised.phone_valid
    points += 15 if lead.company and lead.company.strip() else 0
    points += 10 if normalised.first_name and normalised.last_name else 0
    if lead.source and lead.source.strip():
        points += SOURCE_POINTS.get(lead.source.strip().lower(), 5)
    points += 10 if lead.status in (LeadStatus.QUALIFIED, LeadStatus.CONVERTED) else 0
    points -= 40 if duplicate_of is not None else 0
    return max(0, min(100, points))


def _trimmed(value: str | None) -> str | None:
    return " ".join(value.split()) if value is not None else None
