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

from deepshelf.runs.artifacts import content_dir

log = logging.getLogger(__name__)


class ContentFeatures:
    """A run's `SimilarIndex` (and `SearchIndex` when present), answering in original item ids.

    Products upserted over HTTP are encoded on a worker thread, off the request path: the upsert answers after
    the commit and the product's text vector follows a moment later. `close()` ends that thread (after the work
    already handed to it); the service calls it when the run is swapped out or the server stops.
    """

    def __init__(self, similar_index, search_index):
        self.similar_index = similar_index
        self.search_index = search_index
        self._encoder = None
        self._lock = threading.Lock()  # submit vs close
        self._closed = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepshelf-content")

    @property
    def has_text(self) -> bool:
        return "text" in self.similar_index.modes

    def text_vectors(self, item_ids) -> tuple[np.ndarray, np.ndarray]:
        """Unit text vectors of `item_ids` [n, d] and whether each has one (bool [n])."""
        return self.similar_index.vectors_of(item_ids, "text")

    def add_items(self, items) -> Future | None:
        """Give upserted products text vectors (same encoder as the run's), so they are similar-by-text to the
        catalogue and can be recommended by content before any retraining. None when there is nothing to do or
        the features are closed (the run was swapped out: its successor has its own)."""
        if not self.has_text or not items:
            return None
        with self._lock:
            if self._closed:
                return None
            return self._worker.submit(self._add_items, list(items))

    def close(self) -> None:
        """Stop taking work and end the worker thread once the work already submitted is done."""
        with self._lock:
            self._closed = True
        self._worker.shutdown(wait=True)

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
        ids = [it.item_id for it in items]
        added = self.similar_index.add(ids, vectors, "text", valid=np.array([bool(t) for t in texts]))
        if self.search_index is not None:  # searchable by its words and meaning, like the run's own products
            self.search_index.add(ids, texts, vectors)
        log.info("text vectors for %d upserted products (%d new)", len(items), added)

    @property
    def modes(self) -> list[str]:
        return list(self.similar_index.modes)

    @property
    def can_search(self) -> bool:
        return self.search_index is not None

    def similar(self, item_id: str, k: int, mode: str) -> tuple[list[str], list[float], str]:
        """Neighbours of `item_id` by `mode`; empty when the product has no content vector (added since)."""
        if item_id not in self.similar_index:
            return [], [], mode
        ids, scores = self.similar_index.similar(item_id, k=k, mode=mode)
        return [str(i) for i in ids], [float(s) for s in scores], mode

    def search(self, query: str, k: int) -> tuple[list[str], list[float]]:
        index = self.search_index
        # words -> pictures only when the run learnt that bridge (a catalogue with photos); else text alone
        by = "hybrid" if index.text_tower is not None and index.photo_valid.any() else "text"
        ids, scores = index.search(query, k=k, by=by)
        return [str(i) for i in ids], [float(s) for s in scores]


def load(run_path: Path) -> ContentFeatures | None:
    """The run's content features, or None when it has no content indexes (behaviour only)."""
    folder = content_dir(run_path)
    if folder is None or not (folder / "similar.npz").exists():
        return None
    from deepshelf.content.search import SearchIndex
    from deepshelf.content.similar import SimilarIndex

    index = SimilarIndex.load(folder)
    search_index = SearchIndex.load(folder) if (folder / "search.npz").exists() else None
    log.info("content indexes from %s: similar by %s%s", folder, ", ".join(index.modes),
             "; semantic search" if search_index is not None else "")
    return ContentFeatures(index, search_index)
