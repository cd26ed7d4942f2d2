"""Errors of the sans-IO runner core, split by blame (as h11 does).

* :class:`LocalProtocolError`: the caller asked for something illegal (an actor that is not
  hosted, a tunnel message for a request that is not open, a payload over the engine's limit).
  The core's state is unchanged.
* :class:`RemoteProtocolError`: the engine sent something that violates the protocol (an
  undecodable frame, a message before the handshake). The connection should be closed with
  1011 ``runner.invalid_frame`` and re-established.

No other exception escapes the core; anything else is a bug.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of the core's errors."""


class LocalProtocolError(ProtocolError):
    """The local caller asked for an illegal action; nothing was changed."""


class RemoteProtocolError(ProtocolError):
    """The peer sent garbage; the connection should be dropped and re-established."""
