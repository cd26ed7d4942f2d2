"""The client side of ``bench/hibernation.py``, run as its own process (as clients would be).

    python bench/hibernation_clients.py        # started by bench/hibernation.py, not by hand

Reads one JSON command per line on stdin, answers one JSON line on stdout:

  {"op": "open", "url": U, "n": N}   open N WebSockets to U (subprotocol ``rivet``), hold them;
                                     then ``gc.freeze()``; the collector is also disabled
                                     during each ping and probe (this process is the measuring
                                     instrument: its collections should not land in a round;
                                     real clients are many processes) -> {"ok": "open"}
  {"op": "ping", "probe": P}         t0 = now; send "ping" on socket 0; wait for its echo
                                     (``echo``); if P, at that echo send "probe" on each other
                                     socket and wait for every echo (``all``: the last one)
                                     -> {"t0": s, "echo": s, "all": s | null, "gc_ms": ms}
  {"op": "probe"}                    the same probes on an awake actor: send "probe" on every
                                     socket but 0 at once, wait for every echo -> {"ms": ms}
  {"op": "close"}                    close the sockets -> {"ok": "close"}

Times are ``time.monotonic()`` seconds (CLOCK_MONOTONIC, one clock for every process on the
machine, so the parent can subtract them from its own); ``gc_ms`` is this process's collector
pause time during the ping (0 unless the collector was forced).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

import trio
import trio_websocket


class GcPauses:
    """Garbage-collector pauses (start, ms) recorded while :attr:`on` (a ``gc.callbacks``
    entry); bench/hibernation.py uses it for the server process too."""

    def __init__(self) -> None:
        self.on = False
        self.pauses: list[tuple[float, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.monotonic()
        else:
            self.pauses.append((self._started, (time.monotonic() - self._started) * 1000))

    def within(self, start: float, end: float) -> float:
        return sum(ms for at, ms in self.pauses if start <= at <= end)

    @property
    def total_ms(self) -> float:
        return sum(ms for _, ms in self.pauses)


class Clients:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.sockets: list[trio_websocket.WebSocketConnection] = []
        self.hold_scope = trio.CancelScope()
        self.pauses = GcPauses()
        gc.callbacks.append(self.pauses)

    async def open(self, url: str, n: int) -> dict[str, Any]:
        opened = trio.Event()
        self.sockets = []

        async def hold() -> None:
            async with trio_websocket.open_websocket_url(url, subprotocols=["rivet"]) as ws:
                self.sockets.append(ws)
                if len(self.sockets) == n:
                    opened.set()
                await trio.sleep_forever()

        async def hold_all() -> None:
            with self.hold_scope:
                async with trio.open_nursery() as holders:
                    for i in range(n):
                        holders.start_soon(hold)
                        if i % 50 == 49:
                            await trio.sleep(0.01)

        self.hold_scope = trio.CancelScope()
        self.nursery.start_soon(hold_all)
        await opened.wait()
        gc.collect()
        gc.freeze()
        return {"ok": "open"}

    async def ping(self, probe: bool) -> dict[str, Any]:
        ws0, others = self.sockets[0], self.sockets[1:]
        self.pauses.on, self.pauses.pauses = True, []
        gc.disable()
        t0 = time.monotonic()
        await ws0.send_message("ping")
        reply = await ws0.get_message()
        t_echo = time.monotonic()
        assert reply == "ping", reply
        t_all = await self._probe(others) if probe else None
        self.pauses.on = False
        gc.enable()
        return {"t0": t0, "echo": t_echo, "all": t_all, "gc_ms": self.pauses.total_ms}

    async def probe(self) -> dict[str, Any]:
        gc.disable()
        t0 = time.monotonic()
        t_all = await self._probe(self.sockets[1:])
        gc.enable()
        return {"ms": (t_all - t0) * 1000}

    @staticmethod
    async def _probe(sockets: list[trio_websocket.WebSocketConnection]) -> float:
        """Send "probe" on each socket at once; the time the last echo arrived."""
        t_all = time.monotonic()

        async def one(ws: trio_websocket.WebSocketConnection) -> None:
            nonlocal t_all
            await ws.send_message("probe")
            answer = await ws.get_message()
            assert answer == "probe", answer
            t_all = max(t_all, time.monotonic())

        async with trio.open_nursery() as nursery:
            for ws in sockets:
                nursery.start_soon(one, ws)
        return t_all

    async def close(self) -> dict[str, Any]:
        for ws in self.sockets:
            await ws.aclose()
        self.hold_scope.cancel()
        self.sockets = []
        gc.unfreeze()
        return {"ok": "close"}


async def main() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    stdout = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
    buffer = b""
    async with trio.open_nursery() as nursery:
        clients = Clients(nursery)
        while True:
            while b"\n" not in buffer:
                chunk = await stdin.receive_some()
                if not chunk:
                    nursery.cancel_scope.cancel()
                    return
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            command = json.loads(line)
            op = command["op"]
            if op == "open":
                answer = await clients.open(command["url"], command["n"])
            elif op == "ping":
                answer = await clients.ping(bool(command.get("probe", True)))
            elif op == "probe":
                answer = await clients.probe()
            elif op == "close":
                answer = await clients.close()
            else:
                raise ValueError(f"unknown op {op!r}")
            await stdout.send_all(json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    trio.run(main)
