"""The reference TypeScript runner (``@rivetkit/engine-runner``) as a managed subprocess.

:class:`TsRunner` runs ``bench/node/ts_runner.mjs`` (an "echo" actor type, see the script's
header for its routes) against an engine and turns its JSON event lines into Python dicts.
It needs node and npm and a source checkout (the script lives in ``bench/node``); the pinned
node packages are installed with ``npm ci`` on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from rivetpy.testing.engine import (
    JsonObject,
    RealEngine,
    default_cache_dir,
    file_lock,
    stop_process,
    track_process,
)

log = logging.getLogger(__name__)

#: ``bench/node`` of the source checkout this module belongs to.
BENCH_NODE_DIR = Path(__file__).resolve().parents[2] / "bench" / "node"
SCRIPT_NAME = "ts_runner.mjs"


class NodeUnavailable(RuntimeError):  # noqa: N818 - pairs with EngineUnavailable
    """node or npm is missing, or installing the pinned node packages failed."""


class TsRunnerError(RuntimeError):
    """The runner process exited or did not connect in time (it has been stopped).

    ``log_tail`` holds the end of its stderr log.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(
            f"{message}\n--- ts runner log tail ---\n{log_tail}" if log_tail else message
        )


def _deps_installed(node_dir: Path) -> bool:
    """Whether every dependency in package.json is in node_modules at exactly its pinned version."""
    manifest = json.loads((node_dir / "package.json").read_text())
    for name, wanted in manifest.get("dependencies", {}).items():
        installed = node_dir / "node_modules" / Path(*name.split("/")) / "package.json"
        try:
            version = json.loads(installed.read_text()).get("version")
        except (OSError, ValueError):
            return False
        if version != wanted:
            return False
    return True


def ensure_node_deps(node_dir: Path = BENCH_NODE_DIR, timeout: float = 600.0) -> str:
    """Run ``npm ci`` in ``node_dir`` unless its pinned packages are installed; return node's path.

    Serialized across processes with a file lock. Raises :class:`NodeUnavailable`.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeUnavailable("node and npm are required for the reference TypeScript runner")
    if not (node_dir / "package.json").is_file():
        raise NodeUnavailable(f"{node_dir} has no package.json (not a source checkout?)")
    digest = hashlib.sha256(str(node_dir.resolve()).encode()).hexdigest()[:16]
    with file_lock(default_cache_dir() / "locks" / f"npm-ci-{digest}.lock"):
        if _deps_installed(node_dir):
            return node
        log.info("installing node packages", extra={"node_dir": str(node_dir)})
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=node_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeUnavailable(f"npm ci in {node_dir} failed: {exc}") from exc
        if result.returncode != 0 or not _deps_installed(node_dir):
            tail = "\n".join((result.stderr or result.stdout).splitlines()[-30:])
            raise NodeUnavailable(f"npm ci in {node_dir} failed ({result.returncode}):\n{tail}")
    return node


class TsRunner:
    """One reference TS runner process connected to an engine.

    ``engine`` is a :class:`RealEngine` (its endpoint and admin token are used, and the
    runner's stderr log goes to its run dir) or an endpoint URL. ``runner_name`` defaults
    to a fresh ``ts-echo-<hex>`` so runners never share a name by accident. With
    ``hibernate=True`` the script makes WebSockets hibernatable. The script's stderr, with
    the runner library's pino logs at ``$RIVET_RUNNER_LOG`` (default ``warn``), goes to
    :attr:`log_path`.

    :meth:`start` returns once the runner printed ``{"event": "connected"}``; the events it
    prints are kept in :attr:`events` in arrival order. :meth:`stop` sends SIGTERM (the
    script then shuts the runner down gracefully) and SIGKILLs after ``stop_timeout``.
    Context manager: start on enter, stop on exit. Not thread-safe, except that the event
    list is filled by an internal reader thread.
    """

    def __init__(
        self,
        engine: RealEngine | str,
        *,
        runner_name: str | None = None,
        namespace: str = "default",
        token: str | None = None,
        total_slots: int = 1000,
        hibernate: bool = False,
        node_dir: Path = BENCH_NODE_DIR,
        env: Mapping[str, str] | None = None,
        connect_timeout: float = 30.0,
        stop_timeout: float = 20.0,
    ) -> None:
        if isinstance(engine, RealEngine):
            self.endpoint = engine.endpoint
            self.token = token if token is not None else engine.admin_token
            self._log_dir: Path | None = engine.run_dir
        else:
            self.endpoint = engine
            self.token = token
            self._log_dir = None
        self.runner_name = runner_name or f"ts-echo-{uuid.uuid4().hex[:8]}"
        self.namespace = namespace
        self.total_slots = total_slots
        self.hibernate = hibernate
        self.node_dir = node_dir
        self._env = dict(env or {})
        self.connect_timeout = connect_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._owned_log_dir: Path | None = None
        self._cond = threading.Condition()
        self._eof = False
        #: Every JSON event line printed by the script, in order.
        self.events: list[JsonObject] = []
        #: Seconds from spawning node to the ``connected`` event, for the last :meth:`start`.
        self.spawn_to_connected_seconds: float | None = None

    @property
    def log_path(self) -> Path:
        """The runner's stderr log."""
        log_dir = self._log_dir or self._owned_log_dir
        if log_dir is None:
            raise RuntimeError("runner not started yet")
        return log_dir / f"ts-runner-{self.runner_name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def runner_id(self) -> str | None:
        """The engine-assigned runner id from the last ``connected`` event."""
        for event in reversed(self.events):
            if event.get("event") == "connected":
                runner_id = event.get("runner_id")
                return str(runner_id) if runner_id is not None else None
        return None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, RuntimeError):
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Install node deps if needed, spawn the script and wait for ``connected``.

        Raises :class:`NodeUnavailable` or :class:`TsRunnerError` (nothing left running).
        """
        if self.running:
            raise RuntimeError("runner already running")
        node = ensure_node_deps(self.node_dir)
        script = self.node_dir / SCRIPT_NAME
        if self._log_dir is None and self._owned_log_dir is None:
            self._owned_log_dir = Path(tempfile.mkdtemp(prefix="rivetpy-ts-runner-"))
        command = [
            node,
            str(script),
            "--endpoint",
            self.endpoint,
            "--namespace",
            self.namespace,
            "--runner-name",
            self.runner_name,
            "--total-slots",
            str(self.total_slots),
        ]
        if self.token is not None:
            command += ["--token", self.token]
        if self.hibernate:
            command.append("--hibernate")
        env = dict(os.environ)
        env.setdefault("RIVET_RUNNER_LOG", "warn")  # the library's warnings go to log_path
        env.update(self._env)
        with self._cond:
            self.events = []
            self._eof = False
        started = time.monotonic()
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                command,
                cwd=self.node_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env=env,
            )
        track_process(self._proc)
        self._reader = threading.Thread(
            target=self._read_events,
            args=(self._proc,),
            name=f"ts-runner-{self.runner_name}-stdout",
            daemon=True,
        )
        self._reader.start()
        try:
            self.wait_for_event("connected", timeout=self.connect_timeout)
        except TimeoutError:
            tail = self.log_tail()
            self.stop()
            raise TsRunnerError(
                f"ts runner did not connect to {self.endpoint} within {self.connect_timeout} s",
                tail,
            ) from None
        except BaseException:
            self.stop()
            raise
        self.spawn_to_connected_seconds = time.monotonic() - started
        log.info(
            "ts runner connected",
            extra={
                "runner_name": self.runner_name,
                "runner_id": self.runner_id,
                "pid": self._proc.pid,
                "connect_s": round(self.spawn_to_connected_seconds, 3),
            },
        )

    def _read_events(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    log.warning("ts runner printed a non-JSON line", extra={"line": line[:500]})
                    continue
                if not isinstance(event, dict):
                    continue
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_event(
        self,
        event: str,
        timeout: float = 10.0,
        where: Callable[[JsonObject], bool] | None = None,
        since: int = 0,
    ) -> JsonObject:
        """The first event named ``event`` (matching ``where``) at index ``>= since`` in
        :attr:`events`, waiting up to ``timeout`` s for it.

        Raises :class:`TsRunnerError` if the process exits first, :class:`TimeoutError`
        on timeout (the process keeps running then).
        """
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self.events):
                    candidate = self.events[index]
                    index += 1
                    if candidate.get("event") == event and (where is None or where(candidate)):
                        return candidate
                if self._eof:
                    code = self._proc.wait() if self._proc is not None else None
                    raise TsRunnerError(
                        f"ts runner exited (code {code}) before event {event!r}", self.log_tail()
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no {event!r} event from ts runner {self.runner_name} after {timeout} s"
                    )
                self._cond.wait(remaining)

    def wait_actor_started(self, actor_id: str, timeout: float = 10.0) -> JsonObject:
        """The ``actor_started`` event of ``actor_id`` (waiting for it if needed)."""
        return self.wait_for_event(
            "actor_started", timeout, where=lambda e: e.get("actor_id") == actor_id
        )

    def stop(self) -> None:
        """Graceful shutdown via SIGTERM, SIGKILL after ``stop_timeout``; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            started = time.monotonic()
            code = stop_process(proc, self.stop_timeout, "ts runner")
            log.info(
                "ts runner stopped",
                extra={
                    "runner_name": self.runner_name,
                    "exit_code": code,
                    "stop_s": round(time.monotonic() - started, 3),
                },
            )
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._owned_log_dir is not None:
            shutil.rmtree(self._owned_log_dir, ignore_errors=True)
            self._owned_log_dir = None

    def actor_events(self, actor_id: str) -> list[JsonObject]:
        """All events about ``actor_id`` so far."""
        with self._cond:
            return [e for e in self.events if e.get("actor_id") == actor_id]
