"""The embedded engine: a FoundationDB-shaped store, actor KV and startup preload.

* :mod:`rivetpy.engine.store`: the store contract and its backends (SQLite, FoundationDB).
* :mod:`rivetpy.engine.kv`: actor KV on the engine's storage layout, with its limits.
* :mod:`rivetpy.engine.preload`: ``batch_preload`` / ``fetch_preloaded_kv`` (protocol v8).
"""
