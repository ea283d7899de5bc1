"""Attribute precision of nearest neighbours: the content metrics of issue 4.

P@k for a query = share of its `k` nearest gallery items (by inner product, the query item itself excluded)
that share the query product's attribute value (article type, colour, ...). Gallery = every product with a
vector. Queries are the held-out products, which no learned head has seen.
"""

from __future__ import annotations

import zlib

import numpy as np

from deepshelf.index.exact import topk


def heldout_mask(item_ids, modulo: int = 5) -> np.ndarray:
    """Held-out products: numeric id divisible by `modulo`; a non-numeric id by its CRC32 (stable, no salt)."""
    ids = [str(i) for i in item_ids]
    nums = np.array([int(i) if i.isdigit() else zlib.crc32(i.encode()) for i in ids], dtype=np.int64)
    return nums % modulo == 0


def neighbours(queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None = None,
               gallery_ok: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """Exact top-`k` gallery indices [B, k] for each query row (chunked so [B, n] scores stay small); a slot
    without a neighbour (a gallery smaller than `k` once the query itself and unusable rows are left out) is -1."""
    out = np.full((len(queries), k), -1, np.int64)
    g = np.where(gallery_ok[:, None], gallery, 0.0) if gallery_ok is not None else gallery
    for s in range(0, len(queries), chunk):
        q = queries[s:s + chunk]
        ex = None if exclude is None else exclude[s:s + chunk]
        scores = q.astype(np.float32) @ g.astype(np.float32).T
        if ex is not None:
            scores[np.arange(len(q)), ex] = -np.inf
        if gallery_ok is not None:
            scores[:, ~gallery_ok] = -np.inf
        idx, top = topk(scores, k)  # [b, min(k, n)]
        out[s:s + chunk, :idx.shape[1]] = np.where(np.isneginf(top), -1, idx)
    return out


def attribute_precision(query_vectors: np.ndarray, query_rows: np.ndarray, gallery: np.ndarray,
                        attributes: dict[str, np.ndarray], k: int = 10, gallery_ok: np.ndarray | None = None,
                        exclude_self: bool = True) -> dict[str, float]:
    """Mean P@k per attribute. query_vectors [B, d] belong to catalogue rows `query_rows` [B]; gallery [n, d];
    attributes: name -> values [n] (the query's value comes from its own row). A catalogue with fewer than `k`
    other products scores each query over the neighbours it has (NaN where it has none)."""
    nn = neighbours(query_vectors, gallery, k, exclude=query_rows if exclude_self else None, gallery_ok=gallery_ok)
    found = nn >= 0  # [B, k]
    result = {}
    for name, values in attributes.items():
        values = np.asarray(values).astype(str)
        same = (values[np.maximum(nn, 0)] == values[query_rows][:, None]) & found
        result[name] = float(same.sum() / found.sum()) if found.any() else float("nan")
    return result
