"""Actor-name records: ``(namespace_id, actor name)`` → metadata JSON object.

Key: ``(RIVET, PEGBOARD, NAMESPACE, namespace_id, ACTOR, NAME, name)`` (the engine's
``ActorNameKey``). Value: the metadata as UTF-8 JSON (an object). The engine overwrites the record
from ``ToServerInit.prepopulateActorNames`` on every runner (re)connection; preload reads the
per-actor byte budgets from it (kv-preload.md §3.2).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from rivetpy.engine.keys import actor_name_key
from rivetpy.engine.store.api import ReadTransaction, Transaction

log = logging.getLogger("rivetpy.engine.actor_names")


def parse_metadata(text: str | bytes) -> dict[str, Any]:
    """The JSON object in ``text``; anything else (invalid JSON, not an object) gives ``{}``."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def write_actor_name(
    tr: Transaction, namespace_id: str, name: str, metadata: Mapping[str, Any]
) -> None:
    """Create or overwrite the record (last writer wins)."""
    payload = json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True).encode()
    tr.set(actor_name_key(namespace_id, name), payload)


async def read_actor_name_metadata(
    tr: ReadTransaction, namespace_id: str, name: str, *, snapshot: bool = True
) -> dict[str, Any]:
    """The record's metadata; ``{}`` if there is no record or it is not a JSON object."""
    raw = await tr.get(actor_name_key(namespace_id, name), snapshot=snapshot)
    if raw is None:
        return {}
    metadata = parse_metadata(raw)
    if not metadata and raw.strip() != b"{}":
        log.warning(
            "actor name metadata is not a JSON object",
            extra={"namespace_id": namespace_id, "actor_name": name},
        )
    return metadata
