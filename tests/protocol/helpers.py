"""Builders for ``ToClient`` messages and a fake engine that drives one :class:`RunnerCore`.

The fake engine is deliberately dumb: it hands the core whatever it is told to send, and keeps
every ``ToServer`` message the core emitted (``sent``) and every event it produced (``events``),
so a test can assert on exactly what crossed the boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from codec import v8
from rivetpy.protocol import RunnerConfig, RunnerCore
from rivetpy.protocol import events as ev

T = TypeVar("T")

RUNNER_ID = "runner-1"
ACTOR = "actor-a"
OTHER = "actor-b"
GATEWAY = b"\x01\x02\x03\x04"


# -- keys ----------------------------------------------------------------------------------------
def key(n: int, gateway: bytes = GATEWAY) -> ev.TunnelKey:
    """A tunnel key ``(gateway id, request id)``; ``n`` becomes the 4-byte request id."""
    return (gateway, n.to_bytes(4, "big"))


# -- ToClient builders ---------------------------------------------------------------------------
def metadata(
    lost: int = 15_000, stop: int = 30_000, drain: int | None = None
) -> v8.ProtocolMetadata:
    return v8.ProtocolMetadata(lost, stop, drain)


def init(runner_id: str = RUNNER_ID, meta: v8.ProtocolMetadata | None = None) -> v8.ToClientInit:
    return v8.ToClientInit(runner_id, meta if meta is not None else metadata())


def actor_config(
    name: str = "counter", key_: str | None = "k", input_: bytes | None = None
) -> v8.ActorConfig:
    return v8.ActorConfig(name, key_, 1_700_000_000_000, input_)


def start(
    actor_id: str = ACTOR,
    generation: int = 1,
    index: int = 0,
    *,
    hibernating: Sequence[ev.TunnelKey] = (),
    preloaded: v8.PreloadedKv | None = None,
    config: v8.ActorConfig | None = None,
) -> v8.CommandWrapper:
    cmd = v8.CommandStartActor(
        config if config is not None else actor_config(),
        [v8.HibernatingRequest(g, r) for g, r in hibernating],
        preloaded,
    )
    return v8.CommandWrapper(v8.ActorCheckpoint(actor_id, generation, index), cmd)


def stop(actor_id: str = ACTOR, generation: int = 1, index: int = 1) -> v8.CommandWrapper:
    return v8.CommandWrapper(v8.ActorCheckpoint(actor_id, generation, index), v8.CommandStopActor())


def commands(*wrappers: v8.CommandWrapper) -> v8.ToClientCommands:
    return v8.ToClientCommands(list(wrappers))


def ack_events(*checkpoints: tuple[str, int, int]) -> v8.ToClientAckEvents:
    return v8.ToClientAckEvents([v8.ActorCheckpoint(a, g, i) for a, g, i in checkpoints])


def kv_get_response(keys: Sequence[bytes] = (), values: Sequence[bytes] = ()) -> v8.KvGetResponse:
    meta = [v8.KvMetadata(b"2.1.7", 1) for _ in keys]
    return v8.KvGetResponse(list(keys), list(values), meta)


def kv_response(request_id: int, data: v8.KvResponseData | None = None) -> v8.ToClientKvResponse:
    return v8.ToClientKvResponse(request_id, data if data is not None else v8.KvPutResponse())


def kv_error(request_id: int, message: str) -> v8.ToClientKvResponse:
    return v8.ToClientKvResponse(request_id, v8.KvErrorResponse(message))


def tunnel(
    k: ev.TunnelKey, index: int, kind: v8.ToClientTunnelMessageKind
) -> v8.ToClientTunnelMessage:
    return v8.ToClientTunnelMessage(v8.MessageId(k[0], k[1], index), kind)


def http_start(
    actor_id: str = ACTOR,
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> v8.ToClientRequestStart:
    return v8.ToClientRequestStart(actor_id, method, path, headers or {}, body, False)


def ws_open(actor_id: str = ACTOR, path: str = "/ws") -> v8.ToClientWebSocketOpen:
    return v8.ToClientWebSocketOpen(actor_id, path, {})


def ws_message(data: bytes = b"x", binary: bool = True) -> v8.ToClientWebSocketMessage:
    return v8.ToClientWebSocketMessage(data, binary)


def kv_get(*keys: bytes) -> v8.KvGetRequest:
    return v8.KvGetRequest(list(keys))


# -- filtering -----------------------------------------------------------------------------------
def of_type(items: Iterable[object], cls: type[T]) -> list[T]:
    return [x for x in items if isinstance(x, cls)]


def event_wrappers(messages: Iterable[object]) -> list[v8.EventWrapper]:
    """Every event wrapper of every ``ToServerEvents`` frame, in order."""
    return [w for frame in of_type(messages, v8.ToServerEvents) for w in frame.value]


def tunnel_out(
    messages: Iterable[object], k: ev.TunnelKey | None = None
) -> list[v8.ToServerTunnelMessage]:
    out = of_type(messages, v8.ToServerTunnelMessage)
    if k is None:
        return out
    return [m for m in out if (m.message_id.gateway_id, m.message_id.request_id) == k]


# -- the fake engine -----------------------------------------------------------------------------
class FakeEngine:
    """Drives one core: every call pumps the core's output into ``sent`` and ``events``."""

    def __init__(self, core: RunnerCore | None = None, config: RunnerConfig | None = None) -> None:
        self.core = core if core is not None else RunnerCore(config or RunnerConfig("pool", 8))
        self.sent: list[v8.ToServer] = []
        self.events: list[ev.Event] = []

    def pump(self) -> list[v8.ToServer]:
        """Collect what the core produced since the last pump; returns the new messages."""
        new = self.core.messages_to_send()
        self.sent.extend(new)
        self.events.extend(self.core.next_events())
        return new

    def take_events(self) -> list[ev.Event]:
        """The events collected so far, and forget them."""
        self.pump()
        out, self.events = self.events, []
        return out

    def connect(
        self, runner_id: str = RUNNER_ID, meta: v8.ProtocolMetadata | None = None
    ) -> list[v8.ToServer]:
        """Open the socket, check ``ToServerInit`` came first, answer ``ToClientInit``.
        Returns the messages sent after the init answer (the flush)."""
        self.core.connection_made()
        first = self.pump()
        assert len(first) == 1 and isinstance(first[0], v8.ToServerInit), first
        return self.send(init(runner_id, meta))

    def disconnect(self) -> None:
        self.core.connection_lost()
        self.pump()

    def reconnect(self, runner_id: str = RUNNER_ID) -> list[v8.ToServer]:
        self.disconnect()
        return self.connect(runner_id)

    def send(self, msg: v8.ToClient) -> list[v8.ToServer]:
        self.core.receive_message(msg)
        return self.pump()

    def send_commands(self, *wrappers: v8.CommandWrapper) -> list[v8.ToServer]:
        return self.send(commands(*wrappers))

    def start_actor(
        self, actor_id: str = ACTOR, generation: int = 1, *, complete: bool = True
    ) -> None:
        """Send a fresh start command and (by default) complete the start."""
        self.send_commands(start(actor_id, generation))
        if complete:
            self.core.start_completed(actor_id, generation)
            self.pump()

    def sent_of(self, cls: type[T]) -> list[T]:
        return of_type(self.sent, cls)

    def events_of(self, cls: type[T]) -> list[T]:
        self.pump()
        return of_type(self.events, cls)
