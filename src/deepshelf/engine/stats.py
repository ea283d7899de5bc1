"""`/v1/stats/events`, bounded and cached: at most `Settings.max_stats_buckets` buckets per answer (a wider range
or a finer bucket is a 422 naming `days`), and each answer is kept `Settings.stats_cache_s` seconds, computed once
however many callers ask for it at the same time (the others wait for it rather than scan the events again)."""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from deepshelf.storage import Store

BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}


class EventBucket(BaseModel):
    start: datetime
    count: int
    by_type: dict[str, int]


class EventStats(BaseModel):
    bucket_seconds: int
    since: datetime
    total: int
    buckets: list[EventBucket]


class TtlCache:
    """Values by key for `ttl_s` seconds; one computation per key at a time (single flight)."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._values: dict[Any, tuple[float, Any]] = {}
        self._computing: dict[Any, threading.Lock] = {}

    def _fresh(self, key) -> tuple[bool, Any]:
        hit = self._values.get(key)
        return (True, hit[1]) if hit is not None and hit[0] > time.monotonic() else (False, None)

    def get(self, key, compute: Callable[[], Any]) -> Any:
        with self._lock:
            found, value = self._fresh(key)
            if found:
                return value
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found, value = self._fresh(key)  # computed by the caller this one waited for
            if found:
                return value
            value = compute()
            with self._lock:
                now = time.monotonic()
                self._values = {k: v for k, v in self._values.items() if v[0] > now}
                self._values[key] = (now + self.ttl_s, value)
        return value


_caches: weakref.WeakKeyDictionary[Store, TtlCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def buckets_needed(bucket: str, days: float) -> int:
    """How many buckets `days` spans (an answer holds at most one more, partly filled)."""
    return math.ceil(days * 86400 / BUCKETS[bucket])


def event_stats(store: Store, bucket: str, days: float, cache_s: float) -> EventStats:
    """Events stored per bucket (and per type) over the last `days` (callers check `buckets_needed` first)."""
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None or cache.ttl_s != cache_s:
            cache = _caches[store] = TtlCache(cache_s)
    return cache.get((bucket, float(days)), lambda: _compute(store, bucket, days))


def _compute(store: Store, bucket: str, days: float) -> EventStats:
    seconds = BUCKETS[bucket]
    now = time.time()
    since = now - days * 86400
    grouped: dict[float, dict[str, int]] = {}
    for start, kind, n in store.event_buckets(seconds, since, now):
        grouped.setdefault(start, {})[kind] = n
    buckets = [EventBucket(start=datetime.fromtimestamp(s, timezone.utc), count=sum(by.values()), by_type=by)
               for s, by in sorted(grouped.items())]
    return EventStats(bucket_seconds=seconds, since=datetime.fromtimestamp(since, timezone.utc),
                      total=store.count_events(), buckets=buckets)
