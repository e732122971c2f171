"""A real SMTP server on 127.0.0.1 (aiosmtpd) that can hold its answer, for email_send tests."""

from __future__ import annotations

import asyncio
import email
import threading
from contextlib import contextmanager
from email import policy
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

from load.service import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator


class HoldingInbox:
    """Accepts every message, but answers the first one only once `release` is set. What it
    accepted counts whether or not the client is still there to read the answer, as a real
    server that has the whole message would deliver it."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()
        self.slow_s = 0.0  # how long every answer takes

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
        await asyncio.sleep(self.slow_s)
        if not self.arrived.is_set():
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)
            self.answered.set()
        self.accepted.append(str(message["Message-ID"]))
        return "250 Message accepted"


@contextmanager
def holding_inbox() -> Iterator[tuple[HoldingInbox, int]]:
    handler, port = HoldingInbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.release.set()
        controller.stop()
