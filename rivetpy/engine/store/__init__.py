"""Transactional ordered key-value store with FoundationDB semantics (see :mod:`.api`).

Backends: :class:`~rivetpy.engine.store.sqlite.SqliteStore` (embedded, the default) and
:class:`~rivetpy.engine.store.foundationdb.FdbStore` (official bindings, loaded lazily).
"""

from rivetpy.engine.store.api import (
    MAX_KEY_SIZE,
    MAX_TRANSACTION_SIZE,
    MAX_VALUE_SIZE,
    ConflictError,
    InvertedRangeError,
    KeyOutsideLegalRangeError,
    KeyTooLargeError,
    KeyValue,
    ReadOnlyTransactionError,
    ReadTransaction,
    RetryableError,
    RetryLimitExceededError,
    Store,
    StoreBackendError,
    StoreClosedError,
    StoreError,
    StoreLimitError,
    Transaction,
    TransactionTooLargeError,
    ValueTooLargeError,
)
from rivetpy.engine.store.factory import StoreConfig, open_store
from rivetpy.engine.store.ranges import RangePages

__all__ = [
    "MAX_KEY_SIZE",
    "MAX_TRANSACTION_SIZE",
    "MAX_VALUE_SIZE",
    "ConflictError",
    "InvertedRangeError",
    "KeyOutsideLegalRangeError",
    "KeyTooLargeError",
    "KeyValue",
    "RangePages",
    "ReadOnlyTransactionError",
    "ReadTransaction",
    "RetryLimitExceededError",
    "RetryableError",
    "Store",
    "StoreBackendError",
    "StoreClosedError",
    "StoreConfig",
    "StoreError",
    "StoreLimitError",
    "Transaction",
    "TransactionTooLargeError",
    "ValueTooLargeError",
    "open_store",
]
