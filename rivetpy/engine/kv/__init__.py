"""Actor KV: the engine's storage layout, limits and operations."""

from rivetpy.engine.kv.actor_kv import ENGINE_VERSION, ActorKv, read_entries
from rivetpy.engine.kv.entry import (
    CorruptEntryError,
    Entry,
    EntryAssembler,
    EntryBuilder,
    decode_metadata,
    encode_metadata,
    entry_size,
)
from rivetpy.engine.kv.layout import VALUE_CHUNK_SIZE, ActorKvLayout, key_wrapper, list_key_wrapper
from rivetpy.engine.kv.limits import (
    DEFAULT_LIST_LIMIT,
    MAX_KEY_SIZE,
    MAX_KEYS,
    MAX_PUT_PAYLOAD_SIZE,
    MAX_STORAGE_SIZE,
    MAX_VALUE_SIZE,
    KvError,
    KvLimitError,
    KvStorageQuotaError,
)

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "ENGINE_VERSION",
    "MAX_KEYS",
    "MAX_KEY_SIZE",
    "MAX_PUT_PAYLOAD_SIZE",
    "MAX_STORAGE_SIZE",
    "MAX_VALUE_SIZE",
    "VALUE_CHUNK_SIZE",
    "ActorKv",
    "ActorKvLayout",
    "CorruptEntryError",
    "Entry",
    "EntryAssembler",
    "EntryBuilder",
    "KvError",
    "KvLimitError",
    "KvStorageQuotaError",
    "decode_metadata",
    "encode_metadata",
    "entry_size",
    "key_wrapper",
    "list_key_wrapper",
    "read_entries",
]
