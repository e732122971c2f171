"""Where callbacks may go: only to hosts the deployment lists (CALLBACK_ALLOWED_HOSTS), so that
no integrator can aim the workers at an internal address. The URL is read by the client that
sends it (httpx), so the host checked is the host called."""

from __future__ import annotations

import httpx

from orchestrator.errors import Unprocessable

FIELD = "callback_url"


class NotAllowed(ValueError):
    """The URL may not be called; the message says why."""


def allowed_host(url: str, allowed: list[str]) -> str:
    """The URL's host when callbacks may go there; NotAllowed otherwise. An entry is a host name
    or address as written in a URL (lower case), or `*.` and a domain for any host under it."""
    if not allowed:
        raise NotAllowed("callbacks are off in this deployment (CALLBACK_ALLOWED_HOSTS lists no host)")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise NotAllowed(f"not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise NotAllowed("an absolute http or https URL is needed")
    if parsed.userinfo:
        raise NotAllowed("a URL with a user name or password is refused")
    if parsed.port is not None and parsed.port > 65535:
        raise NotAllowed(f"port {parsed.port} is past 65535")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    for entry in allowed:
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return host
    raise NotAllowed(f"host {host!r} is not one CALLBACK_ALLOWED_HOSTS lists")


# Ports 0 to 65535, as the client takes them.
_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"


def url_pattern(allowed: list[str]) -> str:
    """What the OpenAPI document states of a callback_url: URLs at these hosts, every one of
    which `allowed_host` takes (a host's trailing dot, or an address spelt another way, is
    taken too, and left unstated)."""
    hosts = "|".join(_host_pattern(entry) for entry in allowed)
    return rf"^https?://(?:{hosts}){_PORT}(?:[/?#][!-~]*)?$"


def _host_pattern(entry: str) -> str:
    if entry.startswith("*."):
        return r"(?:[A-Za-z0-9_-]+\.)+" + _any_case(entry[2:])
    if ":" in entry:  # an IPv6 address, bracketed in a URL
        return r"\[" + _any_case(entry) + r"\]"
    return _any_case(entry)


def _any_case(text: str) -> str:
    """Letters in either case, dots escaped, the rest (digits, `-`, `_`, `:`) as they are: the
    settings leave nothing else in a host, and an escaped `-` would be an error in a JavaScript
    validator's pattern."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else "\\." if c == "." else c for c in text)


def check(url: str | None, allowed: list[str], field: str = FIELD) -> None:
    """Unprocessable naming the field when a submitted URL may not be called."""
    if url is None:
        return
    try:
        allowed_host(url, allowed)
    except NotAllowed as exc:
        raise Unprocessable(f"{field}: {exc}", field=field) from None
