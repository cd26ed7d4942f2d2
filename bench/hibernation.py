"""Hibernatable WebSockets on the embedded engine: a client message to a sleeping actor.

    python bench/hibernation.py [--sockets 1,100,1000] [--rounds 20] [--no-probe]
                                [--gc idle|default|freeze] [--idle-gap 0.5]

Two processes on loopback, as in a deployment where the clients are elsewhere:

  server   this process: the embedded engine (SQLite store, gateway), a Python runner on
           protocol v8 and the bench actor. The actor persists each hibernatable socket's last
           message index (in memory), restores every listed socket on start, acks and echoes.
  clients  a child process (``bench/hibernation_clients.py``, driven over its stdin/stdout)
           holding the N client WebSockets; it sends the message and times the echoes. After
           opening its sockets it calls ``gc.freeze()`` and it disables its collector during each
           timed exchange (it is the measuring instrument, standing for many client machines).

For each count N, one actor holds N hibernatable client sockets; before the first round the
bench waits until every socket's hibernation entry is stored (its keepalive's first upsert comes
up to the 128 ms keepalive jitter after the open; a socket slept before that is not listed in the
start command, and the runner drops its messages). Each round puts the actor to sleep, waits
until every gateway socket hibernates and then ``--idle-gap``, then the client process sends one
text message on socket 0 (time t0). All times are ``time.monotonic()`` (one clock for both
processes) and measured from t0:

  start    the runner's ``on_actor_start`` entered (engine: wake, start command hydrated with
           the N hibernating requests, runner start)                         [server]
  started  ``on_actor_start`` returned (the N sockets restored in the runner)  [server]
  handled  the actor's handler got the message                               [server]
  echo     the echo of the message received by the client                    [client]
  resumed  the last of the N gateway sockets resumed on the woken actor       [server]
  replay   max(echo, resumed): the actor is awake, echoed, and every socket is bound again
  all      every one of the N client sockets has had an echo: socket 0 the message, the other
           N - 1 a "probe" each sent when socket 0's echo arrived (replay as the clients see
           it; includes the probes' round trips). Off with ``--no-probe``.   [client]
  probes   not from t0: after the round, the same N - 1 probes sent on the awake actor (the
           cost of the probes themselves)                                    [client]
  all_net  all - probes of the same round: replay as the clients see it, net of the probes
  after    ``on_actor_start`` returned -> replay: the runtime's own overhead after the start
  gc       garbage-collector pause time of the server process within [t0, replay]
  gc_all   same within [t0, all]
  cgc      collector pause time of the client process during the round (should be ~0)

Printed: median and p99 (nearest rank) per N and metric, then the overhead of N sockets beyond
the actor start by three definitions (target: < 100 ms for N = 1000): median ``replay(N) -
replay(1)``, median ``all_net(N) - all_net(1)``, median ``after(N)``.

``--gc`` picks the server process's garbage-collection policy: ``idle`` (the default, what
``rivetpy dev`` and ``rivetpy engine`` run) moves full collections to quiet moments
(``rivetpy.idle_gc``); ``default`` leaves the interpreter's own policy, whose full collection
(about 170 ms with 1000 sockets) lands in about one wake in ten; ``freeze`` is a tuning
experiment: ``gc.collect()`` and ``gc.freeze()`` once the N sockets are open, so the long-lived
objects leave the collector's generations. ``--idle-gap`` (0.5 s) is the quiet time between
the actor's sleep and the client's message (an actor sleeps because it went idle; the message
comes later). ``--profile FILE`` writes a cProfile of the measured rounds of the largest N
(server process only).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trio  # noqa: E402

from rivetpy.engine.core import EngineSettings  # noqa: E402
from rivetpy.engine.hibernation import Phase  # noqa: E402
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine  # noqa: E402
from rivetpy.idle_gc import collect_when_idle  # noqa: E402
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hibernation_clients import GcPauses  # noqa: E402

CLIENTS = Path(__file__).resolve().parent / "hibernation_clients.py"
METRICS = (
    "start", "started", "handled", "echo", "resumed", "replay", "all", "probes", "all_net",
    "after", "gc", "gc_all", "cgc",
)  # fmt: skip


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
        self.start_entered = time.monotonic()
        for key in actor.hibernating_requests:
            index = self.persisted.get(key)
            if index is not None:
                actor.restore_websocket(key, server_index=index, path="/hws")
        self.handles.append(actor)
        self.start_exited = time.monotonic()
        self.started.set()

    async def on_actor_stop(self, actor: ActorHandle, reason: object) -> None:
        self.stopped.set()

    def can_hibernate(self, actor: ActorHandle, request: WebSocketOpen) -> bool:
        return True

    async def on_websocket(self, actor: ActorHandle, ws: WebSocket) -> None:
        self.persisted.setdefault(ws.key, 0)
        async for message in ws:
            if self.message_at is None:
                self.message_at = time.monotonic()
            self.persisted[ws.key] = message.index
            ws.ack(message.index)
            await ws.send(message.data if message.binary else message.text)


class ClientProcess:
    """The child process holding the client sockets; one JSON line each way per command."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.buffer = b""

    async def call(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        await self.process.stdin.send_all(json.dumps(command).encode() + b"\n")
        while b"\n" not in self.buffer:
            chunk = await self.process.stdout.receive_some()
            if not chunk:
                raise RuntimeError("the client process exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def wait_until(predicate: object, step: float = 0.001) -> None:
    assert callable(predicate)
    while not predicate():
        await trio.sleep(step)


async def measure(
    server: EngineServer,
    app: App,
    clients: ClientProcess,
    n: int,
    rounds: int,
    probe: bool,
    gc_policy: str,
    idle_gap: float,
    profile: cProfile.Profile | None = None,
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
    results: dict[str, list[float]] = {metric: [] for metric in METRICS}
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    await clients.call(op="open", url=url, n=n)
    await wait_until(lambda: sum(s.actor_id == actor_id for s in gateway.sockets.values()) == n)
    mine = [s for s in gateway.sockets.values() if s.actor_id == actor_id]
    # Each socket's hibernation entry is first written by its keepalive, up to the keepalive
    # jitter (128 ms) after the open; a socket put to sleep before that is not listed in the
    # start command and the runner drops its messages. Wait for every entry.
    await wait_until(lambda: all(getattr(s, "_last_upsert", None) is not None for s in mine))
    if gc_policy == "freeze":
        gc.collect()
        gc.freeze()
    for _ in range(rounds):
        app.stopped = trio.Event()
        app.handles[-1].sleep()
        await app.stopped.wait()
        await wait_until(lambda: all(s.state.phase is Phase.HIBERNATING for s in mine))
        # The actor slept because it was idle; the client's message comes some time later.
        # The gap also settles the hibernation keepalives' first writes.
        await trio.sleep(idle_gap)
        app.started = trio.Event()
        app.start_entered = app.start_exited = app.message_at = None
        resumed_at = 0.0

        async def wait_resumed(events: list[trio.Event]) -> None:
            nonlocal resumed_at
            for event in events:
                await event.wait()
            resumed_at = time.monotonic()

        if profile is not None:
            profile.enable()
        pauses.on, pauses.pauses = True, []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_resumed, [s.resumed for s in mine])
            answer = await clients.call(op="ping", probe=probe)
        pauses.on = False
        if profile is not None:
            profile.disable()
        t0, t_echo = answer["t0"], answer["echo"]
        t_all = answer["all"]
        assert app.start_entered is not None and app.start_exited is not None
        assert app.message_at is not None
        t_replay = max(t_echo, resumed_at)
        results["start"].append((app.start_entered - t0) * 1000)
        results["started"].append((app.start_exited - t0) * 1000)
        results["handled"].append((app.message_at - t0) * 1000)
        results["echo"].append((t_echo - t0) * 1000)
        results["resumed"].append((resumed_at - t0) * 1000)
        results["replay"].append((t_replay - t0) * 1000)
        results["after"].append((t_replay - app.start_exited) * 1000)
        results["gc"].append(pauses.within(t0, t_replay))
        results["cgc"].append(answer["gc_ms"])
        if t_all is not None:
            results["all"].append((t_all - t0) * 1000)
            results["gc_all"].append(pauses.within(t0, t_all))
            await wait_until(lambda: all(s.state.phase is Phase.ACTIVE for s in mine))
            awake = await clients.call(op="probe")
            results["probes"].append(awake["ms"])
            results["all_net"].append(results["all"][-1] - awake["ms"])
    await clients.call(op="close")
    if gc_policy == "freeze":
        gc.unfreeze()
    gc.callbacks.remove(pauses)
    return results


async def main(
    counts: list[int],
    rounds: int,
    probe: bool,
    gc_policy: str,
    idle_gap: float,
    profile_to: str | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = EngineSettings(ready_timeout=60.0)
        opts = EngineOptions(data_dir=Path(tmp), port=0, settings=settings)
        async with open_engine(opts) as server, trio.open_nursery() as background:
            if gc_policy == "idle":
                background.start_soon(collect_when_idle)
            app = App()
            ropts = RunnerOptions(
                server.endpoint,
                "bench-runner",
                protocol_version=8,
                actor_names={"bench": {}},
                total_slots=1000,
            )
            process = await trio.lowlevel.open_process(
                [sys.executable, str(CLIENTS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            clients = ClientProcess(process)
            async with open_runner(ropts, app, graceful_exit=False) as runner:
                await runner.wait_connected()
                medians: dict[int, dict[str, float]] = {}
                variant = {
                    "idle": "full collections when idle (rivetpy.idle_gc, as rivetpy dev runs)",
                    "default": "the interpreter's default gc",
                    "freeze": "server gc.freeze() after setup (tuning experiment)",
                }[gc_policy]
                print(f"# clients in a child process; {variant}; probes {'on' if probe else 'off'};"
                      f" {idle_gap} s between the sleep and the message")
                print(f"{'sockets':>8} {'metric':>8} {'median ms':>10} {'p99 ms':>8}  rounds")
                for n in counts:
                    profile = cProfile.Profile() if profile_to and n == max(counts) else None
                    results = await measure(
                        server, app, clients, n, rounds, probe, gc_policy, idle_gap, profile
                    )
                    if profile is not None and profile_to:
                        profile.dump_stats(profile_to)
                    medians[n] = {k: statistics.median(v) for k, v in results.items() if v}
                    for metric in METRICS:
                        values = results[metric]
                        if values:
                            print(
                                f"{n:>8} {metric:>8} {statistics.median(values):>10.2f}"
                                f" {pct(values, 0.99):>8.2f}  {len(values)}"
                            )
                for n in counts:
                    line = f"overhead of {n} sockets (target < 100 ms): "
                    if 1 in medians and n != 1:
                        for metric in ("replay", "all_net"):
                            if metric in medians[n]:
                                overhead = medians[n][metric] - medians[1][metric]
                                line += f"{metric}({n}) - {metric}(1) = {overhead:.2f} ms; "
                    print(line + f"start returned -> replay = {medians[n]['after']:.2f} ms")
            assert process.stdin is not None
            await process.stdin.aclose()
            await process.wait()
            background.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--no-probe", action="store_true", help="do not probe every socket after the echo"
    )
    parser.add_argument(
        "--gc",
        choices=("idle", "default", "freeze"),
        default="idle",
        help="garbage-collection policy of the server process (see the module docstring)",
    )
    parser.add_argument(
        "--idle-gap",
        type=float,
        default=0.5,
        help="seconds between the actor's sleep (all sockets hibernating) and the message",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the measured rounds of the largest N to FILE"
    )
    args = parser.parse_args()
    counts = [int(x) for x in args.sockets.split(",")]
    trio.run(main, counts, args.rounds, not args.no_probe, args.gc, args.idle_gap, args.profile)
