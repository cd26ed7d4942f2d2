"""A small in-memory stand-in for the ``fdb`` bindings, to test ``FdbStore``'s adapter logic.

It is NOT FoundationDB: it mimics the subset of the Python bindings' API that the adapter uses
(futures with ``wait()``, ``tr.snapshot``, ``get_range(...).to_list()``, ``commit``,
``on_error``, ``FDBError``) with multi-version reads and optimistic conflict detection on
serializable reads, so the adapter's retry loop meets real conflicts. The real bindings are
exercised by the ``foundationdb`` parametrization when ``FDB_CLUSTER_FILE`` is set.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any

RETRYABLE = {1007, 1020}


class FDBError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
        self.description = {1020: "not_committed", 1007: "transaction_too_old"}.get(code, "error")


class StreamingMode:
    want_all = -2
    iterator = -1
    exact = 0


@dataclass
class KeyValue:
    key: bytes
    value: bytes


class _Future:
    def __init__(self, value: Any = None, error: FDBError | None = None) -> None:
        self.value = value
        self._error = error

    def wait(self) -> Any:
        if self._error is not None:
            raise self._error
        return self.value


class _Value(_Future):
    def wait(self) -> Any:
        super().wait()
        return self


class _Range:
    def __init__(self, rows: list[KeyValue]) -> None:
        self._rows = rows

    def to_list(self) -> list[KeyValue]:
        return list(self._rows)


class FakeDatabase:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version = 0
        self.versions: list[int] = [0]
        self.states: list[dict[bytes, bytes]] = [{}]
        #: (commit version, written ranges)
        self.log: list[tuple[int, list[tuple[bytes, bytes]]]] = []

    def create_transaction(self) -> FakeTransaction:
        return FakeTransaction(self)

    def state_at(self, version: int) -> dict[bytes, bytes]:
        return self.states[bisect.bisect_right(self.versions, version) - 1]


class _Reader:
    def __init__(self, tr: FakeTransaction, snapshot: bool) -> None:
        self._tr = tr
        self._snapshot = snapshot

    def get(self, key: bytes) -> _Value:
        view = self._tr.view()
        if not self._snapshot:
            self._tr.reads.append((key, key + b"\x00"))
        return _Value(view.get(key))

    def get_range(
        self,
        begin: bytes,
        end: bytes,
        limit: int = 0,
        reverse: bool = False,
        streaming_mode: int = StreamingMode.iterator,
    ) -> _Range:
        view = self._tr.view()
        keys = sorted((k for k in view if begin <= k < end), reverse=reverse)
        if limit:
            keys = keys[:limit]
        if not self._snapshot:  # conflict range: what was actually read
            if limit and len(keys) == limit:
                lo, hi = (keys[-1], end) if reverse else (begin, keys[-1] + b"\x00")
            else:
                lo, hi = begin, end
            self._tr.reads.append((lo, hi))
        return _Range([KeyValue(k, view[k]) for k in keys])

    def get_estimated_range_size_bytes(self, begin: bytes, end: bytes) -> _Future:
        view = self._tr.view()
        return _Future(sum(len(k) + len(v) for k, v in view.items() if begin <= k < end))


class FakeTransaction(_Reader):
    def __init__(self, db: FakeDatabase) -> None:
        super().__init__(self, snapshot=False)
        self.db = db
        self.snapshot = _Reader(self, snapshot=True)
        self.reset()

    def reset(self) -> None:
        self.read_version: int | None = None
        self.writes: list[tuple[str, bytes, bytes]] = []
        self.reads: list[tuple[bytes, bytes]] = []

    def view(self) -> dict[bytes, bytes]:
        with self.db.lock:
            if self.read_version is None:
                self.read_version = self.db.version
            state = dict(self.db.state_at(self.read_version))
        self._apply(state)
        return state

    def _apply(self, state: dict[bytes, bytes]) -> None:
        for op, a, b in self.writes:
            if op == "set":
                state[a] = b
            else:
                for k in [k for k in state if a <= k < b]:
                    del state[k]

    def set(self, key: bytes, value: bytes) -> None:
        self.writes.append(("set", key, value))

    def clear(self, key: bytes) -> None:
        self.writes.append(("clear", key, key + b"\x00"))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self.writes.append(("clear", begin, end))

    def commit(self) -> _Future:
        if not self.writes:
            return _Future()
        with self.db.lock:
            start = self.read_version if self.read_version is not None else self.db.version
            for version, ranges in self.db.log:
                if version <= start:
                    continue
                for lo, hi in self.reads:
                    if any(lo < wh and wl < hi for wl, wh in ranges):
                        return _Future(error=FDBError(1020))
            state = dict(self.db.states[-1])
            self._apply(state)
            self.db.version += 1
            self.db.versions.append(self.db.version)
            self.db.states.append(state)
            written = [(a, b if op == "clear" else a + b"\x00") for op, a, b in self.writes]
            self.db.log.append((self.db.version, written))
        return _Future()

    def on_error(self, code: int) -> _Future:
        if code in RETRYABLE:
            self.reset()
            return _Future()
        return _Future(error=FDBError(code))

    def cancel(self) -> None:
        self.reset()


class FakeFdbModule:
    """What ``FdbStore`` needs from the ``fdb`` module."""

    FDBError = FDBError
    StreamingMode = StreamingMode
