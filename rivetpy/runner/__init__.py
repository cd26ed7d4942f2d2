"""The Trio runner: hosts actors on a connection to a Rivet engine.

    async with open_runner(RunnerOptions(endpoint, "my-runner"), MyApp()) as runner:
        await runner.wait_connected()
        ...

See :mod:`rivetpy.runner.api` for what the app implements and receives.
"""

from rivetpy.protocol.events import StopReason, TunnelKey
from rivetpy.runner.api import (
    ActorHandle,
    ActorKv,
    HttpRequest,
    HttpResponse,
    KvError,
    KvTimeoutError,
    RunnerApp,
    WebSocket,
    WebSocketClosedError,
    WebSocketMessage,
    WebSocketOpen,
)
from rivetpy.runner.runner import Runner, RunnerClosedError, RunnerOptions, open_runner

__all__ = [
    "ActorHandle",
    "ActorKv",
    "HttpRequest",
    "HttpResponse",
    "KvError",
    "KvTimeoutError",
    "Runner",
    "RunnerApp",
    "RunnerClosedError",
    "RunnerOptions",
    "StopReason",
    "TunnelKey",
    "WebSocket",
    "WebSocketClosedError",
    "WebSocketMessage",
    "WebSocketOpen",
    "open_runner",
]
