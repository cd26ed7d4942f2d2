"""A counter actor: durable state, an event, actions.

    rivetpy dev examples/counter.py
    curl -X POST 'http://127.0.0.1:6420/gateway/counter/action/increment?rvt-method=getOrCreate&rvt-key=demo&rvt-runner=rivetpy' -d '{"args": [5]}'
"""

from __future__ import annotations

from typing import Any, TypedDict

from rivetpy.actor import Actor, ActorOptions, action


class CounterState(TypedDict):
    count: int


class Counter(Actor[CounterState]):
    name = "counter"
    options = ActorOptions(sleep_after=30.0)

    def create_state(self, input: Any) -> CounterState:
        start = input.get("start", 0) if isinstance(input, dict) else 0
        return {"count": int(start)}

    @action
    def increment(self, amount: int = 1) -> int:
        self.state["count"] += amount
        self.broadcast("count", self.state["count"])
        return self.state["count"]

    @action
    def get(self) -> int:
        return self.state["count"]

    @action
    def reset(self) -> int:
        self.state["count"] = 0
        self.broadcast("count", 0)
        return 0
