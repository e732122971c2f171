"""Coalesce concurrent writes into one statement: the writes that arrive while one flush runs
go together in the next. No timer, so a lone write waits for nothing."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class Batcher(Generic[ItemT, ResultT]):
    """`flush` returns one result per item; an exception in its place fails that item alone, an
    exception raised fails the whole batch."""

    def __init__(
        self, flush: Callable[[list[ItemT]], Awaitable[Sequence[ResultT | Exception]]], max_size: int = 200
    ) -> None:
        self._flush, self._max_size = flush, max_size
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: ItemT) -> ResultT:
        # Shielded: a caller cancelled while waiting must not cancel the others' flush.
        return await asyncio.shield(self.enqueue(item))

    def enqueue(self, item: ItemT) -> asyncio.Future[ResultT]:
        """The future of `item`'s result; it settles even if nobody awaits it any more."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            # A context of its own: the flush serves every caller, so it must not carry (in log
            # lines and spans) the task id bound by whichever caller happened to start it.
            self._drainer = asyncio.create_task(self._drain(), context=contextvars.Context())
        return future

    def busy(self) -> list[asyncio.Task[None]]:
        """The flush in progress, if any (shutdown waits for it)."""
        return [self._drainer] if self._drainer is not None and not self._drainer.done() else []

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
