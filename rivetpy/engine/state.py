"""Durable engine state: actor and runner records, runner configs, the per-runner command queue.

Layout (all under the rivetpy engine subspace ``(RIVET, PEGBOARD, "py")``, tuple-encoded):

* ``("actor", actor_id)`` -> actor record (JSON)
* ``("runner", runner_id)`` -> runner record (JSON)
* ``("runner_config", namespace_id, runner_name)`` -> ``{}`` (created when a runner connects)
* ``("cmd", runner_id, actor_id, generation, index)`` -> ``ActorCommandKeyData`` (embedded v8)

The command queue is stored exactly as runner-lifecycle.md §5.1 describes: never hydrated,
ordered by (actor id, generation, index), deleted on ack (same generation, ``index <=``) or when
the runner expires. Records are small JSON objects so that the format is easy to inspect.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import codec
from codec import v8
from rivetpy.engine.keys import PEGBOARD, RIVET, pack, strinc, unpack
from rivetpy.engine.store.api import ReadTransaction, Transaction
from rivetpy.protocol.engine import QueuedCommand, check_stored

SUBSPACE = pack((RIVET, PEGBOARD, "py"))

ActorState = Literal["pending", "starting", "running", "stopping", "sleeping", "destroyed"]
CrashPolicy = Literal["sleep", "restart", "destroy"]
StopIntent = Literal["", "sleep", "stop", "destroy", "reschedule"]
CRASH_POLICIES = ("sleep", "restart", "destroy")


def _key(*items: str | int) -> bytes:
    return SUBSPACE + pack(items)


@dataclass(slots=True)
class ActorRecord:
    actor_id: str
    namespace_id: str
    name: str
    key: str | None
    input_b64: str | None
    runner_name_selector: str
    crash_policy: str
    create_ts: int
    state: str = "pending"
    generation: int = -1
    runner_id: str | None = None
    #: index of the last command queued for the current allocation
    command_index: int = -1
    #: the last event index applied for the current allocation (events dedup)
    last_event_index: int = -1
    #: why the current allocation is being stopped
    stop_intent: str = ""
    start_ts: int | None = None
    pending_allocation_ts: int | None = None
    connectable_ts: int | None = None
    sleep_ts: int | None = None
    reschedule_ts: int | None = None
    destroy_ts: int | None = None
    alarm_ts: int | None = None

    @property
    def input(self) -> bytes | None:
        return None if self.input_b64 is None else base64.b64decode(self.input_b64)

    def config(self) -> v8.ActorConfig:
        return v8.ActorConfig(self.name, self.key, self.create_ts, self.input)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ActorRecord:
        data: dict[str, Any] = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def public(self, datacenter: str = "default") -> dict[str, Any]:
        """The actor object of the public API (the real engine's field names)."""
        return {
            "actor_id": self.actor_id,
            "name": self.name,
            "key": self.key,
            "namespace_id": self.namespace_id,
            "datacenter": datacenter,
            "runner_name_selector": self.runner_name_selector,
            "crash_policy": self.crash_policy,
            "create_ts": self.create_ts,
            "start_ts": self.start_ts,
            "pending_allocation_ts": self.pending_allocation_ts,
            "connectable_ts": self.connectable_ts,
            "sleep_ts": self.sleep_ts,
            "reschedule_ts": self.reschedule_ts,
            "destroy_ts": self.destroy_ts,
        }


@dataclass(slots=True)
class RunnerRecord:
    runner_id: str
    namespace_id: str
    name: str
    key: str
    version: int
    total_slots: int
    protocol_version: int
    create_ts: int
    last_ping_ts: int
    draining: bool = False
    metadata: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunnerRecord:
        data: dict[str, Any] = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# -- keys -----------------------------------------------------------------------------------------


def actor_key(actor_id: str) -> bytes:
    return _key("actor", actor_id)


def runner_key(runner_id: str) -> bytes:
    return _key("runner", runner_id)


def runner_config_key(namespace_id: str, name: str) -> bytes:
    return _key("runner_config", namespace_id, name)


def command_key(runner_id: str, actor_id: str, generation: int, index: int) -> bytes:
    return _key("cmd", runner_id, actor_id, generation, index)


def _prefix_range(prefix: bytes) -> tuple[bytes, bytes]:
    return prefix, strinc(prefix)


# -- operations (inside a transaction) ------------------------------------------------------------


def put_actor(tr: Transaction, actor: ActorRecord) -> None:
    tr.set(actor_key(actor.actor_id), actor.to_json())


def put_runner(tr: Transaction, runner: RunnerRecord) -> None:
    tr.set(runner_key(runner.runner_id), runner.to_json())


def delete_runner(tr: Transaction, runner_id: str) -> None:
    tr.clear(runner_key(runner_id))


def put_runner_config(tr: Transaction, namespace_id: str, name: str) -> None:
    tr.set(runner_config_key(namespace_id, name), b"{}")


def enqueue_command(tr: Transaction, runner_id: str, command: QueuedCommand) -> None:
    """Store ``command`` (never hydrated: raises ``LocalProtocolError`` if it is)."""
    check_stored(command.command)
    cp = command.checkpoint
    tr.set(
        command_key(runner_id, cp.actor_id, cp.generation, cp.index),
        codec.ACTOR_COMMAND_KEY_DATA.encode_embedded(command.command),
    )


def ack_commands(tr: Transaction, runner_id: str, checkpoint: v8.ActorCheckpoint) -> None:
    """Delete the runner's commands of that actor and generation with ``index <=`` the ack."""
    begin = _key("cmd", runner_id, checkpoint.actor_id, checkpoint.generation)
    tr.clear_range(
        begin,
        command_key(runner_id, checkpoint.actor_id, checkpoint.generation, checkpoint.index)
        + b"\x00",
    )


def clear_commands(tr: Transaction, runner_id: str) -> None:
    tr.clear_range(*_prefix_range(_key("cmd", runner_id)))


async def read_commands(tr: ReadTransaction, runner_id: str) -> list[QueuedCommand]:
    """Every queued command of the runner in storage order (actor id, generation, index)."""
    prefix = _key("cmd", runner_id)
    rows = await tr.get_range(*_prefix_range(prefix))
    out: list[QueuedCommand] = []
    for row in rows:
        _, _, actor_id, generation, index = unpack(row.key, len(SUBSPACE))
        assert isinstance(actor_id, str) and isinstance(generation, int)
        assert isinstance(index, int)
        command = codec.ACTOR_COMMAND_KEY_DATA.decode_embedded(row.value)
        out.append(QueuedCommand(v8.ActorCheckpoint(actor_id, generation, index), command))
    return out


async def load_all(
    tr: ReadTransaction,
) -> tuple[list[ActorRecord], list[RunnerRecord], list[tuple[str, str]]]:
    """Every actor, runner and runner config (namespace id, runner name)."""
    actors = [
        ActorRecord.from_json(r.value) for r in await tr.get_range(*_prefix_range(_key("actor")))
    ]
    runners = [
        RunnerRecord.from_json(r.value) for r in await tr.get_range(*_prefix_range(_key("runner")))
    ]
    configs: list[tuple[str, str]] = []
    for row in await tr.get_range(*_prefix_range(_key("runner_config"))):
        _, namespace_id, name = unpack(row.key, len(SUBSPACE))
        assert isinstance(namespace_id, str) and isinstance(name, str)
        configs.append((namespace_id, name))
    return actors, runners, configs
