"""The Redis store: for catalogues that change during the day.

Each id's features are one Redis string, `<prefix>:<model>:<entity>:<id>` -> JSON object of raw
values, written by `ranker features load-redis` (a whole snapshot, or incremental updates). A
request's ids are read with one MGET (one round trip, however many candidates), optionally
through a small in-process cache with a TTL.

Failure handling: every read is bounded by `timeout` (connect and read; redis-py retries are
off). A failed read raises StoreUnavailable and opens a short circuit: for `retry_interval`
seconds reads fail at once without touching the network, then the next read tries again on a
fresh connection. So a dead or hung Redis costs at most one timeout per retry interval, and the
store comes back by itself when Redis does. What a failure means for the request (fail-open with
defaults, or 503) is decided by service.feature_store.lookup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import redis
from cachetools import TTLCache
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.contract.bundle import Manifest
from service.contract.features import category_key
from service.feature_store.snapshot import Column, Found

log = logging.getLogger(__name__)
_ABSENT = object()


class StoreUnavailable(Exception):
    """The feature store could not answer in time; the message says why."""


def redis_key(prefix: str, model_name: str, entity: str, entity_id: Any) -> str:
    key = entity_id if type(entity_id) is str else category_key(entity_id)  # noqa: E721
    return f"{prefix}:{model_name}:{entity}:{key}"


class RedisStore:
    """Reads features from Redis.

    Args:
        url: redis://host:port/db.
        model_name: part of every key (models do not share feature keys by accident).
        timeout: seconds a read may take, connecting included.
        retry_interval: seconds reads fail fast after a failure before Redis is tried again.
        cache_ttl: seconds an id's features stay in the in-process cache (0 = no cache).
        cache_size: most ids the cache holds.
        prefix: first part of every key.
    """

    kind = "redis"

    def __init__(self, url: str, model_name: str, timeout: float = 0.05, retry_interval: float = 1.0,
                 cache_ttl: float = 0.0, cache_size: int = 100_000, prefix: str = "ranker") -> None:
        self.url, self.model_name, self.prefix = url, model_name, prefix
        self.timeout, self.retry_interval = timeout, retry_interval
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0), retry_on_timeout=False)
        self._cache: TTLCache | None = TTLCache(cache_size, cache_ttl) if cache_ttl > 0 else None
        self._cache_lock = threading.Lock()
        self._down_until = 0.0
        self.last_error: str | None = None

    def lookup(self, entity: str, ids: Sequence[Any], kinds: dict[str, str]) -> Found:
        """Raw values for B ids; raises StoreUnavailable on an outage or timeout."""
        keys = [redis_key(self.prefix, self.model_name, entity, i) for i in ids]
        rows = self._read(keys)
        found = np.fromiter((r is not None for r in rows), dtype=bool, count=len(rows))
        try:
            return Found(found, {name: _column(rows, name, kind) for name, kind in kinds.items()})
        except (TypeError, ValueError) as e:  # a value of the wrong type: written by something else than the loader
            raise StoreUnavailable(f"redis {self.url}: a stored {entity} value has the wrong type: {e}") from e

    def _read(self, keys: list[str]) -> list[dict | None]:
        """Cached rows where fresh, one MGET for the rest."""
        rows: list[Any] = [_ABSENT] * len(keys)
        if self._cache is not None:
            with self._cache_lock:
                rows = [self._cache.get(k, _ABSENT) for k in keys]
        todo = [i for i, r in enumerate(rows) if r is _ABSENT]
        if todo:
            values = self._mget([keys[i] for i in todo])
            fetched = [orjson.loads(v) if v is not None else None for v in values]
            for i, row in zip(todo, fetched, strict=True):
                rows[i] = row
            if self._cache is not None:
                with self._cache_lock:
                    for i, row in zip(todo, fetched, strict=True):
                        self._cache[keys[i]] = row
        return rows

    def _mget(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable(f"redis {self.url} is unavailable ({self.last_error}); "
                                   f"retrying in {self._down_until - now:.1f} s")
        try:
            return self.client.mget(keys)
        except (redis.RedisError, OSError) as e:
            self._down_until = time.monotonic() + self.retry_interval
            self.last_error = f"{type(e).__name__}: {e}"
            self.client.connection_pool.reset()  # drop connections that may be half-broken
            log.warning("feature store read failed; failing fast for %.1f s", self.retry_interval,
                        extra={"store": "redis", "error": self.last_error})
            raise StoreUnavailable(f"redis {self.url}: {self.last_error}") from e

    def fits(self, manifest: Manifest) -> str | None:
        return None  # the loader validates what it writes against the model

    def check(self) -> dict[str, str]:
        return {}

    async def run(self, interval: float) -> None:
        return None

    async def check_async(self) -> dict[str, str]:
        return {}

    def describe(self) -> dict[str, Any]:
        down = time.monotonic() < self._down_until
        return {"store": self.kind, "url": self.url, "prefix": f"{self.prefix}:{self.model_name}",
                "cache_ttl": self._cache.ttl if self._cache is not None else 0,
                "available": not down, "last_error": self.last_error}


def _column(rows: list[dict | None], name: str, kind: str) -> Column:
    values = [r.get(name) if r is not None else None for r in rows]
    if kind == "numeric":
        return np.array(values, dtype=np.float64)  # None -> NaN; a string raises ValueError
    return values
