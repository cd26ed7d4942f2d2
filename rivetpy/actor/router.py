"""Serves an actor instance's HTTP requests and WebSockets (the protocol of
:mod:`rivetpy.actor.wire`)."""

from __future__ import annotations

import hmac
import json
import logging
import urllib.parse
from typing import Any

import trio

from rivetpy.actor import wire
from rivetpy.actor.connections import Conn, jsonable
from rivetpy.actor.definition import UserError
from rivetpy.actor.instance import ACK_BYTES, ActorInstance
from rivetpy.actor.persist import HibernatableSocket
from rivetpy.actor.wire import JSON_HEADERS, ActorError
from rivetpy.runner.api import HttpRequest, HttpResponse, WebSocket, WebSocketMessage

log = logging.getLogger("rivetpy.actor.router")

CONNECT_PATH = "/connect"


def _split(path: str) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(path)
    return parts.path, dict(urllib.parse.parse_qsl(parts.query))


def _error_response(err: ActorError) -> HttpResponse:
    return HttpResponse(err.status, dict(JSON_HEADERS), wire.encode({"error": err.body()}))


async def _post_body(request: HttpRequest, route: str) -> tuple[str, dict[str, Any]]:
    """The name after ``route`` and the JSON object body (empty body: ``{}``) of a POST."""
    if request.method != "POST":
        raise ActorError(405, "request", "method_not_allowed", "use POST")
    name = urllib.parse.unquote(_split(request.path)[0][len(route) :])
    raw = await request.read()
    return name, wire.decode_object(raw, "request body") if raw.strip() else {}


async def serve_http(inst: ActorInstance[Any], request: HttpRequest) -> HttpResponse:
    path, _ = _split(request.path)
    inst.begin_activity()
    try:
        if path.startswith("/action/"):
            name, body = await _post_body(request, "/action/")
            args = body.get("args", [])
            if not isinstance(args, list):
                raise wire.bad_request("args must be a JSON array")
            output = await inst.call_action(name, args, None)
            return HttpResponse(200, dict(JSON_HEADERS), wire.encode({"output": output}))
        if path.startswith("/queue/"):
            name, body = await _post_body(request, "/queue/")
            msg_id = await inst.queue.send(name, body.get("body"))
            return HttpResponse(200, dict(JSON_HEADERS), wire.encode({"id": msg_id}))
        if path == "/inspect":
            return _inspect(inst, request)
        try:
            response = await inst.actor.on_request(request)
        except UserError as exc:
            raise exc.to_actor_error() from None
        except Exception:
            log.exception("on_request failed", extra={"actor_id": inst.actor_id})
            raise wire.internal_error() from None
        if response is None:
            raise ActorError(404, "actor", "not_found", f"no route for {path}")
        return response
    except ActorError as err:
        return _error_response(err)
    finally:
        inst.end_activity()
        inst.request_save()


def _inspect(inst: ActorInstance[Any], request: HttpRequest) -> HttpResponse:
    auth = request.headers.get("authorization", "")
    given = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), inst.inspector_token.encode()):
        raise ActorError(401, "inspector", "unauthorized", "a valid inspector token is required")
    view = {
        "actor_id": inst.actor_id,
        "name": inst.name,
        "key": inst.key,
        "state": jsonable(inst.record.state),
        "connections": [c.describe() for c in inst.connections.all()],
        "queue_size": inst.queue.size,
        "workflow_steps": inst.workflow.completed(),
        "alarms": [{"id": a.id, "ts": a.ts_ms, "action": a.action} for a in inst.record.alarms],
    }
    return HttpResponse(200, dict(JSON_HEADERS), wire.encode(view))


def can_hibernate(inst: ActorInstance[Any], path: str) -> bool:
    return _split(path)[0] == CONNECT_PATH and inst.options.hibernatable_connections


async def serve_websocket(inst: ActorInstance[Any], ws: WebSocket) -> None:
    path, query = _split(ws.path)
    if path != CONNECT_PATH:
        inst.begin_activity()
        try:
            await inst.actor.on_websocket(ws)
        finally:
            inst.end_activity()
        return
    if ws.restored:
        conn = inst.connections.by_tunnel_key(ws.key)
        if conn is None:
            await ws.close(1000, "ws.meta_not_found_during_restore")
            return
        conn.ws = ws
    else:
        found = await _open_connection(inst, ws, query)
        if found is None:
            return
        conn = found
    await _serve_connection(inst, conn, ws)


async def _open_connection(
    inst: ActorInstance[Any], ws: WebSocket, query: dict[str, str]
) -> Conn | None:
    try:
        params = wire.decode_params(query.get("params") or ws.headers.get(wire.CONN_PARAMS_HEADER))
        await inst.run_hook("on_before_connect", params)
        state = await inst.run_hook("create_conn_state", params)
        socket = None
        if ws.hibernatable:
            socket = HibernatableSocket(ws.key[0], ws.key[1], 0, 0, ws.path, dict(ws.headers))
        conn = inst.connections.new(params, state, socket)
    except (UserError, ActorError) as exc:
        err = exc if isinstance(exc, ActorError) else exc.to_actor_error()
        await ws.send(json.dumps(wire.error_message(err, None)))
        await ws.close(1008, f"{err.group}.{err.code}")
        return None
    except Exception:
        log.exception("connection refused by a failing hook", extra={"actor_id": inst.actor_id})
        await ws.send(json.dumps(wire.error_message(wire.internal_error(), None)))
        await ws.close(1011, "actor.internal_error")
        return None
    conn.ws = ws
    conn.send_raw({"type": "init", "connectionId": conn.id})
    await inst.run_hook_logged("on_connect", conn)
    if conn.hibernatable:
        inst.request_save(immediate=True)
    return conn


async def _serve_connection(inst: ActorInstance[Any], conn: Conn, ws: WebSocket) -> None:
    if not conn.hibernatable:
        inst.begin_activity()
    closed_by_client = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.pump_outbox)
            unsaved = 0
            async for message in ws:
                await _handle_message(inst, conn, message)
                if conn.hibernatable:
                    conn.processed_index = message.index
                    unsaved += len(message.data)
                    if unsaved >= ACK_BYTES:
                        unsaved = 0
                        await inst.save_state()
                    else:
                        inst.request_save()
            closed_by_client = True
            conn.close_outbox()
    finally:
        if not conn.hibernatable:
            inst.end_activity()
    if closed_by_client and not inst.stopping:
        inst.connections.remove(conn)
        await inst.run_hook_logged("on_disconnect", conn)
        inst.request_save()


async def _handle_message(inst: ActorInstance[Any], conn: Conn, message: WebSocketMessage) -> None:
    request_id: Any = None
    try:
        body = wire.decode_object(message.data, "message")
        kind = body.get("type")
        request_id = body.get("id")
        if kind == "action":
            name, args = body.get("name"), body.get("args", [])
            if not isinstance(name, str) or not isinstance(args, list):
                raise wire.bad_request("an action needs a string name and an args array")
            output = await inst.call_action(name, args, conn)
            wire.encode(output)
            conn.send_raw({"type": "actionResponse", "id": request_id, "output": output})
        elif kind in ("subscribe", "unsubscribe"):
            event = body.get("event")
            if not isinstance(event, str):
                raise wire.bad_request("subscribe needs an event name")
            if kind == "subscribe":
                conn.subscriptions.add(event)
            else:
                conn.subscriptions.discard(event)
        else:
            raise wire.bad_request(f"unknown message type {kind!r}")
    except ActorError as err:
        conn.send_raw(wire.error_message(err, request_id))
