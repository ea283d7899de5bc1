"""`Interactions` (validated columnar events) and `Histories` (ordered item sequences, one per shopper)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepshelf.data.idmap import IdMap
from deepshelf.data.schema import DEFAULT_EVENT_WEIGHTS, EventType


@dataclass(frozen=True)
class Histories:
    """A batch of item sequences in CSR layout: row b is `items[indptr[b]:indptr[b+1]]`, oldest first.

    The one input every model scores from, so a known shopper, a brand-new one and an anonymous session
    all go through the same call.
    """

    indptr: np.ndarray  # int64 [B + 1]
    items: np.ndarray  # int32 [nnz]
    types: np.ndarray | None = None  # int8 [nnz], event types when known
    timestamps: np.ndarray | None = None  # int64 [nnz], Unix seconds of each event when known

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None = None,
                   timestamps: Sequence[Sequence[int]] | None = None) -> "Histories":
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n = int(indptr[-1])
        items = np.fromiter((i for x in lists for i in x), dtype=np.int32, count=n)
        t = None if types is None else np.fromiter((i for x in types for i in x), dtype=np.int8, count=n)
        ts = None if timestamps is None else np.fromiter((i for x in timestamps for i in x), dtype=np.int64, count=n)
        return cls(indptr, items, t, ts)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, b: int) -> np.ndarray:
        return self.items[self.indptr[b] : self.indptr[b + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def select(self, rows: np.ndarray | slice) -> "Histories":
        """The sub-batch of `rows` (vectorised gather, no per-row Python loop)."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        return self._slices(self.indptr[rows], self.lengths[rows])

    def windows(self, size: int) -> "Histories":
        """Every row cut into windows of up to `size` items that overlap by one, newest window first.

        Window j of a row of n items ends j * (size - 1) items before its end, so each item after a row's first
        is the last one of exactly one window's `size - 1` prediction targets. Windows shorter than 2 are dropped.
        """
        if size < 2:
            raise ValueError(f"window size must be >= 2, got {size}")
        step = size - 1
        count = np.maximum(self.lengths - 1, 0)
        count = -(-count // step)  # windows per row: ceil(targets / step)
        row = np.repeat(np.arange(len(self)), count)
        j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        ends = self.indptr[row + 1] - j * step
        starts = np.maximum(self.indptr[row], ends - size)
        return self._slices(starts, ends - starts)

    def newest(self, n: int) -> "Histories":
        """Each row's newest `n` items (all of a shorter row)."""
        keep = np.minimum(self.lengths, n)
        return self._slices(self.indptr[1:] - keep, keep)

    def first_occurrences(self) -> "Histories":
        """Each row with its repeated items dropped: an item stays where the row has it first, order kept."""
        row = np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)
        _, first = np.unique(row * (int(self.items.max(initial=0)) + 1) + self.items, return_index=True)
        keep = np.sort(first)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row[keep], minlength=len(self)))]).astype(np.int64)
        t = None if self.types is None else self.types[keep]
        ts = None if self.timestamps is None else self.timestamps[keep]
        return Histories(indptr, self.items[keep], t, ts)

    def _slices(self, starts: np.ndarray, lengths: np.ndarray) -> "Histories":
        """Rows `items[starts[b] : starts[b] + lengths[b]]`, gathered without a Python loop."""
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        t = None if self.types is None else self.types[gather]
        ts = None if self.timestamps is None else self.timestamps[gather]
        return Histories(indptr, self.items[gather], t, ts)

    def to_csr(self, n_items: int, weights: np.ndarray | None = None) -> sp.csr_matrix:
        """[B, n_items] matrix; repeated items add up. `weights` is per event (default 1)."""
        data = np.ones(len(self.items), dtype=np.float32) if weights is None else weights.astype(np.float32)
        # Copies: scipy keeps the arrays it is given and `sum_duplicates` sorts and compacts them in place, which
        # would rewrite this (frozen) batch's own rows and break every later read of them (the seen-item mask).
        m = sp.csr_matrix((data, self.items.copy(), self.indptr.copy()), shape=(len(self), n_items))
        m.sum_duplicates()
        return m

    def padded(self, max_len: int, pad: int = 0, shift: int = 1) -> np.ndarray:
        """Right-aligned [B, max_len] int64 array of the last `max_len` items, each plus `shift`, left-padded.

        `shift=1` keeps 0 free as the padding index of an embedding table.
        """
        B = len(self)
        out = np.full((B, max_len), pad, dtype=np.int64)
        lengths = np.minimum(self.lengths, max_len)
        row = np.repeat(np.arange(B), lengths)
        # position counted from the end of each row: last item lands in column max_len - 1
        from_end = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        col = max_len - lengths[row] + from_end
        src = np.repeat(self.indptr[1:] - lengths, lengths) + from_end
        out[row, col] = self.items[src].astype(np.int64) + shift
        return out

    def last_items(self, n_items: int, last: int) -> sp.csr_matrix:
        """[B, n_items] float32 0/1 matrix of each history's last `last` items (an item repeated counts once)."""
        padded = self.padded(last, pad=-1, shift=0)
        row, col = np.nonzero(padded >= 0)
        m = sp.csr_matrix((np.ones(len(row), np.float32), (row, padded[row, col])), shape=(len(self), n_items))
        m.data[:] = 1.0  # duplicates were summed
        return m

    def padded_types(self, max_len: int) -> np.ndarray:
        """Event types aligned with `padded()`; 0 where padded or unknown (types stored +1)."""
        if self.types is None:
            return np.zeros((len(self), max_len), dtype=np.int64)
        return Histories(self.indptr, self.types.astype(np.int32)).padded(max_len, pad=0, shift=1)


class Interactions:
    """Validated shopper events as parallel arrays, with ids mapped once to contiguous ints.

    `user`, `item`: int32 indices into `user_map` / `item_map`; `timestamp`: int64 (Unix seconds, or the
    position in the file for timeless sequence data); `type`: int8 `EventType`; `weight`: float32 strength.
    """

    def __init__(
        self,
        user: np.ndarray,
        item: np.ndarray,
        user_map: IdMap,
        item_map: IdMap,
        timestamp: np.ndarray | None = None,
        type: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ):
        n = len(user)
        self.user = np.ascontiguousarray(user, dtype=np.int32)
        self.item = np.ascontiguousarray(item, dtype=np.int32)
        self.timestamp = np.arange(n, dtype=np.int64) if timestamp is None else np.asarray(timestamp, np.int64)
        self.type = np.full(n, EventType.PURCHASE, np.int8) if type is None else np.asarray(type, np.int8)
        self.weight = np.ones(n, np.float32) if weight is None else np.asarray(weight, np.float32)
        self.user_map, self.item_map = user_map, item_map
        for name in ("item", "timestamp", "type", "weight"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Interactions: column {name!r} has {len(getattr(self, name))} rows, user has {n}")
        if n and (self.user.min() < 0 or self.user.max() >= len(user_map)):
            raise ValueError("Interactions: user index out of range of user_map")
        if n and (self.item.min() < 0 or self.item.max() >= len(item_map)):
            raise ValueError("Interactions: item index out of range of item_map")
        if not np.all(np.isfinite(self.weight)):
            raise ValueError("Interactions: weight must be finite")

    @classmethod
    def from_ids(cls, users, items, timestamp=None, type=None, weight=None,
                 user_map: IdMap | None = None, item_map: IdMap | None = None) -> "Interactions":
        """Build from external ids, mapping them in order of first appearance (or onto given maps)."""
        if user_map is None:
            user_map, u = IdMap.from_values(users)
        else:
            user_map = user_map.extend(users)
            u = user_map.lookup(users)
        if item_map is None:
            item_map, i = IdMap.from_values(items)
        else:
            item_map = item_map.extend(items)
            i = item_map.lookup(items)
        return cls(u, i, user_map, item_map, timestamp, type, weight)

    def __len__(self) -> int:
        return len(self.user)

    def __repr__(self) -> str:
        return f"Interactions(users={self.n_users}, items={self.n_items}, events={len(self)})"

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The events where `mask` is true, over the same id maps."""
        return Interactions(self.user[mask], self.item[mask], self.user_map, self.item_map,
                            self.timestamp[mask], self.type[mask], self.weight[mask])

    def with_type_weights(self, weights: dict[str, float] | None = None) -> "Interactions":
        """A copy whose `weight` is the per-type weight (purchase > cart > view by default) times the old one."""
        table = {**DEFAULT_EVENT_WEIGHTS, **(weights or {})}
        lut = np.array([table[t.name.lower()] for t in EventType], dtype=np.float32)
        return Interactions(self.user, self.item, self.user_map, self.item_map, self.timestamp, self.type,
                            self.weight * lut[self.type])

    def time_order(self) -> np.ndarray:
        """Permutation sorting events by user, then time, then original position (stable)."""
        return np.lexsort((self.timestamp, self.user))

    def to_csr(self, binary: bool = False) -> sp.csr_matrix:
        """[n_users, n_items] float32 matrix of summed weights (or 1 where any event) ."""
        data = np.ones(len(self), np.float32) if binary else self.weight
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def to_sequences(self, max_len: int | None = None, users: np.ndarray | None = None) -> Histories:
        """Each user's items in time order (the last `max_len` when given), one row per user index."""
        order = self.time_order()
        user_sorted = self.user[order]
        counts = np.bincount(user_sorted, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        hist = Histories(indptr, self.item[order], self.type[order], self.timestamp[order])
        if users is not None:
            hist = hist.select(users)
        return hist if max_len is None else hist.newest(max_len)

    def item_popularity(self) -> np.ndarray:
        """Number of events per item, float64 [n_items]."""
        return np.bincount(self.item, minlength=self.n_items).astype(np.float64)
