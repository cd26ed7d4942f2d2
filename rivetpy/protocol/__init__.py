"""Sans-IO runner protocol core: no sockets, no clock, no trio.

:class:`RunnerCore` takes decoded ``ToClient`` messages and local calls, and gives back
``ToServer`` messages and :mod:`events <rivetpy.protocol.events>`. The Trio driver in
:mod:`rivetpy.runner` is a thin loop around it.
"""

from rivetpy.protocol import events
from rivetpy.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from rivetpy.protocol.runner import (
    ConnState,
    Instance,
    InstanceState,
    Lifecycle,
    RunnerConfig,
    RunnerCore,
)

__all__ = [
    "ConnState",
    "Instance",
    "InstanceState",
    "Lifecycle",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RunnerConfig",
    "RunnerCore",
    "events",
]
