"""How users define actors: subclass :class:`Actor`, mark actions with :func:`action`.

::

    class Counter(Actor[dict[str, int]]):
        name = "counter"

        def create_state(self, input: Any) -> dict[str, int]:
            return {"count": 0}

        @action
        async def increment(self, amount: int = 1) -> int:
            self.state["count"] += amount
            self.broadcast("count", self.state["count"])
            return self.state["count"]

One Python object is created per running actor instance (per wake); everything durable lives in
:attr:`Actor.state`, connections, the queue, workflow steps, user KV and the database. Hooks and
actions may be sync or async. Raise :class:`UserError` to return a clear error to the caller;
any other exception is logged and reported as ``internal_error`` without details.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rivetpy.actor.wire import ActorError

if TYPE_CHECKING:
    from rivetpy.actor.connections import Conn
    from rivetpy.actor.database import Database
    from rivetpy.actor.instance import ActorInstance, Schedule
    from rivetpy.actor.kv import UserKv
    from rivetpy.actor.queue import Queue
    from rivetpy.runner.api import HttpRequest, HttpResponse, WebSocket

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])

ACTION_ATTR = "__rivetpy_action__"


class UserError(Exception):
    """An error meant for the caller: its ``code``, message and ``metadata`` are returned as is
    (HTTP 400 / a WebSocket error message)."""

    def __init__(self, message: str, *, code: str = "user_error", metadata: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.metadata = metadata

    def to_actor_error(self) -> ActorError:
        """What the caller receives: 400, group ``user``, this error's code and metadata."""
        return ActorError(400, "user", self.code, str(self), self.metadata)


def action(fn: F) -> F:
    """Mark a method as an action callable by clients (``POST /action/<name>`` or over a
    connection). Arguments and results travel as JSON."""
    setattr(fn, ACTION_ATTR, True)
    return fn


@dataclass(frozen=True, slots=True)
class PreloadBudgets:
    """Per-actor overrides of the engine's preload byte budgets (None: the engine default; 0
    disables that prefix). Sent as the actor name's metadata in ``prepopulateActorNames``."""

    sqlite_bytes: int | None = None
    workflow_bytes: int | None = None
    connections_bytes: int | None = None

    def metadata(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, value in (
            ("preloadMaxSqliteBytes", self.sqlite_bytes),
            ("preloadMaxWorkflowBytes", self.workflow_bytes),
            ("preloadMaxConnectionsBytes", self.connections_bytes),
        ):
            if value is not None:
                if not 0 <= value < 1 << 64:
                    raise ValueError(f"{key} must be an unsigned 64-bit integer")
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class ActorOptions:
    #: go to sleep after this many seconds without connections or requests (None: never)
    sleep_after: float | None = 30.0
    #: the state is saved at most this often while it changes (and always before sleeping)
    state_save_interval: float = 1.0
    #: an action running longer than this fails with ``action_timed_out``
    action_timeout: float = 60.0
    #: how long ``on_sleep`` and the final save may take
    sleep_timeout: float = 15.0
    #: WebSocket connections (``/connect``) survive the actor sleeping
    hibernatable_connections: bool = True
    preload: PreloadBudgets = field(default_factory=PreloadBudgets)


class Actor(Generic[S]):
    """Base class of actor definitions. Class attributes: :attr:`name` (the actor type name,
    required), :attr:`options`, :attr:`database` (open a per-actor SQLite database at start).
    Override the hooks you need."""

    name: str = ""
    options: ActorOptions = ActorOptions()
    #: open the actor's SQLite database during startup (``self.db``)
    database: bool = False

    _instance: ActorInstance[S]

    # -- hooks (override) ---------------------------------------------------------------------
    def create_state(self, input: Any) -> S | Awaitable[S]:
        """The initial state of a new actor (``input`` as given at creation)."""
        return None  # type: ignore[return-value]

    def create_vars(self) -> Any:
        """Ephemeral per-wake values (``self.vars``); not persisted."""
        return None

    def on_create(self) -> Awaitable[None] | None:
        """Once, after ``create_state`` of a new actor."""
        return None

    def on_wake(self) -> Awaitable[None] | None:
        """Every start, after state and vars are ready."""
        return None

    def on_sleep(self) -> Awaitable[None] | None:
        """Before the actor sleeps or stops (the state is saved after it)."""
        return None

    def on_destroy(self) -> Awaitable[None] | None:
        """Before the actor is destroyed by :meth:`destroy`."""
        return None

    def migrate(self, db: Database) -> Awaitable[None] | None:
        """Database migrations, run at every start before the actor is ready."""
        return None

    def on_before_connect(self, params: Any) -> Awaitable[None] | None:
        """Validate a connection's params; raise :class:`UserError` to refuse it."""
        return None

    def create_conn_state(self, params: Any) -> Any:
        """The state of a new connection (persisted for hibernatable connections)."""
        return None

    def on_connect(self, conn: Conn) -> Awaitable[None] | None:
        return None

    def on_disconnect(self, conn: Conn) -> Awaitable[None] | None:
        return None

    async def on_request(self, request: HttpRequest) -> HttpResponse | None:
        """Raw HTTP requests on paths the framework does not serve (None: 404)."""
        return None

    async def on_websocket(self, ws: WebSocket) -> None:
        """Raw WebSockets on paths other than ``/connect`` (default: closed)."""
        await ws.close(1000, "no handler")

    async def run(self) -> None:
        """Optional long-running task (e.g. a queue consumer), cancelled when the actor stops."""

    # -- what the actor can use -----------------------------------------------------------------
    @property
    def actor_id(self) -> str:
        return self._instance.actor_id

    @property
    def key(self) -> str | None:
        return self._instance.key

    @property
    def state(self) -> S:
        return self._instance.state

    @state.setter
    def state(self, value: S) -> None:
        self._instance.state = value

    @property
    def vars(self) -> Any:
        return self._instance.vars

    @vars.setter
    def vars(self, value: Any) -> None:
        self._instance.vars = value

    @property
    def kv(self) -> UserKv:
        return self._instance.user_kv

    @property
    def queue(self) -> Queue:
        return self._instance.queue

    @property
    def db(self) -> Database:
        return self._instance.database

    @property
    def schedule(self) -> Schedule:
        return self._instance.schedule

    @property
    def conns(self) -> list[Conn]:
        return self._instance.connections.all()

    @property
    def conn(self) -> Conn | None:
        """The connection of the action being run (None for plain HTTP calls and hooks)."""
        return self._instance.current_conn()

    @property
    def inspector_token(self) -> str:
        return self._instance.inspector_token

    def broadcast(self, event: str, *args: Any) -> None:
        """Send ``event`` to every connection subscribed to it."""
        self._instance.connections.broadcast(event, list(args))

    async def save_state(self) -> None:
        """Persist the state now (it is otherwise saved within ``state_save_interval``)."""
        await self._instance.save_state(force=True)

    async def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run a durable workflow step once: its result is persisted and returned again,
        without running ``fn``, on every later call with the same name (also after a wake)."""
        return await self._instance.workflow.step(name, fn)

    def sleep(self) -> None:
        """Ask to sleep now (state is saved first; hibernatable connections stay open)."""
        self._instance.request_sleep()

    def destroy(self) -> None:
        """Destroy the actor: ``on_destroy`` runs, then the engine removes it and its data."""
        self._instance.request_destroy()


def actions_of(cls: type[Actor[Any]]) -> frozenset[str]:
    """The names of the methods marked with :func:`action` (an action is called by its
    method's name)."""
    return frozenset(
        attr
        for attr, value in inspect.getmembers(cls)
        if callable(value) and getattr(value, ACTION_ATTR, False)
    )


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result
