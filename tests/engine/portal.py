"""A Trio event loop in a background thread, for synchronous Hypothesis state machines."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class TrioPortal:
    """``with TrioPortal() as p: p.call(afn, *args)`` runs ``afn`` in the loop and waits.

    ``start_soon`` runs a task in the portal's nursery; such tasks must report their own
    errors (an escaping exception ends the loop).
    """

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def __enter__(self) -> TrioPortal:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("trio portal did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._nursery is not None
        trio.from_thread.run_sync(self._nursery.start_soon, fn, *args, trio_token=self._token)
