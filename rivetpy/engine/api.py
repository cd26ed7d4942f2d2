"""The public routes, mirroring the real engine (real-engine.md): health, actors, actor KV,
runner connections and the gateway. Errors are JSON ``{group, code, message}``.

Auth (optional admin token): API routes need ``Authorization: Bearer <token>`` (403
``api.forbidden`` otherwise); ``/health`` and the gateway are open; runners send the token as
subprotocol ``rivet_token.<token>``. Unlike the real engine 2.3.11, ``POST /actors`` is not
exempt (that exemption is a bug upstream, not a contract).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

import trio_websocket

from rivetpy import __version__
from rivetpy.engine.core import ApiError, Engine, dumps
from rivetpy.engine.gateway import Gateway
from rivetpy.engine.http_server import Request, Response
from rivetpy.engine.ids import InvalidIdError, id_to_bytes
from rivetpy.engine.runner_endpoint import serve_runner

log = logging.getLogger("rivetpy.engine.api")

#: header routing (real-engine.md): ``x-rivet-target: actor`` + ``x-rivet-actor: <id>``
TARGET_HEADER = "x-rivet-target"
ACTOR_HEADER = "x-rivet-actor"
#: header-routed requests are only accepted under this path (others: 404 ``guard.no_route``)
HEADER_ROUTING_PREFIX = "/request"
_GATEWAY = re.compile(r"^/gateway/([^/@?]+)(?:@[^/?]*)?(/[^?]*)?$")
_ACTOR = re.compile(r"^/actors/([^/]+)$")
_ACTOR_KV = re.compile(r"^/actors/([^/]+)/kv/keys/([^/]+)$")
CREATE_FIELDS = {"name", "key", "input", "runner_name_selector", "crash_policy", "datacenter"}
HOP_HEADERS = {
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
}


def json_response(status: int, value: Any) -> Response:
    return Response(status, {"content-type": "application/json"}, dumps(value))


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.body())


class Api:
    """Routes requests to the engine and the gateway."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.gateway = Gateway(engine)

    def _check_auth(self, request: Request) -> None:
        token = self.engine.settings.admin_token
        if token is None:
            return
        if request.headers.get("authorization", "") != f"Bearer {token}":
            raise ApiError(403, "api", "forbidden", "invalid or missing admin token")

    # -- HTTP -----------------------------------------------------------------------------------
    async def http(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except ApiError as exc:
            return error_response(exc)
        except Exception:
            log.exception("request failed", extra={"target": request.target})
            return error_response(
                ApiError(500, "core", "internal_error", "An internal error occurred")
            )

    async def _route(self, request: Request) -> Response:
        parts = urlsplit(request.target)
        path, query = parts.path, parse_qs(parts.query)
        method = request.method
        if path.startswith("/gateway/"):
            return await self._gateway_http(request, path, parts.query)
        if request.headers.get(TARGET_HEADER) == "actor":
            return await self._gateway_header_http(request, path)
        if path == "/health" and method == "GET":
            return json_response(200, {"runtime": "engine", "status": "ok", "version": __version__})
        self._check_auth(request)
        namespace = query.get("namespace", ["default"])[0]
        if path == "/namespaces" and method == "GET":
            return json_response(
                200,
                {
                    "namespaces": [
                        {"namespace_id": ns_id, "name": name, "display_name": name}
                        for name, ns_id in self.engine.namespaces.items()
                    ]
                },
            )
        if path == "/runner-configs" and method == "GET":
            ns_id = self.engine.namespace_id(namespace)
            configs: dict[str, Any] = {
                name: {"normal": {}} for ns, name in self.engine.runner_configs if ns == ns_id
            }
            return json_response(200, {"runner_configs": configs})
        if path == "/actors" and method == "POST":
            return await self._create_actor(namespace, request.body)
        if path == "/actors" and method == "GET":
            ids = [
                i
                for v in query.get("actor_ids", []) + query.get("actor_id", [])
                for i in v.split(",")
                if i
            ]
            actors = self.engine.list_actors(
                namespace,
                name=query.get("name", [None])[0],
                key=query.get("key", [None])[0],
                actor_ids=ids,
                include_destroyed=query.get("include_destroyed", ["false"])[0] == "true",
            )
            return json_response(
                200, {"actors": [a.public() for a in actors], "pagination": {"cursor": None}}
            )
        match = _ACTOR.match(path)
        if match and method == "DELETE":
            await self.engine.destroy_actor(namespace, unquote(match.group(1)))
            return json_response(200, {})
        match = _ACTOR_KV.match(path)
        if match and method == "GET":
            return await self._kv_get(unquote(match.group(1)), unquote(match.group(2)))
        raise ApiError(404, "api", "not_found", "The requested route does not exist.")

    async def _create_actor(self, namespace: str, raw: bytes) -> Response:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "api", "invalid_body", "body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "api", "invalid_body", "body must be a JSON object")
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            raise ApiError(400, "api", "invalid_body", f"unknown fields: {sorted(unknown)}")
        name, selector = body.get("name"), body.get("runner_name_selector")
        if not isinstance(name, str) or not isinstance(selector, str):
            raise ApiError(400, "api", "invalid_body", "name and runner_name_selector required")
        key = body.get("key")
        raw_input = body.get("input")
        try:
            data = None if raw_input is None else base64.b64decode(raw_input, validate=True)
        except (binascii.Error, TypeError):
            raise ApiError(400, "api", "invalid_body", "input must be base64") from None
        actor = await self.engine.create_actor(
            namespace,
            name,
            key if isinstance(key, str) else None,
            data,
            selector,
            str(body.get("crash_policy") or "sleep"),
        )
        return json_response(200, {"actor": actor.public()})

    async def _kv_get(self, actor_id: str, encoded_key: str) -> Response:
        try:
            key = base64.b64decode(encoded_key, validate=True)
        except binascii.Error:
            raise ApiError(400, "api", "invalid_path", "key must be base64") from None
        entry = await self.engine.kv_get(actor_id, key)
        if entry is None:
            raise ApiError(400, "actor", "kv_key_not_found", "The KV key does not exist.")
        return json_response(
            200,
            {
                "value": base64.b64encode(entry.value).decode(),
                "update_ts": entry.metadata.update_ts,
            },
        )

    # -- gateway ----------------------------------------------------------------------------------
    def _gateway_target(self, path: str) -> tuple[str, str]:
        match = _GATEWAY.match(path)
        if match is None:
            raise ApiError(404, "guard", "no_route", "no route")
        actor_id = unquote(match.group(1))
        self._check_actor_id(actor_id)
        return actor_id, match.group(2) or "/"

    @staticmethod
    def _check_actor_id(actor_id: str) -> None:
        try:
            id_to_bytes(actor_id)
        except InvalidIdError as exc:
            raise ApiError(500, "core", "internal_error", str(exc)) from None

    async def _gateway_header_http(self, request: Request, path: str) -> Response:
        """Header routing: the actor sees the request target (path and query) unchanged and
        every header except hop-by-hop ones (the ``x-rivet-*`` headers included)."""
        if not (path == HEADER_ROUTING_PREFIX or path.startswith(HEADER_ROUTING_PREFIX + "/")):
            raise ApiError(404, "guard", "no_route", "no route")
        actor_id = request.headers.get(ACTOR_HEADER)
        if not actor_id:
            raise ApiError(400, "guard", "missing_header", f"missing header {ACTOR_HEADER}")
        self._check_actor_id(actor_id)
        headers = {k: v for k, v in request.headers.items() if k not in HOP_HEADERS}
        response = await self.gateway.http(
            actor_id, request.method, request.target, headers, request.body
        )
        return Response(response.status, response.headers, response.body)

    async def _resolve_query_route(self, path: str, query: str) -> tuple[str, str, str]:
        """Query routing (``/gateway/<actor name>/...?rvt-method=get|getOrCreate&rvt-key=K``
        with optional ``rvt-namespace``, ``rvt-runner`` (runner name selector for creation,
        default ``default``) and ``rvt-crash-policy``): ``(actor id, actor path, query without
        the rvt-* parameters)``. Without ``rvt-method`` the first segment is an actor id."""
        params = parse_qsl(query, keep_blank_values=True)
        rvt = {k: v for k, v in params if k.startswith("rvt-")}
        rest = urlencode([(k, v) for k, v in params if not k.startswith("rvt-")])
        if "rvt-method" not in rvt:
            actor_id, actor_path = self._gateway_target(path)
            return actor_id, actor_path, query
        match = _GATEWAY.match(path)
        if match is None:
            raise ApiError(404, "guard", "no_route", "no route")
        name, actor_path = unquote(match.group(1)), match.group(2) or "/"
        method, key = rvt["rvt-method"], rvt.get("rvt-key")
        if method not in ("get", "getOrCreate"):
            raise ApiError(400, "guard", "invalid_query", "rvt-method must be get or getOrCreate")
        namespace = rvt.get("rvt-namespace", "default")
        found = self.engine.list_actors(namespace, name=name, key=key)
        if found:
            return found[0].actor_id, actor_path, rest
        if method == "get":
            raise ApiError(404, "actor", "not_found", f"no actor {name!r} with key {key!r}")
        try:
            actor = await self.engine.create_actor(
                namespace,
                name,
                key,
                None,
                rvt.get("rvt-runner", "default"),
                rvt.get("rvt-crash-policy", "sleep"),
            )
        except ApiError as exc:
            if exc.code != "duplicate_key":
                raise
            actor = self.engine.list_actors(namespace, name=name, key=key)[0]
        return actor.actor_id, actor_path, rest

    async def _gateway_http(self, request: Request, path: str, query: str) -> Response:
        actor_id, actor_path, query = await self._resolve_query_route(path, query)
        if query:
            actor_path += "?" + query
        headers = {k: v for k, v in request.headers.items() if k not in HOP_HEADERS}
        response = await self.gateway.http(
            actor_id, request.method, actor_path, headers, request.body
        )
        return Response(response.status, response.headers, response.body)

    # -- WebSocket --------------------------------------------------------------------------------
    async def websocket(
        self, request: Request, ws_request: trio_websocket.WebSocketRequest
    ) -> None:
        parts = urlsplit(request.target)
        if parts.path == "/runners/connect":
            await serve_runner(self.engine, ws_request, parse_qs(parts.query))
            return
        if not parts.path.startswith("/gateway/"):
            await ws_request.reject(
                404, body=dumps({"group": "guard", "code": "no_route", "message": "no route"})
            )
            return
        try:
            actor_id, actor_path, query = await self._resolve_query_route(parts.path, parts.query)
        except ApiError as exc:
            await ws_request.reject(exc.status, body=dumps(exc.body()))
            return
        if query:
            actor_path += "?" + query
        headers = {k: v for k, v in request.headers.items() if k not in HOP_HEADERS}
        await self.gateway.serve_websocket(ws_request, actor_id, actor_path, headers)
