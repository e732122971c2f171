"""Entity tags derived from a row's version, and RFC 9110 `If-Match` evaluation."""

from __future__ import annotations

# RFC 9110 If-Match: "*" or a list of entity tags (empty list elements ignored, as the RFC asks).
# Anything else is refused (422): ignoring a malformed precondition would turn a guarded write
# into an unguarded one.
_TAG = r'(?:W/)?"[!#-~]*"'  # etagc: any visible ASCII but the double quote
IF_MATCH_PATTERN = rf"^[ \t]*(?:\*|(?:,[ \t]*)*{_TAG}(?:[ \t]*,(?:[ \t]*{_TAG})?)*)[ \t]*$"


MAX_VERSION = 2**31 - 1


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_allows(if_match: str | None, version: int) -> bool:
    """True when the precondition holds. Weak tags never match: If-Match uses strong comparison."""
    if if_match is None:
        return True
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or etag(version) in tags


def if_match_versions(if_match: str | None) -> list[int] | None:
    """The versions an If-Match allows; None for any (no header, or *). Weak and foreign tags
    allow none: `if_match_allows` in a statement's WHERE."""
    if if_match is None:
        return None
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return None
    numbers = (tag[1:-1] for tag in tags if len(tag) > 2 and tag[0] == tag[-1] == '"')
    # A version is a 4-byte integer: a larger tag names no version, as a word does.
    return [int(n) for n in numbers if n.isascii() and n.isdigit() and int(n) <= MAX_VERSION]
