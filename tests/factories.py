"""Request bodies built by factories, unique where the API demands it."""

from __future__ import annotations

import uuid
from typing import Any

from polyfactory import Use
from polyfactory.factories.pydantic_factory import ModelFactory

from orchestrator.leads.models import LeadStatus
from orchestrator.leads.schemas import LeadWrite


class LeadWriteFactory(ModelFactory[LeadWrite]):
    email = Use(lambda: f"lead-{uuid.uuid4().hex}@example.com")
    phone = Use(lambda: "555-5678")
    status = Use(lambda: LeadStatus.NEW)
    attributes = Use(lambda: {"campaign": "spring", "utm": {"medium": "email"}, "tags": ["a", "b"]})


def lead_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST/PUT /leads body as JSON-ready data."""
    return LeadWriteFactory.build(**overrides).model_dump(mode="json") | overrides
