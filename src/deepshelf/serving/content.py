"""Optional content features (text / visual similarity, semantic search) from a run's content indexes.

`deepshelf.content` builds them (`deepshelf train --model content`; the demo links them in as RUN/content). This
adapter only finds and calls them, so the server runs without them: `load()` returns None and the service
answers mode=text|visual|hybrid with a clear 409 "not available for this run" instead of an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from deepshelf.errors import DeepshelfError

log = logging.getLogger(__name__)


class ContentFeatures:
    """A run's `SimilarIndex` (and `SearchIndex` when present), answering in original item ids."""

    def __init__(self, similar_index, search_index):
        self.similar_index = similar_index
        self.search_index = search_index

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
        ids, scores = self.search_index.search(query, k=k, by="hybrid")
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
