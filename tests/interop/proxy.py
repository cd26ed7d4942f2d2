"""A loopback TCP proxy the test controls: forwards ``127.0.0.1:<port>`` to a target port, can
cut every open connection and refuse new ones for a while (its listening socket is closed, so
connects fail with ECONNREFUSED)."""

from __future__ import annotations

import trio

HOST = "127.0.0.1"


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        #: connections accepted so far
        self.accepted = 0
        self._nursery: trio.Nursery | None = None
        self._listening: trio.CancelScope | None = None
        self._listener_closed = trio.Event()
        self._connections: set[trio.CancelScope] = set()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (start it with ``nursery.start``)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._listen()
            task_status.started()
            await trio.sleep_forever()

    async def _listen(self) -> None:
        assert self._nursery is not None
        [listener] = await trio.open_tcp_listeners(self.port, host=HOST)
        self.port = listener.socket.getsockname()[1]
        scope = trio.CancelScope()
        self._listening = scope
        self._listener_closed = trio.Event()
        self._nursery.start_soon(self._accept_loop, listener, scope, self._listener_closed)

    async def _accept_loop(
        self, listener: trio.SocketListener, scope: trio.CancelScope, closed: trio.Event
    ) -> None:
        try:
            with scope:
                async with listener:
                    while True:
                        stream = await listener.accept()
                        self.accepted += 1
                        assert self._nursery is not None
                        self._nursery.start_soon(self._forward, stream)
        finally:
            closed.set()

    async def _forward(self, client: trio.SocketStream) -> None:
        scope = trio.CancelScope()
        self._connections.add(scope)
        try:
            with scope:
                async with client:
                    try:
                        upstream = await trio.open_tcp_stream(HOST, self.target_port)
                    except OSError:
                        return
                    async with upstream, trio.open_nursery() as pipes:
                        pipes.start_soon(self._pipe, client, upstream, pipes.cancel_scope)
                        pipes.start_soon(self._pipe, upstream, client, pipes.cancel_scope)
        finally:
            self._connections.discard(scope)

    @staticmethod
    async def _pipe(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            # Either side ending ends the pair (no half-open connections).
            done.cancel()

    def cut(self) -> None:
        """Close every forwarded connection (both ends see the TCP connection end)."""
        for scope in list(self._connections):
            scope.cancel()

    async def refuse(self) -> None:
        """Stop listening: new connections are refused until :meth:`accept`."""
        if self._listening is not None:
            self._listening.cancel()
            self._listening = None
            await self._listener_closed.wait()

    async def accept(self) -> None:
        """Listen again on the same port."""
        if self._listening is None:
            await self._listen()
