"""The feature store: item and user features looked up by id, so a request may carry ids only.

    snapshot.py    one snapshot in memory: Arrow columns and an id index (id_index.py: a numpy hash table)
    snapshots.py   snapshots in the registry: validate, publish, load (their own CURRENT per entity)
    embedded.py    EmbeddedStore (the default): follows the snapshots' CURRENT, swaps atomically
    redis_store.py RedisStore: one MGET per request, optional TTL cache, timeouts, circuit
    redis_loader.py  writes a snapshot or incremental updates to Redis (`ranker features load-redis`)
    lookup.py      the request step: fill missing features (request values win), count misses
    metrics.py     lookups, misses, store errors per entity; snapshot loads
"""
