"""Similar products by behaviour, text, picture or all three.

Each mode is a matrix of item vectors, so "similar" is an inner-product top-k:
- `text`: the text encoder's vectors of the product text (title, category, description);
- `visual`: from the photo alone: per attribute (article type, colour) the class probabilities of a
  catalogue-tuned head (`heads.py`), so a dot product sums the chances that two products share each attribute,
  beside a small raw ImageNet + colour block that orders look-alikes;
- `behavior`: item factors of the item-shopper matrix (truncated SVD of the cosine-normalised co-occurrences),
  available when the run was trained on shopper events;
- `hybrid`: the weighted concatenation of the others, so its dot product is a weighted mean of their cosines.

Exact top-k (`deepshelf.index.exact`) is the reference; an approximate index per mode (`deepshelf.index.faiss`)
answers the same question and is checked against it (`check_recall`). The product itself is never its own neighbour, and an optional
`in_stock` mask drops products that cannot be sold. A product without a vector in a mode (no photo, no events)
gets an empty row there: -1 indices and -inf scores.

Server use (the run folder from `deepshelf train --model content`):

    index = SimilarIndex.load("runs/fashion-content")    # RUN/content (RUN/model/content), or that folder
    ids, scores = index.similar("15970", k=10, mode="visual")            # one product, original ids
    rows = index.lookup(["15970", "15971"])                             # DeepshelfError for an unknown id
    idx, scores = index.similar(rows, k=10, mode="visual", in_stock=mask)   # batch: int64 [B, k] rows
    vecs, ok = index.vectors_of(["15970", "new"], "text")               # [n, d] and whether each has one
    index.add(["new"], vecs[:1], "text")                               # products added since the run
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from deepshelf.errors import DeepshelfError
from deepshelf.index.faiss import VectorIndex, recall_at_k

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
    """Per-mode item vectors with exact and approximate (inner-product) top-k retrieval.

    Readers may run while `add` writes: `add` publishes new arrays before the ids that point into them, so a
    reader that finds a row always finds its vectors.
    """

    def __init__(self, item_ids: np.ndarray, vectors: dict[str, np.ndarray], valid: dict[str, np.ndarray],
                 faiss: dict[str, VectorIndex] | None = None):
        self.item_ids = np.asarray(item_ids).astype(str)
        self.vectors = {m: np.ascontiguousarray(v, dtype=np.float32) for m, v in vectors.items()}
        self.valid = {m: np.asarray(v, bool) for m, v in valid.items()}
        self.faiss = faiss or {}  # mode -> approximate index; a mode without one is answered exactly
        self._row = {item: i for i, item in enumerate(self.item_ids.tolist())}
        self._write = threading.Lock()

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

    def vectors_of(self, item_ids, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of original `item_ids` in `mode` (float32 [n, d]) and whether each has one (bool [n]); an id
        without a row here (a product added since the run) has none."""
        self._check_mode(mode)
        rows = np.fromiter((self._row.get(str(i), -1) for i in item_ids), dtype=np.int64)
        vecs, valid = self.vectors[mode], self.valid[mode]
        ok = rows >= 0
        ok[ok] &= valid[rows[ok]]
        return vecs[np.where(ok, rows, 0)], ok

    def add(self, item_ids, vectors: np.ndarray, mode: str, valid: np.ndarray | None = None) -> int:
        """Set the `mode` vectors [m, d] of `item_ids`: a known id's row is overwritten, a new id gets a row (with
        no vector in the other modes). Returns how many rows were appended.

        Appending drops the approximate indexes (they would never return the new rows): from then on
        `similar` answers exactly.
        """
        self._check_mode(mode)
        vectors = np.asarray(vectors, np.float32)
        valid = np.ones(len(vectors), bool) if valid is None else np.asarray(valid, bool)
        with self._write:
            new: dict[str, int] = {}  # id -> position in the arguments (the last one wins)
            for pos, item in enumerate(map(str, item_ids)):
                row = self._row.get(item)
                if row is None:
                    new[item] = pos
                else:
                    self.vectors[mode][row] = vectors[pos]
                    self.valid[mode][row] = valid[pos]
            if not new:
                return 0
            m, start, picks = len(new), len(self.item_ids), list(new.values())
            for name in list(self.vectors):
                width = self.vectors[name].shape[1]
                add = vectors[picks] if name == mode else np.zeros((m, width), np.float32)
                self.vectors[name] = np.concatenate([self.vectors[name], add])
                self.valid[name] = np.concatenate([self.valid[name], valid[picks] if name == mode
                                                   else np.zeros(m, bool)])
            self.faiss = {}
            # numpy widens the string dtype to the longest id (the run's own width would cut a longer new id)
            self.item_ids = np.concatenate([self.item_ids, np.array(list(new), dtype=str)])
            self._row.update({item: start + i for i, item in enumerate(new)})  # last: readers find complete rows
        return m

    def _check_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise DeepshelfError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode not in self.vectors:
            why = "shopper events" if mode == "behavior" else "content for it"
            raise DeepshelfError(f"mode {mode!r} is not available in this run (it was trained without {why}); "
                                 f"available: {', '.join(self.modes)}")

    def build_faiss(self, kind: str = "auto") -> None:
        for mode, vecs in self.vectors.items():
            self.faiss[mode] = VectorIndex.build(np.where(self.valid[mode][:, None], vecs, 0.0), kind=kind)

    def similar(self, item_indices, k: int = 10, mode: str = "hybrid", in_stock: np.ndarray | None = None,
                exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` similar products of each row in `item_indices` (int [B]): (int64 [B, k], float32 [B, k]).

        Never returns the product itself or one outside `in_stock` (bool [n]); unfilled slots are -1 / -inf.
        `exact=True` (or no approximate index for the mode) uses exact matmul top-k.
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
        ann = None if exact else self.faiss.get(mode)
        if ann is None or len(ann) != len(vecs):
            idx, scores = self.exact(queries, rows, k, allowed, vecs)
        else:
            idx, scores = ann.search(queries, k, exclude=rows, allowed=allowed)
        no_vector = ~valid[rows]
        if no_vector.any():  # a product with no vector in this mode has no neighbours in it
            idx[no_vector], scores[no_vector] = -1, -np.inf
        return idx, scores

    @staticmethod
    def exact(queries, rows, k, allowed, vecs, chunk: int = 4096):
        """The reference: full matmul, mask, top-k, chunked over queries to bound the [chunk, n] score block."""
        reference = VectorIndex.build(vecs, kind="exact")
        parts = [reference.search(queries[s:s + chunk], k, exclude=rows[s:s + chunk], allowed=allowed)
                 for s in range(0, len(rows), chunk)]
        if not parts:
            k = min(k, len(vecs))
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def check_recall(self, mode: str, k: int = 10, sample: int = 1000, seed: int = 0) -> float:
        """Recall@k of the approximate answer against exact top-k on a random sample of products."""
        rng = np.random.default_rng(seed)
        rows = np.flatnonzero(self.valid[mode])
        rows = rng.choice(rows, size=min(sample, len(rows)), replace=False)
        approx, _ = self.similar(rows, k, mode)
        exact, _ = self.similar(rows, k, mode, exact=True)
        return recall_at_k(approx, exact)

    # ---- persistence: plain arrays + FAISS' own format, never pickles -------------------------------------
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
                indexed = np.where(index.valid[m][:, None], index.vectors[m], 0.0)  # as `build_faiss` indexed them
                index.faiss[m] = VectorIndex.load(folder / f"faiss_{m}.index", indexed)
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
    if min(m.shape) < 2:  # one product or one shopper: svds needs k < min(shape); the exact SVD of so small a matrix
        u, s, _ = np.linalg.svd(m.toarray(), full_matrices=False)
        u, s = (u[:, :1], s[:1]) if len(s) else (np.zeros((m.shape[0], 1), np.float32), np.zeros(1, np.float32))
    else:
        d = max(1, min(dim, min(m.shape) - 1))
        u, s, _ = svds(m, k=d, random_state=seed)
    vectors = (u * s).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    vectors[~valid] = 0.0
    return vectors, valid
