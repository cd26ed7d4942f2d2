"""Engine configuration: the ``pegboard`` preload settings (kv-preload.md §3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rivetpy.engine.store.factory import StoreConfig

U64_MAX = (1 << 64) - 1

DEFAULT_PRELOAD_MAX_TOTAL_BYTES = 1_048_576
DEFAULT_PRELOAD_MAX_SQLITE_BYTES = 786_432
DEFAULT_PRELOAD_MAX_WORKFLOW_BYTES = 131_072
DEFAULT_PRELOAD_MAX_CONNECTIONS_BYTES = 65_536


def as_u64(value: object) -> int | None:
    """``value`` if it is an integer in ``[0, 2**64)`` (not a bool or float), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX:
        return value
    return None


@dataclass(frozen=True, slots=True)
class PegboardConfig:
    """Preload byte budgets. ``preload_max_total_bytes == 0`` disables preloading; a prefix
    budget of 0 disables that prefix."""

    preload_max_total_bytes: int = DEFAULT_PRELOAD_MAX_TOTAL_BYTES
    preload_max_sqlite_bytes: int = DEFAULT_PRELOAD_MAX_SQLITE_BYTES
    preload_max_workflow_bytes: int = DEFAULT_PRELOAD_MAX_WORKFLOW_BYTES
    preload_max_connections_bytes: int = DEFAULT_PRELOAD_MAX_CONNECTIONS_BYTES

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if as_u64(getattr(self, name)) is None:
                raise ValueError(f"pegboard.{name} must be an unsigned 64-bit integer")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> PegboardConfig:
        """Build from a config section; missing or ``None`` keys take the defaults.

        Raises ``ValueError`` for unknown keys or values that are not u64.
        """
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown pegboard config keys: {sorted(unknown)}")
        given = {k: v for k, v in data.items() if v is not None}
        return cls(**given)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    store: StoreConfig = field(default_factory=StoreConfig)
    pegboard: PegboardConfig = field(default_factory=PegboardConfig)
