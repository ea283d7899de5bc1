"""Weighted event counts per item since a start time that only moves forward (live trending), kept up to date from
the events stored since the last call instead of aggregating the whole window again each time.

This needs event ids that become visible in increasing order, so that "every id above the last one read" is
exactly what is new: SQLite hands ids out under its single writer's lock (`Store.ids_in_commit_order`).
PostgreSQL allocates them before commit, so a slow transaction can commit a lower id after a higher one was read;
there the store aggregates in the database each time (`Store.item_counts`). A deletion of events (a shopper's
erasure, by any process: the `erasures` marker of migration 7) makes the next call aggregate again from scratch.
"""

from __future__ import annotations

import threading

import numpy as np


def weighted_sum(weights: dict[str, float]) -> str:
    """SQL for the sum of `weights[type]` over a group of events. The weights are the library's own constants (not
    user input), so inlining them is safe; it lets the database do the weighting."""
    cases = " ".join(f"WHEN '{name}' THEN {float(w)!r}" for name, w in weights.items() if name.isalpha())
    return f"SUM(CASE type {cases} ELSE 0 END)"


class WindowCounts:
    """Per item, the sum of `weights[type]` over its events with `ts >= since`, for one set of weights."""

    def __init__(self, store, weights: dict[str, float]):  # store: a base.Store
        self.store = store
        # the same weights item_counts applies (its SQL inlines only alphabetic type names)
        self.weights = {name: float(w) for name, w in weights.items() if name.isalpha()}
        self._lock = threading.Lock()
        self.since: float | None = None
        self.last_id = 0
        self.erasures = -1
        self.full_aggregations = 0  # how often the whole window was aggregated (tests read it)
        self._pos: dict[str, int] = {}
        self._ids: list[str] = []
        self._w = np.zeros(0)
        self._rank = np.zeros(0, np.int64)  # each item's place among the ids in sorted order
        self._best: tuple[int, list[tuple[str, float]]] | None = None  # (limit, answer) until the counts change

    def top(self, since_ts: float, limit: int) -> list[tuple[str, float]]:
        """The `limit` items with the highest positive sums since `since_ts`, best first, ties by item id: what
        `Store.item_counts(since_ts, weights, limit)` answers."""
        with self._lock:
            erasures = self.store.erasure_marker()
            if self.since is None or since_ts < self.since or erasures != self.erasures:
                self._aggregate(since_ts, erasures)
            else:
                self._advance(since_ts)
            if self._best is None or self._best[0] != limit:
                self._best = (limit, self._select(limit))
            return list(self._best[1])

    def _read(self, sql: str, args=()) -> list[tuple]:
        return self.store._read(sql, args)

    def _aggregate(self, since_ts: float, erasures: int) -> None:
        last_id = int(self._read("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])
        rows = self._read(f"SELECT item_id, {weighted_sum(self.weights)} FROM events WHERE ts >= ? AND id <= ? "
                          "GROUP BY item_id", (since_ts, last_id))
        self._ids = [r[0] for r in rows]
        self._pos = {item: i for i, item in enumerate(self._ids)}
        self._w = np.array([r[1] for r in rows], dtype=np.float64)
        self.since, self.last_id, self.erasures = since_ts, last_id, erasures
        self.full_aggregations += 1
        self._best = None

    def _advance(self, since_ts: float) -> None:
        """Add the events stored since the last call (those in the window), subtract the counted ones the window
        has left behind (`since` <= ts < `since_ts`, ids up to the last one read)."""
        new = self._read("SELECT id, item_id, type, ts FROM events WHERE id > ? ORDER BY id", (self.last_id,))
        old = self._read("SELECT item_id, type FROM events WHERE ts >= ? AND ts < ? AND id <= ?",
                         (self.since, since_ts, self.last_id)) if since_ts > self.since else []
        if new:
            self.last_id = max(self.last_id, max(r[0] for r in new))
        changed = self._apply([(r[1], r[2]) for r in new if r[3] >= since_ts], 1.0)
        changed |= self._apply(old, -1.0)
        self.since = since_ts
        if changed:
            self._best = None

    def _apply(self, rows: list[tuple[str, str]], sign: float) -> bool:
        weights = self.weights
        rows = [(item, weights[kind]) for item, kind in rows if weights.get(kind)]
        if not rows:
            return False
        for item, _ in rows:
            if item not in self._pos:
                self._pos[item] = len(self._ids)
                self._ids.append(item)
        if len(self._ids) > len(self._w):
            self._w = np.concatenate([self._w, np.zeros(max(len(self._ids) - len(self._w), len(self._w)))])
        pos = np.fromiter((self._pos[item] for item, _ in rows), np.int64, len(rows))
        np.add.at(self._w, pos, sign * np.fromiter((w for _, w in rows), np.float64, len(rows)))
        if sign < 0:  # fractional weights may leave a rounding residue where the true sum is 0
            touched = self._w[pos]
            self._w[pos] = np.where(np.abs(touched) < 1e-9, 0.0, touched)
        return True

    def _select(self, limit: int) -> list[tuple[str, float]]:
        n = len(self._ids)
        if len(self._rank) != n:  # items seen for the first time: their place in id order
            self._rank = np.empty(n, np.int64)
            self._rank[np.array(sorted(range(n), key=self._ids.__getitem__), dtype=np.int64)] = np.arange(n)
        w = self._w[:n]
        positive = np.flatnonzero(w > 0)
        # weight, highest first, then id (Python's str order is code point order, as SQLite's)
        best = positive[np.lexsort((self._rank[positive], -w[positive]))][:limit]
        ids = self._ids
        return [(ids[i], x) for i, x in zip(best.tolist(), w[best].tolist())]
