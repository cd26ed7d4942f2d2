"""Events the runner core hands to its driver (``RunnerCore.next_events()``).

They are small frozen dataclasses named as nouns; the driver reacts to each (start an actor's
nursery, resolve a KV call, hand a request to the HTTP handler...). A tunnel request is named by
its :data:`TunnelKey` ``(gateway_id, request_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from codec import v8

TunnelKey = tuple[bytes, bytes]
"""(gateway id, request id): one HTTP request or WebSocket, globally."""


class StopReason(Enum):
    """Why the core asks the driver to stop an actor instance."""

    COMMAND = "command"  # CommandStopActor from the engine
    START_FAILED = "start_failed"  # the start callback failed
    REPLACED = "replaced"  # a start for a newer generation of the same actor arrived
    RUNNER_ID_CHANGED = "runner_id_changed"  # ToClientInit carried a new runner id
    RUNNER_LOST = "runner_lost"  # disconnected for longer than runnerLostThreshold
    EVICTED = "evicted"  # the engine closed the connection with ws.eviction
    SHUTDOWN = "shutdown"  # immediate local shutdown


@dataclass(frozen=True, slots=True)
class Connected:
    """The handshake finished (``ToClientInit``). ``runner_id_changed`` is True the first time
    and whenever the engine assigned a new runner id (hosted actors are then stopped)."""

    runner_id: str
    metadata: v8.ProtocolMetadata
    runner_id_changed: bool


@dataclass(frozen=True, slots=True)
class ActorStartRequested:
    """Start an actor instance. Tunnel traffic for it is held by the core until the driver
    calls ``start_completed`` (or ``start_failed``)."""

    actor_id: str
    generation: int
    config: v8.ActorConfig
    preloaded_kv: v8.PreloadedKv | None
    hibernating_requests: tuple[TunnelKey, ...]


@dataclass(frozen=True, slots=True)
class ActorStopRequested:
    """Stop an actor instance; the driver runs the stop callback, then ``stop_completed``."""

    actor_id: str
    generation: int
    reason: StopReason


@dataclass(frozen=True, slots=True)
class KvResponded:
    """A KV request succeeded (any ``KvResponseData`` member but ``KvErrorResponse``)."""

    request_id: int
    actor_id: str
    response: v8.KvResponseData


@dataclass(frozen=True, slots=True)
class KvFailed:
    """A KV request failed: engine error, timeout, runner lost or shutdown."""

    request_id: int
    actor_id: str
    message: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class HttpRequestReceived:
    """``ToClientRequestStart`` for a running actor. With ``stream`` the body continues in
    :class:`HttpRequestChunkReceived` events until ``finish``."""

    key: TunnelKey
    actor_id: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    stream: bool


@dataclass(frozen=True, slots=True)
class HttpRequestChunkReceived:
    key: TunnelKey
    body: bytes
    finish: bool


@dataclass(frozen=True, slots=True)
class HttpRequestAborted:
    key: TunnelKey


@dataclass(frozen=True, slots=True)
class WebSocketOpenRequested:
    """A client opened a WebSocket to a running actor. The driver answers with
    ``accept_websocket(key, can_hibernate)`` or ``close_websocket``."""

    key: TunnelKey
    actor_id: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class WebSocketMessageReceived:
    """A message on an open socket; ``index`` is the gateway's message index (acked with
    ``ack_websocket`` for hibernatable sockets once durably processed)."""

    key: TunnelKey
    data: bytes
    binary: bool
    index: int


@dataclass(frozen=True, slots=True)
class WebSocketClosed:
    """A socket is gone. ``by_engine``: the client/gateway closed it; otherwise the core closed
    it locally (actor stopped, index gap, shutdown), and ``reported`` says whether a close was
    sent to the engine."""

    key: TunnelKey
    code: int | None
    reason: str | None
    by_engine: bool
    reported: bool


Event = (
    Connected
    | ActorStartRequested
    | ActorStopRequested
    | KvResponded
    | KvFailed
    | HttpRequestReceived
    | HttpRequestChunkReceived
    | HttpRequestAborted
    | WebSocketOpenRequested
    | WebSocketMessageReceived
    | WebSocketClosed
)
