"""A request rate per API key, counted in Redis so that every API worker shares one count."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from litestar.exceptions import TooManyRequestsException
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from limits import RateLimitItem

    from orchestrator.auth.keys import Caller
    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

# After Redis fails, requests pass unchecked this long before Redis is tried again: an outage
# costs one failed call per second per worker, not one per request.
REDIS_BACKOFF_S = 1.0


class RateLimiter:
    """A moving window per key: exact, and atomic in Redis (one Lua script per request)."""

    def __init__(self, settings: Settings, default: RateLimitItem | None) -> None:
        self._default = default
        storage = RedisStorage(
            settings.redis_dsn,
            implementation="redispy",
            key_prefix=f"{settings.queue_name}:rate",
            socket_connect_timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s,
        )
        self._window = MovingWindowRateLimiter(storage)
        self._skip_until = 0.0

    async def check(self, caller: Caller) -> None:
        """Count one request of `caller`; 429 with Retry-After when its limit is spent.

        Redis is disposable: while it is away, requests are let through rather than refused.
        """
        limit = caller.rate_limit or self._default
        if limit is None or time.monotonic() < self._skip_until:
            return
        key = str(caller.key_id)
        try:
            if await self._window.hit(limit, key):
                return
            reset_at = (await self._window.get_window_stats(limit, key)).reset_time
        except (RedisError, OSError) as exc:
            self._skip_until = time.monotonic() + REDIS_BACKOFF_S
            logger.warning("rate limiting paused, Redis is unavailable: %s", type(exc).__name__)
            return
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequestsException(
            f"This API key's rate limit of {limit} is spent; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            extra={"limit": str(limit)},
        )
