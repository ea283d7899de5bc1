"""The loaded run: everything derived from one run folder that requests read, and what identifies the folder.

Requests take one `LoadedRun` reference and use it to the end; `holder.py` builds the next one while the current
one keeps serving, publishes it with one assignment, then closes the old one's resources.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepshelf.engine import content as content_features
from deepshelf.engine.catalog_view import CatalogView
from deepshelf.engine.live_sales import SalesFeed
from deepshelf.engine.queries import QueryCache
from deepshelf.engine.trending import Trending
from deepshelf.index.faiss import VectorIndex

@dataclass
class LoadedRun:
    """Everything derived from one run."""

    path: Path | None
    signature: tuple | None
    version: str | None
    run: object | None  # deepshelf.runs.artifacts.Run
    model: object | None
    view: CatalogView
    # Scoring every item per request is the reference path; above `ann_threshold` items the service uses
    # `index` (a model scoring by query @ item vectors) or the sparse neighbour lists (`similarity`) instead.
    dense_ok: bool = True
    item_vectors: np.ndarray | None = None  # float32 [n_model, d] of a VectorScorer model
    index: VectorIndex | None = None  # over item_vectors, only when not dense_ok
    similarity: sp.csr_matrix | None = None  # [n_model, n_model] of an ItemSimilarity model
    new_items: np.ndarray | None = None  # bool [n_model] of a NewProducts model: new when it was trained
    content: content_features.ContentFeatures | None = None
    stages: tuple = ()  # second ranking stages (`ranking.Stage`), applied in order to the model's candidates
    loaded_at: float = field(default_factory=time.time)
    trending: Trending | None = None  # replaced (one assignment) by the background refresh
    sales: SalesFeed | None = None  # a FollowsSales model's events since its fit, read at each trending refresh
    queries: QueryCache = field(default_factory=QueryCache)  # fold-in and ANN hits by history (this run's)

    @property
    def n_model(self) -> int:
        return self.view.n_model

    @property
    def reason(self) -> str:
        return getattr(self.model, "reason", "personal")

    def close(self) -> None:
        """Release what this run holds beyond memory (the content worker thread)."""
        if self.content is not None:
            self.content.close()


def run_signature(path: Path) -> tuple | None:
    """What identifies the run a path points at: its real target and the target's files' change times.

    A re-pointed symlink changes the real path; a folder replaced by rename (`train --overwrite`) changes the
    inode and config.json's mtime; content indexes attached to the run (`deepshelf attach-content`, which swaps
    RUN/content in whole) change that folder's inode.
    """
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        cfg = os.stat(os.path.join(real, "config.json"))
    except OSError:
        return None
    try:
        content = os.stat(os.path.join(real, "content")).st_ino
    except OSError:
        content = None
    return real, st.st_ino, cfg.st_mtime_ns, content
