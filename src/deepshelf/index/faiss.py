"""One inner-product vector index for the whole project: exact (numpy), or FAISS flat, HNSW or IVF.

`exact.py` is the reference; tests check every approximate kind's recall against it (`recall_at_k`).
- `exact`: a matmul and a top-k in numpy; nothing to build.
- `flat`: FAISS' exact IndexFlatIP (same answers as `exact`, FAISS' kernels).
- `hnsw`: a graph (Malkov & Yashunin 2016); no training pass, `ef_search` trades speed for recall.
- `ivf`: an inverted file over k-means lists (Jégou et al. 2011); builds in seconds for millions of vectors,
  `nprobe` trades speed for recall.
- `ivf8`: the same lists over vectors quantised to 8 bits per dimension: a quarter of `ivf`'s memory and
  approximate scores, for a candidate stage whose candidates are scored again exactly (search over millions of
  products, `content/candidates.py`).

    index = VectorIndex.build(vectors, kind="hnsw")            # float32 [n, d], unit rows for cosine
    idx, scores = index.search(queries, k=10, exclude=rows)    # [B, k] each, -1 / -inf where fewer than k
    idx, scores = index.search_within(query, k=200, allowed=mask)   # one query, only `mask`'s items

A row the ANN search cannot fill with `k` allowed items (many excluded items near the query) is answered
exactly from the indexed vectors instead of coming back short.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from deepshelf.errors import DeepshelfError
from deepshelf.index.exact import topk, topk_allowed

log = logging.getLogger(__name__)

KINDS = ("exact", "flat", "hnsw", "ivf", "ivf8", "auto")
AUTO_FLAT_BELOW = 2000  # `auto`: a graph buys nothing over a flat scan of a small collection


class VectorIndex:
    """Inner-product top-k over `vectors` [n, d], with per-row exclusion and an allowed-items mask."""

    def __init__(self, vectors: np.ndarray, kind: str, faiss_index=None):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.kind = kind
        self.faiss_index = faiss_index

    @property
    def exact(self) -> bool:
        """Whether answers are exact top-k (the `exact` and `flat` kinds)."""
        return self.kind in ("exact", "flat")

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", *, hnsw_m: int = 32, ef_construction: int = 80,
              ef_search: int = 128, nprobe: int = 24, seed: int = 0, threads: int | None = None) -> "VectorIndex":
        """Index `vectors` [n, d]. kind: exact, flat, hnsw, ivf, ivf8, or auto (flat below 2,000 items, else hnsw).

        threads: FAISS' OpenMP threads (process-wide). A server answering one query per request passes 1: a
        thread team costs more than it saves on one query, and its spinning threads take CPU from the requests
        beside it.
        """
        if kind not in KINDS:
            raise DeepshelfError(f"unknown vector index kind {kind!r} (expected one of {', '.join(KINDS)})")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if kind == "auto":
            kind = "flat" if n < AUTO_FLAT_BELOW else "hnsw"
        if kind == "exact":
            return cls(vectors, kind)
        import faiss

        if threads:
            faiss.omp_set_num_threads(threads)
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        else:
            # ~2·sqrt(n) lists, so a probe scans ~n/nlist vectors; k-means on 40 points per list (FAISS' minimum
            # without a warning) for 10 iterations.
            nlist = min(n, max(16, int(2 * math.sqrt(n))))  # never more lists than vectors to train them
            if kind == "ivf":
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            else:  # the quantiser's ranges are trained on the same sample as the lists
                index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                      faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = 10
            sample = vectors[np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False)]
            index.train(sample)
            index.nprobe = min(nprobe, nlist)
        index.add(vectors)
        log.info("built a %s vector index over %d items", kind, n)
        return cls(vectors, kind, index)

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` by inner product: (int64 [B, k'], float32 [B, k']) best first, k' = min(k, n); -1 / -inf in
        unfilled slots.

        exclude: int [B], one index to drop per query (the query item itself; -1 for none).
        allowed: bool [n], items that may be returned (e.g. in stock).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if self.faiss_index is None:
            return self._exact(queries, np.arange(len(queries)), k, exclude, allowed)
        blocked = 0 if allowed is None else int((~allowed).sum())
        fetch = min(len(self), k + (exclude is not None) + min(blocked, 4 * k))  # room for the filters
        scores, idx = self.faiss_index.search(queries, fetch)
        if exclude is None and allowed is None and bool((idx >= 0).all()):
            return idx.astype(np.int64, copy=False), scores  # every row full, nothing to filter (a served fold-in)
        keep = idx >= 0
        if exclude is not None:
            keep &= idx != np.asarray(exclude)[:, None]
        if allowed is not None:
            keep &= allowed[np.where(idx >= 0, idx, 0)]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept hits first, in their ranked order
        out_idx = np.take_along_axis(idx, order, 1).astype(np.int64)
        out_scores = np.take_along_axis(scores, order, 1).astype(np.float32)
        filled = np.take_along_axis(keep, order, 1)
        out_idx[~filled] = -1
        out_scores[~filled] = -np.inf
        short = np.flatnonzero(filled.sum(1) < k)
        if len(short):
            out_idx[short], out_scores[short] = self._exact(queries, short, k, exclude, allowed)
        return out_idx, out_scores

    def search_within(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
                      exact_below: int = 20_000, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` of one `query` [d] among the `allowed` items (bool [n]; None: all): (int64 [k'], float32 [k'])
        best first, k' <= k, only allowed items (never padded).

        Unlike `search`, which filters what the index found, the index walks only allowed items (FAISS' ID
        selector), so a filter passing few items still fills `k`. A filter passing at most `exact_below` items
        is answered exactly over those items (cheaper than a walk that finds few); an IVF walk (of `nprobe` lists;
        None: the index's own setting) that comes back short probes 8x the lists once more, then the allowed items
        are scored exactly."""
        query = np.ascontiguousarray(np.reshape(query, (1, -1)), dtype=np.float32)
        k = min(k, len(self))
        rows = None if allowed is None else np.flatnonzero(allowed)
        if self.faiss_index is None or (rows is not None and len(rows) <= exact_below) or k < 1:
            return self._exact_rows(query[0], rows, k)
        import faiss

        bits = None if rows is None else np.packbits(np.asarray(allowed, bool), bitorder="little")
        probes = [None]
        if self.kind in ("ivf", "ivf8"):
            first = min(nprobe or self.faiss_index.nprobe, self.faiss_index.nlist)
            probes = [first, min(8 * first, self.faiss_index.nlist)]
        for nprobe in probes:
            params = None
            if bits is not None or nprobe is not None:
                kind = {"hnsw": faiss.SearchParametersHNSW, "ivf": faiss.SearchParametersIVF,
                        "ivf8": faiss.SearchParametersIVF}.get(self.kind, faiss.SearchParameters)
                params = kind()
                if bits is not None:
                    params.sel = faiss.IDSelectorBitmap(bits)  # `bits` outlives the search: both are locals here
                if nprobe is not None:
                    params.nprobe = nprobe
            scores, idx = self.faiss_index.search(query, k, params=params)
            found = idx[0] >= 0
            if found.sum() >= min(k, len(self) if rows is None else len(rows)):
                return idx[0][found].astype(np.int64), scores[0][found].astype(np.float32)
        return self._exact_rows(query[0], rows, k)

    def _exact_rows(self, query: np.ndarray, rows: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-`k` of one query among `rows` (None: every item), best first."""
        scores = (self.vectors if rows is None else self.vectors[rows]) @ query
        idx, top = topk(scores[None, :], k)
        idx = idx[0] if rows is None else rows[idx[0]]
        return idx.astype(np.int64), top[0]

    def _exact(self, queries, rows, k, exclude, allowed) -> tuple[np.ndarray, np.ndarray]:
        """The reference answer for `queries[rows]`: full matmul, mask, top-k."""
        scores = queries[rows] @ self.vectors.T
        if exclude is not None:
            ex = np.asarray(exclude)[rows]
            hit = np.flatnonzero(ex >= 0)
            scores[hit, ex[hit]] = -np.inf
        return topk_allowed(scores, k, allowed)

    # ---- persistence: FAISS' own format, never pickles ---------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the FAISS index (the vectors are the caller's to keep); an exact index has nothing to write."""
        if self.faiss_index is not None:
            import faiss

            faiss.write_index(self.faiss_index, str(path))

    @classmethod
    def load(cls, path: str | Path, vectors: np.ndarray) -> "VectorIndex":
        """Read a FAISS index written by `save` over the same `vectors` [n, d]."""
        import faiss

        index = faiss.read_index(str(path))
        if index.ntotal != len(vectors):
            raise DeepshelfError(f"{path}: the index holds {index.ntotal} vectors, expected {len(vectors)}")
        kind = "hnsw" if isinstance(index, faiss.IndexHNSW) else "ivf8" \
            if isinstance(index, faiss.IndexIVFScalarQuantizer) else "ivf" if isinstance(index, faiss.IndexIVF) \
            else "flat"
        return cls(vectors, kind, index)


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Share of the exact top-k (ignoring -1 slots) that the approximate top-k also returned."""
    hits = (approx_idx[:, :, None] == exact_idx[:, None, :]) & (exact_idx[:, None, :] >= 0)
    return float(hits.any(1).sum() / max((exact_idx >= 0).sum(), 1))
