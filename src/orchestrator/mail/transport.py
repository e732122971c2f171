"""Delivering a message: SMTP when SMTP_URL is set (TLS, STARTTLS, credentials), else an RFC 5322
`.eml` file in EMAIL_OUTBOX_DIR, like Django's file-based email backend."""

from __future__ import annotations

import os
import re
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

if TYPE_CHECKING:
    from email.message import EmailMessage
    from pathlib import Path


async def send_smtp(message: EmailMessage, url: str, timeout_s: float = 30.0) -> None:
    """smtp://[user:pass@]host[:port][?starttls=true] or smtps://... (TLS from the first byte)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme}://")
    implicit_tls = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    await aiosmtplib.send(
        message,
        hostname=parts.hostname or "localhost",
        port=parts.port or (465 if implicit_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit_tls,
        start_tls=starttls if not implicit_tls else False,
        timeout=timeout_s,
    )


def write_eml(message: EmailMessage, outbox: Path) -> Path:
    """Atomically write `<message-id>.eml`; a file already there means it was delivered."""
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / (re.sub(r"[^\w.@-]", "_", str(message["Message-ID"]).strip("<>")) + ".eml")
    if path.exists():
        return path
    with tempfile.NamedTemporaryFile(dir=outbox, delete=False, suffix=".tmp") as handle:
        handle.write(message.as_bytes())
    os.replace(handle.name, path)
    return path
