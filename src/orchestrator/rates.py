"""Rate limit values such as '100/second': parsed once here for the settings and for API keys."""

from __future__ import annotations

from limits import RateLimitItem, parse_many

LIMIT_MAX_LENGTH = 50
# The moving window keeps one entry per request, up to the limit: bound what a window holds.
MAX_PER_WINDOW = 100_000
# A job type's window is one row holding a time per start in it.
RATE_LIMIT_MAX_PER_WINDOW = 10_000


def parse_limit(value: str, max_per_window: int = MAX_PER_WINDOW) -> RateLimitItem:
    """One limit such as '100/second' or '6000 per minute'; ValueError saying what is wrong."""
    if len(value) > LIMIT_MAX_LENGTH:
        raise ValueError(f"a rate limit is at most {LIMIT_MAX_LENGTH} characters")
    try:
        items = parse_many(value)
    except ValueError:
        raise ValueError(
            f"not a rate limit: {value!r} (write it like '100/second' or '6000/minute')"
        ) from None
    if len(items) != 1:
        raise ValueError(f"one rate limit only, not {len(items)}: e.g. '100/second'")
    if not 1 <= items[0].amount <= max_per_window:
        raise ValueError(f"a rate limit allows 1 to {max_per_window:,} per window")
    return items[0]
