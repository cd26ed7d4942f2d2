"""Running a runner as a program: until SIGTERM or SIGINT, then a graceful shutdown."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable

import trio

from rivetpy.runner.api import RunnerApp
from rivetpy.runner.runner import Runner, RunnerOptions, open_runner

log = logging.getLogger("rivetpy.runner")


async def serve(
    options: RunnerOptions,
    app: RunnerApp,
    *,
    on_ready: Callable[[Runner], Awaitable[None]] | None = None,
) -> None:
    """Run the runner until SIGTERM/SIGINT (a second signal skips the drain). ``on_ready`` is
    awaited once the runner first connected (e.g. to print how to reach the actors)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_runner(options, app, graceful_exit=False) as runner:
            async with trio.open_nursery() as nursery:

                async def ready() -> None:
                    await runner.wait_connected()
                    if on_ready is not None:
                        await on_ready(runner)

                nursery.start_soon(ready)
                async for signum in signals:
                    log.info("signal received: draining", extra={"signal": signum})
                    break
                nursery.cancel_scope.cancel()
            async with trio.open_nursery() as drain:

                async def second_signal() -> None:
                    async for signum in signals:
                        log.warning("second signal: skipping the drain", extra={"signal": signum})
                        runner.abort_drain()
                        return

                drain.start_soon(second_signal)
                await runner.shutdown(graceful=True)
                drain.cancel_scope.cancel()
