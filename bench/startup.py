"""Actor wake latency with and without the startup KV preload, against injected KV latency.

    python bench/startup.py [--wakes 5] [--delays 0,1,10] [--sizes 0,64,1024]

For each injected KV round-trip delay (ms; added by the embedded engine before it serves every
runner KV request, modelling a remote store), with the preload on (engine default budgets) and
off (``preload_max_total_bytes = 0``, the runtime then does its fallback reads), and for an
existing actor holding 0 KiB, 64 KiB or 1 MiB of startup data, all in the same run on the
embedded engine with a Python runner on protocol v8:

  wake     time from the start command to the actor being ready (median over the wakes; the
           actor is put to sleep and woken by an action each time)
  kv rt    KV round trips (reads + writes) the runtime made before ready

Startup data: 1/10 in the state, 1/8 in workflow steps, 3/4 in the actor's SQLite database,
which the start-up migration step scans (a typical cache warm-up), so without preload every
page is a KV read.
Target: with preload, wake latency does not grow with the delay; at 10 ms, preload is >= 5x
faster than no preload for the 1 MiB actor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trio  # noqa: E402

from rivetpy.actor import Actor, ActorOptions, Database, PreloadBudgets, action  # noqa: E402
from rivetpy.client import Client  # noqa: E402
from rivetpy.dev import DevServer, open_dev  # noqa: E402
from rivetpy.engine.config import PegboardConfig  # noqa: E402
from rivetpy.engine.core import EngineSettings  # noqa: E402

ROW = 2000


class Data(Actor[dict[str, Any]]):
    name = "data"
    database = True
    options = ActorOptions(
        sleep_after=None,
        state_save_interval=0.01,
        # the whole 1 MiB case fits the 1 MiB global cap
        preload=PreloadBudgets(sqlite_bytes=900_000, workflow_bytes=140_000),
    )

    def create_state(self, input: Any) -> dict[str, Any]:
        return {"blob": ""}

    async def migrate(self, db: Database) -> None:
        await db.executescript("CREATE TABLE IF NOT EXISTS rows(id INTEGER PRIMARY KEY, b TEXT)")
        # warm-up at every start (a typical cache load): touches every page
        await db.execute("SELECT count(*), sum(length(b)) FROM rows")

    @action
    async def fill(self, size: int) -> None:
        self.state["blob"] = "s" * (size // 10)  # the record is one value: <= 128 KiB
        step = "w" * 1000
        for i in range(size // 8 // 1100):
            await self.step(f"step-{i}", lambda: step)
        rows = (size * 3 // 4) // ROW
        await self.db.executemany("INSERT INTO rows(b) VALUES (?)", [("r" * ROW,)] * rows)
        await self.save_state()

    @action
    def ping(self) -> str:
        return "pong"


async def _measure(dev: DevServer, client: Client, size: int, wakes: int) -> tuple[float, float]:
    handle = await client.create("data", f"size-{size}")
    assert await handle.action("ping") == "pong"
    if size:
        await handle.action("fill", size)
    times, trips = [], []
    for _ in range(wakes):
        inst = dev.app.instance(handle.actor_id)
        assert inst is not None
        inst.request_sleep()
        while dev.engine.engine.actors[handle.actor_id].state != "sleeping":
            await trio.sleep(0.005)
        assert await handle.action("ping") == "pong"
        report = [r for r in dev.app.startups if r.actor_id == handle.actor_id][-1]
        times.append(report.seconds)
        trips.append(report.kv_reads + report.kv_writes)
    return statistics.median(times), statistics.median(trips)


async def run(delays: list[float], sizes: list[int], wakes: int) -> None:
    results: dict[tuple[float, bool, int], tuple[float, float]] = {}
    for delay in delays:
        for preload in (True, False):
            pegboard = PegboardConfig() if preload else PegboardConfig(preload_max_total_bytes=0)
            settings = EngineSettings(pegboard=pegboard, kv_round_trip_delay=delay / 1000)
            with tempfile.TemporaryDirectory() as tmp:
                async with (
                    open_dev([Data], data_dir=Path(tmp), port=0, settings=settings) as dev,
                    Client(dev.endpoint, timeout=120) as client,
                ):
                    for size in sizes:
                        results[(delay, preload, size)] = await _measure(
                            dev, client, size * 1024, wakes
                        )
                        wake, rt = results[(delay, preload, size)]
                        print(
                            f"  delay {delay:>4g} ms  preload {'on ' if preload else 'off'}"
                            f"  {size:>5} KiB  wake {wake * 1000:8.1f} ms  kv rt {rt:5.0f}",
                            file=sys.stderr,
                            flush=True,
                        )
    print(f"\nwake latency, median of {wakes} wakes (ms); KV round trips before ready")
    print(f"{'data':>8} {'delay':>6} | {'preload on':>16} | {'preload off':>16} | {'off/on':>7}")
    for size in sizes:
        for delay in delays:
            on, on_rt = results[(delay, True, size)]
            off, off_rt = results[(delay, False, size)]
            print(
                f"{size:>5}KiB {delay:>4g}ms | {on * 1000:8.1f} ({on_rt:3.0f} rt) |"
                f" {off * 1000:8.1f} ({off_rt:3.0f} rt) | {off / on:6.1f}x"
            )
    big = max(sizes)
    on_by_delay = [results[(d, True, big)][0] * 1000 for d in delays]
    print(
        f"\npreload on, {big} KiB: wake {' / '.join(f'{t:.1f}' for t in on_by_delay)} ms"
        f" at {' / '.join(f'{d:g}' for d in delays)} ms delay"
    )
    worst = max(delays)
    ratio = results[(worst, False, big)][0] / results[(worst, True, big)][0]
    print(f"at {worst:g} ms delay, {big} KiB: preload is {ratio:.1f}x faster (target >= 5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakes", type=int, default=5)
    parser.add_argument("--delays", default="0,1,10")
    parser.add_argument("--sizes", default="0,64,1024")
    args = parser.parse_args()
    delays = [float(x) for x in args.delays.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    trio.run(run, delays, sizes, args.wakes)


if __name__ == "__main__":
    main()
