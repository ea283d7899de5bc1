"""Content-hash embedding cache: re-encoding an unchanged catalogue costs a hash per item, not a forward pass.

Each encoder owns a namespace (its model id + preprocessing version), so changing the model or the preprocessing
never returns stale vectors. A namespace is two files, `keys.npy` (fixed-width sha1 hex digests) and
`vectors.npy` (float32 [n, d]), rewritten atomically on `put`; no pickles are ever read.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from deepshelf.encoders.progress import progress_bar

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`DEEPSHELF_CACHE_DIR`, else `.cache/deepshelf` under the working directory (git-ignored)."""
    return Path(os.environ.get("DEEPSHELF_CACHE_DIR", Path.cwd() / ".cache" / "deepshelf"))


def content_hash(data: bytes | str) -> str:
    """sha1 hex digest of the content (strings as UTF-8)."""
    return hashlib.sha1(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


class EmbeddingCache:
    """Vectors keyed by content hash, in `root/namespace/`. `root=None` disables caching (every lookup misses)."""

    def __init__(self, root: str | Path | None, namespace: str):
        self.dir = None if root is None else Path(root) / namespace
        self._keys = np.zeros(0, dtype="S40")
        self._vectors: np.ndarray | None = None
        self._row: dict[bytes, int] = {}
        self._dirty = False
        if self.dir is not None and (self.dir / "keys.npy").exists():
            try:
                keys = np.load(self.dir / "keys.npy", allow_pickle=False)
                vectors = np.load(self.dir / "vectors.npy", allow_pickle=False)
                if len(keys) == len(vectors):
                    self._keys, self._vectors = keys, vectors
                    self._row = {k: i for i, k in enumerate(keys.tolist())}
            except (OSError, ValueError) as exc:  # a torn or foreign file: start afresh rather than fail
                log.warning("ignoring unreadable embedding cache %s: %s", self.dir, exc)

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(found bool [n], vectors [n, d] with zeros where not found, or None when the cache is empty)."""
        rows = np.fromiter((self._row.get(k.encode(), -1) for k in keys), dtype=np.int64, count=len(keys))
        found = rows >= 0
        if self._vectors is None:
            return found, None
        out = np.zeros((len(keys), self._vectors.shape[1]), dtype=np.float32)
        out[found] = self._vectors[rows[found]]
        return found, out

    def put(self, keys: list[str], vectors: np.ndarray, persist: bool = True) -> None:
        """Add vectors for new keys (existing keys keep their vectors); `persist` writes the files now (an
        encoder adding many batches persists every few thousand rows and at the end, not after each batch)."""
        if self.dir is None:  # caching disabled: remember nothing, so every lookup really misses
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        new = [i for i, k in enumerate(keys) if k.encode() not in self._row]
        new = list({keys[i]: i for i in new}.values())  # a key repeated in one batch is stored once
        if not new:
            return
        add_keys = np.array([keys[i] for i in new], dtype="S40")
        add_vecs = vectors[new]
        if self._vectors is not None and self._vectors.shape[1] != add_vecs.shape[1]:
            raise ValueError(f"cache {self.dir}: dimension {add_vecs.shape[1]} != stored {self._vectors.shape[1]}")
        start = len(self._keys)
        self._keys = np.concatenate([self._keys, add_keys])
        self._vectors = add_vecs if self._vectors is None else np.concatenate([self._vectors, add_vecs])
        self._row.update({k: start + i for i, k in enumerate(add_keys.tolist())})
        self._dirty = True
        if persist:
            self.flush()

    def flush(self) -> None:
        """Write the namespace's files (atomically) if anything was added since the last write."""
        if self.dir is None or not getattr(self, "_dirty", False):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, arr in (("vectors", self._vectors), ("keys", self._keys)):
            tmp = self.dir / f".{name}.{os.getpid()}.npy"
            np.save(tmp, arr)
            tmp.replace(self.dir / f"{name}.npy")
        self._dirty = False


def encode_cached(texts: list[str], dim: int, cache: EmbeddingCache, forward, batch_size: int,
                  progress: bool = False, label: str = "encoding texts",
                  flush_rows: int | None = None) -> tuple[np.ndarray, int]:
    """(float32 [n, dim] vectors of `texts`, how many came from `cache`): the others encoded by `forward` (a list
    of strings -> their unit vectors) in batches sorted by length, so padding inside a batch stays small, and
    added to the cache, written every `flush_rows` new rows when given (an interrupted encode resumes) and at the
    end. None encodes as ""."""
    texts = ["" if t is None else str(t) for t in texts]
    out = np.zeros((len(texts), dim), dtype=np.float32)
    keys = [content_hash(t) for t in texts]
    found, cached = cache.get(keys)
    if cached is not None:
        out[found] = cached[found]
    todo = np.flatnonzero(~found)
    if len(todo):
        todo = todo[np.argsort([len(texts[i]) for i in todo], kind="stable")]
        unsaved = 0
        with progress_bar(len(todo), label, enabled=progress) as advance:
            for start in range(0, len(todo), batch_size):
                rows = todo[start:start + batch_size]
                out[rows] = forward([texts[i] for i in rows])
                cache.put([keys[i] for i in rows], out[rows], persist=False)
                unsaved += len(rows)
                if flush_rows and unsaved >= flush_rows:
                    cache.flush()
                    unsaved = 0
                advance(len(rows))
        cache.flush()
    return out, int(found.sum())
