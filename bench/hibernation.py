"""Hibernatable WebSockets on the embedded engine: a client message to a sleeping actor.

    python bench/hibernation.py [--sockets 1,100,1000] [--rounds 20]

For each count N, one actor holds N hibernatable client sockets (through the embedded engine's
gateway, Python runner on protocol v8, everything in this process on loopback). Each round puts
the actor to sleep, waits until every socket hibernates, then sends one message on one socket:

  echo     message sent -> echo received by the client (the actor is woken, restores the N
           sockets, processes, persists, acks and echoes)
  replay   message sent -> every one of the N gateway sockets resumed on the woken actor
  start    message sent -> the runner's ``on_actor_start`` entered (engine: wake, start command
           hydrated with the N hibernating requests, runner start)
  started  message sent -> ``on_actor_start`` returned (the N sockets restored)
  handled  message sent -> the actor's handler got the message
  after    ``on_actor_start`` returned -> every socket resumed and the echo received
  gc       garbage-collector pauses inside the round (included in the times above)

Printed: medians and p99 (nearest rank) per N, and the runtime overhead of N sockets beyond
the actor start, two ways: median ``replay(N) - replay(1)``, and median ``after(N)``. Target:
the 1000-socket actor wakes and replays all sockets with < 100 ms of overhead.
``--profile FILE`` writes a cProfile of the measured rounds of the largest N.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trio  # noqa: E402
import trio_websocket  # noqa: E402

from rivetpy.engine.core import EngineSettings  # noqa: E402
from rivetpy.engine.hibernation import Phase  # noqa: E402
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine  # noqa: E402
from rivetpy.runner import (  # noqa: E402
    ActorHandle,
    RunnerApp,
    RunnerOptions,
    TunnelKey,
    WebSocket,
    WebSocketOpen,
    open_runner,
)
from rivetpy.testing.engine import EngineClient  # noqa: E402


class App(RunnerApp):
    """Persists each hibernatable socket's last index (in memory, surviving generations),
    restores listed sockets on start, acks and echoes."""

    def __init__(self) -> None:
        self.persisted: dict[TunnelKey, int] = {}
        self.handles: list[ActorHandle] = []
        self.start_entered: float | None = None
        self.start_exited: float | None = None
        self.message_at: float | None = None
        self.started = trio.Event()
        self.stopped = trio.Event()

    async def on_actor_start(self, actor: ActorHandle) -> None:
        self.start_entered = trio.current_time()
        for key in actor.hibernating_requests:
            index = self.persisted.get(key)
            if index is not None:
                actor.restore_websocket(key, server_index=index, path="/hws")
        self.handles.append(actor)
        self.start_exited = trio.current_time()
        self.started.set()

    async def on_actor_stop(self, actor: ActorHandle, reason: object) -> None:
        self.stopped.set()

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        return True

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        self.persisted.setdefault(ws.key, 0)
        async for message in ws:
            self.message_at = trio.current_time()
            self.persisted[ws.key] = message.index
            ws.ack(message.index)
            await ws.send(message.data if message.binary else message.text)


class GcPauses:
    """Total garbage-collector pause time (ms) while :attr:`on`."""

    def __init__(self) -> None:
        self.on = False
        self.total_ms = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total_ms += (time.perf_counter() - self._started) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def wait_until(predicate: object, step: float = 0.001) -> None:
    assert callable(predicate)
    while not predicate():
        await trio.sleep(step)


async def measure(
    server: EngineServer, app: App, n: int, rounds: int, profile: cProfile.Profile | None = None
) -> dict[str, list[float]]:
    api = EngineClient(server.endpoint, timeout=30.0)
    actor = await trio.to_thread.run_sync(
        lambda: api.create_actor("bench", uuid.uuid4().hex, None, "bench-runner", retry_for=10)
    )
    actor_id = actor["actor_id"]
    app.started = trio.Event()
    await app.started.wait()
    gateway = server.api.gateway
    url = f"ws://{server.host}:{server.port}/gateway/{actor_id}/hws"
    results: dict[str, list[float]] = {
        "echo": [],
        "replay": [],
        "start": [],
        "started": [],
        "handled": [],
        "after": [],
        "gc": [],
    }
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    sockets: list[trio_websocket.WebSocketConnection] = []
    async with trio.open_nursery() as nursery:
        opened = trio.Event()

        async def hold(i: int) -> None:
            async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                sockets.append(ws)
                if len(sockets) == n:
                    opened.set()
                await trio.sleep_forever()

        for i in range(n):
            nursery.start_soon(hold, i)
            if i % 50 == 49:
                await trio.sleep(0.01)
        await opened.wait()
        await wait_until(lambda: sum(s.actor_id == actor_id for s in gateway.sockets.values()) == n)
        mine = [s for s in gateway.sockets.values() if s.actor_id == actor_id]
        ws0 = sockets[0]
        for _ in range(rounds):
            app.stopped = trio.Event()
            app.handles[-1].sleep()
            await app.stopped.wait()
            await wait_until(lambda: all(s.state.phase is Phase.HIBERNATING for s in mine))
            await trio.sleep(0.02)  # let the hibernation keepalives' first writes settle
            app.started = trio.Event()
            app.start_entered = None
            resumed = [s.resumed for s in mine]
            if profile is not None:
                profile.enable()
            pauses.on, pauses.total_ms = True, 0.0
            t0 = trio.current_time()
            await ws0.send_message("ping")
            reply = await ws0.get_message()
            t_echo = trio.current_time()
            assert reply == "ping"
            for event in resumed:
                await event.wait()
            t_replay = trio.current_time()
            pauses.on = False
            if profile is not None:
                profile.disable()
            assert app.start_entered is not None
            results["echo"].append((t_echo - t0) * 1000)
            results["replay"].append(max(t_replay, t_echo) * 1000 - t0 * 1000)
            results["start"].append((app.start_entered - t0) * 1000)
            assert app.start_exited is not None and app.message_at is not None
            results["started"].append((app.start_exited - t0) * 1000)
            results["handled"].append((app.message_at - t0) * 1000)
            results["after"].append((max(t_replay, t_echo) - app.start_exited) * 1000)
            results["gc"].append(pauses.total_ms)
        for ws in sockets:
            await ws.aclose()
        nursery.cancel_scope.cancel()
    gc.callbacks.remove(pauses)
    return results


async def main(counts: list[int], rounds: int, profile_to: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = EngineSettings(ready_timeout=60.0)
        opts = EngineOptions(data_dir=Path(tmp), port=0, settings=settings)
        async with open_engine(opts) as server:
            app = App()
            ropts = RunnerOptions(
                server.endpoint,
                "bench-runner",
                protocol_version=8,
                actor_names={"bench": {}},
                total_slots=1000,
            )
            async with open_runner(ropts, app, graceful_exit=False) as runner:
                await runner.wait_connected()
                medians: dict[int, dict[str, float]] = {}
                print(f"{'sockets':>8} {'metric':>7} {'median ms':>10} {'p99 ms':>8}  rounds")
                for n in counts:
                    profile = cProfile.Profile() if profile_to and n == max(counts) else None
                    results = await measure(server, app, n, rounds, profile)
                    if profile is not None and profile_to:
                        profile.dump_stats(profile_to)
                    medians[n] = {k: statistics.median(v) for k, v in results.items()}
                    for metric in ("start", "started", "handled", "echo", "replay", "after", "gc"):
                        values = results[metric]
                        print(
                            f"{n:>8} {metric:>7} {statistics.median(values):>10.2f}"
                            f" {pct(values, 0.99):>8.2f}  {len(values)}"
                        )
                for n in counts:
                    line = f"overhead of {n} sockets (target < 100 ms): "
                    if 1 in medians and n != 1:
                        overhead = medians[n]["replay"] - medians[1]["replay"]
                        line += f"replay({n}) - replay(1) = {overhead:.2f} ms; "
                    print(line + f"start returned -> all resumed = {medians[n]['after']:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the measured rounds of the largest N to FILE"
    )
    args = parser.parse_args()
    trio.run(main, [int(x) for x in args.sockets.split(",")], args.rounds, args.profile)
