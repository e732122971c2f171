"""What reached the third parties during a load run, per task: emails and CRM pushes.

A handler that ran twice can still leave one COMPLETED row behind; only the receivers see the
second email or push. The receivers (load/receivers.py) append one JSON line per receipt; the
verifier counts them per task. Kept free of servers so that the verifier imports it alone.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# email_send's Message-ID and crm_update's Idempotency-Key both name the task this way.
TASK_REFERENCE = re.compile(r"task-([0-9a-f-]{36})")


def task_of(reference: str) -> str | None:
    found = TASK_REFERENCE.search(reference)
    return found.group(1) if found else None


class EffectsWriter:
    """Shared by the receivers' threads: one whole line per receipt, flushed at once."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, kind: str, reference: str) -> None:
        line = json.dumps(
            {"kind": kind, "task": task_of(reference), "reference": reference[:200], "at": time.time()}
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class Effects:
    emails: Counter[str] = field(default_factory=Counter)
    pushes: Counter[str] = field(default_factory=Counter)
    last_email_at: dict[str, float] = field(default_factory=dict)  # by task, the receiver's clock

    @classmethod
    def read(cls, path: Path) -> Effects:
        effects = cls()
        if not path.exists():
            return effects
        counters = {"email": effects.emails, "push": effects.pushes}
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.endswith("}"):  # cut short by a kill: no receipt was answered for it
                continue
            event = json.loads(line)
            if event["task"] is not None:
                counters[event["kind"]][event["task"]] += 1
                if event["kind"] == "email" and "at" in event:
                    effects.last_email_at[event["task"]] = event["at"]
        return effects
