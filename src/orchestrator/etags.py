"""Entity tags derived from a row's version, and RFC 9110 `If-Match` evaluation."""

from __future__ import annotations

import re

# RFC 9110 If-Match: "*" or a list of entity tags (empty list elements ignored, as the RFC asks).
# Anything else is refused (422): ignoring a malformed precondition would turn a guarded write
# into an unguarded one.
_TAG = r'(?:W/)?"[!#-~]*"'  # etagc: any visible ASCII but the double quote
IF_MATCH_PATTERN = rf"^[ \t]*(?:\*|(?:,[ \t]*)*{_TAG}(?:[ \t]*,(?:[ \t]*{_TAG})?)*)[ \t]*$"


MAX_VERSION = 2**31 - 1
_VERSION_TAG = re.compile(r'"([1-9][0-9]{0,9})"')


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_allows(if_match: str | None, version: int) -> bool:
    """True when the precondition holds. Weak tags never match: If-Match uses strong comparison."""
    versions = if_match_versions(if_match)
    return versions is None or version in versions


def if_match_versions(if_match: str | None) -> list[int] | None:
    """The versions an If-Match allows (for a statement's WHERE too); None for any (no header,
    or *). A tag matches only as `etag` writes it ("7", never "07"), and one naming no version
    (weak, a word, past a 4-byte integer) matches nothing."""
    if if_match is None:
        return None
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return None
    numbers = (match[1] for tag in tags if (match := _VERSION_TAG.fullmatch(tag)))
    return [version for version in map(int, numbers) if version <= MAX_VERSION]
