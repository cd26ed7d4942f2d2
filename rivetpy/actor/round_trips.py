"""The ``expect_no_kv_round_trips`` guard: reports KV reads that bypass the startup preload.

Lifecycle (kv-preload.md §7.5, with the required review changes): :meth:`arm` when startup begins
with an engine preload; :meth:`paused` around user callbacks (restored even if they raise);
:meth:`finish` when startup completes, which disarms it for good and logs one summary line.
Every read while armed counts; the first read of each KV method logs a structured warning at
once, later reads of that method only increment its count (no silence after the first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("rivetpy.actor.round_trips")


class RoundTripGuard:
    def __init__(self, actor_id: str, actor_name: str) -> None:
        self.actor_id = actor_id
        self.actor_name = actor_name
        self._armed = False
        self._finished = False
        #: KV method -> reads while armed (the first of each was logged as a warning)
        self.counts: dict[str, int] = {}

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def arm(self) -> None:
        if not self._finished:
            self._armed = True

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Disarm while user code runs; the previous state comes back afterwards."""
        saved = self._armed
        self._armed = False
        try:
            yield
        finally:
            self._armed = saved and not self._finished

    def record(self, method: str, site: str, detail: str) -> None:
        """Called before every KV read; ``site`` names the subsystem, ``detail`` the key."""
        if not self._armed:
            return
        count = self.counts.get(method, 0) + 1
        self.counts[method] = count
        if count == 1:
            log.warning(
                "unexpected KV round-trip during startup",
                extra={
                    "actor_id": self.actor_id,
                    "actor_name": self.actor_name,
                    "kv_method": method,
                    "site": site,
                    "kv_key": detail,
                },
            )

    def finish(self) -> None:
        """Startup complete: disarm permanently and log the per-method summary if any."""
        was_armed = self._armed or bool(self.counts)
        self._armed = False
        self._finished = True
        if was_armed and self.counts:
            summary = ", ".join(f"{m}={n}" for m, n in sorted(self.counts.items()))
            log.warning(
                "KV round-trips during startup: %s",
                summary,
                extra={
                    "actor_id": self.actor_id,
                    "actor_name": self.actor_name,
                    "kv_round_trips": dict(self.counts),
                    "kv_round_trips_total": self.total,
                },
            )
