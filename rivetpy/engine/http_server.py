"""The engine's one listener: HTTP/1.1 (h11) and WebSocket (trio-websocket) on the same port.

Why trio-websocket + h11 rather than hypercorn: both are already dependencies (the runner uses
trio-websocket, which is built on h11 and wsproto), they are sans-IO cores with thin Trio
drivers (the style this project follows), and the engine needs very little of HTTP: small JSON
bodies, one request per connection, and WebSocket upgrades on two routes. Hypercorn would add an
ASGI layer and a dependency tree for no capability we use.

How one connection is served: the request head is read (at most :data:`MAX_HEAD` bytes) and
parsed with h11. A WebSocket upgrade is handed to trio-websocket together with the bytes already
read (:class:`ReplayStream`); anything else is answered by the router with ``connection: close``
(no keep-alive: clients here open a connection per request).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import trio
import trio_websocket

log = logging.getLogger("rivetpy.engine.http")

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
#: trio-websocket's limit for one message (the runner protocol allows 20 MiB tunnel payloads)
MAX_WS_MESSAGE = 64 * 1024 * 1024


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""


HttpHandler = Callable[[Request], Awaitable[Response]]
WsHandler = Callable[[Request, trio_websocket.WebSocketRequest], Awaitable[None]]


class ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read from ``inner``."""

    def __init__(self, inner: trio.abc.Stream, already: bytes) -> None:
        self._inner = inner
        self._buffer = already

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._buffer:
            n = len(self._buffer) if max_bytes is None else max_bytes
            out, self._buffer = self._buffer[:n], self._buffer[n:]
            return out
        return bytes(await self._inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _is_upgrade(headers: dict[str, str]) -> bool:
    return headers.get("upgrade", "").lower() == "websocket"


class HttpServer:
    """Serves ``http`` for plain requests and ``ws`` for WebSocket upgrades."""

    def __init__(self, http: HttpHandler, ws: WsHandler) -> None:
        self._http = http
        self._ws = ws

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        except trio_websocket.ConnectionClosed:
            pass
        except Exception:
            log.exception("connection handler crashed")
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        raw = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                raw += data
                conn.receive_data(data)
                continue
            break
        if not isinstance(event, h11.Request):
            return
        request = Request(
            event.method.decode(),
            event.target.decode(),
            {k.decode().lower(): v.decode() for k, v in event.headers},
        )
        if _is_upgrade(request.headers):
            async with trio.open_nursery() as nursery:
                ws_request = await trio_websocket.wrap_server_stream(
                    nursery,
                    ReplayStream(stream, bytes(raw)),
                    message_queue_size=64,
                    max_message_size=MAX_WS_MESSAGE,
                )
                await self._ws(request, ws_request)
                nursery.cancel_scope.cancel()
            return
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    await self._write(conn, stream, Response(413, {}, b"body too large"))
                    return
            else:
                break
        request.body = bytes(body)
        response = await self._http(request)
        await self._write(conn, stream, response)

    @staticmethod
    async def _write(conn: h11.Connection, stream: trio.SocketStream, response: Response) -> None:
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        headers += [("content-length", str(len(response.body))), ("connection", "close")]
        await stream.send_all(conn.send(h11.Response(status_code=response.status, headers=headers)))
        if response.body:
            await stream.send_all(conn.send(h11.Data(data=response.body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
