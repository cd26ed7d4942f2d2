"""A Python runner serving an HTTP echo, a WebSocket echo and a KV-backed counter.

Against a running Rivet engine::

    python3 examples/runner_echo.py --endpoint http://127.0.0.1:6420

With ``--embedded`` it runs rivetpy's embedded engine in the same process (SQLite store in
``--data-dir``), speaks protocol v8 to it, and creates an actor so the printed curl commands
work at once::

    python3 examples/runner_echo.py --embedded

``--start-engine`` does the same with the real Rivet engine, installed from npm
(``@rivetkit/engine-cli-linux-x64-musl``) and run on loopback with a temporary data dir::

    python3 examples/runner_echo.py --start-engine

Routes of every ``echo`` actor (through the gateway, ``/gateway/<actor id>/...``):
  GET  /ping        -> pong
  POST /echo        -> the request body
  GET  /counter     -> the counter (stored in actor KV)
  POST /counter     -> increment, return the new value
  WS   /ws          -> echoes every message
Stop with Ctrl-C (graceful: the engine stops the actors first).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rivetpy.runner import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    Runner,
    RunnerApp,
    RunnerOptions,
    WebSocket,
)
from rivetpy.runner.program import serve
from rivetpy.testing.engine import EngineApiError, EngineClient

COUNTER_KEY = b"counter"
log = logging.getLogger("examples.runner_echo")


class EchoApp(RunnerApp):
    async def on_actor_start(self, actor: ActorHandle) -> None:
        log.info("actor started", extra={"actor_id": actor.actor_id, "key": actor.key})

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        path = request.path.split("?", 1)[0]
        if path == "/ping":
            return HttpResponse(200, {"content-type": "text/plain"}, b"pong")
        if path == "/echo":
            return HttpResponse(
                200, {"content-type": "application/octet-stream"}, await request.read()
            )
        if path == "/counter":
            raw = await actor.kv.get_one(COUNTER_KEY)
            count = int(raw or b"0")
            if request.method == "POST":
                count += 1
                await actor.kv.put([(COUNTER_KEY, str(count).encode())])
            return HttpResponse(200, {"content-type": "text/plain"}, str(count).encode())
        return HttpResponse(404, {"content-type": "text/plain"}, b"not found")

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message.data if message.binary else message.text)


def get_or_create_actor(client: EngineClient, runner_name: str) -> str:
    """The ``echo`` actor with key ``k1``: created on the first run, found on later ones."""
    try:
        actor = client.create_actor("echo", "k1", None, runner_name, retry_for=15.0)
    except EngineApiError as exc:
        if exc.code != "duplicate_key":
            raise
        found = client.request("GET", "/actors", query={"name": "echo", "key": "k1"})["actors"]
        actor = found[0]
    actor_id: str = actor["actor_id"]
    return actor_id


async def announce(runner: Runner, endpoint: str, actor_id: str | None) -> None:
    print(f"runner connected: {runner.runner_id} (runner name {runner.options.runner_name!r})")
    if actor_id is None:
        print(
            "create an actor:\n"
            f"  curl -X POST '{endpoint}/actors?namespace={runner.options.namespace}' "
            '-H \'content-type: application/json\' -d \'{"name": "echo", "key": "k1", '
            f'"input": null, "runner_name_selector": "{runner.options.runner_name}", '
            '"crash_policy": "sleep"}\''
        )
        return
    base = f"{endpoint}/gateway/{actor_id}"
    print(f"actor {actor_id} is up. Try:")
    print(f"  curl {base}/ping")
    print(f"  curl -X POST {base}/counter")
    print(f"  curl -d hello {base}/echo")
    print(f"  websocket: {base.replace('http', 'ws', 1)}/ws (subprotocol 'rivet')")
    sys.stdout.flush()


@contextlib.contextmanager
def maybe_engine(start: bool, endpoint: str) -> Iterator[tuple[str, object | None]]:
    if not start:
        yield endpoint, None
        return
    from rivetpy.testing.engine import RealEngine  # noqa: PLC0415 (only with --start-engine)

    print("installing and starting the real Rivet engine (npm)...", file=sys.stderr)
    with RealEngine() as engine:
        print(f"engine ready at {engine.endpoint} (logs: {engine.log_path})", file=sys.stderr)
        yield engine.endpoint, engine


async def main_async(args: argparse.Namespace, endpoint: str, engine: object | None) -> None:
    if args.embedded:
        from rivetpy.engine.server import EngineOptions, open_engine  # noqa: PLC0415

        data_dir = Path(args.data_dir)
        async with open_engine(EngineOptions(data_dir=data_dir, port=args.port)) as server:
            print(f"embedded engine at {server.endpoint} (data in {data_dir})", file=sys.stderr)
            await run_runner(args, server.endpoint, create_actor=True, protocol_version=8)
        return
    await run_runner(
        args, endpoint, create_actor=engine is not None, protocol_version=args.protocol_version
    )


async def run_runner(
    args: argparse.Namespace, endpoint: str, *, create_actor: bool, protocol_version: int
) -> None:
    options = RunnerOptions(
        endpoint=endpoint,
        runner_name=args.runner_name,
        namespace=args.namespace,
        token=args.token,
        protocol_version=protocol_version,
        actor_names={"echo": {"name": "Echo"}},
    )

    async def on_ready(runner: Runner) -> None:
        actor_id = None
        if create_actor:
            client = EngineClient(endpoint)
            actor_id = await trio.to_thread.run_sync(
                functools.partial(get_or_create_actor, client, args.runner_name)
            )
        await announce(runner, endpoint, actor_id)

    await serve(options, EchoApp(), on_ready=on_ready)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", default="http://127.0.0.1:6420")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--runner-name", default="python-echo")
    parser.add_argument("--token", default=None)
    parser.add_argument("--protocol-version", type=int, default=7, choices=[7, 8])
    parser.add_argument("--start-engine", action="store_true", help="run a local real engine")
    parser.add_argument("--embedded", action="store_true", help="run rivetpy's embedded engine")
    parser.add_argument("--data-dir", default=".rivetpy-example", help="embedded engine data")
    parser.add_argument("--port", type=int, default=6420, help="embedded engine port")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with maybe_engine(args.start_engine, args.endpoint) as (endpoint, engine):
        trio.run(main_async, args, endpoint, engine)


if __name__ == "__main__":
    main()
