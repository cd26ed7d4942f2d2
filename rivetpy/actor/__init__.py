"""Rivet actors in Python: subclass :class:`Actor`, mark actions with :func:`action`, run them
with ``rivetpy dev app.py`` (or :class:`ActorApp` on any runner)."""

from rivetpy.actor.app import ActorApp, StartupReport
from rivetpy.actor.connections import Conn
from rivetpy.actor.database import Database
from rivetpy.actor.definition import Actor, ActorOptions, PreloadBudgets, UserError, action
from rivetpy.actor.queue import QueueMessage

__all__ = [
    "Actor",
    "ActorApp",
    "ActorOptions",
    "Conn",
    "Database",
    "PreloadBudgets",
    "QueueMessage",
    "StartupReport",
    "UserError",
    "action",
]
