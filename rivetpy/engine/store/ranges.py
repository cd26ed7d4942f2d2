"""Streaming range reads over any :class:`ReadTransaction` (FoundationDB's iterator mode)."""

from __future__ import annotations

from rivetpy.engine.store.api import KeyValue, ReadTransaction

FIRST_PAGE = 16
MAX_PAGE = 4096


class RangePages:
    """Async iterator over the pages of ``[begin, end)``, in key order (or reverse).

    Pages grow from ``first_page`` rows, doubling up to ``max_page``, so a reader that stops
    early reads at most about twice what it consumed. Every page is read in the same
    transaction, hence from the same snapshot. Not an async generator: abandoning it midway
    needs no cleanup.
    """

    def __init__(
        self,
        tr: ReadTransaction,
        begin: bytes,
        end: bytes,
        *,
        reverse: bool = False,
        snapshot: bool = False,
        first_page: int = FIRST_PAGE,
        max_page: int = MAX_PAGE,
    ) -> None:
        self._tr = tr
        self._begin = begin
        self._end = end
        self._reverse = reverse
        self._snapshot = snapshot
        self._page = max(1, first_page)
        self._max_page = max(self._page, max_page)
        self._done = begin >= end

    def __aiter__(self) -> RangePages:
        return self

    async def __anext__(self) -> list[KeyValue]:
        if self._done:
            raise StopAsyncIteration
        page = await self._tr.get_range(
            self._begin,
            self._end,
            limit=self._page,
            reverse=self._reverse,
            snapshot=self._snapshot,
        )
        if len(page) < self._page:
            self._done = True
        elif self._reverse:
            self._end = page[-1].key
        else:
            self._begin = page[-1].key + b"\x00"
        self._page = min(self._page * 2, self._max_page)
        if not page:
            raise StopAsyncIteration
        return page
