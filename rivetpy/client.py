"""A small async (Trio) client for rivetpy actors through an engine's gateway.

::

    async with Client("http://127.0.0.1:6420") as client:
        counter = await client.get_or_create("counter", "my-counter")
        print(await counter.action("increment", 5))
        async with counter.connect() as conn:
            await conn.subscribe("count")
            await conn.action("increment", 1)
            name, args = await conn.next_event()

Actions go over HTTP (``POST /gateway/<actor id>/action/<name>``) or over a connection
(WebSocket ``/connect``, which also carries events). Inputs are sent as CBOR (what actors'
``create_state`` receives). Errors raise :class:`ActorCallError` with the actor's group, code,
message and metadata; transport failures raise ``httpx`` / ``trio_websocket`` errors.
"""

from __future__ import annotations

import base64
import json
import math
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

import cbor2
import httpx
import trio
import trio_websocket

__all__ = ["ActorCallError", "ActorConnection", "ActorHandle", "Client", "EngineRequestError"]


class EngineRequestError(Exception):
    """The engine's API refused a request (``status``, ``group``, ``code``)."""

    def __init__(self, status: int, group: str, code: str, message: str) -> None:
        super().__init__(f"{status} {group}.{code}: {message}")
        self.status, self.group, self.code = status, group, code


class ActorCallError(Exception):
    """An action (or connection) failed on the actor."""

    def __init__(self, group: str, code: str, message: str, metadata: Any = None) -> None:
        super().__init__(f"{group}.{code}: {message}")
        self.group, self.code, self.message, self.metadata = group, code, message, metadata

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ActorCallError:
        """From an error object ``{"group", "code", "message", "metadata"}``."""
        return cls(
            str(body.get("group")),
            str(body.get("code")),
            str(body.get("message")),
            body.get("metadata"),
        )


def _raise_call_error(body: Any, status: int) -> None:
    err = body.get("error") if isinstance(body, dict) else None
    if err is None and isinstance(body, dict) and "group" in body and "code" in body:
        err = body  # an engine/gateway error (e.g. actor.crashed, actor.not_found)
    if isinstance(err, dict):
        raise ActorCallError.from_body(err)
    raise ActorCallError("http", str(status), f"unexpected response (status {status})")


class Client:
    def __init__(
        self,
        endpoint: str,
        *,
        namespace: str = "default",
        token: str | None = None,
        runner_name: str = "rivetpy",
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.namespace = namespace
        self.token = token
        self.runner_name = runner_name
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, trust_env=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        params = {"namespace": self.namespace, **kwargs.pop("params", {})}
        response = await self._http.request(method, self.endpoint + path, params=params, **kwargs)
        body = response.json() if response.content.strip() else {}
        if response.status_code >= 300:
            raise EngineRequestError(
                response.status_code,
                str(body.get("group")),
                str(body.get("code")),
                str(body.get("message")),
            )
        return body

    async def create(
        self,
        name: str,
        key: str | None = None,
        input: Any = None,
        *,
        runner_name: str | None = None,
    ) -> ActorHandle:
        """Create an actor (``input`` is CBOR-encoded); raises :class:`EngineRequestError`
        (code ``duplicate_key`` if one with that key exists)."""
        body = {
            "name": name,
            "key": key,
            "input": None if input is None else base64.b64encode(cbor2.dumps(input)).decode(),
            "runner_name_selector": runner_name or self.runner_name,
            "crash_policy": "sleep",
        }
        actor = (await self._api("POST", "/actors", json=body))["actor"]
        return ActorHandle(self, actor["actor_id"])

    async def get(self, name: str, key: str) -> ActorHandle | None:
        found = (await self._api("GET", "/actors", params={"name": name, "key": key}))["actors"]
        live = [a for a in found if not a.get("destroy_ts")]
        return ActorHandle(self, live[0]["actor_id"]) if live else None

    async def get_or_create(
        self, name: str, key: str, input: Any = None, *, runner_name: str | None = None
    ) -> ActorHandle:
        existing = await self.get(name, key)
        if existing is not None:
            return existing
        try:
            return await self.create(name, key, input, runner_name=runner_name)
        except EngineRequestError as exc:
            if exc.code != "duplicate_key":
                raise
        found = await self.get(name, key)
        if found is None:
            raise EngineRequestError(404, "actor", "not_found", f"actor {name}/{key} vanished")
        return found

    def actor(self, actor_id: str) -> ActorHandle:
        return ActorHandle(self, actor_id)


class ActorHandle:
    """One actor, addressed by id through the gateway."""

    def __init__(self, client: Client, actor_id: str) -> None:
        self.client = client
        self.actor_id = actor_id

    @property
    def base_url(self) -> str:
        return f"{self.client.endpoint}/gateway/{self.actor_id}"

    async def fetch(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A raw HTTP request to the actor (``path`` is actor-relative)."""
        return await self.client._http.request(method, self.base_url + path, **kwargs)

    async def action(self, name: str, *args: Any) -> Any:
        response = await self.fetch(
            "POST", "/action/" + urllib.parse.quote(name, safe=""), json={"args": list(args)}
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "output" not in body:
            _raise_call_error(body, response.status_code)
        return body["output"]

    async def send(self, queue: str, body: Any = None) -> int:
        """Append a message to the actor's durable queue ``queue``; returns its id."""
        response = await self.fetch(
            "POST", "/queue/" + urllib.parse.quote(queue, safe=""), json={"body": body}
        )
        data = response.json()
        if response.status_code != 200:
            _raise_call_error(data, response.status_code)
        return int(data["id"])

    async def inspect(self, token: str) -> dict[str, Any]:
        response = await self.fetch("GET", "/inspect", headers={"authorization": f"Bearer {token}"})
        data = response.json()
        if response.status_code != 200:
            _raise_call_error(data, response.status_code)
        return data  # type: ignore[no-any-return]

    @asynccontextmanager
    async def connect(self, params: Any = None) -> AsyncIterator[ActorConnection]:
        """A connection (WebSocket ``/connect``) for actions and events."""
        url = self.base_url.replace("http", "ws", 1) + "/connect"
        if params is not None:
            url += "?" + urllib.parse.urlencode({"params": json.dumps(params)})
        subprotocols = ["rivet"]
        if self.client.token:
            subprotocols.append(f"rivet_token.{self.client.token}")
        try:
            async with trio_websocket.open_websocket_url(url, subprotocols=subprotocols) as ws:
                conn = ActorConnection(ws)
                async with trio.open_nursery() as nursery:
                    await nursery.start(conn._reader)
                    try:
                        yield conn
                    finally:
                        nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # one failure (the caller's own, or the actor refusing the connection): raise it
            # as is rather than wrapped by the nurseries involved
            leaves = _leaves(group)
            if len(leaves) == 1:
                raise leaves[0] from None
            raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


class ActorConnection:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self.connection_id: str | None = None
        self._next_id = 0
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._events_in, self._events = trio.open_memory_channel[tuple[str, list[Any]]](math.inf)
        self.errors: list[ActorCallError] = []
        self.closed = trio.Event()

    async def _reader(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        try:
            while True:
                message = json.loads(await self._ws.get_message())
                kind = message.get("type")
                if kind == "init":
                    self.connection_id = message.get("connectionId")
                    if not started:
                        started = True
                        task_status.started()
                elif kind == "event":
                    self._events_in.send_nowait((message["name"], message.get("args", [])))
                elif kind in ("actionResponse", "error"):
                    waiter = self._waiting.pop(message.get("id"), None)
                    if waiter is not None:
                        waiter.send_nowait(message)
                    elif kind == "error":
                        err = ActorCallError.from_body(message)
                        if not started:
                            raise err
                        self.errors.append(err)
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._events_in.close()
            for waiter in self._waiting.values():
                waiter.close()
            if not started:
                task_status.started()

    async def action(self, name: str, *args: Any) -> Any:
        self._next_id += 1
        request_id = self._next_id
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[request_id] = send
        await self._ws.send_message(
            json.dumps({"type": "action", "id": request_id, "name": name, "args": list(args)})
        )
        try:
            reply = await receive.receive()
        except trio.EndOfChannel:
            raise ActorCallError("connection", "closed", "the connection closed") from None
        if reply.get("type") == "error":
            raise ActorCallError.from_body(reply)
        return reply.get("output")

    async def subscribe(self, event: str) -> None:
        await self._ws.send_message(json.dumps({"type": "subscribe", "event": event}))

    async def unsubscribe(self, event: str) -> None:
        await self._ws.send_message(json.dumps({"type": "unsubscribe", "event": event}))

    async def next_event(self) -> tuple[str, list[Any]]:
        """The next event ``(name, args)``; raises ``trio.EndOfChannel`` once closed."""
        return await self._events.receive()

    async def close(self) -> None:
        await self._ws.aclose()
