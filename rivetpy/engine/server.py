"""Running the embedded engine: store + core + HTTP listener, as one Trio context manager.

    async with open_engine(EngineOptions(data_dir=path, port=0)) as server:
        print(server.endpoint)      # http://127.0.0.1:<port>

On exit the listener and every connection are cancelled (runners see the socket drop and
reconnect to the next engine on the same port) and the store is closed; nothing else is lost:
the state is durable in the store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from rivetpy.engine.api import Api
from rivetpy.engine.core import Engine, EngineSettings
from rivetpy.engine.http_server import HttpServer
from rivetpy.engine.runner_endpoint import RunnerSession
from rivetpy.engine.store import Store, StoreConfig, open_store
from rivetpy.engine.store.factory import Backend

log = logging.getLogger("rivetpy.engine.server")


@dataclass(frozen=True)
class EngineOptions:
    data_dir: Path = Path(".rivetpy")
    host: str = "127.0.0.1"
    #: 0 picks a free port
    port: int = 6420
    store: Backend = "sqlite"
    cluster_file: str | None = None
    settings: EngineSettings = field(default_factory=EngineSettings)


@dataclass
class EngineServer:
    engine: Engine
    api: Api
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


async def _close_sessions(engine: Engine, grace: float = 2.0) -> None:
    """Close every runner connection with ``ws.going_away`` and wait (bounded) until done."""
    with trio.move_on_after(grace) as scope:
        scope.shield = True
        for session in list(engine.sessions.values()):
            if isinstance(session, RunnerSession):
                session.going_away()
        while engine.sessions:
            await trio.sleep(0.01)


@asynccontextmanager
async def open_engine(
    options: EngineOptions, *, store: Store | None = None
) -> AsyncIterator[EngineServer]:
    """Open the store (unless given; a given store is not closed), load the engine state and
    listen. Raises ``OSError`` if the port cannot be bound."""
    owned = store is None
    if store is None:
        options.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(
            StoreConfig(
                backend=options.store, data_dir=options.data_dir, cluster_file=options.cluster_file
            )
        )
    try:
        engine = Engine(store, options.settings)
        api = Api(engine)
        http = HttpServer(api.http, api.websocket)
        listeners: list[trio.SocketListener] = []
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(engine.run)
                listeners = await trio.open_tcp_listeners(options.port, host=options.host)
                try:
                    port = listeners[0].socket.getsockname()[1]
                    nursery.start_soon(trio.serve_listeners, http.serve_connection, listeners)
                    server = EngineServer(engine, api, options.host, port)
                    log.info(
                        "engine listening",
                        extra={"endpoint": server.endpoint, "store": store.backend},
                    )
                    yield server
                finally:
                    # Shielded and before cancelling our own nursery: an await after that
                    # cancel would raise Cancelled, replace an exception coming out of the
                    # ``async with`` body, and the nursery would then swallow it.
                    with trio.CancelScope(shield=True):
                        await _close_sessions(engine)
                    nursery.cancel_scope.cancel()
        finally:
            # Only once the accept loops are gone: closing a listener while its accept loop
            # waits on it makes that loop fail with ClosedResourceError.
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
    finally:
        if owned:
            with trio.CancelScope(shield=True):
                await store.aclose()
