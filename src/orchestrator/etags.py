"""Entity tags derived from a row's version, and RFC 9110 `If-Match` evaluation."""

from __future__ import annotations

# RFC 9110 If-Match: "*" or a list of entity tags (empty list elements ignored, as the RFC asks).
# Anything else is refused (422): ignoring a malformed precondition would turn a guarded write
# into an unguarded one.
_TAG = r'(?:W/)?"[!#-~]*"'  # etagc: any visible ASCII but the double quote
IF_MATCH_PATTERN = rf"^[ \t]*(?:\*|(?:,[ \t]*)*{_TAG}(?:[ \t]*,(?:[ \t]*{_TAG})?)*)[ \t]*$"


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_allows(if_match: str | None, version: int) -> bool:
    """True when the precondition holds. Weak tags never match: If-Match uses strong comparison."""
    if if_match is None:
        return True
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or etag(version) in tags
