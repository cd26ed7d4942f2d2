"""Notes in the actor's own SQLite database (pages stored in actor KV, preloaded at wake).

    rivetpy dev examples/sqlite_notes.py
    curl -X POST 'http://127.0.0.1:6420/gateway/notes/action/add?rvt-method=getOrCreate&rvt-key=mine&rvt-runner=rivetpy' -d '{"args": ["buy milk"]}'
    curl -X POST 'http://127.0.0.1:6420/gateway/notes/action/search?rvt-method=getOrCreate&rvt-key=mine&rvt-runner=rivetpy' -d '{"args": ["milk"]}'
"""

from __future__ import annotations

from typing import Any

from rivetpy.actor import Actor, ActorOptions, Database, action


class Notes(Actor[None]):
    name = "notes"
    database = True
    options = ActorOptions(sleep_after=30.0)

    async def migrate(self, db: Database) -> None:
        await db.executescript(
            """
            CREATE TABLE IF NOT EXISTS notes(
                id INTEGER PRIMARY KEY,
                body TEXT NOT NULL,
                created TEXT NOT NULL DEFAULT (datetime('now'))
            );
            CREATE INDEX IF NOT EXISTS notes_body ON notes(body);
            """
        )

    @action
    async def add(self, body: str) -> int:
        rows = await self.db.execute("INSERT INTO notes(body) VALUES (?) RETURNING id", (body,))
        return int(rows[0][0])

    @action
    async def search(self, text: str) -> list[dict[str, Any]]:
        rows = await self.db.execute(
            "SELECT id, body, created FROM notes WHERE body LIKE ? ORDER BY id",
            (f"%{text}%",),
        )
        return [{"id": r[0], "body": r[1], "created": r[2]} for r in rows]

    @action
    async def count(self) -> int:
        return int((await self.db.execute("SELECT count(*) FROM notes"))[0][0])
