"""A durable FIFO queue per actor: messages survive sleep, wake and restarts.

Layout: metadata (next id, size) at ``QUEUE_METADATA``; message ``n`` at
``QUEUE_MESSAGES + u64 BE n`` holding CBOR ``{"name", "body", "ts"}``. Sending writes the message
and the metadata in one put; receiving deletes the messages it returns and then updates the
metadata. Receivers wait (optionally filtered by message name) until a message arrives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from rivetpy.actor import keys
from rivetpy.actor.kv import InstanceKv
from rivetpy.actor.persist import PersistError, QueueMetadata, dumps, loads


@dataclass(frozen=True, slots=True)
class QueueMessage:
    id: int
    name: str
    body: Any
    ts_ms: int


def _decode_message(key: bytes, raw: bytes) -> QueueMessage:
    body = loads(raw)
    if not (
        isinstance(body, dict)
        and isinstance(body.get("name"), str)
        and isinstance(body.get("ts"), int)
    ):
        raise PersistError("queue message: malformed record")
    return QueueMessage(
        int.from_bytes(key[len(keys.QUEUE_MESSAGES) :], "big"),
        body["name"],
        body.get("body"),
        body["ts"],
    )


class Queue:
    def __init__(self, kv: InstanceKv) -> None:
        self._kv = kv
        self.metadata = QueueMetadata()
        self._messages: list[QueueMessage] | None = None  # loaded on first receive
        self._changed = trio.Event()
        self._lock = trio.Lock()

    def _load_metadata(self, raw: bytes | None) -> bytes | None:
        """Adopt the stored metadata; returns the bytes to write when there was none."""
        if raw is None:
            self.metadata = QueueMetadata()
            return self.metadata.encode()
        self.metadata = QueueMetadata.decode(raw)
        return None

    @property
    def size(self) -> int:
        return self.metadata.size

    async def send(self, name: str, body: Any = None) -> int:
        """Append a message; returns its id."""
        async with self._lock:
            msg_id = self.metadata.next_id
            message = QueueMessage(msg_id, name, body, int(time.time() * 1000))
            record = dumps({"name": name, "body": body, "ts": message.ts_ms})
            meta = QueueMetadata(msg_id + 1, self.metadata.size + 1)
            await self._kv.put(
                [(keys.queue_message_key(msg_id), record), (keys.QUEUE_METADATA, meta.encode())]
            )
            self.metadata = meta
            if self._messages is not None:
                self._messages.append(message)
        self._changed.set()
        self._changed = trio.Event()
        return msg_id

    async def _ensure_loaded(self) -> list[QueueMessage]:
        if self._messages is None:
            rows = await self._kv.list_prefix(keys.QUEUE_MESSAGES, "queue")
            self._messages = [_decode_message(k, v) for k, v in rows]
        return self._messages

    async def peek(self, limit: int | None = None) -> list[QueueMessage]:
        messages = await self._ensure_loaded()
        return list(messages if limit is None else messages[:limit])

    async def receive(
        self,
        names: Sequence[str] | None = None,
        *,
        count: int = 1,
        timeout: float | None = None,
    ) -> list[QueueMessage]:
        """Take up to ``count`` of the oldest messages (matching ``names`` if given), waiting
        until at least one exists or ``timeout`` elapses (then: empty list). Taken messages are
        deleted durably before they are returned."""
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        while True:
            changed = self._changed
            async with self._lock:
                messages = await self._ensure_loaded()
                picked = [m for m in messages if names is None or m.name in names][:count]
                if picked:
                    await self._take(picked)
                    return picked
            if trio.current_time() >= deadline:
                return []
            with trio.move_on_at(deadline):
                await changed.wait()

    async def _take(self, picked: list[QueueMessage]) -> None:
        assert self._messages is not None
        await self._kv.delete([keys.queue_message_key(m.id) for m in picked])
        ids = {m.id for m in picked}
        self._messages = [m for m in self._messages if m.id not in ids]
        meta = QueueMetadata(self.metadata.next_id, max(0, self.metadata.size - len(picked)))
        await self._kv.put([(keys.QUEUE_METADATA, meta.encode())])
        self.metadata = meta
