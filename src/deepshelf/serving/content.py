"""Optional content features (text / visual similarity, semantic search) from a run's content indexes.

`deepshelf.content` builds them (`deepshelf train --model content`; the demo links them in as RUN/content). This
adapter only finds and calls them, so the server runs without them: `load()` returns None and the service
answers mode=text|visual|hybrid with a clear 409 "not available for this run" instead of an error.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from deepshelf.errors import DeepshelfError

log = logging.getLogger(__name__)


class ContentFeatures:
    """A run's `SimilarIndex` (and `SearchIndex` when present), answering in original item ids."""

    def __init__(self, similar_index, search_index):
        self.similar_index = similar_index
        self.search_index = search_index
        self._encoder = None
        self._lock = threading.Lock()
        # Products upserted over HTTP are encoded here, off the request path: the upsert answers after the
        # commit and the product's text vector follows a moment later.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepshelf-content")

    @property
    def has_text(self) -> bool:
        return "text" in self.similar_index.vectors

    def text_vectors(self, item_ids) -> tuple[np.ndarray, np.ndarray]:
        """Unit text vectors of `item_ids` [n, d] and whether each has one (bool [n])."""
        index = self.similar_index
        rows = np.array([index._row.get(str(i), -1) for i in item_ids], dtype=np.int64)
        vecs, valid = index.vectors["text"], index.valid["text"]
        ok = rows >= 0
        ok[ok] &= valid[rows[ok]]
        return vecs[np.where(ok, rows, 0)], ok

    def add_items(self, items) -> Future | None:
        """Give upserted products text vectors (same encoder as the run's), so they are similar-by-text to the
        catalogue and can be recommended by content before any retraining."""
        if not self.has_text or not items:
            return None
        return self._worker.submit(self._add_items, list(items))

    def _text_encoder(self):
        if self.search_index is not None:
            return self.search_index.encoder  # the encoder the run's vectors were made with
        if self._encoder is None:
            from deepshelf.encoders.text import TextEncoder

            self._encoder = TextEncoder(cache=False)
        return self._encoder

    def _add_items(self, items) -> None:
        texts = [". ".join([it.title, it.category, it.description]).strip(". ") for it in items]
        try:
            vectors = self._text_encoder().encode(texts).astype(np.float32)
        except Exception:  # encoding is best effort: the product is still served by trending / new arrival
            log.exception("could not encode %d upserted products", len(items))
            return
        index = self.similar_index
        with self._lock:
            new_ids, new_vecs, new_ok = [], [], []
            for item, text, vec in zip(items, texts, vectors):
                row = index._row.get(item.item_id)
                if row is not None:
                    index.vectors["text"][row] = vec
                    index.valid["text"][row] = bool(text)
                elif item.item_id not in new_ids:
                    new_ids.append(item.item_id)
                    new_vecs.append(vec)
                    new_ok.append(bool(text))
            if not new_ids:
                return
            start, m = len(index.item_ids), len(new_ids)
            # Arrays first, the id lookup last: a reader that finds a new row always finds its vector.
            for mode in list(index.vectors):
                add = np.stack(new_vecs) if mode == "text" else np.zeros((m, index.vectors[mode].shape[1]), np.float32)
                index.vectors[mode] = np.concatenate([index.vectors[mode], add])
                index.valid[mode] = np.concatenate([index.valid[mode], np.array(new_ok) if mode == "text"
                                                    else np.zeros(m, bool)])
                index.faiss.pop(mode, None)  # an index without the new rows would never return them: exact search
            index.item_ids = np.concatenate([index.item_ids, np.array(new_ids, dtype=index.item_ids.dtype)])
            index._row.update({item: start + i for i, item in enumerate(new_ids)})
        log.info("text vectors for %d new products", m)

    @property
    def modes(self) -> list[str]:
        return list(self.similar_index.modes)

    @property
    def can_search(self) -> bool:
        return self.search_index is not None

    def similar(self, item_id: str, k: int, mode: str) -> tuple[list[str], list[float], str]:
        """Neighbours of `item_id` by `mode`; empty when the product has no content vector (added since)."""
        if item_id not in self.similar_index._row:
            return [], [], mode
        ids, scores = self.similar_index.similar(item_id, k=k, mode=mode)
        return [str(i) for i in ids], [float(s) for s in scores], mode

    def search(self, query: str, k: int) -> tuple[list[str], list[float]]:
        index = self.search_index
        # words -> pictures only when the run learnt that bridge (a catalogue with photos); else text alone
        by = "hybrid" if index.text_tower is not None and index.photo_valid.any() else "text"
        ids, scores = index.search(query, k=k, by=by)
        return [str(i) for i in ids], [float(s) for s in scores]


def load(run_path: Path, item_map=None) -> ContentFeatures | None:
    try:
        from deepshelf.content import similar as similar_mod
    except ImportError:
        return None
    try:
        folder = similar_mod.content_dir(run_path)
    except DeepshelfError:
        return None  # this run has no content indexes: behaviour-only
    index = similar_mod.SimilarIndex.load(folder)
    search_index = None
    if (folder / "search.npz").exists():
        from deepshelf.content import search as search_mod

        search_index = search_mod.SearchIndex.load(folder)
    log.info("content indexes from %s: similar by %s%s", folder, ", ".join(index.modes),
             "; semantic search" if search_index is not None else "")
    return ContentFeatures(index, search_index)
