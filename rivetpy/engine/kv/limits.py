"""The engine's actor KV limits (kv-preload.md §9); each violation is a :class:`KvLimitError`.

Checks are pure and run before anything is written, so a rejected request writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from codec import v8

MAX_KEY_SIZE = 2048
MAX_VALUE_SIZE = 128 * 1024
MAX_KEYS = 128
MAX_PUT_PAYLOAD_SIZE = 976 * 1024
MAX_STORAGE_SIZE = 10 * 1024 * 1024 * 1024
DEFAULT_LIST_LIMIT = 16_384


class KvError(Exception):
    """A KV request failed; ``message`` is what the runner receives in ``KvErrorResponse``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KvLimitError(KvError):
    """The request breaks a KV limit; nothing was written."""


class KvStorageQuotaError(KvLimitError):
    """The put would make the actor's storage exceed :data:`MAX_STORAGE_SIZE`."""


def wrapped_len(key: bytes) -> int:
    """A key's size as the limits count it: ``len(K) + 2`` (the wrapper's framing)."""
    return len(key) + 2


def _check_key(key: bytes, what: str = "key") -> None:
    if wrapped_len(key) > MAX_KEY_SIZE:
        raise KvLimitError(f"{what} is too long (max {MAX_KEY_SIZE} bytes)")


def validate_keys(keys: Sequence[bytes]) -> None:
    """get and delete: at most :data:`MAX_KEYS` keys, each within :data:`MAX_KEY_SIZE`."""
    if len(keys) > MAX_KEYS:
        raise KvLimitError(f"a maximum of {MAX_KEYS} keys is allowed")
    for key in keys:
        _check_key(key)


def validate_range(start: bytes, end: bytes) -> None:
    _check_key(start, "start key")
    _check_key(end, "end key")


def validate_list_query(query: v8.KvListQuery, limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise KvLimitError("limit must not be negative")
    if isinstance(query, v8.KvListRangeQuery):
        validate_range(query.start, query.end)
    elif isinstance(query, v8.KvListPrefixQuery):
        _check_key(query.key, "prefix key")


def put_payload_size(keys: Sequence[bytes], values: Sequence[bytes]) -> int:
    return sum(wrapped_len(k) for k in keys) + sum(len(v) for v in values)


def validate_put(keys: Sequence[bytes], values: Sequence[bytes]) -> int:
    """Every put limit except the storage quota; returns the payload size."""
    if len(keys) != len(values):
        raise KvLimitError("keys list length != values list length")
    if len(keys) > MAX_KEYS:
        raise KvLimitError(f"a maximum of {MAX_KEYS} key-value entries is allowed")
    payload = put_payload_size(keys, values)
    if payload > MAX_PUT_PAYLOAD_SIZE:
        raise KvLimitError(f"total payload is too large (max {MAX_PUT_PAYLOAD_SIZE // 1024} KiB)")
    for key in keys:
        _check_key(key)
    for value in values:
        if not value:
            raise KvLimitError("value cannot be empty")
        if len(value) > MAX_VALUE_SIZE:
            raise KvLimitError(f"value is too large (max {MAX_VALUE_SIZE // 1024} KiB)")
    return payload


def check_quota(stored: int, payload: int, quota: int = MAX_STORAGE_SIZE) -> None:
    """Raise :class:`KvStorageQuotaError` if ``payload`` does not fit next to ``stored``."""
    remaining = max(0, quota - stored)
    if payload > remaining:
        raise KvStorageQuotaError(
            f"not enough space left in storage ({remaining} bytes remaining,"
            f" current payload is {payload} bytes)"
        )
