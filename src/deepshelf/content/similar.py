"""Similar products by behaviour, text, picture or all three.

Each mode is a matrix of item vectors, so "similar" is an inner-product top-k:
- `text`: the text encoder's vectors of the product text (title, category, description);
- `visual`: from the photo alone: per attribute (article type, colour) the class probabilities of a
  catalogue-tuned head (`heads.py`), so a dot product sums the chances that two products share each attribute,
  beside a small raw ImageNet + colour block that orders look-alikes;
- `behavior`: item factors of the item-shopper matrix (truncated SVD of the cosine-normalised co-occurrences),
  available when the run was trained on shopper events;
- `hybrid`: the weighted concatenation of the others, so its dot product is a weighted mean of their cosines.

Exact top-k (`deepshelf.index.exact`) is the reference; a FAISS index per mode answers the same question faster
and is checked against it (`check_recall`). The product itself is never its own neighbour, and an optional
`in_stock` mask drops products that cannot be sold. A product without a vector in a mode (no photo, no events)
gets an empty row there: -1 indices and -inf scores.

Server use (the run folder from `deepshelf train --model content`):

    index = SimilarIndex.load("runs/fashion-content")    # RUN/content (RUN/model/content), or that folder
    ids, scores = index.similar("15970", k=10, mode="visual")            # one product, original ids
    rows = index.lookup(["15970", "15971"])                             # DeepshelfError for an unknown id
    idx, scores = index.similar(rows, k=10, mode="visual", in_stock=mask)   # batch: int64 [B, k] rows
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deepshelf.errors import DeepshelfError
from deepshelf.index.exact import topk
from deepshelf.index.faiss import FaissIndex, recall_against_exact

log = logging.getLogger(__name__)

MODES = ("behavior", "text", "visual", "hybrid")


def content_dir(path: str | Path) -> Path:
    """The folder holding a run's content indexes: RUN/model/content, MODEL/content or the folder itself."""
    path = Path(path)
    for candidate in (path / "model" / "content", path / "content", path):
        if (candidate / "similar.npz").exists():
            return candidate
    raise DeepshelfError(f"{path}: no content index here (train a run with --model content)")


class SimilarIndex:
    """Per-mode item vectors with exact and FAISS (inner-product) top-k retrieval."""

    def __init__(self, item_ids: np.ndarray, vectors: dict[str, np.ndarray], valid: dict[str, np.ndarray],
                 faiss: dict[str, FaissIndex] | None = None):
        self.item_ids = np.asarray(item_ids).astype(str)
        self.vectors = {m: np.ascontiguousarray(v, dtype=np.float32) for m, v in vectors.items()}
        self.valid = {m: np.asarray(v, bool) for m, v in valid.items()}
        self.faiss = faiss or {}
        self._row = {item: i for i, item in enumerate(self.item_ids.tolist())}

    @property
    def modes(self) -> list[str]:
        return [m for m in MODES if m in self.vectors]

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        """Whether an original item id has a row here (a product added after the run has none)."""
        return str(item_id) in self._row

    def lookup(self, item_ids) -> np.ndarray:
        """Row indices of original item ids; an unknown id is a user error naming it."""
        rows = []
        for item in item_ids:
            row = self._row.get(str(item))
            if row is None:
                raise DeepshelfError(f"unknown item id {str(item)!r}")
            rows.append(row)
        return np.asarray(rows, dtype=np.int64)

    def _check_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise DeepshelfError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode not in self.vectors:
            why = "shopper events" if mode == "behavior" else "content for it"
            raise DeepshelfError(f"mode {mode!r} is not available in this run (it was trained without {why}); "
                                 f"available: {', '.join(self.modes)}")

    def build_faiss(self, kind: str = "auto") -> None:
        for mode, vecs in self.vectors.items():
            self.faiss[mode] = FaissIndex.build(np.where(self.valid[mode][:, None], vecs, 0.0), kind=kind)

    def similar(self, item_indices, k: int = 10, mode: str = "hybrid", in_stock: np.ndarray | None = None,
                exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` similar products of each row in `item_indices` (int [B]): (int64 [B, k], float32 [B, k]).

        Never returns the product itself or one outside `in_stock` (bool [n]); unfilled slots are -1 / -inf.
        `exact=True` (or no FAISS index) uses exact matmul top-k.
        Given one original item id (a `str`) instead, answers for that product in original ids: (str [k'],
        float32 [k']) with unfilled slots dropped; an unknown id is a `DeepshelfError`.
        """
        if isinstance(item_indices, str):
            idx, scores = self.similar(self.lookup([item_indices]), k, mode, in_stock, exact)
            keep = idx[0] >= 0
            return self.item_ids[idx[0][keep]], scores[0][keep]
        self._check_mode(mode)
        rows = np.asarray(item_indices, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise DeepshelfError(f"item index out of range 0..{len(self) - 1}")
        if k < 1:
            raise DeepshelfError(f"k must be at least 1 (got {k})")
        vecs, valid = self.vectors[mode], self.valid[mode]
        allowed = valid if in_stock is None else valid & np.asarray(in_stock, bool)
        queries = vecs[rows]
        if exact or mode not in self.faiss:
            idx, scores = self.exact(queries, rows, k, allowed, vecs)
        else:
            idx, scores = self.faiss[mode].search(queries, k, exclude=rows, allowed=allowed, vectors=vecs)
        no_vector = ~valid[rows]
        if no_vector.any():  # a product with no vector in this mode has no neighbours in it
            idx[no_vector], scores[no_vector] = -1, -np.inf
        return idx, scores

    @staticmethod
    def exact(queries, rows, k, allowed, vecs, chunk: int = 4096):
        """The reference: full matmul, mask, top-k (chunked over queries)."""
        k = min(k, len(vecs))
        out_idx = np.full((len(rows), k), -1, np.int64)
        out_scores = np.full((len(rows), k), -np.inf, np.float32)
        for s in range(0, len(rows), chunk):
            scores = queries[s:s + chunk] @ vecs.T  # (b, n)
            scores[:, ~allowed] = -np.inf
            scores[np.arange(len(scores)), rows[s:s + chunk]] = -np.inf
            i, v = topk(scores, k)
            i[~np.isfinite(v)] = -1
            out_idx[s:s + chunk], out_scores[s:s + chunk] = i, v
        return out_idx, out_scores

    def check_recall(self, mode: str, k: int = 10, sample: int = 1000, seed: int = 0) -> float:
        """Recall@k of the FAISS answer against exact top-k on a random sample of products."""
        rng = np.random.default_rng(seed)
        rows = np.flatnonzero(self.valid[mode])
        rows = rng.choice(rows, size=min(sample, len(rows)), replace=False)
        approx, _ = self.similar(rows, k, mode)
        exact, _ = self.similar(rows, k, mode, exact=True)
        return recall_against_exact(approx, exact)

    # ---- persistence: plain arrays + FAISS's own format, never pickles ------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"item_ids": self.item_ids.astype(np.str_)}
        for m in self.vectors:
            arrays[f"vectors.{m}"] = self.vectors[m]
            arrays[f"valid.{m}"] = self.valid[m]
        np.savez(folder / "similar.npz", **arrays)
        for m, index in self.faiss.items():
            index.save(folder / f"faiss_{m}.index")

    @classmethod
    def load(cls, path: str | Path) -> "SimilarIndex":
        folder = content_dir(path)
        with np.load(folder / "similar.npz", allow_pickle=False) as data:
            modes = [k.split(".", 1)[1] for k in data.files if k.startswith("vectors.")]
            index = cls(data["item_ids"], {m: data[f"vectors.{m}"] for m in modes},
                        {m: data[f"valid.{m}"] for m in modes})
        for m in modes:
            if (folder / f"faiss_{m}.index").exists():
                index.faiss[m] = FaissIndex.load(folder / f"faiss_{m}.index")
        return index


def load(path: str | Path) -> SimilarIndex:
    """`SimilarIndex.load(path)`: a run folder, its model/ folder or its content/ folder."""
    return SimilarIndex.load(path)


def behaviour_vectors(item_user, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit item vectors whose dot products approximate item-item cosine co-occurrence.

    item_user: scipy sparse [n_items, n_users] (binary or weighted). Returns (float32 [n_items, d], valid bool).
    Truncated SVD of the row-normalised matrix keeps the strongest co-occurrence directions (Sarwar et al. 2000).
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    m = sp.csr_matrix(item_user, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    valid = norms > 0
    m = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m
    d = max(1, min(dim, min(m.shape) - 1))
    u, s, _ = svds(m, k=d, random_state=seed)
    vectors = (u * s).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    vectors[~valid] = 0.0
    return vectors, valid
