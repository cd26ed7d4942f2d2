"""The runner's table of KV requests: ids, queueing while disconnected, timeouts.

Ids are a per-runner ``u32`` counter that never resets across reconnects, wraps modulo 2**32
and skips ids still in flight (runner-lifecycle.md §8.1, Required). Requests made while
disconnected wait for the next handshake; requests in flight when the connection dropped are
sent again after it (every KV operation is an idempotent replacement or deletion), so a late
duplicate response for an id that is already resolved is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from codec import v8

U32 = 1 << 32
DEFAULT_KV_TIMEOUT = 30.0


@dataclass(slots=True)
class PendingKv:
    request_id: int
    actor_id: str
    generation: int
    data: v8.KvRequestData
    sent: bool
    #: when the request was created or last sent (the timeout counts from here)
    since: float


class KvTable:
    def __init__(self, timeout: float = DEFAULT_KV_TIMEOUT, first_id: int = 0) -> None:
        self.timeout = timeout
        self._next = first_id % U32
        self._pending: dict[int, PendingKv] = {}

    def create(
        self, actor_id: str, generation: int, data: v8.KvRequestData, now: float
    ) -> PendingKv:
        if len(self._pending) >= U32:  # pragma: no cover - 4 billion requests in flight
            raise OverflowError("no free KV request id")
        rid = self._next
        while rid in self._pending:
            rid = (rid + 1) % U32
        self._next = (rid + 1) % U32
        req = PendingKv(rid, actor_id, generation, data, False, now)
        self._pending[rid] = req
        return req

    def mark_sent(self, req: PendingKv, now: float) -> None:
        req.sent = True
        req.since = now

    def pop(self, request_id: int) -> PendingKv | None:
        return self._pending.pop(request_id, None)

    def to_resend(self) -> list[PendingKv]:
        """Every pending request in creation order (after a handshake all are (re)sent)."""
        return list(self._pending.values())

    def connection_lost(self) -> None:
        for req in self._pending.values():
            req.sent = False

    def expired(self, now: float) -> list[PendingKv]:
        """Remove and return requests older than the timeout."""
        late = [r for r in self._pending.values() if now - r.since >= self.timeout]
        for r in late:
            del self._pending[r.request_id]
        return late

    def next_deadline(self) -> float | None:
        """When the oldest pending request times out (None if none is pending)."""
        if not self._pending:
            return None
        return min(r.since for r in self._pending.values()) + self.timeout

    def drain(self) -> list[PendingKv]:
        reqs = list(self._pending.values())
        self._pending.clear()
        return reqs

    def __len__(self) -> int:
        return len(self._pending)
