"""Actor definitions used by the actor tests."""

from __future__ import annotations

from typing import Any

from rivetpy.actor.definition import Actor, ActorOptions, UserError, action
from rivetpy.actor.database import Database


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
        await db.executescript("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)")

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
