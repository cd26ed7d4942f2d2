"""Pure helpers of the runner's WebSocket transport: URL, subprotocols, close reasons, backoff.

See runner-protocol.md §2 and runner-lifecycle.md §9.1, §11.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from urllib.parse import urlencode

PROTOCOL = "rivet"
TOKEN_PREFIX = "rivet_token."
RECONNECT_BASE_MS = 1000
RECONNECT_MAX_MS = 30_000
RECONNECT_JITTER = 0.25


def connect_url(endpoint: str, protocol_version: int, namespace: str, runner_key: str) -> str:
    """``{endpoint}/runners/connect?protocol_version=..&namespace=..&runner_key=..`` with http(s)
    rewritten to ws(s) and one trailing slash of the endpoint dropped."""
    if endpoint.startswith("http://"):
        base = "ws://" + endpoint[len("http://") :]
    elif endpoint.startswith("https://"):
        base = "wss://" + endpoint[len("https://") :]
    elif endpoint.startswith(("ws://", "wss://")):
        base = endpoint
    else:
        raise ValueError(f"endpoint must be an http(s) or ws(s) URL, got {endpoint!r}")
    if base.endswith("/"):
        base = base[:-1]
    query = urlencode(
        {"protocol_version": protocol_version, "namespace": namespace, "runner_key": runner_key}
    )
    return f"{base}/runners/connect?{query}"


def subprotocols(token: str | None) -> list[str]:
    """``rivet``, plus ``rivet_token.<token>`` when a token is configured."""
    return [PROTOCOL] if not token else [PROTOCOL, TOKEN_PREFIX + token]


@dataclass(frozen=True)
class CloseInfo:
    """A parsed close reason ``{group}.{code}#{ray id}``; group/code are None if unparseable."""

    group: str | None
    code: str | None
    ray_id: str | None

    @property
    def is_eviction(self) -> bool:
        return self.group == "ws" and self.code == "eviction"

    def __str__(self) -> str:
        return f"{self.group}.{self.code}" if self.group else "<unparseable>"


def parse_close_reason(reason: str | None) -> CloseInfo:
    """Split at the first ``#`` (ray id after it), then the rest at the first ``.``."""
    if not reason:
        return CloseInfo(None, None, None)
    head, sep, ray = reason.partition("#")
    group, dot, code = head.partition(".")
    if not dot or not group or not code:
        return CloseInfo(None, None, ray if sep else None)
    return CloseInfo(group, code, ray if sep else None)


def reconnect_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based):
    ``floor(min(1000 * 2**attempt, 30000) * (1 + U[0, 0.25)))`` ms."""
    r: float = (rng or random).random()
    base = min(RECONNECT_BASE_MS * 2 ** min(attempt, 32), RECONNECT_MAX_MS)
    ms: int = math.floor(base * (1 + RECONNECT_JITTER * r))
    return ms / 1000
