"""The candidate stage of search over a large catalogue: the products a query is scored on exactly.

Below `SearchIndex.exact_below` products, search scores every product for every query. Above it that pass is most
of a search's cost (1,000,000 x 384 float32 text vectors are 1.5 GB read per query, and query understanding's
nearest-products vote reads them again: docs/benchmarks.md "Served search, understood"), so a query is scored
exactly on its candidates only (`SearchIndex.find`):
- the products nearest to the query's text vector among those its parsed filters pass: an inverted-file index over
  8-bit vectors (`VectorIndex`, kind `ivf8`) walking only the filtered products (`nearest`);
- the best BM25 matches the filters pass (a product code, a brand: why search has a lexical term; `lexical`);
- the products the search log ties to the query (`SearchFeedback.pair_rows`).
Every product added or changed since the vector index was built (`fresh`) is scored as it is now, beside what the
index finds; past `REBUILD_SHARE` of the catalogue the index is rebuilt. The stage's agreement with scoring every
product, and its cost, are measured by benchmarks/search_candidates.py.

    cands = Candidates.build(text_vectors)                          # float32 [n, d], unit rows
    rows, sims = cands.nearest(query_vector, 200, allowed=mask)     # int64 / float32, best first
    cands = cands.updated(new_vectors, changed_rows)                # a new snapshot; the old one stays valid
"""

from __future__ import annotations

import numpy as np

from deepshelf.index.exact import topk
from deepshelf.index.faiss import VectorIndex

REBUILD_SHARE = 0.05  # fresh rows past this share of the catalogue: the vector index is rebuilt with them
# Lists walked per query (of ~2 sqrt(n)), and for query understanding's nearest-products vote, which is kept per
# phrase (paid once per phrase, and the neighbours decide a filter); agreement with scoring every product and the
# cost of each in benchmarks/search_candidates.py.
NPROBE = 48
VOTE_NPROBE = 192


class Candidates:
    """A vector index over the catalogue's text vectors as built, plus the rows added or changed since."""

    def __init__(self, index: VectorIndex, vectors: np.ndarray, fresh: np.ndarray):
        self.index = index  # covers rows [0, len(index)) with their vectors at build time
        self.vectors = vectors  # float32 [n, d]: every row's vector now (n >= len(index))
        self.fresh = np.unique(np.asarray(fresh, np.int64))  # rows added or changed since the build

    @classmethod
    def build(cls, vectors: np.ndarray, nprobe: int = NPROBE) -> "Candidates":
        vectors = np.ascontiguousarray(vectors, np.float32)
        return cls(VectorIndex.build(vectors, kind="ivf8", nprobe=nprobe), vectors, np.zeros(0, np.int64))

    def updated(self, vectors: np.ndarray, changed: np.ndarray) -> "Candidates":
        """The stage over `vectors` [n', d] (rows appended or replaced; `changed` the rows whose vector changed,
        appended ones included): the same index with more fresh rows, or a new index once they pass
        `REBUILD_SHARE` of the catalogue."""
        fresh = np.union1d(self.fresh, np.asarray(changed, np.int64))
        if len(fresh) > REBUILD_SHARE * len(vectors):
            return Candidates.build(vectors, self.index.faiss_index.nprobe)
        return Candidates(self.index, np.ascontiguousarray(vectors, np.float32), fresh)

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
                nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `k` rows nearest to a unit `query` [d] by text vector among `allowed` (bool [n]; None: all), with
        their exact cosines: (int64 [k'], float32 [k']) best first. nprobe: lists walked (None: `NPROBE`)."""
        query = np.asarray(query, np.float32)
        base = None if allowed is None else allowed[:len(self.index)]
        rows, _ = self.index.search_within(query, k, base, nprobe=nprobe)
        fresh = self.fresh if allowed is None else self.fresh[allowed[self.fresh]]
        rows = np.union1d(rows, fresh)  # a changed row the index found under its old vector is scored as it is now
        sims = self.vectors[rows] @ query
        top, vals = topk(sims[None, :], k)
        return rows[top[0]], vals[0]

    def vote_neighbours(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`nearest` with the vote's deeper walk (`VOTE_NPROBE`), for `Lexicon.neighbours`."""
        return self.nearest(query, k, nprobe=VOTE_NPROBE)

    def save(self, path) -> None:
        """The index alone (FAISS' format); call on a stage without fresh rows (`compact` first)."""
        self.index.save(path)

    def compact(self) -> "Candidates":
        """The stage with every row in its index (rebuilt when there are fresh rows)."""
        return self if not len(self.fresh) else Candidates.build(self.vectors, self.index.faiss_index.nprobe)

    @classmethod
    def load(cls, path, vectors: np.ndarray, nprobe: int = NPROBE) -> "Candidates":
        vectors = np.ascontiguousarray(vectors, np.float32)
        index = VectorIndex.load(path, vectors)
        index.faiss_index.nprobe = min(nprobe, index.faiss_index.nlist)  # FAISS' file does not keep it
        return cls(index, vectors, np.zeros(0, np.int64))


def lexical(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """The rows of the `k` best positive scores (BM25 over every row, float [n]) among `allowed`: int64, unordered."""
    rows = np.flatnonzero(scores > 0)
    if allowed is not None:
        rows = rows[allowed[rows]]
    if len(rows) > k:
        rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
    return rows.astype(np.int64)
