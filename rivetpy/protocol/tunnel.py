"""Per-request tunnel state: one record per HTTP request or WebSocket (runner side)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from rivetpy.protocol.events import TunnelKey
from rivetpy.protocol.wrapping import next_index

#: The engine closes the whole runner connection for a tunnel payload over 20 MiB.
MAX_TUNNEL_PAYLOAD = 20 * 1024 * 1024


class Kind(Enum):
    HTTP = "http"
    WEBSOCKET = "websocket"


class WsState(Enum):
    OPENING = "opening"  # open received, not accepted yet
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class TunnelRequest:
    key: TunnelKey
    kind: Kind
    actor_id: str
    generation: int
    #: next runner->gateway message index to assign
    out_index: int = 0
    ws_state: WsState = WsState.OPENING
    hibernatable: bool = False
    #: last processed gateway->runner message index
    in_index: int = 0
    #: highest index acknowledged to the gateway (durably persisted by the app), if any
    acked_index: int | None = None
    response_started: bool = False

    def take_out_index(self) -> int:
        index = self.out_index
        self.out_index = next_index(index)
        return index
