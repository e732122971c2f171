"""Request rates counted in Redis, so that every API worker shares one count: per API key, and
per client address for wrong keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING

from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from litestar.exceptions import TooManyRequestsException
from redis.exceptions import RedisError

from orchestrator import metrics

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from limits import RateLimitItem

    from orchestrator.auth.keys import Caller
    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

# A check normally takes under a millisecond, but the first ones of a fresh worker open
# connections and load scripts, and a burst of them on a busy machine can take a few hundred.
# A Redis that hangs instead of refusing must still not hold requests for the socket timeout.
CHECK_TIMEOUT_S = 1.0
# After Redis fails, requests pass unchecked this long before Redis is tried again: an outage
# costs one failed check per second per worker, not one per request.
REDIS_BACKOFF_S = 1.0


class RateLimiter:
    """Moving windows: exact, and atomic in Redis (one Lua script per check).

    Redis is disposable: while it is away (or slow), requests are let through, not refused.
    """

    def __init__(self, settings: Settings, default: RateLimitItem | None, failures: RateLimitItem) -> None:
        self._default, self._failures = default, failures
        storage = RedisStorage(
            settings.redis_dsn,
            implementation="redispy",
            key_prefix=f"{settings.queue_name}:rate",
            socket_connect_timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s,
        )
        self._window = MovingWindowRateLimiter(storage)
        self._skip_until = 0.0

    async def warm_up(self) -> None:
        """Connect and load the scripts before the first request has to (Redis may be away)."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._window.test(self._failures, "warm-up")

    async def check(self, caller: Caller) -> None:
        """Count one request of `caller`; 429 with Retry-After when its limit is spent."""
        limit = caller.rate_limit or self._default
        if limit is not None and not await self._hit(limit, f"key:{caller.key_id}"):
            metrics.count(metrics.RATE_LIMITED, 1, "key")
            await self._refuse(limit, f"key:{caller.key_id}", "This API key's rate limit")

    async def count_failure(self, address: str) -> None:
        """A wrong key from `address`: 429 when its wrong keys are spent, so that a guesser is
        told to stop rather than told which keys are wrong."""
        if not await self._hit(self._failures, f"failed:{address}"):
            metrics.count(metrics.RATE_LIMITED, 1, "wrong_keys")
            await self._refuse(
                self._failures, f"failed:{address}", "Too many wrong API keys from this address: the limit"
            )

    async def _hit(self, limit: RateLimitItem, key: str) -> bool:
        return await self._passes(self._window.hit(limit, key))

    async def _passes(self, check: Coroutine[Any, Any, bool]) -> bool:
        if time.monotonic() < self._skip_until:
            check.close()
            return True
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return await check
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = time.monotonic() + REDIS_BACKOFF_S
            logger.warning("rate limiting paused, Redis is unavailable: %s", type(exc).__name__)
            return True

    async def _refuse(self, limit: RateLimitItem, key: str, what: str) -> None:
        reset_at = time.time() + limit.get_expiry()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                reset_at = (await self._window.get_window_stats(limit, key)).reset_time
        except (RedisError, OSError, TimeoutError):
            pass  # the whole window is a safe answer
        retry_after = min(max(1, math.ceil(reset_at - time.time())), limit.get_expiry())
        raise TooManyRequestsException(
            f"{what} of {limit} is spent; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            extra={"limit": str(limit)},
        )
