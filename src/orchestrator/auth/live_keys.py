"""Every live API key, held by each API worker: the keys table is small, so a request costs a
dict lookup, and a key that is not there is checked against a load made after it was asked for.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

from orchestrator.auth.keys import key_hash, load_callers, record_use, well_formed

if TYPE_CHECKING:
    from collections.abc import Callable
    from uuid import UUID

    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.auth.keys import Caller

# Loads that unknown keys ask for are this far apart at least: a flood of wrong keys costs each
# worker ten small queries a second, and a wrong key waits up to this long for its 401.
LOAD_GAP_S = 0.1
# last_used_at is for operators ("is this key still in use?"): once a minute per worker is enough.
RECORD_USE_EVERY_S = 60.0


class LiveKeys:
    """The live keys by hash, as a load that began at most `max_age_s` ago saw them: a revoke
    lands within `max_age_s`. A key created a moment ago works at once: a key that is not known
    waits for a load that begins after it came, so no valid key is ever refused."""

    def __init__(self, sessions: Callable[[], AsyncSession], max_age_s: float, load_timeout_s: float) -> None:
        self._sessions = sessions
        self._max_age_s, self._load_timeout_s = max_age_s, load_timeout_s
        self._callers: dict[str, Caller] = {}
        self._began = -math.inf  # when the load behind `_callers` began (monotonic)
        self._next: asyncio.Future[None] | None = None
        self._recorded: dict[UUID, float] = {}

    async def find(self, key: str) -> Caller | None:
        """The live key `key` is, or None for a wrong, revoked or malformed one."""
        if not well_formed(key):
            return None  # not the shape of our keys: nothing to look up
        asked = time.monotonic()
        await self._loaded_since(asked - self._max_age_s)
        digest = key_hash(key)
        if (caller := self._callers.get(digest)) is None:
            await self._loaded_since(asked)
            if (caller := self._callers.get(digest)) is None:
                return None
        if self._recorded.get(caller.key_id, -math.inf) < asked - RECORD_USE_EVERY_S:
            self._recorded[caller.key_id] = asked
            async with self._sessions() as session, session.begin():
                await record_use(session, caller.key_id)
        return caller

    async def _loaded_since(self, moment: float) -> None:
        """Wait for a load that began at `moment` or later; one load serves every request
        waiting for it. A load that takes longer than `load_timeout_s` (a connection that
        stopped answering) fails its waiters (TimeoutError: 503) and is left behind: the next
        request starts another."""
        while self._began < moment:
            load = self._next if self._next is not None else self._start_load()
            try:
                async with asyncio.timeout(self._load_timeout_s):
                    await asyncio.shield(load)
            except TimeoutError:
                if self._next is load:
                    self._next = None
                raise

    def _start_load(self) -> asyncio.Future[None]:
        load = asyncio.ensure_future(self._load())

        def forget(done: asyncio.Future[None]) -> None:
            if self._next is done:
                self._next = None
            if not done.cancelled():
                done.exception()  # a failed load is its waiters' error, not an unretrieved one

        load.add_done_callback(forget)
        self._next = load
        return load

    async def _load(self) -> None:
        await asyncio.sleep(max(0.0, self._began + LOAD_GAP_S - time.monotonic()))
        began = time.monotonic()
        async with self._sessions() as session, session.begin():
            callers = await load_callers(session)
        if began > self._began:  # a load left behind as stuck may end after a newer one
            self._callers, self._began = callers, began
