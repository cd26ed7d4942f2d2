"""Actor startup with zero KV round trips when the engine preloaded the startup data.

Order (kv-preload.md §7.3): arm the guard (only with an engine preload) → adopt workflow steps
→ state (new actor: ``create_state``/``on_create``, record collected; existing: decode it and
restore connections) → queue metadata → inspector token → ONE put of everything collected →
``create_vars`` → ``on_wake`` → database (preloaded pages, migrations) → alarms → hibernating
sockets restored → ready (guard finished with its summary, preload dropped).

Without an engine preload (protocol v7, the real engine) a client-side map is built from one
batched get of the three startup keys plus, for an existing actor, the connections and workflow
prefixes; SQLite pages are then read per page on demand.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import cbor2

from rivetpy.actor import keys
from rivetpy.actor.instance import ActorInstance
from rivetpy.actor.kv import SqlitePageKv
from rivetpy.actor.persist import PersistedActor, PersistedConn
from rivetpy.actor.preload import NOT_PRELOADED, PreloadMap
from rivetpy.actor.write_collector import WriteCollector

log = logging.getLogger("rivetpy.actor.startup")


def decode_input(raw: bytes | None) -> Any:
    """The actor's creation input: CBOR (what :mod:`rivetpy.client` sends); otherwise the
    bytes themselves."""
    if raw is None:
        return None
    try:
        return cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError):
        return raw


async def _get(inst: ActorInstance[Any], pm: PreloadMap, key: bytes, site: str) -> bytes | None:
    hit = pm.get(key)
    if hit is NOT_PRELOADED:
        return (await inst.kv.get([key], site))[0]
    return hit.value


async def _list(
    inst: ActorInstance[Any], pm: PreloadMap, prefix: bytes, site: str
) -> list[tuple[bytes, bytes]]:
    found = pm.list_prefix(prefix)
    if found is NOT_PRELOADED:
        return await inst.kv.list_prefix(prefix, site)
    return found


async def _client_side_map(inst: ActorInstance[Any]) -> PreloadMap:
    """One batched get of the startup keys; the prefixes are listed only for existing actors."""
    get_keys = list(keys.PRELOAD_GET_KEYS)
    values = await inst.kv.get(get_keys, "startup")
    entries = [(k, v) for k, v in zip(get_keys, values, strict=True) if v is not None]
    prefixes: list[bytes] = []
    if values[0] is not None:
        for prefix, site in ((keys.CONNECTIONS, "connections"), (keys.WORKFLOW, "workflow")):
            entries.extend(await inst.kv.list_prefix(prefix, site))
            prefixes.append(prefix)
    return PreloadMap(entries, get_keys, prefixes)


async def start_instance(inst: ActorInstance[Any]) -> None:
    handle = inst.handle
    if handle.preloaded_kv is not None:
        pm = PreloadMap.from_preloaded(handle.preloaded_kv)
        inst.guard.arm()
        engine_preload = True
    else:
        pm = await _client_side_map(inst)
        engine_preload = False
    inst.kv.preload = pm

    workflow = pm.list_prefix(keys.WORKFLOW)
    if workflow is not NOT_PRELOADED:
        inst.workflow.adopt(workflow)

    collector = WriteCollector(inst.kv.put)
    raw = await _get(inst, pm, keys.PERSIST_DATA, "state")
    record = None if raw is None else PersistedActor.decode(raw)
    if record is None or not record.initialized:
        inst.is_new = True
        input_value = decode_input(handle.input) if record is None else record.input
        state = await inst.run_hook("create_state", input_value)
        inst.record = PersistedActor(True, input_value, state, [])
        await inst.run_hook("on_create")
        encoded = inst.record.encode()
        collector.add(keys.PERSIST_DATA, encoded)
        inst.mark_saved_record(encoded)
    else:
        inst.record = record
        inst.mark_saved_record(raw)  # type: ignore[arg-type]
        for key, value in await _list(inst, pm, keys.CONNECTIONS, "connections"):
            try:
                inst.connections.adopt(PersistedConn.decode(value))
            except ValueError:
                log.exception("dropping a corrupt connection record", extra={"kv_key": key.hex()})

    queue_write = inst.queue._load_metadata(await _get(inst, pm, keys.QUEUE_METADATA, "queue"))
    if queue_write is not None:
        collector.add(keys.QUEUE_METADATA, queue_write)

    token = await _get(inst, pm, keys.INSPECTOR_TOKEN, "inspector")
    if token is None:
        token = secrets.token_hex(32).encode()
        collector.add(keys.INSPECTOR_TOKEN, token)
    inst.inspector_token = token.decode("utf-8", "replace")

    await collector.flush()

    inst.vars = await inst.run_hook("create_vars")
    await inst.run_hook("on_wake")

    if inst.definition.database:
        from rivetpy.actor.database import open_database  # noqa: PLC0415 (apsw only if used)

        pages = pm.list_prefix(keys.SQLITE)
        inst._db = await open_database(
            SqlitePageKv(inst.kv),
            preloaded=None if pages is NOT_PRELOADED else pages,
            migrate=lambda db: inst.run_hook("migrate", db),
        )

    inst.sync_engine_alarm()
    _restore_connections(inst)

    inst.kv.preload = None
    inst.guard.finish()
    inst.kv.stats.mark_ready()
    log.debug(
        "actor ready",
        extra={
            "actor_id": inst.actor_id,
            "actor_name": inst.name,
            "new_actor": inst.is_new,
            "engine_preload": engine_preload,
            "kv_reads": inst.kv.stats.reads,
            "kv_writes": inst.kv.stats.writes,
        },
    )


def _restore_connections(inst: ActorInstance[Any]) -> None:
    """Re-attach every persisted connection whose socket the engine listed; the others are
    stale (their socket is gone) and are removed with the next save."""
    listed = set(inst.handle.hibernating_requests)
    for conn in inst.connections.all():
        key = conn.tunnel_key
        if key is None:
            continue
        info = conn.socket_info
        assert info is not None
        if key not in listed:
            log.info("removing a stale connection", extra={"conn_id": conn.id})
            inst.connections.remove(conn)
            inst.stale_conns.append(conn)
            continue
        conn.restored = True
        conn.ws = inst.handle.restore_websocket(
            key,
            server_index=info.server_index,
            client_index=info.client_index,
            path=info.path,
            headers=info.headers,
        )
