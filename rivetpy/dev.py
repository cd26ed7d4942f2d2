"""``rivetpy dev <app.py>``: the embedded engine, a runner and your actors in one process.

The app file defines :class:`~rivetpy.actor.Actor` subclasses (or a module-level ``actors``
list). :func:`open_dev` is the same thing as an async context manager, for tests and scripts.
"""

from __future__ import annotations

import importlib.util
import inspect
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

from rivetpy.actor.app import ActorApp
from rivetpy.actor.definition import Actor, actions_of
from rivetpy.cli import serve_until_signal
from rivetpy.engine.core import EngineSettings
from rivetpy.engine.server import EngineOptions, EngineServer, open_engine
from rivetpy.engine.store.api import Store
from rivetpy.runner import Runner, RunnerOptions, open_runner

DEFAULT_RUNNER_NAME = "rivetpy"


class AppLoadError(Exception):
    """The app file cannot be loaded or defines no actors."""


def load_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise AppLoadError(f"{path}: no such file")
    name = f"rivetpy_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AppLoadError(f"{path}: {type(exc).__name__}: {exc}") from exc
    return module


def actors_in(module: ModuleType) -> list[type[Actor[Any]]]:
    """The module's ``actors`` list, else every named Actor subclass defined in it."""
    listed = getattr(module, "actors", None)
    if listed is not None:
        found = list(listed)
    else:
        found = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, Actor)
            and obj is not Actor
            and obj.__module__ == module.__name__
            and obj.name
        ]
    if not found:
        raise AppLoadError(f"{module.__name__}: defines no actors (subclass rivetpy.actor.Actor)")
    return found


@dataclass
class DevServer:
    engine: EngineServer
    runner: Runner
    app: ActorApp
    runner_name: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.engine.endpoint


@asynccontextmanager
async def open_dev(
    actors: Iterable[type[Actor[Any]]],
    *,
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 6420,
    protocol_version: int = 8,
    settings: EngineSettings | None = None,
    runner_name: str = DEFAULT_RUNNER_NAME,
    store: Store | None = None,
    graceful_exit: bool = True,
) -> AsyncIterator[DevServer]:
    """Engine + connected runner hosting ``actors``; everything stops when the block exits."""
    options = EngineOptions(
        data_dir=data_dir, host=host, port=port, settings=settings or EngineSettings()
    )
    app = ActorApp(actors)
    async with open_engine(options, store=store) as server:
        runner_options = RunnerOptions(
            server.endpoint,
            runner_name,
            protocol_version=protocol_version,
            actor_names=app.actor_names(),
        )
        async with open_runner(runner_options, app, graceful_exit=graceful_exit) as runner:
            await runner.wait_connected()
            yield DevServer(server, runner, app, runner_name)


def usage_text(endpoint: str, actors: Sequence[type[Actor[Any]]], runner_name: str) -> str:
    lines = [f"rivetpy dev: engine and runner at {endpoint}", "actors:"]
    for cls in actors:
        names = ", ".join(sorted(actions_of(cls))) or "(no actions)"
        lines.append(f"  {cls.name}: actions {names}")
    first = actors[0]
    action_names = sorted(actions_of(first))
    example = action_names[0] if action_names else "<action>"
    lines += [
        "call an action (the actor is created on first use):",
        f"  curl -X POST '{endpoint}/gateway/{first.name}/action/{example}"
        f"?rvt-method=getOrCreate&rvt-key=demo&rvt-runner={runner_name}' -d '{{\"args\": []}}'",
        "or from Python:",
        "  from rivetpy.client import Client",
        f"  async with Client('{endpoint}') as c:",
        f"      h = await c.get_or_create('{first.name}', 'demo')",
        f"      print(await h.action('{example}'))",
    ]
    return "\n".join(lines)


async def run_dev(path: Path, data_dir: Path, host: str, port: int) -> None:
    """The ``rivetpy dev`` program: serves until SIGINT/SIGTERM."""
    actors = actors_in(load_module(path))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_dev(actors, data_dir=data_dir, host=host, port=port) as dev:
            print(usage_text(dev.endpoint, actors, dev.runner_name), file=sys.stderr, flush=True)
            await serve_until_signal(signals)
