"""A chat room: connections with params and per-connection state, events, hooks, history.

    rivetpy dev examples/chat_room.py

Connect with the Python client (the connection survives the room sleeping)::

    async with Client("http://127.0.0.1:6420") as client:
        room = await client.get_or_create("chat-room", "lobby")
        async with room.connect({"user": "ann"}) as conn:
            await conn.subscribe("message")
            await conn.action("say", "hello")
            print(await conn.next_event())
"""

from __future__ import annotations

from typing import Any, TypedDict

from rivetpy.actor import Actor, ActorOptions, Conn, UserError, action

MAX_HISTORY = 100


class RoomState(TypedDict):
    messages: list[list[str]]


class ChatRoom(Actor[RoomState]):
    name = "chat-room"
    options = ActorOptions(sleep_after=60.0)

    def create_state(self, input: Any) -> RoomState:
        return {"messages": []}

    def on_before_connect(self, params: Any) -> None:
        if not isinstance(params, dict) or not str(params.get("user", "")).strip():
            raise UserError("connect with params {'user': <name>}", code="user_required")

    def create_conn_state(self, params: Any) -> dict[str, Any]:
        return {"user": str(params["user"]).strip(), "said": 0}

    def on_connect(self, conn: Conn) -> None:
        self.broadcast("joined", conn.state["user"])

    def on_disconnect(self, conn: Conn) -> None:
        self.broadcast("left", conn.state["user"])

    @action
    def say(self, text: str) -> int:
        conn = self.conn
        if conn is None:
            raise UserError("say needs a connection", code="connection_required")
        conn.state["said"] += 1
        self.state["messages"] = [*self.state["messages"], [conn.state["user"], text]][
            -MAX_HISTORY:
        ]
        self.broadcast("message", conn.state["user"], text)
        return len(self.state["messages"])

    @action
    def history(self) -> list[list[str]]:
        return self.state["messages"]

    @action
    def who(self) -> list[str]:
        return sorted(c.state["user"] for c in self.conns)
