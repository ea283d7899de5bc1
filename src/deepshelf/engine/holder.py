"""Loading a run folder into serving state and swapping it atomically (`RunHolder`, and `VariantRuns` for the runs
experiment variants are served by), with the background thread that refreshes live trending and follows the run
path to a new target. Explanations are warmed here, before a loaded run serves anyone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepshelf.data.interactions import Histories
from deepshelf.engine import content as content_features
from deepshelf.engine.catalog_view import CatalogView
from deepshelf.engine import heap
from deepshelf.engine.explain import warm
from deepshelf.engine.live_sales import SalesFeed
from deepshelf.engine.loaded import LoadedRun, run_signature
from deepshelf.engine.periodic import Periodic
from deepshelf.engine.settings import Settings
from deepshelf.engine.trending import Trending, compute_trending
from deepshelf.errors import DeepshelfError
from deepshelf.index.faiss import VectorIndex
from deepshelf.models.base import FollowsSales, ItemSimilarity, NewProducts, VectorScorer
from deepshelf.storage import Store

log = logging.getLogger(__name__)


def refresh_trending(state: LoadedRun, store: Store, settings: Settings) -> Trending:
    """The run's live trending from the store; a model that follows the shop's sales gets those since its fit."""
    if state.sales is not None:
        state.sales.refresh(store)
    return compute_trending(state.view, store, settings.trending_days, getattr(state.model, "item_popularity", None))


def load_state(path: Path | None, settings: Settings, store: Store) -> LoadedRun:
    """Load the run at `path` (None: no model, trending only) into serving state; DeepshelfError when refused."""
    if path is None:
        state = LoadedRun(None, None, None, None, None, CatalogView(None, store))
        state.trending = refresh_trending(state, store, settings)
        return state
    from deepshelf.runs.artifacts import load_run

    signature = run_signature(path)
    run = load_run(path)
    model = run.model
    if model.item_map is None or len(model.item_map) == 0:
        raise DeepshelfError("the run's model has no items")
    n = len(model.item_map)
    # Smoke test before anyone is served by it: a corrupt or incompatible model fails here, not on a request.
    idx, scores = model.recommend(Histories.from_lists([[0], []]), k=min(5, n))
    if idx.shape != (2, min(5, n)) or np.isnan(scores).any():
        raise DeepshelfError(f"the model answered a test query with shape {idx.shape} / NaN scores")
    state = LoadedRun(Path(path), signature, run.version, run, model, CatalogView(model.item_map, store),
                      dense_ok=n <= settings.ann_threshold)
    if isinstance(model, VectorScorer):
        vectors = np.asarray(model.item_vectors(), dtype=np.float32)
        if vectors.shape[0] != n:
            raise DeepshelfError(f"item vectors have {vectors.shape[0]} rows for {n} items")
        state.item_vectors = vectors
        if not state.dense_ok:
            state.index = VectorIndex.build(vectors, kind="ivf", nprobe=settings.ann_nprobe, threads=1)
    if isinstance(model, ItemSimilarity):
        state.similarity = sp.csr_matrix(model.item_similarity())
    if isinstance(model, NewProducts):
        state.new_items = np.asarray(model.new_items(), bool)
    if settings.follow_sales and isinstance(model, FollowsSales):
        state.sales = SalesFeed(model, state.view, run.config.event_weights)
    state.content = content_features.load(Path(path), store, settings.image_dir)
    if state.content is not None:
        state.content.warm()
    state.trending = refresh_trending(state, store, settings)
    warm(state)  # before anyone is served by it: a fresh server answers its first requests warm
    return state


class RunHolder:
    """The run being served, its reloads, and the background thread (live trending, watching the run path)."""

    def __init__(self, settings: Settings, store: Store, metrics=None):
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.state: LoadedRun | None = None
        self.last_reload_error: str | None = None
        self._reload_lock = threading.Lock()
        self._failed_signature: tuple | None = None
        self.on_swap: list = []  # called after a new run is published (caches of what the old one served)
        self.settle_due: float | None = None  # when the heap is settled again after a swap (`heap.py`)
        self._background = Periodic("deepshelf-background", [
            (lambda: settings.trending_refresh_s, self.refresh_trending),
            (lambda: settings.watch_interval_s, self._watch)])

    def start(self) -> None:
        """Load the configured run (a failure here is fatal: there is nothing to keep serving) and start the
        background thread."""
        self.reload(self.settings.run, initial=True)
        heap.settle()  # the loaded run out of the collector's way (heap.py)
        self._background.start()

    def stop(self) -> None:
        self._background.stop()
        with self._reload_lock:
            if self.state is not None:
                self.state.close()
        heap.release()

    def reload(self, path: str | Path | None = None, initial: bool = False) -> LoadedRun:
        """Load `path` (default: the configured run path) and swap it in; the current run keeps serving while the
        new one loads, and stays if the new one is refused (DeepshelfError)."""
        with self._reload_lock:
            target = Path(path) if path is not None else self.settings.run
            try:
                new = load_state(target, self.settings, self.store)
            except Exception as exc:
                msg = str(exc) if isinstance(exc, DeepshelfError) else f"{type(exc).__name__}: {exc}"
                self.last_reload_error = f"{target}: {msg}"
                if initial:
                    raise DeepshelfError(f"cannot serve run {target}: {msg}") from None
                raise DeepshelfError(f"run {target} refused ({msg}); still serving "
                                     f"{self.state.version if self.state else 'no model'}") from None
            if path is not None and not initial:
                self.settings.run = Path(path)  # the watcher follows the newly chosen path from now on
            old, self.state = self.state, new
            self.last_reload_error = None
            self._failed_signature = None
            if self.metrics is not None:
                self.metrics.set_model(new.version)
            log.info("serving run %s (version %s, %d items)", target, new.version, len(new.view))
            for hook in self.on_swap:
                hook()
            if old is not None:
                old.close()  # requests still holding it answer from memory; its worker finishes its queue first
                heap.release()  # the old run's objects are the collector's again; the new run's frozen a bit later
                self.settle_due = time.monotonic() + heap.SETTLE_AFTER_SWAP_S
            return new

    def refresh_trending(self) -> None:
        """Recompute the served run's live trending from the store (every `trending_refresh_s` in the background)."""
        state = self.state
        if state is not None:
            state.trending = refresh_trending(state, self.store, self.settings)

    def _watch(self) -> None:
        if self.settings.watch_run and self.settings.run is not None:
            self._check_run_path()
        due = self.settle_due
        if due is not None and time.monotonic() >= due:
            self.settle_due = None
            heap.settle()

    def _check_run_path(self) -> None:
        state = self.state
        sig = run_signature(self.settings.run)
        if sig is None or (state is not None and sig == state.signature) or sig == self._failed_signature:
            return
        log.info("run path %s now points at %s; reloading", self.settings.run, sig[0])
        try:
            self.reload(self.settings.run)
        except DeepshelfError as exc:
            self._failed_signature = sig  # do not retry the same broken target every tick
            log.error("new run refused, still serving %s: %s", state.version if state else None, exc)


class VariantRuns:
    """The runs experiment variants are served by, beside the served run: one `LoadedRun` per run folder (by real
    path, so two variants of one run share it), at most `max_variant_runs` of them."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self._states: dict[str, LoadedRun] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(path: str | Path) -> str:
        return os.path.realpath(path)

    def count_with(self, paths) -> int:
        """How many runs would be held with `paths` and nothing else."""
        return len({self.key(p) for p in paths})

    def get(self, path: str | Path) -> LoadedRun:
        """The loaded run at `path`, loaded now when it is not held (or its folder was replaced since);
        DeepshelfError when it cannot be loaded or the bound would be passed."""
        key = self.key(path)
        with self._lock:
            state = self._states.get(key)
            if state is not None and state.signature == run_signature(Path(key)):
                return state
            if state is None and len(self._states) >= self.settings.max_variant_runs:
                raise DeepshelfError(f"this server holds at most {self.settings.max_variant_runs} variant runs "
                                     "(max_variant_runs)")
            new = load_state(Path(key), self.settings, self.store)
            self._states[key] = new
        if state is not None:
            state.close()
        log.info("variant run %s loaded (version %s)", key, new.version)
        return new

    def keep_only(self, paths) -> None:
        """Release the runs no active experiment names any more."""
        keep = {self.key(p) for p in paths}
        with self._lock:
            dropped = [self._states.pop(k) for k in list(self._states) if k not in keep]
        for state in dropped:
            state.close()

    def refresh_trending(self) -> None:
        for state in list(self._states.values()):
            state.trending = refresh_trending(state, self.store, self.settings)

    def close(self) -> None:
        self.keep_only(())
