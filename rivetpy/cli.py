"""``rivetpy`` command line: ``rivetpy engine`` runs the embedded engine.

    rivetpy engine [--data-dir DIR] [--host 127.0.0.1] [--port 6420]
                   [--store sqlite|foundationdb] [--token TOKEN]

It logs the address it listens on and runs until SIGINT or SIGTERM (then closes the listener,
every runner connection and the store; the state stays in the data dir).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from rivetpy.engine.core import EngineSettings
from rivetpy.engine.server import EngineOptions, open_engine

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
    return parser


async def run_engine(options: EngineOptions) -> None:
    """Serve until SIGINT/SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_engine(options) as server:
            print(f"rivetpy engine listening on {server.endpoint}", file=sys.stderr, flush=True)
            log.info("listening", extra={"endpoint": server.endpoint})
            async for signum in signals:
                log.info("shutting down", extra={"signal": signum})
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
