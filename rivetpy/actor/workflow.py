"""Durable workflow steps: a step's result is stored under ``WORKFLOW + step name`` and returned
again, without re-running the step, on later calls, also after sleep and wake.

At startup the preloaded ``WORKFLOW`` prefix (a complete listing) is adopted, so known steps cost
no read; without it each step name is looked up in KV once. A step that raises stores nothing
and runs again next time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import trio

from rivetpy.actor import keys
from rivetpy.actor.kv import InstanceKv
from rivetpy.actor.persist import PersistError, dumps, loads

_MISSING = object()


class Workflow:
    def __init__(self, kv: InstanceKv) -> None:
        self._kv = kv
        self._results: dict[str, Any] = {}
        #: every stored step is in ``_results`` (the prefix was listed completely)
        self._complete = False
        self._lock = trio.Lock()
        self.steps_run = 0

    def adopt(self, entries: list[tuple[bytes, bytes]]) -> None:
        """Take a complete listing of the workflow prefix (from the preload)."""
        for key, raw in entries:
            name = key[len(keys.WORKFLOW) :].decode("utf-8", "replace")
            self._results[name] = self._decode(raw)
        self._complete = True

    @staticmethod
    def _decode(raw: bytes) -> Any:
        record = loads(raw)
        if not isinstance(record, dict) or "output" not in record:
            raise PersistError("workflow step: malformed record")
        return record["output"]

    def completed(self) -> list[str]:
        return sorted(self._results)

    async def step(self, name: str, fn: Callable[[], Any]) -> Any:
        if not name:
            raise ValueError("a step needs a name")
        async with self._lock:
            if name in self._results:
                return self._results[name]
            if not self._complete:
                raw = (await self._kv.get([keys.workflow_key(name)], "workflow"))[0]
                if raw is not None:
                    self._results[name] = self._decode(raw)
                    return self._results[name]
            result = fn()
            if inspect.isawaitable(result):
                result = await result
            await self._kv.put([(keys.workflow_key(name), dumps({"output": result}))])
            self._results[name] = result
            self.steps_run += 1
            return result
