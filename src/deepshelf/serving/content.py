"""Optional content features (text / visual similarity, semantic search) from a run's `content/` folder.

The product-understanding library (`deepshelf.content`) computes them; this adapter only finds and calls it, so
the server runs without it: `load()` returns None and the service answers text/visual requests with a clear
"not available for this run" instead of an error.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class ContentFeatures:
    """Calls into `deepshelf.content` for one run. `similar(item_id, k, mode) -> (ids, scores, reason)`."""

    def __init__(self, folder: Path, similar_mod, search_mod):
        self.folder = folder
        self._similar_mod = similar_mod
        self._search_mod = search_mod
        self._similar = similar_mod.load(folder)
        self._search = search_mod.load(folder) if search_mod is not None else None

    @property
    def can_search(self) -> bool:
        return self._search is not None

    def similar(self, item_id: str, k: int, mode: str):
        ids, scores = self._similar.similar(item_id, k=k, mode=mode)
        return list(ids), list(scores), mode

    def search(self, query: str, k: int):
        ids, scores = self._search.search(query, k=k)
        return list(ids), list(scores)

    def add_items(self, items) -> None:
        add = getattr(self._similar, "add_items", None)
        if callable(add):
            add(items)


def load(run_path: Path, item_map) -> ContentFeatures | None:
    folder = Path(run_path) / "content"
    if not folder.is_dir():
        return None
    try:
        similar_mod = importlib.import_module("deepshelf.content.similar")
    except ImportError:
        log.warning("%s exists but deepshelf.content.similar is not installed; text/visual modes are off", folder)
        return None
    try:
        search_mod = importlib.import_module("deepshelf.content.search")
    except ImportError:
        search_mod = None
    if not callable(getattr(similar_mod, "load", None)):
        log.warning("deepshelf.content.similar has no load(folder); text/visual modes are off")
        return None
    return ContentFeatures(folder, similar_mod, search_mod if callable(getattr(search_mod, "load", None)) else None)
