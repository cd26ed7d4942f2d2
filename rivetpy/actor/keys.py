"""Actor KV key layout: the first byte(s) of every key name the subsystem that owns it.

The byte values match rivetkit's and the engine's preload request (kv-preload.md §2) exactly;
the engine preloads ``PERSIST_DATA``, ``INSPECTOR_TOKEN`` and ``QUEUE_METADATA`` as get-keys and
``SQLITE``, ``WORKFLOW`` and ``CONNECTIONS`` as prefixes.
"""

from __future__ import annotations

#: the persisted actor record (state, input, scheduled alarms), one key
PERSIST_DATA = b"\x01"
#: persisted connections: ``CONNECTIONS + connection id (UTF-8)``
CONNECTIONS = b"\x02"
#: the inspector token, one key
INSPECTOR_TOKEN = b"\x03"
#: user KV: ``USER_KV + user key``
USER_KV = b"\x04"
#: the durable queue (storage version 1)
QUEUE = b"\x05\x01"
#: queue metadata (next id, size), one key
QUEUE_METADATA = b"\x05\x01\x01"
#: queue messages: ``QUEUE_MESSAGES + u64 big-endian id``
QUEUE_MESSAGES = b"\x05\x01\x02"
#: workflow storage (storage version 1): ``WORKFLOW + step key``
WORKFLOW = b"\x06\x01"
#: traces (write-only, not preloaded)
TRACES = b"\x07\x01"
#: SQLite VFS (schema version 1): file metadata ``SQLITE_META + tag``, pages
#: ``SQLITE_PAGES + tag + u32 big-endian chunk index``
SQLITE = b"\x08\x01"
SQLITE_META = b"\x08\x01\x00"
SQLITE_PAGES = b"\x08\x01\x01"

#: preloaded get-keys and prefixes, in the engine's request order (for client-side fallback)
PRELOAD_GET_KEYS = (PERSIST_DATA, INSPECTOR_TOKEN, QUEUE_METADATA)
PRELOAD_PREFIXES = (SQLITE, WORKFLOW, CONNECTIONS)


def connection_key(conn_id: str) -> bytes:
    return CONNECTIONS + conn_id.encode("utf-8")


def user_key(key: bytes) -> bytes:
    return USER_KV + key


def queue_message_key(message_id: int) -> bytes:
    return QUEUE_MESSAGES + message_id.to_bytes(8, "big")


def workflow_key(step: str) -> bytes:
    return WORKFLOW + step.encode("utf-8")
