"""The serving logic, free of HTTP: histories from the store -> the run's model -> business rules -> an answer.

`Service` owns the store, the loaded run (`LoadedRun`, an immutable snapshot swapped atomically on reload) and
two background duties: refreshing live trending counts and watching the run path for a new target.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepshelf.data.interactions import Histories
from deepshelf.data.schema import DEFAULT_EVENT_WEIGHTS, EventType
from deepshelf.errors import DeepshelfError
from deepshelf.serving import content as content_plugin
from deepshelf.serving.catalog_view import CatalogView
from deepshelf.serving.retrieval import VectorIndex, VectorModel, vector_model
from deepshelf.serving.rules import Rules, allowed, full_mask, rerank
from deepshelf.serving.settings import Settings
from deepshelf.storage import Event, Item, Store

log = logging.getLogger(__name__)

TRENDING_TOP = 20_000  # trending items kept in memory; the rest of the catalogue is the fallback's tail
TYPE_CODE = {t.name.lower(): int(t) for t in EventType}


class NotFound(DeepshelfError):
    """An id the request names does not exist (HTTP 404)."""


class NotAvailable(DeepshelfError):
    """A feature the loaded run does not provide, e.g. text similarity without content vectors (HTTP 409)."""


@dataclass
class Answer:
    item_ids: list[str]
    scores: list[float]
    reasons: list[str]
    model_version: str | None
    source: str  # what produced the list: model, fallback (unknown shopper), ...


@dataclass
class Trending:
    """Fallback ranking over the view's indices: best first, with the signal it came from."""

    order: np.ndarray  # int64 indices into the catalogue view
    scores: np.ndarray  # float32
    reason: str
    item_scores: dict[int, float] = field(default_factory=dict)


@dataclass
class LoadedRun:
    """Everything derived from one run; requests take one reference and use it to the end (atomic swap)."""

    path: Path | None
    signature: tuple | None
    version: str | None
    run: object | None  # deepshelf.runs.artifacts.Run
    model: object | None
    view: CatalogView
    vectors: VectorModel | None = None
    index: VectorIndex | None = None
    similarity: sp.csr_matrix | None = None  # item-kNN neighbour lists: sparse scoring for big catalogues
    content: object | None = None
    loaded_at: float = field(default_factory=time.time)
    trending: Trending | None = None

    @property
    def n_model(self) -> int:
        return self.view.n_model

    @property
    def reason(self) -> str:
        return getattr(self.model, "reason", "personal")


def run_signature(path: Path) -> tuple | None:
    """What identifies the run a path points at: its real target and the target's files' change times.

    A re-pointed symlink changes the real path; a folder replaced by rename (`train --overwrite`) changes the
    inode and config.json's mtime.
    """
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        cfg = os.stat(os.path.join(real, "config.json"))
        return real, st.st_ino, cfg.st_mtime_ns
    except OSError:
        return None


class Service:
    def __init__(self, settings: Settings, store: Store, metrics=None):
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.state: LoadedRun | None = None
        self.last_reload_error: str | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_signature: tuple | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the configured run (a failure here is fatal: there is nothing to keep serving) and start the
        background thread."""
        self.reload(self.settings.run, initial=True)
        self._thread = threading.Thread(target=self._background, name="deepshelf-background", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()

    def _background(self) -> None:
        s = self.settings
        next_trending = time.monotonic() + s.trending_refresh_s
        next_watch = time.monotonic() + s.watch_interval_s
        while not self._stop.wait(0.2):
            now = time.monotonic()
            try:
                if now >= next_trending:
                    next_trending = now + s.trending_refresh_s
                    state = self.state
                    if state is not None:
                        state.trending = self._compute_trending(state)
                if s.watch_run and self.settings.run is not None and now >= next_watch:
                    next_watch = now + s.watch_interval_s
                    self._check_run_path()
            except Exception:  # a background hiccup (database restart, ...) must not end the thread
                log.exception("background refresh failed; retrying later")

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

    # ---- loading and swapping -----------------------------------------------------------------------------
    def reload(self, path: str | Path | None = None, initial: bool = False) -> LoadedRun:
        """Load `path` (default: the configured run path) and swap it in; the current run keeps serving while the
        new one loads, and stays if the new one is refused (DeepshelfError)."""
        with self._reload_lock:
            target = Path(path) if path is not None else self.settings.run
            try:
                new = self._load(target)
            except Exception as exc:
                msg = str(exc) if isinstance(exc, DeepshelfError) else f"{type(exc).__name__}: {exc}"
                self.last_reload_error = f"{target}: {msg}"
                if initial:
                    raise DeepshelfError(f"cannot serve run {target}: {msg}") from None
                raise DeepshelfError(f"run {target} refused ({msg}); still serving "
                                     f"{self.state.version if self.state else 'no model'}") from None
            if path is not None and not initial:
                self.settings.run = Path(path)  # the watcher follows the newly chosen path from now on
            self.state = new
            self.last_reload_error = None
            self._failed_signature = None
            if self.metrics is not None:
                self.metrics.set_model(new.version)
            log.info("serving run %s (version %s, %d items)", target, new.version, len(new.view))
            return new

    def _load(self, path: Path | None) -> LoadedRun:
        if path is None:
            view = CatalogView(None, self.store)
            state = LoadedRun(None, None, None, None, None, view)
            state.trending = self._compute_trending(state)
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
        self._seed_catalog(run)
        view = CatalogView(model.item_map, self.store)
        state = LoadedRun(Path(path), signature, run.version, run, model, view)
        state.vectors = vector_model(model)
        if state.vectors is not None:
            if state.vectors.items.shape[0] != n:
                raise DeepshelfError(f"item vectors have {state.vectors.items.shape[0]} rows for {n} items")
            if n > self.settings.ann_threshold:
                state.index = VectorIndex(state.vectors.items, self.settings.ann_threshold, self.settings.ann_nprobe)
        sim = getattr(model, "similarity", None)
        if sp.issparse(sim):
            state.similarity = sim.tocsr()
        state.content = content_plugin.load(Path(path), model.item_map)
        state.trending = self._compute_trending(state)
        return state

    def _seed_catalog(self, run) -> None:
        """An empty store gets the catalogue of the run's dataset, so rules (category, price, stock) and item pages
        work from the first start; after that the store is the source of truth (upserts over HTTP)."""
        if self.store.count_items() > 0:
            return
        try:
            from deepshelf.data.datasets import load_dataset

            catalog = load_dataset(run.config.dataset, catalog=run.config.catalog).catalog
        except Exception as exc:  # the dataset may not exist on the serving machine; the catalogue can come later
            log.warning("could not seed the catalogue from dataset %r: %s", run.config.dataset, exc)
            return
        if catalog is None:
            return
        t = catalog.table
        attrs = catalog.attributes
        rows = [Item(item_id=str(r["item"]), title=r["title"] or "", description=r["description"] or "",
                     category=r["category"] or "", price=r["price"], in_stock=bool(r["in_stock"]),
                     image_url="", attributes={a: r[a] for a in attrs if r.get(a) is not None})
                for r in t.iter_rows(named=True)]
        for start in range(0, len(rows), 5000):
            self.store.upsert_items(rows[start:start + 5000])
        log.info("seeded the store's catalogue with %d items from %s", len(rows), run.config.dataset)

    # ---- trending / popular -------------------------------------------------------------------------------
    def _compute_trending(self, state: LoadedRun) -> Trending:
        """Live trending from the store (weighted events in the last `trending_days`), else all-time popular,
        else the model's own popularity, else newest catalogue items first."""
        view = state.view
        view.refresh()
        since = time.time() - self.settings.trending_days * 86400
        for reason, start in (("trending", since), ("popular", 0.0)):
            rows = self.store.item_counts(start, DEFAULT_EVENT_WEIGHTS, TRENDING_TOP)
            if rows:
                idx = view.lookup([r[0] for r in rows])
                scores = np.array([r[1] for r in rows], dtype=np.float32)
                known = idx >= 0
                idx, scores = idx[known], scores[known]
                if len(idx):
                    top = max(float(scores[0]), 1e-9)
                    scores = scores / top
                    return Trending(idx, scores, reason, dict(zip(idx.tolist(), scores.tolist())))
        item_scores = getattr(state.model, "item_popularity", None)
        if item_scores is not None:
            order = np.argsort(-item_scores, kind="stable")[:TRENDING_TOP]
            return Trending(order.astype(np.int64), item_scores[order].astype(np.float32), "popular")
        order = np.argsort(-view.cols.added_at, kind="stable")[:TRENDING_TOP]
        return Trending(order.astype(np.int64), np.zeros(len(order), np.float32), "new_arrival")

    def _fallback(self, state: LoadedRun, need: int, rules: Rules, excluded: np.ndarray,
                  skip: set[int]) -> tuple[list[int], list[float], list[str]]:
        """Up to `need` allowed items from the trending list, then from the rest of the catalogue."""
        tr = state.trending
        out_i, out_s, out_r = [], [], []
        # in growing chunks: the rules are checked on a few times `need` items, not the whole trending list
        start, chunk = 0, max(256, 4 * (need + len(skip)))
        while start < len(tr.order):
            order, scores = tr.order[start:start + chunk], tr.scores[start:start + chunk]
            ok = allowed(state.view, order, rules, excluded)
            for i, s in zip(order[ok].tolist(), scores[ok].tolist()):
                if i not in skip:
                    out_i.append(i)
                    out_s.append(s)
                    out_r.append(tr.reason)
                    skip.add(i)
                    if len(out_i) >= need:
                        return out_i, out_s, out_r
            start, chunk = start + chunk, chunk * 4
        # The tail: anything the rules allow, newest arrivals first (vectorised over the whole catalogue).
        n = len(state.view)
        mask = allowed(state.view, np.arange(n), rules, excluded)
        cand = np.flatnonzero(mask)
        cand = cand[np.argsort(-state.view.cols.added_at[cand], kind="stable")]
        for i in cand[: need + len(skip)].tolist():
            if i not in skip:
                out_i.append(i)
                out_s.append(0.0)
                out_r.append("new_arrival" if i >= state.n_model else "catalog")
                skip.add(i)
                if len(out_i) >= need:
                    break
        return out_i, out_s, out_r

    # ---- the ranking core ---------------------------------------------------------------------------------
    def _model_candidates(self, state: LoadedRun, hist: list[int], types: list[int], m: int, rules: Rules,
                          excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to `m` allowed items scored by the model from history `hist` (model indices, oldest first)."""
        n = state.n_model
        histories = Histories(np.array([0, len(hist)], dtype=np.int64), np.asarray(hist, dtype=np.int32),
                              np.asarray(types, dtype=np.int8))
        if state.index is not None:  # big catalogue, vector model: ANN retrieval, then the rules
            query = state.vectors.query(histories)
            fetch = m + len(excluded)
            while True:
                idx, scores = state.index.search(query, fetch)
                idx, scores = idx[0], scores[0]
                ok = allowed(state.view, idx, rules, excluded) & np.isfinite(scores)
                if ok.sum() >= m or fetch >= n or fetch >= 50_000:
                    return idx[ok][:m], scores[ok][:m]
                fetch *= 8  # a narrow filter: look further down the ranking
        if state.similarity is not None and n > self.settings.ann_threshold:
            # item-kNN over a big catalogue: the sparse sum of neighbour lists, never a dense [n_items] row
            row = sp.csr_matrix((np.ones(len(hist), np.float32), (np.zeros(len(hist), int), hist)),
                                shape=(1, n))
            row.data[:] = 1.0
            scored = (row @ state.similarity).tocsr()
            cand, scores = scored.indices.astype(np.int64), scored.data.astype(np.float32)
            ok = allowed(state.view, cand, rules, excluded)
            cand, scores = cand[ok], scores[ok]
            order = np.lexsort((cand, -scores))[:m]
            return cand[order], scores[order]
        # the reference path: the same recommend() evaluation uses, with the rules as its filter mask
        mask = full_mask(state.view, n, rules, excluded)
        idx, scores = state.model.recommend(histories, k=min(m, n), exclude_seen=False, filters=mask)
        keep = idx[0] >= 0
        idx, scores = idx[0][keep], scores[0][keep]
        if state.similarity is not None:  # for item-kNN a zero means "never bought together": not a signal
            keep = scores > 0
            idx, scores = idx[keep], scores[keep]
        return idx, scores

    def _rank(self, state: LoadedRun, hist_idx: list[int], hist_types: list[int], purchased: list[int], k: int,
              rules: Rules) -> tuple[list[int], list[float], list[str], str]:
        view = state.view
        excluded = set(view.lookup(rules.exclude).tolist()) if rules.exclude else set()
        if rules.exclude_seen:
            excluded.update(hist_idx)
        if rules.exclude_purchased:
            excluded.update(purchased)
        excluded.discard(-1)
        excluded_arr = np.fromiter(excluded, dtype=np.int64, count=len(excluded))
        m = k * 4 + 20  # room for boosts and per-category limits to reorder
        model_hist = [(i, t) for i, t in zip(hist_idx, hist_types) if 0 <= i < state.n_model]
        idx_list: list[int] = []
        score_list: list[float] = []
        reasons: list[str] = []
        source = "fallback"
        if state.model is not None and model_hist:
            idx, scores = self._model_candidates(state, [i for i, _ in model_hist], [t for _, t in model_hist],
                                                 m, rules, excluded_arr)
            idx_list, score_list = idx.tolist(), scores.tolist()
            reasons = [state.reason] * len(idx_list)
            source = "model"
        skip = set(idx_list)
        if len(idx_list) < m:
            fi, fs, fr = self._fallback(state, m - len(idx_list), rules, excluded_arr, skip)
            if score_list:  # fallback items rank below every model item (scores stay monotone down the list)
                floor = min(min(score_list), 0.0) - 1.0
                fs = [floor + s * 1e-3 for s in fs]
            idx_list += fi
            score_list += fs
            reasons += fr
        slots = self.settings.new_item_slots if view.n_new else 0
        top_i, top_s, top_r = rerank(view, np.asarray(idx_list, np.int64), np.asarray(score_list), reasons, rules,
                                     k)
        top_i, top_s = top_i.tolist(), top_s.tolist()
        if slots:
            top_i, top_s, top_r = self._new_item_slots(state, top_i, top_s, list(top_r), k, slots, rules,
                                                       excluded_arr, hist_idx)
        return top_i, top_s, list(top_r), source

    def _new_item_slots(self, state, top_i, top_s, top_r, k, slots, rules, excluded, hist_idx=()):
        """Reserve up to `slots` places for catalogue items the model has never seen (added since training), so
        a new product is recommended without retraining. With content text vectors (the run has content indexes)
        they are ranked by text similarity to the shopper's recent items (reason `text`); otherwise, or for a
        shopper without history, by live trending, then newest first (reason `new_arrival`)."""
        view = state.view
        new = np.arange(state.n_model, len(view))
        new = new[allowed(view, new, rules, excluded) & ~np.isin(new, top_i)]
        if not len(new):
            return top_i, top_s, top_r
        tr = state.trending.item_scores if state.trending else {}
        trend = np.array([tr.get(i, 0.0) for i in new.tolist()])
        content_score = np.zeros(len(new))
        content = state.content
        recent = [i for i in list(hist_idx)[-20:] if i >= 0]
        if content is not None and content.has_text and recent:
            hist_vecs, hist_ok = content.text_vectors(view.cols.ids[recent])
            new_vecs, new_ok = content.text_vectors(view.cols.ids[new])
            if hist_ok.any() and new_ok.any():
                query = hist_vecs[hist_ok].mean(0)
                content_score = np.where(new_ok, new_vecs @ query, 0.0)
        order = np.lexsort((-view.cols.added_at[new], -trend, -content_score))[:slots]
        picks = new[order].tolist()
        reasons = ["text" if content_score[o] > 0 else "new_arrival" for o in order]
        keep = max(0, min(len(top_i), k - len(picks)))
        floor = min(top_s[:keep], default=0.0)
        return top_i[:keep] + picks, top_s[:keep] + [floor] * len(picks), top_r[:keep] + reasons

    def _answer(self, state: LoadedRun, idx: list[int], scores: list[float], reasons: list[str],
                source: str) -> Answer:
        ids = state.view.cols.ids
        return Answer([str(ids[i]) for i in idx], [float(s) for s in scores], list(reasons), state.version, source)

    # ---- public operations ----------------------------------------------------------------------------------
    def _state(self) -> LoadedRun:
        state = self.state
        if state is None:
            raise DeepshelfError("the service is starting; no run loaded yet")
        state.view.refresh(max_age_s=self.settings.catalog_refresh_s)
        return state

    def ingest(self, events: list[Event]) -> int:
        n = self.store.add_events(events)  # committed (durable) before we return
        if self.metrics is not None:
            self.metrics.events_ingested(n)
        return n

    def history(self, user_id: str, limit: int) -> list[Event]:
        return self.store.history(user_id, limit)

    def recommend_user(self, user_id: str, k: int, rules: Rules) -> Answer:
        state = self._state()
        events = self.store.recent_items(user_id, self.settings.max_history)[::-1]  # oldest first, as models expect
        idx = state.view.lookup([item for item, _ in events]).tolist()
        types = [TYPE_CODE.get(kind, 0) for _, kind in events]
        purchased = [i for i, (_, kind) in zip(idx, events) if kind == "purchase"]
        top_i, top_s, top_r, source = self._rank(state, idx, types, purchased, k, rules)
        return self._answer(state, top_i, top_s, top_r, source)

    def recommend_session(self, item_ids: list[str], k: int, rules: Rules) -> Answer:
        state = self._state()
        idx = state.view.lookup(item_ids).tolist()
        top_i, top_s, top_r, source = self._rank(state, idx, [0] * len(idx), [], k, rules)
        return self._answer(state, top_i, top_s, top_r, source)

    def popular(self, k: int, rules: Rules) -> Answer:
        state = self._state()
        excluded = state.view.lookup(rules.exclude) if rules.exclude else np.zeros(0, np.int64)
        fi, fs, fr = self._fallback(state, k * 4 + 20, rules, excluded, set())
        top_i, top_s, top_r = rerank(state.view, np.asarray(fi, np.int64), np.asarray(fs), fr, rules, k)
        return self._answer(state, top_i.tolist(), top_s.tolist(), top_r, "fallback")

    def similar(self, item_id: str, k: int, mode: str, rules: Rules) -> Answer:
        state = self._state()
        i = state.view.index.get(item_id, -1)
        if i < 0:
            raise NotFound(f"item {item_id!r} is not in the catalogue or the run")
        excluded = set(state.view.lookup(rules.exclude).tolist()) if rules.exclude else set()
        excluded.add(i)
        excluded.discard(-1)
        excluded_arr = np.fromiter(excluded, dtype=np.int64, count=len(excluded))
        m = k * 4 + 20
        # "behavior" always comes from the served model (fresher than a content run's own behaviour vectors)
        if mode != "behavior":
            if state.content is None or mode not in state.content.modes:
                raise NotAvailable(f"mode {mode!r} is not available for this run: it has no content vectors "
                                   "(train the content model into the run's content/ folder); use mode=behavior")
            ids, scores, reason = state.content.similar(item_id, m, mode)
            idx = state.view.lookup(ids)
            ok = allowed(state.view, idx, rules, excluded_arr)
            idx, scores = idx[ok], np.asarray(scores, np.float32)[ok]
            reasons = [reason] * len(idx)
            source = "content"
        elif i < state.n_model and state.model is not None:
            idx, scores = self._similar_behavior(state, i, m, rules, excluded_arr)
            reasons = ["also_bought"] * len(idx)
            source = "model"
        else:  # a product the model has never seen: same category, by trending
            cat = state.view.cols.category[i]
            same = Rules(**{**rules.__dict__, "categories": [state.view.categories[cat]]}) if cat >= 0 else rules
            fi, fs, _ = self._fallback(state, m, same, excluded_arr, set())
            idx, scores = np.asarray(fi, np.int64), np.asarray(fs, np.float32)
            reasons = ["same_category" if cat >= 0 else state.trending.reason] * len(idx)
            source = "fallback"
        idx_list, score_list = idx.tolist(), scores.tolist()
        if len(idx_list) < k:  # top up so an answer is never needlessly short
            fi, fs, fr = self._fallback(state, k - len(idx_list), rules, excluded_arr, set(idx_list))
            if score_list:
                floor = min(min(score_list), 0.0) - 1.0
                fs = [floor + s * 1e-3 for s in fs]
            idx_list += fi
            score_list += fs
            reasons = list(reasons) + fr
        top_i, top_s, top_r = rerank(state.view, np.asarray(idx_list, np.int64), np.asarray(score_list), reasons,
                                     rules, k)
        return self._answer(state, top_i.tolist(), top_s.tolist(), top_r, source)

    def _similar_behavior(self, state: LoadedRun, i: int, m: int, rules: Rules, excluded: np.ndarray):
        if state.similarity is not None:  # item-kNN: its stored neighbour list is "bought together"
            row = state.similarity[i]
            cand, scores = row.indices.astype(np.int64), row.data.astype(np.float32)
            ok = allowed(state.view, cand, rules, excluded) & (scores > 0)
            cand, scores = cand[ok], scores[ok]
            order = np.lexsort((cand, -scores))[:m]
            return cand[order], scores[order]
        # any other model: what it recommends after a session of just this item
        return self._model_candidates(state, [i], [0], m, rules, excluded)

    def search(self, query: str, k: int, user_id: str | None, rules: Rules) -> Answer:
        state = self._state()
        m = k * 4 + 20
        excluded = state.view.lookup(rules.exclude) if rules.exclude else np.zeros(0, np.int64)
        if state.content is not None and state.content.can_search:
            ids, scores = state.content.search(query, m)
            idx = state.view.lookup(ids)
            scores = np.asarray(scores, np.float32)
            reason, source = "text", "content"
        else:
            # No semantic index in this run: substring match on titles/categories, ranked by live popularity
            # (or by the shopper's own model scores when a user is given).
            items = self.store.search_titles(query, 2000)
            idx = state.view.lookup([it.item_id for it in items])
            tr = state.trending.item_scores if state.trending else {}
            scores = np.array([tr.get(i, 0.0) for i in idx.tolist()], dtype=np.float32)
            reason, source = "text_match", "keyword"
        ok = allowed(state.view, idx, rules, excluded)
        idx, scores = idx[ok], scores[ok]
        if user_id and len(idx) and state.model is not None:
            personal = self._personal_scores(state, user_id, idx)
            if personal is not None:
                # rank by the query match first, then by what this shopper is likely to want
                scores = scores + 0.1 * personal
                reason = f"{reason}+personal"
        order = np.argsort(-scores, kind="stable")[:m]
        top_i, top_s, top_r = rerank(state.view, idx[order], scores[order], [reason] * len(order), rules, k)
        return self._answer(state, top_i.tolist(), top_s.tolist(), top_r, source)

    def _personal_scores(self, state: LoadedRun, user_id: str, idx: np.ndarray) -> np.ndarray | None:
        """The user's model scores for candidate items `idx`, scaled to [0, 1]; None without a usable history."""
        events = self.store.recent_items(user_id, self.settings.max_history)[::-1]
        hist = [i for i in state.view.lookup([item for item, _ in events]).tolist() if 0 <= i < state.n_model]
        if not hist:
            return None
        known = idx < state.n_model
        out = np.zeros(len(idx), np.float32)
        histories = Histories.from_lists([hist])
        if state.vectors is not None:
            q = state.vectors.query(histories)[0]
            out[known] = state.vectors.items[idx[known]] @ q
        elif state.similarity is not None:
            row = sp.csr_matrix((np.ones(len(hist), np.float32), (np.zeros(len(hist), int), hist)),
                                shape=(1, state.n_model))
            out[known] = (row @ state.similarity)[:, idx[known]].toarray()[0]
        elif state.n_model <= self.settings.ann_threshold:
            out[known] = state.model.score(histories)[0, idx[known]]
        else:
            return None
        span = float(out.max() - out.min())
        return (out - out.min()) / span if span > 0 else np.zeros_like(out)

    # ---- catalogue ------------------------------------------------------------------------------------------
    def upsert_items(self, items: list[Item]) -> int:
        n = self.store.upsert_items(items)
        state = self.state
        if state is not None:
            state.view.refresh()  # this server sees its own upsert at once; others within catalog_refresh_s
            if state.content is not None:
                state.content.add_items(items)
        return n
