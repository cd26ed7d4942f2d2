"""The codec's error types.

Contract: every decode entry point raises :class:`DecodeError` and nothing else on bad input;
every encode entry point raises :class:`EncodeError` and nothing else on a value that cannot be
encoded. Both carry the path of the failing field in schema names (``ToClient.ToClientCommands[0]
.inner.CommandStartActor.config.name``) so that a message can be traced to the byte or attribute
that broke it.
"""

from __future__ import annotations


class CodecError(Exception):
    """Base class of the codec's errors. ``path`` names the failing field ("" = the whole value)."""

    def __init__(self, reason: str, path: str = "", offset: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.offset = offset
        where = path or "<message>"
        at = f" (byte {offset})" if offset is not None else ""
        super().__init__(f"{where}{at}: {reason}")


class DecodeError(CodecError):
    """The bytes are not a valid encoding of the requested type and version.

    ``offset`` is the byte offset at which the problem was detected.
    """


class EncodeError(CodecError):
    """The value cannot be encoded: wrong Python type, integer out of range, fixed-size data of
    the wrong length, a string that is not encodable as UTF-8, an unsupported version, or an
    encoding larger than the configured maximum message size."""
