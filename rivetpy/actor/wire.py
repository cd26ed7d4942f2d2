"""What actors speak to clients through the gateway (JSON; actor-relative paths).

HTTP:
  ``POST /action/<name>``  body ``{"args": [...]}`` (empty body: no args; connection params in
  the ``x-rivet-conn-params`` header as JSON) → ``200 {"output": ...}``
  ``POST /queue/<name>``   body ``{"body": ...}`` → ``200 {"id": n}``
  ``GET /inspect``         ``Authorization: Bearer <inspector token>`` → state and connections
Errors: non-2xx with ``{"error": {"group", "code", "message", "metadata"}}``.

WebSocket ``/connect`` (params: ``?params=<JSON>`` or the header), one JSON object per message:
  server → client: ``{"type": "init", "connectionId"}`` (once, not again after hibernation),
  ``{"type": "actionResponse", "id", "output"}``, ``{"type": "event", "name", "args"}``,
  ``{"type": "error", "id" (or null), "group", "code", "message", "metadata"}``
  client → server: ``{"type": "action", "id", "name", "args"}``,
  ``{"type": "subscribe", "event"}``, ``{"type": "unsubscribe", "event"}``
"""

from __future__ import annotations

import json
from typing import Any

CONN_PARAMS_HEADER = "x-rivet-conn-params"
JSON_HEADERS = {"content-type": "application/json"}


class ActorError(Exception):
    """An error returned to a caller."""

    def __init__(
        self, status: int, group: str, code: str, message: str, metadata: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.group = group
        self.code = code
        self.message = message
        self.metadata = metadata

    def body(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "code": self.code,
            "message": self.message,
            "metadata": self.metadata,
        }

    def __str__(self) -> str:
        return f"{self.group}.{self.code}: {self.message}"


def bad_request(message: str) -> ActorError:
    return ActorError(400, "request", "invalid", message)


def action_not_found(name: str) -> ActorError:
    return ActorError(404, "actor", "action_not_found", f"no action named {name!r}")


def internal_error() -> ActorError:
    return ActorError(500, "actor", "internal_error", "internal error (see the actor's logs)")


def encode(value: Any) -> bytes:
    """JSON bytes; raises :class:`ActorError` (500) when ``value`` is not JSON-serializable."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ActorError(
            500, "actor", "output_not_serializable", f"result is not JSON-serializable: {exc}"
        ) from None


def decode_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object or :class:`ActorError` 400."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object")
    return value


def decode_params(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"connection params are not valid JSON: {exc}") from None


def error_message(err: ActorError, request_id: Any) -> dict[str, Any]:
    return {"type": "error", "id": request_id, **err.body()}
