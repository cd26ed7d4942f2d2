#!/usr/bin/env python3
"""The Python counterpart of ``bench/node/ts_runner.mjs``: a rivetpy runner serving "echo" actors.

    python bench/echo_app.py --endpoint http://127.0.0.1:6420 --runner-name py-bench \
        [--namespace default] [--token T] [--total-slots 1000] [--protocol-version 7]

Same routes and the same stdout protocol as the TS script, so benchmarks drive both alike.
stdout carries only JSON lines, one per event:
  {"event":"connected","runner_id":...}
  {"event":"actor_started","actor_id":...,"generation":...,"name":...,"key":...,"start_ms":...}
  {"event":"actor_stopped","actor_id":...,"generation":...}
  {"event":"shutdown"}
Diagnostics (rivetpy logs at $RIVETPY_LOG, default WARNING) go to stderr.

Actor routes (through the gateway, /gateway/<actor_id>/<path>):
  GET  /ping                    -> 200 "pong"
  POST /kv-put?key=K            -> puts (utf-8 K, body); 200 {"ms": <put round trip>}
  POST /kv-get?key=K&n=N        -> N sequential single-key gets inside the runner;
                                   200 {"ms": [<round trip per get>], "found": <bool>}
  POST /sleep                   -> 200 "ok", then the actor asks to sleep
  any other request             -> 200 with the request body echoed
  WebSocket, any path           -> echoes every text and binary message

SIGTERM/SIGINT: graceful runner shutdown, then exit 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

# The repo root first: ``bench/codec.py`` must not shadow the ``codec`` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from rivetpy.protocol.events import StopReason
from rivetpy.runner import (
    ActorHandle,
    HttpRequest,
    HttpResponse,
    RunnerApp,
    RunnerOptions,
    WebSocket,
    open_runner,
)

_TEXT = {"content-type": "text/plain"}
_JSON = {"content-type": "application/json"}
_PONG = HttpResponse(200, _TEXT, b"pong")


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _json(value: object) -> HttpResponse:
    return HttpResponse(200, _JSON, json.dumps(value).encode())


class EchoApp(RunnerApp):
    async def on_actor_start(self, actor: ActorHandle) -> None:
        emit(
            {
                "event": "actor_started",
                "actor_id": actor.actor_id,
                "generation": actor.generation,
                "name": actor.name,
                "key": actor.key,
                "start_ms": int(time.time() * 1000),
            }
        )

    async def on_actor_stop(self, actor: ActorHandle, reason: StopReason) -> None:
        emit({"event": "actor_stopped", "actor_id": actor.actor_id, "generation": actor.generation})

    async def on_http(self, actor: ActorHandle, request: HttpRequest) -> HttpResponse:
        path, _, query = request.path.partition("?")
        method = request.method
        if method == "GET" and path == "/ping":
            return _PONG
        if method == "POST" and path == "/kv-put":
            key = (parse_qs(query).get("key") or ["k"])[0].encode()
            value = await request.read()
            start = time.perf_counter()
            await actor.kv.put([(key, value)])
            return _json({"ms": (time.perf_counter() - start) * 1000})
        if method == "POST" and path == "/kv-get":
            params = parse_qs(query)
            key = (params.get("key") or ["k"])[0].encode()
            try:
                n = max(1, int((params.get("n") or ["1"])[0]))
            except ValueError:
                n = 1
            times: list[float] = []
            found = False
            for _ in range(n):
                start = time.perf_counter()
                [got] = await actor.kv.get([key])
                times.append((time.perf_counter() - start) * 1000)
                found = got is not None
            return _json({"ms": times, "found": found})
        if method == "POST" and path == "/sleep":
            # Let the response leave before the actor stops.
            actor.nursery.start_soon(_sleep_soon, actor)
            return HttpResponse(200, _TEXT, b"ok")
        return HttpResponse(200, {}, await request.read())

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message.data if message.binary else message.text)


async def _sleep_soon(actor: ActorHandle) -> None:
    await trio.sleep(0)
    actor.sleep()


async def main(args: argparse.Namespace) -> None:
    options = RunnerOptions(
        endpoint=args.endpoint,
        runner_name=args.runner_name,
        namespace=args.namespace,
        token=args.token,
        total_slots=args.total_slots,
        protocol_version=args.protocol_version,
        actor_names={"echo": {}},
        metadata={},
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_runner(options, EchoApp()) as runner:
            await runner.wait_connected()
            emit({"event": "connected", "runner_id": runner.runner_id})
            async for signum in signals:
                print(f"echo_app: signal {signum}, shutting down", file=sys.stderr)
                break
    emit({"event": "shutdown"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--runner-name", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--token")
    parser.add_argument("--total-slots", type=int, default=1000)
    parser.add_argument("--protocol-version", type=int, default=7)
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("RIVETPY_LOG", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    trio.run(main, parse_args())
