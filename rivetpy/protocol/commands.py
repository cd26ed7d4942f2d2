"""Command dedup and acknowledgement bookkeeping (runner-lifecycle.md §5.4-5.5, Required).

The engine replays every unacknowledged command after each reconnect. This tracker remembers the
highest command index handled per (actor id, generation) so a replay never starts an actor twice,
drops starts of generations older than the hosted one, and produces the checkpoints to ack. An
entry outlives its actor generation until it has been included in two acks after the generation
went away (one further ack cycle than upstream's, closing the documented race where an ack left
the process but the engine never committed it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from codec import v8

_ACKS_BEFORE_FORGET = 2
#: How many actors' newest generations are remembered for stale-start detection after their
#: entries were forgotten (oldest first out).
MAX_REMEMBERED_ACTORS = 100_000


class Decision(Enum):
    HANDLE = "handle"
    DUPLICATE = "duplicate"  # index already handled for this (actor, generation)
    STALE_GENERATION = "stale_generation"  # a start older than the hosted generation


@dataclass(slots=True)
class _Entry:
    index: int
    gone: bool = False
    acks_since_gone: int = 0


class CommandTracker:
    """Per-(actor, generation) highest handled command index, dedup decisions and acks."""

    def __init__(self, max_remembered_actors: int = MAX_REMEMBERED_ACTORS) -> None:
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._newest: dict[str, int] = {}
        self._max_remembered = max_remembered_actors

    def decide(
        self,
        actor_id: str,
        generation: int,
        index: int,
        is_start: bool,
        hosted_generation: int | None,
    ) -> Decision:
        """Classify one incoming command and record it (every command is marked processed, so
        duplicates and stale starts are acked too)."""
        key = (actor_id, generation)
        entry = self._entries.get(key)
        if entry is not None and index <= entry.index:
            return Decision.DUPLICATE
        created = entry is None
        if entry is None:
            entry = self._entries[key] = _Entry(index)
        else:
            entry.index = index
        newest = self._newest.get(actor_id, -1)
        stale = hosted_generation is not None and generation < hosted_generation
        # A start for a generation seen before whose entry was already forgotten is a late
        # replay of a finished instance.
        forgotten = created and generation == newest
        if is_start and (stale or generation < newest or forgotten):
            entry.gone = True
            return Decision.STALE_GENERATION
        if generation > newest:
            self._newest.pop(actor_id, None)
            self._newest[actor_id] = generation
            if len(self._newest) > self._max_remembered:
                del self._newest[next(iter(self._newest))]
        return Decision.HANDLE

    def generation_gone(self, actor_id: str, generation: int) -> None:
        """The instance stopped; its entry is kept until acknowledged twice more."""
        entry = self._entries.get((actor_id, generation))
        if entry is not None:
            entry.gone = True

    def checkpoints(self) -> list[v8.ActorCheckpoint]:
        """Checkpoints for a ``ToServerAckCommands``; call :meth:`acked` once it was sent."""
        return [v8.ActorCheckpoint(a, g, e.index) for (a, g), e in self._entries.items()]

    def acked(self, checkpoints: list[v8.ActorCheckpoint]) -> None:
        """An ack carrying ``checkpoints`` was handed to the socket: age out gone entries."""
        for cp in checkpoints:
            entry = self._entries.get((cp.actor_id, cp.generation))
            if entry is None or not entry.gone or entry.index != cp.index:
                continue
            entry.acks_since_gone += 1
            if entry.acks_since_gone >= _ACKS_BEFORE_FORGET:
                del self._entries[(cp.actor_id, cp.generation)]

    def highest(self, actor_id: str, generation: int) -> int | None:
        entry = self._entries.get((actor_id, generation))
        return None if entry is None else entry.index

    def __len__(self) -> int:
        return len(self._entries)
