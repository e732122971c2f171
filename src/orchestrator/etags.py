"""Entity tags derived from a row's version, and RFC 9110 `If-Match` evaluation."""

from __future__ import annotations


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_allows(if_match: str | None, version: int) -> bool:
    """True when the precondition holds. Weak tags never match: If-Match uses strong comparison."""
    if if_match is None:
        return True
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or etag(version) in tags
