"""Actor definitions used by the actor tests."""

from __future__ import annotations

from typing import Any

from rivetpy.actor.database import Database
from rivetpy.actor.definition import Actor, ActorOptions, UserError, action


class Counter(Actor[dict[str, Any]]):
    name = "counter"
    options = ActorOptions(sleep_after=None, state_save_interval=0.05)

    def create_state(self, input: Any) -> dict[str, Any]:
        start = input.get("start", 0) if isinstance(input, dict) else 0
        return {"count": start}

    def create_vars(self) -> dict[str, int]:
        return {"calls": 0}

    @action
    async def increment(self, amount: int = 1) -> int:
        self.vars["calls"] += 1
        self.state["count"] += amount
        self.broadcast("count", self.state["count"])
        return int(self.state["count"])

    @action
    def get(self) -> int:
        return int(self.state["count"])

    @action
    def calls(self) -> int:
        return int(self.vars["calls"])

    @action
    def fail(self, how: str) -> None:
        if how == "user":
            raise UserError("not allowed", code="forbidden", metadata={"why": "test"})
        raise RuntimeError("boom")

    @action
    def go_to_sleep(self) -> None:
        self.sleep()


class Everything(Actor[dict[str, Any]]):
    """Uses every startup subsystem: state, connections, queue, workflow, SQLite."""

    name = "everything"
    database = True
    options = ActorOptions(sleep_after=None, state_save_interval=0.05)

    def create_state(self, input: Any) -> dict[str, Any]:
        return {"notes": 0, "blob": ""}

    async def migrate(self, db: Database) -> None:
        await db.executescript(
            "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)"
        )

    @action
    async def add_note(self, body: str) -> int:
        await self.db.execute("INSERT INTO notes(body) VALUES (?)", (body,))
        self.state["notes"] += 1
        return int(self.state["notes"])

    @action
    async def notes(self) -> list[str]:
        rows = await self.db.execute("SELECT body FROM notes ORDER BY id")
        return [str(r[0]) for r in rows]

    @action
    def set_blob(self, size: int) -> None:
        self.state["blob"] = "x" * size

    @action
    async def enqueue(self, body: Any) -> int:
        return await self.queue.send("jobs", body)

    @action
    async def take(self) -> list[Any]:
        return [m.body for m in await self.queue.receive(["jobs"], count=10, timeout=0)]

    @action
    async def once(self, name: str) -> Any:
        counter = self.vars if isinstance(self.vars, dict) else {}
        self.vars = counter

        def run() -> int:
            counter[name] = counter.get(name, 0) + 1
            return len(name)

        return await self.step(name, run)

    @action
    async def kv_put(self, key: str, value: str) -> None:
        await self.kv.put(key, value.encode())

    @action
    async def kv_get(self, key: str) -> str | None:
        raw = await self.kv.get(key)
        return None if raw is None else raw.decode()

    @action
    def go_to_sleep(self) -> None:
        self.sleep()


class Room(Actor[dict[str, Any]]):
    """A chat room: connections with params and state, events, hooks."""

    name = "room"
    options = ActorOptions(sleep_after=None, state_save_interval=0.05)

    def create_state(self, input: Any) -> dict[str, Any]:
        return {"messages": [], "joined": 0, "left": 0}

    def on_before_connect(self, params: Any) -> None:
        if not isinstance(params, dict) or not params.get("user"):
            raise UserError("a user name is required", code="no_user")

    def create_conn_state(self, params: Any) -> dict[str, Any]:
        return {"user": params["user"], "sent": 0}

    def on_connect(self, conn: Any) -> None:
        self.state["joined"] += 1

    def on_disconnect(self, conn: Any) -> None:
        self.state["left"] += 1

    @action
    def say(self, text: str) -> int:
        conn = self.conn
        user = conn.state["user"] if conn is not None else "http"
        if conn is not None:
            conn.state["sent"] += 1
        self.state["messages"].append([user, text])
        self.broadcast("message", user, text)
        return len(self.state["messages"])

    @action
    def history(self) -> list[Any]:
        return list(self.state["messages"])

    @action
    def stats(self) -> dict[str, int]:
        return {"joined": self.state["joined"], "left": self.state["left"]}

    @action
    def me(self) -> Any:
        return None if self.conn is None else self.conn.state


class Scheduler(Actor[dict[str, Any]]):
    name = "scheduler"
    options = ActorOptions(sleep_after=None, state_save_interval=0.05)

    def create_state(self, input: Any) -> dict[str, Any]:
        return {"fired": []}

    @action
    def later(self, seconds: float, tag: str) -> str:
        return self.schedule.after(seconds, "fire", tag)

    @action
    def fire(self, tag: str) -> None:
        self.state["fired"].append(tag)

    @action
    def fired(self) -> list[str]:
        return list(self.state["fired"])

    @action
    def go_to_sleep(self) -> None:
        self.sleep()


class Sleepy(Actor[dict[str, Any]]):
    name = "sleepy"
    options = ActorOptions(sleep_after=0.3, state_save_interval=0.05)

    def create_state(self, input: Any) -> dict[str, Any]:
        return {"wakes": 0, "sleeps": 0}

    def on_wake(self) -> None:
        self.state["wakes"] += 1

    def on_sleep(self) -> None:
        self.state["sleeps"] += 1

    @action
    def counts(self) -> dict[str, int]:
        return dict(self.state)

    @action
    def destroy_me(self) -> None:
        self.destroy()


class BrokenWake(Actor[None]):
    name = "broken-wake"
    options = ActorOptions(sleep_after=None)

    def on_wake(self) -> None:
        raise RuntimeError("on_wake exploded")

    @action
    def ping(self) -> str:
        return "pong"
