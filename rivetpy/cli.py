"""``rivetpy`` command line.

    rivetpy dev APP.py [--data-dir DIR] [--host 127.0.0.1] [--port 6420]
    rivetpy engine [--data-dir DIR] [--host 127.0.0.1] [--port 6420]
                   [--store sqlite|foundationdb] [--token TOKEN]

``dev`` runs the embedded engine (SQLite store in the data dir), a runner and the actors defined
in APP.py, and prints how to call them. ``engine`` runs the embedded engine alone. Both run
until SIGINT or SIGTERM; the state stays in the data dir.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import trio

from rivetpy.engine.core import EngineSettings
from rivetpy.engine.server import EngineOptions, open_engine
from rivetpy.idle_gc import collect_when_idle

log = logging.getLogger("rivetpy.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rivetpy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    engine = commands.add_parser("engine", help="run the embedded engine")
    engine.add_argument("--data-dir", type=Path, default=Path(".rivetpy"))
    engine.add_argument("--host", default="127.0.0.1")
    engine.add_argument("--port", type=int, default=6420)
    engine.add_argument("--store", choices=("sqlite", "foundationdb"), default="sqlite")
    engine.add_argument("--cluster-file", default=None, help="FoundationDB cluster file")
    engine.add_argument("--token", default=None, help="admin token (enables auth)")
    engine.add_argument("--log-level", default="INFO")
    dev = commands.add_parser("dev", help="run the embedded engine, a runner and your actors")
    dev.add_argument("app", type=Path, help="Python file defining rivetpy.actor.Actor classes")
    dev.add_argument("--data-dir", type=Path, default=Path(".rivetpy"))
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=6420)
    dev.add_argument("--log-level", default="WARNING")
    return parser


async def serve_until_signal(signals: AsyncIterator[int]) -> None:
    """The rest of a program's life once it is up: full garbage collections moved to idle
    moments (:mod:`rivetpy.idle_gc`; the program owns its process) until the first of
    ``signals`` (SIGINT/SIGTERM) arrives."""
    async with trio.open_nursery() as background:
        background.start_soon(collect_when_idle)
        async for signum in signals:
            log.info("shutting down", extra={"signal": signum})
            break
        background.cancel_scope.cancel()


async def run_engine(options: EngineOptions) -> None:
    """Serve until SIGINT/SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_engine(options) as server:
            print(f"rivetpy engine listening on {server.endpoint}", file=sys.stderr, flush=True)
            log.info("listening", extra={"endpoint": server.endpoint})
            await serve_until_signal(signals)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "dev":
        from rivetpy.dev import AppLoadError, run_dev  # noqa: PLC0415 (loads the actor stack)

        try:
            trio.run(run_dev, args.app, args.data_dir, args.host, args.port)
        except (AppLoadError, OSError) as exc:
            print(f"rivetpy dev: {exc}", file=sys.stderr)
            return 1
        return 0
    options = EngineOptions(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        store=args.store,
        cluster_file=args.cluster_file,
        settings=EngineSettings(admin_token=args.token),
    )
    try:
        trio.run(run_engine, options)
    except OSError as exc:
        print(f"rivetpy engine: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
