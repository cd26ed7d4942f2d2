"""The real Rivet engine as a test peer: install it, run it on loopback ports, talk to its API.

Three pieces, all synchronous (usable from pytest fixtures and from threads):

* :func:`install_engine` installs the pinned engine binary from npm into a per-user cache.
* :class:`RealEngine` runs one ``rivet-engine start`` process with its own data dir and free
  ``127.0.0.1`` ports, waits until it is ready and stops it by PID.
* :class:`EngineClient` is a small stdlib-only client for the engine's public HTTP API.

Errors: :class:`EngineUnavailable` (no binary: npm missing, install failed, bad path),
:class:`EngineStartError` (the process did not become ready), :class:`EngineApiError`
(the engine answered with an error). Network failures surface as :class:`OSError`
(``urllib.error.URLError`` and ``TimeoutError`` are subclasses).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

log = logging.getLogger(__name__)

ENGINE_PACKAGE = "@rivetkit/engine-cli-linux-x64-musl"
ENGINE_VERSION = "2.3.11"
ENGINE_BINARY_NAME = "rivet-engine"
HOST = "127.0.0.1"

#: Environment variable naming a ready engine binary; :func:`install_engine` then skips npm.
ENGINE_BIN_ENV = "RIVETPY_ENGINE_BIN"
#: Environment variable overriding the cache root (default ``~/.cache/rivetpy``).
CACHE_ENV = "RIVETPY_CACHE"
#: Set to ``1`` to keep engine run dirs (config, db, logs) after :meth:`RealEngine.close`.
KEEP_RUN_DIR_ENV = "RIVETPY_KEEP_ENGINE_DIR"

JsonObject = dict[str, Any]
CrashPolicy = Literal["sleep", "restart", "destroy"]

_INSTALLED_MARKER = ".rivetpy-installed"
_PORT_IN_USE_MARKERS = ("Address in use", "Address already in use")


class EngineError(Exception):
    """Base class of the errors raised by this module."""


class EngineUnavailable(EngineError):  # noqa: N818 - the name is the documented API
    """No runnable engine binary: npm is missing, the install failed, or the path is bad."""


class EngineStartError(EngineError):
    """The engine process exited, could not bind its ports, or was not ready in time.

    The process has been killed when this is raised; ``log_tail`` holds the end of its log.
    """

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.reason = message
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- engine log tail ---\n{log_tail}" if log_tail else message)


class EngineApiError(EngineError):
    """The engine answered with a non-2xx status.

    ``group``/``code``/``message``/``metadata`` come from the engine's JSON error body; for a
    body that is not such JSON, ``group`` and ``code`` are empty and ``message`` is the text.
    """

    def __init__(
        self,
        status: int,
        group: str,
        code: str,
        message: str,
        metadata: Any = None,
        *,
        method: str = "",
        url: str = "",
    ) -> None:
        self.status = status
        self.group = group
        self.code = code
        self.message = message
        self.metadata = metadata
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} -> {status} {group}.{code}: {message}")

    @property
    def error_id(self) -> str:
        """``"<group>.<code>"``, e.g. ``"actor.no_runner_config_configured"``."""
        return f"{self.group}.{self.code}"


# --------------------------------------------------------------------------------------------
# Installation


def default_cache_dir() -> Path:
    """``$RIVETPY_CACHE`` if set, else ``~/.cache/rivetpy``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "rivetpy"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if needed) for the block.

    Serializes installs across processes (pytest-xdist workers, parallel benchmarks).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _find_binary(package_dir: Path) -> Path | None:
    if not package_dir.is_dir():
        return None
    candidates = sorted(p for p in package_dir.rglob(ENGINE_BINARY_NAME) if p.is_file())
    return candidates[0] if candidates else None


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & 0o111 != 0o111:
        path.chmod(mode | 0o111)


def install_engine(
    cache_dir: Path | None = None,
    *,
    package: str = ENGINE_PACKAGE,
    version: str = ENGINE_VERSION,
    timeout: float = 600.0,
) -> Path:
    """Install ``package@version`` from npm (once) and return its ``rivet-engine`` binary.

    The package goes to ``<cache_dir>/npm/<package>@<version>`` (``cache_dir`` defaults to
    :func:`default_cache_dir`) with ``npm install --force --no-audit --no-fund``. Idempotent:
    a completed install (marker file + binary present) is reused without running npm. A
    file lock makes concurrent callers in several processes wait for one install. When
    ``$RIVETPY_ENGINE_BIN`` is set, that binary is returned instead (it must be executable).

    Raises :class:`EngineUnavailable` if npm is missing, the install fails or times out, or
    the package holds no ``rivet-engine`` binary.
    """
    override = os.environ.get(ENGINE_BIN_ENV)
    if override:
        given = Path(override)
        if not (given.is_file() and os.access(given, os.X_OK)):
            raise EngineUnavailable(f"${ENGINE_BIN_ENV}={override} is not an executable file")
        return given

    root = cache_dir if cache_dir is not None else default_cache_dir()
    slug = f"{package.lstrip('@').replace('/', '+')}@{version}"
    install_dir = root / "npm" / slug
    marker = install_dir / _INSTALLED_MARKER
    package_dir = install_dir / "node_modules" / Path(*package.split("/"))

    with file_lock(root / "npm" / f"{slug}.lock"):
        existing = _find_binary(package_dir)
        if marker.exists() and existing is not None:
            _make_executable(existing)
            return existing

        npm = shutil.which("npm")
        if npm is None:
            raise EngineUnavailable(
                f"npm is not installed: it is needed to install {package}@{version}"
            )
        install_dir.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)
        manifest = install_dir / "package.json"
        if not manifest.exists():
            manifest.write_text(json.dumps({"name": "rivetpy-engine-cache", "private": True}))
        command = [
            npm,
            "install",
            "--force",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            "--loglevel=error",
            f"{package}@{version}",
        ]
        log.info(
            "installing engine",
            extra={"package": package, "version": version, "install_dir": str(install_dir)},
        )
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                cwd=install_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineUnavailable(
                f"npm install {package}@{version} timed out after {timeout:.0f} s"
            ) from exc
        except OSError as exc:
            raise EngineUnavailable(f"cannot run npm ({npm}): {exc}") from exc
        if result.returncode != 0:
            raise EngineUnavailable(
                f"npm install {package}@{version} failed with exit code {result.returncode}:\n"
                + _tail(result.stderr or result.stdout, 30)
            )
        binary = _find_binary(package_dir)
        if binary is None:
            raise EngineUnavailable(
                f"{package}@{version} installed in {package_dir} but holds no {ENGINE_BINARY_NAME}"
            )
        _make_executable(binary)
        marker.write_text(f"{package}@{version}\n")
        log.info(
            "installed engine",
            extra={"binary": str(binary), "seconds": round(time.monotonic() - started, 3)},
        )
        return binary


# --------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True, slots=True)
class EnginePorts:
    """The loopback ports of one engine: guard (public API, runners, gateway), api-peer, metrics."""

    guard: int
    api_peer: int
    metrics: int


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago (bound to 0 together)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now (with SO_REUSEADDR, like the engine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _deep_merge(base: JsonObject, extra: Mapping[str, Any]) -> JsonObject:
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


# Processes still running at interpreter exit are killed: a crashed test must not leak them.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    _LIVE.clear()


atexit.register(_kill_leftovers)


def track_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` at interpreter exit if it is still running then."""
    _LIVE[proc.pid] = proc


def untrack_process(proc: subprocess.Popen[bytes]) -> None:
    """Forget ``proc`` (it has exited)."""
    _LIVE.pop(proc.pid, None)


def stop_process(proc: subprocess.Popen[bytes], timeout: float, what: str) -> int:
    """SIGTERM ``proc``, wait up to ``timeout`` s, then SIGKILL; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("process ignored SIGTERM, killing", extra={"what": what, "pid": proc.pid})
            proc.kill()
            proc.wait(timeout=10)
    untrack_process(proc)
    return proc.returncode


class RealEngine:
    """One ``rivet-engine start`` process on 127.0.0.1, with its own run dir and ports.

    Use as a context manager (or call :meth:`start` and :meth:`close`)::

        with RealEngine() as engine:
            engine.client().health()

    The run dir (a new temp dir unless ``run_dir`` is given) holds ``config.json``, the
    database (``db/``) and ``engine.log`` (stdout and stderr, appended across restarts).
    Ports not given are picked free; a given port that is in use fails :meth:`start` with
    :class:`EngineStartError`. ``admin_token`` enables auth (``{"auth": {"admin_token"}}``);
    ``extra_config`` is deep-merged into the config; ``env`` adds environment variables
    (e.g. ``RIVET__PEGBOARD__BASE_RETRY_TIMEOUT``); inherited ``RIVET__*`` variables are
    dropped so the caller's shell cannot change the test config. The config also caps the
    SIGTERM drain (``runtime.*_shutdown_duration`` 1/1/2 s; the defaults wait up to 10 min
    for a lingering gateway connection).

    Ownership: this object owns the process; :meth:`stop` ends it (SIGTERM, then SIGKILL
    after ``stop_timeout``) and :meth:`close` also deletes a temp run dir (kept when
    ``keep_run_dir`` or ``$RIVETPY_KEEP_ENGINE_DIR=1``). Not thread-safe.
    """

    def __init__(
        self,
        binary: Path | None = None,
        *,
        admin_token: str | None = None,
        env: Mapping[str, str] | None = None,
        extra_config: Mapping[str, Any] | None = None,
        guard_port: int | None = None,
        api_peer_port: int | None = None,
        metrics_port: int | None = None,
        run_dir: Path | None = None,
        keep_run_dir: bool | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._binary = binary
        self.admin_token = admin_token
        self._env = dict(env or {})
        self._extra_config = dict(extra_config or {})
        self._requested_ports = (guard_port, api_peer_port, metrics_port)
        self._ports: EnginePorts | None = None
        self._owns_run_dir = run_dir is None
        self._run_dir = run_dir
        if keep_run_dir is None:
            keep_run_dir = os.environ.get(KEEP_RUN_DIR_ENV) == "1"
        self._keep_run_dir = keep_run_dir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        #: Seconds from spawn to ready (healthy, ``default`` namespace) in the last :meth:`start`.
        self.startup_seconds: float | None = None

    # -- properties -----------------------------------------------------------------------

    @property
    def ports(self) -> EnginePorts:
        """The ports (known after the first :meth:`start`)."""
        if self._ports is None:
            raise RuntimeError("engine not started yet")
        return self._ports

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<guard port>``: public API, runner endpoint and actor gateway."""
        return f"http://{HOST}:{self.ports.guard}"

    @property
    def api_peer_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.api_peer}"

    @property
    def metrics_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.metrics}"

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise RuntimeError("engine not started yet")
        return self._run_dir

    @property
    def log_path(self) -> Path:
        return self.run_dir / "engine.log"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.json"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "db"

    @property
    def pid(self) -> int | None:
        """PID of the running process, or None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, namespace: str = "default", timeout: float = 10.0) -> EngineClient:
        """An :class:`EngineClient` for this engine (with the admin token, if any)."""
        return EngineClient(
            self.endpoint, namespace=namespace, token=self.admin_token, timeout=timeout
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of ``engine.log`` ("" if there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""
        return _tail(text, lines)

    def config(self) -> JsonObject:
        """The engine config this object writes to ``config.json``."""
        ports = self.ports
        config: JsonObject = {
            "file_system": {"path": str(self.data_dir)},
            "guard": {"host": HOST, "port": ports.guard},
            "api_peer": {"host": HOST, "port": ports.api_peer},
            "metrics": {"host": HOST, "port": ports.metrics},
            "telemetry": {"enabled": False},
            # Seconds; a test engine must not drain for the defaults (30 s / 10 min) on
            # SIGTERM (same values as rivet's own dev scripts). force >= guard is required.
            # worker_cpu_max: the engine stops picking up internal jobs while the machine's CPU
            # is above ~70 %; on a shared test machine that stalls actor and runner setup
            # for minutes. Telling it the cap is huge turns that throttle off.
            "runtime": {
                "worker_shutdown_duration": 1,
                "guard_shutdown_duration": 1,
                "force_shutdown_duration": 2,
                "worker_cpu_max": 1_000_000,
            },
            "topology": {
                "datacenter_label": 1,
                "datacenters": {
                    "default": {
                        "datacenter_label": 1,
                        "is_leader": True,
                        "public_url": f"http://{HOST}:{ports.guard}",
                        "peer_url": f"http://{HOST}:{ports.api_peer}",
                    }
                },
            },
        }
        if self.admin_token is not None:
            config["auth"] = {"admin_token": self.admin_token}
        return _deep_merge(config, self._extra_config)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Spawn the engine; return once ``GET /health`` is ok and namespace ``default`` exists.

        Raises :class:`EngineUnavailable` (no binary) or :class:`EngineStartError` (port in
        use, process exited, not ready within ``startup_timeout``); nothing is left running
        then. When no port was given, ports found taken are re-picked (3 attempts).
        """
        if self.running:
            raise RuntimeError("engine already running")
        binary = self._binary if self._binary is not None else install_engine()
        if not binary.is_file():
            raise EngineUnavailable(f"engine binary {binary} does not exist")
        if not os.access(binary, os.X_OK):
            raise EngineUnavailable(f"engine binary {binary} is not executable")
        self._binary = binary
        if self._run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="rivetpy-engine-"))
        self._run_dir.mkdir(parents=True, exist_ok=True)

        auto_ports = self._ports is None and all(p is None for p in self._requested_ports)
        attempts = 3 if auto_ports else 1
        for attempt in range(1, attempts + 1):
            if self._ports is None or (auto_ports and attempt > 1):
                self._ports = self._pick_ports()
            try:
                self._spawn_and_wait(binary)
                return
            except _PortInUseError as exc:
                if attempt == attempts:
                    if auto_ports:
                        self._ports = None
                    raise EngineStartError(exc.reason, exc.log_tail) from None
                log.info("engine port taken, retrying", extra={"attempt": attempt})

    def _pick_ports(self) -> EnginePorts:
        picked = iter(free_ports(3))
        guard, api_peer, metrics = (
            p if p is not None else next(picked) for p in self._requested_ports
        )
        return EnginePorts(guard=guard, api_peer=api_peer, metrics=metrics)

    def _spawn_and_wait(self, binary: Path) -> None:
        ports = self.ports
        for role, port in (
            ("guard", ports.guard),
            ("api_peer", ports.api_peer),
            ("metrics", ports.metrics),
        ):
            if not port_is_free(port):
                raise _PortInUseError(f"{role} port {HOST}:{port} is already in use")
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET__")}
        env.update(self._env)

        with self.log_path.open("ab") as log_file:
            log_file.write(f"--- rivetpy: starting {binary} at {time.ctime()} ---\n".encode())
            log_file.flush()
            log_offset = log_file.tell()
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    [str(binary), "start", "--config", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.run_dir,
                    env=env,
                )
            except OSError as exc:
                raise EngineStartError(f"cannot execute engine binary {binary}: {exc}") from exc
        self._proc = proc
        track_process(proc)
        try:
            self._wait_ready(proc, log_offset, started)
        except BaseException:
            # A failed start has nothing to save: SIGKILL (a crash-looping engine can take
            # seconds to honour SIGTERM).
            proc.kill()
            proc.wait(timeout=10)
            untrack_process(proc)
            self._proc = None
            raise
        self.startup_seconds = time.monotonic() - started
        log.info(
            "engine started",
            extra={
                "endpoint": self.endpoint,
                "pid": proc.pid,
                "startup_s": round(self.startup_seconds, 3),
                "run_dir": str(self.run_dir),
            },
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int, started: float) -> None:
        deadline = started + self.startup_timeout
        client = EngineClient(self.endpoint, token=self.admin_token, timeout=0.5)
        last_error = ""
        while True:
            code = proc.poll()
            if code is not None:
                raise EngineStartError(
                    f"engine exited with code {code} before becoming ready", self.log_tail()
                )
            new_log = self._read_log_from(log_offset)
            if any(marker in new_log for marker in _PORT_IN_USE_MARKERS):
                raise _PortInUseError(
                    f"engine could not bind its ports ({self.ports}): address in use",
                    self.log_tail(),
                )
            try:
                # /health answers before the boot workflow has created the `default`
                # namespace (observed ~0.1 s later), so wait for both.
                if client.health().get("status") != "ok":
                    last_error = "/health status is not ok"
                elif "default" not in [ns.get("name") for ns in client.list_namespaces()]:
                    last_error = "namespace 'default' does not exist yet"
                else:
                    return
            except (OSError, ValueError, KeyError, EngineApiError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise EngineStartError(
                    f"engine not ready after {self.startup_timeout:.0f} s ({last_error})",
                    self.log_tail(),
                )
            time.sleep(0.02)

    def _read_log_from(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after ``stop_timeout``); keep the run dir."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        started = time.monotonic()
        code = stop_process(proc, self.stop_timeout, "engine")
        log.info(
            "engine stopped",
            extra={
                "pid": proc.pid,
                "exit_code": code,
                "stop_s": round(time.monotonic() - started, 3),
            },
        )

    def restart(self) -> None:
        """Stop and start again with the same run dir, data and ports."""
        self.stop()
        self.start()

    def close(self) -> None:
        """:meth:`stop`, then delete the run dir if this object created it (unless kept)."""
        self.stop()
        if self._owns_run_dir and not self._keep_run_dir and self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None


class _PortInUseError(EngineStartError):
    pass


# --------------------------------------------------------------------------------------------
# API client

# Never send loopback requests through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    data: bytes | None,
    timeout: float,
) -> tuple[int, bytes]:
    """One request; returns (status, body) for every HTTP status. Raises OSError otherwise."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


class EngineClient:
    """Synchronous client for the engine's public API (stdlib only).

    Every method raises :class:`EngineApiError` when the engine answers with an error
    status and :class:`OSError` when it cannot be reached or does not answer in ``timeout``.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        namespace: str = "default",
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.namespace = namespace
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        namespaced: bool = True,
    ) -> JsonObject:
        """Send ``body`` as JSON (unless None); return the JSON response (``{}`` if empty)."""
        params = dict(query or {})
        if namespaced:
            params.setdefault("namespace", self.namespace)
        url = self.endpoint + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        status, raw = _http(method, url, headers=headers, data=data, timeout=self.timeout)
        if 200 <= status < 300:
            if not raw.strip():
                return {}
            decoded: JsonObject = json.loads(raw)
            return decoded
        raise _api_error(status, raw, method, url)

    def health(self) -> JsonObject:
        """``GET /health``: ``{"runtime": "engine", "status": "ok", "version": ...}``."""
        return self.request("GET", "/health", namespaced=False)

    def metadata(self) -> JsonObject:
        return self.request("GET", "/metadata", namespaced=False)

    def list_namespaces(self) -> list[JsonObject]:
        namespaces: list[JsonObject] = self.request("GET", "/namespaces", namespaced=False)[
            "namespaces"
        ]
        return namespaces

    def list_runner_configs(self) -> dict[str, JsonObject]:
        """Runner configs of the namespace by runner name (first page, which holds them all
        for a test engine)."""
        configs: dict[str, JsonObject] = self.request("GET", "/runner-configs")["runner_configs"]
        return configs

    def wait_for_runner_config(
        self, runner_name: str, timeout: float = 10.0, interval: float = 0.05
    ) -> JsonObject:
        """Poll until the runner config for ``runner_name`` exists (it is auto-created when a
        runner with that name connects) and return it; raise :class:`TimeoutError` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            config = self.list_runner_configs().get(runner_name)
            if config is not None:
                return config
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no runner config {runner_name!r} after {timeout} s")
            time.sleep(interval)

    def create_actor(
        self,
        name: str,
        key: str | None,
        input: bytes | None,
        runner_name: str,
        crash_policy: CrashPolicy = "sleep",
        *,
        retry_for: float = 0.0,
    ) -> JsonObject:
        """``POST /actors``: create an actor and return its ``actor`` object.

        With ``retry_for > 0``, ``actor.no_runner_config_configured`` (the runner has not
        connected yet) is retried for that many seconds.
        """
        body = {
            "name": name,
            "key": key,
            "input": base64.b64encode(input).decode() if input is not None else None,
            "runner_name_selector": runner_name,
            "crash_policy": crash_policy,
        }
        deadline = time.monotonic() + retry_for
        while True:
            try:
                actor: JsonObject = self.request("POST", "/actors", body=body)["actor"]
                return actor
            except EngineApiError as exc:
                if (
                    exc.error_id != "actor.no_runner_config_configured"
                    or time.monotonic() >= deadline
                ):
                    raise
            time.sleep(0.05)

    def get_actor(self, actor_id: str, *, include_destroyed: bool = True) -> JsonObject | None:
        """The actor object, or None if there is no such actor (in this namespace)."""
        query = {"actor_ids": actor_id}
        if include_destroyed:
            query["include_destroyed"] = "true"
        actors: list[JsonObject] = self.request("GET", "/actors", query=query)["actors"]
        return actors[0] if actors else None

    def destroy_actor(self, actor_id: str) -> None:
        """``DELETE /actors/{id}``; the runner then gets ``CommandStopActor``."""
        self.request("DELETE", f"/actors/{urllib.parse.quote(actor_id, safe='')}")

    def kv_get(self, actor_id: str, key: bytes) -> bytes | None:
        """One KV value of an actor, or None if the key does not exist.

        The engine answers a missing key with 400 ``actor.kv_key_not_found``.
        """
        encoded = urllib.parse.quote(base64.b64encode(key).decode(), safe="")
        path = f"/actors/{urllib.parse.quote(actor_id, safe='')}/kv/keys/{encoded}"
        try:
            response = self.request("GET", path)
        except EngineApiError as exc:
            if exc.error_id == "actor.kv_key_not_found":
                return None
            raise
        return base64.b64decode(response["value"])

    def gateway_url(self, actor_id: str, path: str = "/") -> str:
        """``http://…/gateway/{actor_id}{path}`` (path routing; the actor sees ``path``)."""
        return f"{self.endpoint}/gateway/{actor_id}/{path.lstrip('/')}"


def _api_error(status: int, raw: bytes, method: str, url: str) -> EngineApiError:
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "code" in payload:
        return EngineApiError(
            status,
            str(payload.get("group", "")),
            str(payload.get("code", "")),
            str(payload.get("message", "")),
            payload.get("metadata"),
            method=method,
            url=url,
        )
    return EngineApiError(
        status, "", "", raw.decode(errors="replace")[:500], method=method, url=url
    )
