"""What the load users were told: every acknowledged write, every intent left unanswered.

The locust process appends one JSON line per event; the verifier replays the file and
checks PostgreSQL against it. Kept free of locust and gevent so both sides import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

# The lead fields a user writes and therefore checks; the server owns the rest.
WRITTEN = ("first_name", "last_name", "email", "phone", "company", "source", "status", "score", "attributes")


class LedgerWriter:
    """Append-only; one write per line so a killed process leaves whole lines behind."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def intent(self, email: str, fields: dict[str, Any], lead_id: str | None = None) -> None:
        """A write about to be sent: until it is acknowledged, either outcome is allowed."""
        self._append({"kind": "intent", "email": email, "id": lead_id, "fields": fields})

    def lead(self, state: dict[str, Any], *, exact: bool = True) -> None:
        """A write the API acknowledged (2xx), with the state it answered. A lead handed to jobs
        that rewrite it (`exact=False`) is checked for existence and for those jobs' changes."""
        fields = {name: state[name] for name in WRITTEN}
        event = {"kind": "lead", "email": state["email"], "id": state["id"], "fields": fields}
        self._append(event | {"version": state["version"], "exact": exact})

    def task(self, task_id: str, job_type: str, lead_id: str | None, lead_changes: dict[str, Any]) -> None:
        """A task the API accepted (202); `lead_changes` are what its success must leave on the lead."""
        self._append(
            {"kind": "task", "id": task_id, "type": job_type, "lead": lead_id, "changes": lead_changes}
        )

    def _append(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class LeadClaim:
    """What PostgreSQL must hold for one lead (found by its email, which a user never changes)."""

    email: str
    lead_id: str | None = None
    acked: dict[str, Any] | None = None
    version: int | None = None
    pending: dict[str, Any] | None = None  # an unanswered write: its fields are also acceptable
    exact: bool = True


@dataclass
class TaskClaim:
    task_id: str
    job_type: str
    lead_id: str | None
    changes: dict[str, Any]


@dataclass
class Ledger:
    leads: dict[str, LeadClaim] = field(default_factory=dict)
    tasks: list[TaskClaim] = field(default_factory=list)
    acknowledged_writes: int = 0

    @classmethod
    def read(cls, *paths: Path) -> Ledger:
        """The ledgers of one or more clients (each owns its leads, so they add up)."""
        ledger = cls()
        for path in paths:
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.endswith("}"):  # a line cut short by a kill is an intent never sent
                    ledger.add(json.loads(line))
        return ledger

    def add(self, event: dict[str, Any]) -> None:
        if event["kind"] == "task":
            self.tasks.append(TaskClaim(event["id"], event["type"], event["lead"], event["changes"]))
            return
        claim = self.leads.setdefault(event["email"], LeadClaim(event["email"]))
        claim.lead_id = event["id"] or claim.lead_id
        if event["kind"] == "intent":
            claim.pending = event["fields"]
        else:
            claim.acked, claim.version, claim.pending = event["fields"], event["version"], None
            claim.exact = event["exact"]
            self.acknowledged_writes += 1


def differences(
    expected: dict[str, Any], actual: dict[str, Any], wrote: str = "wrote", found: str = "read"
) -> list[str]:
    """Each field whose value is not the expected one, as 'name: wrote X, read Y'."""
    return [
        f"{name}: {wrote} {value!r}, {found} {actual.get(name)!r}"
        for name, value in expected.items()
        if actual.get(name) != value
    ]
