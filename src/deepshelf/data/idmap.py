"""`IdMap`: external string ids <-> contiguous int indices, mapped once at the data boundary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class IdMap:
    """An ordered, immutable mapping between external ids (strings) and indices 0..n-1.

    Unknown ids map to -1 by `lookup` (the caller decides: skip, cold-start or error) and raise in `index`.
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str]):
        self._ids = np.asarray([str(i) for i in ids], dtype=object)
        self._index = {external: i for i, external in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            raise ValueError("IdMap ids must be unique")

    @classmethod
    def from_values(cls, values: Sequence) -> tuple["IdMap", np.ndarray]:
        """Map a column of ids in order of first appearance; returns the map and the int32 codes."""
        uniques, first, codes = np.unique(np.asarray(values, dtype=str), return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return cls(uniques[order]), rank[codes].astype(np.int32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external: object) -> bool:
        return str(external) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._ids, other._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def index(self, external: str) -> int:
        try:
            return self._index[str(external)]
        except KeyError:
            raise KeyError(f"unknown id {external!r}") from None

    def lookup(self, externals: Iterable) -> np.ndarray:
        """Indices of `externals` as int64, -1 where an id is unknown."""
        get = self._index.get
        return np.fromiter((get(str(e), -1) for e in externals), dtype=np.int64)

    def extend(self, externals: Iterable[str]) -> "IdMap":
        """A new map with unseen ids appended; existing indices keep their values."""
        new = [str(e) for e in dict.fromkeys(str(x) for x in externals) if str(e) not in self._index]
        return IdMap(list(self._ids) + new) if new else self

    def save(self, path) -> None:
        np.save(path, self._ids.astype(str), allow_pickle=False)

    @classmethod
    def load(cls, path) -> "IdMap":
        return cls(np.load(path, allow_pickle=False).tolist())
