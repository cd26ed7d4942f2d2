"""Rivet runner protocol codec, v7 and v8, byte-identical to Rivet's reference codec.

Values are the generated frozen dataclasses of :mod:`codec.v8` (the latest); ``decode`` and
``encode`` convert at the edge for a runner or stored payload of another version::

    import codec
    msg = codec.TO_CLIENT.decode(frame, version=7)      # -> codec.v8.ToClient
    frame = codec.TO_SERVER.encode(codec.v8.ToServerPong(ts=1), version=7)

Bad bytes raise :class:`DecodeError` and nothing else; unencodable values raise
:class:`EncodeError` and nothing else. Both carry the failing field's path.
"""

from codec.errors import CodecError, DecodeError, EncodeError
from codec.generated import v7, v8
from codec.json_mapping import from_json, to_json
from codec.versioned import (
    ACTOR_COMMAND_KEY_DATA,
    DEFAULT_MAX_MESSAGE_SIZE,
    LATEST,
    TO_CLIENT,
    TO_GATEWAY,
    TO_RUNNER,
    TO_SERVER,
    TO_SERVERLESS_SERVER,
    TOP_LEVEL,
    TopLevel,
    bare_type,
    decode,
    decode_embedded,
    decode_embedded_raw,
    decode_raw,
    downgrade,
    encode,
    encode_embedded,
    encode_raw,
    read_embedded_version,
    upgrade,
)

__all__ = [
    "ACTOR_COMMAND_KEY_DATA",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "LATEST",
    "TOP_LEVEL",
    "TO_CLIENT",
    "TO_GATEWAY",
    "TO_RUNNER",
    "TO_SERVER",
    "TO_SERVERLESS_SERVER",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "TopLevel",
    "bare_type",
    "decode",
    "decode_embedded",
    "decode_embedded_raw",
    "decode_raw",
    "downgrade",
    "encode",
    "encode_embedded",
    "encode_raw",
    "from_json",
    "read_embedded_version",
    "to_json",
    "upgrade",
    "v7",
    "v8",
]
