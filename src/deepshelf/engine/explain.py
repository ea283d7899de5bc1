"""Why an item is on a shopper's list, in their own terms: for an item whose reason comes from the shopper's
history (`also_bought`, `sequence`, `similar_to_recent`, ...), the recent item of that history it relates to
most, shown as "because you viewed …".

Relatedness is read from what the run has: text reasons from the content run's text vectors (cosine), the
others from the served model itself (what it scores after a history of just that one recent item: the
neighbour list of item-kNN, the query vector of a vector model, the full model otherwise), each falling back
to the other when it has nothing to say. For a vector model, what a recent item's whole row needs (its mean,
spread and RELATED_TOP-th best score) is computed once per item and run (`RelationRows`), on a big catalogue
through the run's ANN index as its recommendations are, so a request scores only the items it lists; a run's
trending items are computed when it is loaded (`warm`), so its first requests find them too.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections import OrderedDict

import numpy as np

from deepshelf.data.interactions import Histories
from deepshelf.engine.catalog_view import Snapshot
from deepshelf.engine.ranking import Candidates, Shopper
from deepshelf.engine.loaded import LoadedRun

log = logging.getLogger(__name__)

# Reasons that point at the shopper's own history (trending, popular, new_arrival, ... do not).
# A new product (`new`) is there because its text matches the shopper's recent items: it is explained by them.
HISTORY_REASONS = frozenset({"bought_before", "sequence", "also_bought", "similar_to_recent", "text", "personal",
                             "session", "collaborative", "similar", "new"})
TEXT_REASONS = frozenset({"similar_to_recent", "text", "similar", "new"})
RECENT = 5  # the shopper's most recent distinct items an answer is explained by
# A recent item explains a listed one when the model ranks that one among its RELATED_TOP best after the
# recent item alone, or when their text vectors' cosine is at least TEXT_RELATED.
RELATED_TOP = 50
TEXT_RELATED = 0.5
WARM_CHUNK = 256  # items per batch of the load-time warm-up (a dense run scores [WARM_CHUNK, n_items] at once)
# The most a load spends warming (most trending first): bounded whatever the model's fold-in costs (a sequence
# model's query is a forward pass).
WARM_BUDGET_S = 3.0


def recent_items(shopper: Shopper, n: int = RECENT) -> np.ndarray:
    """int64 catalogue indices of the shopper's `n` most recent distinct known items, newest first."""
    newest_first = shopper.items[::-1]
    distinct = dict.fromkeys(newest_first[newest_first >= 0].tolist())  # first occurrence kept, in order
    return np.fromiter(distinct, np.int64, len(distinct))[:n]


def because(state: LoadedRun, catalog: Snapshot, shopper: Shopper, top: Candidates) -> np.ndarray:
    """int64 [len(top)]: per listed item, the catalogue index of the recent item it relates to most, or -1
    (a reason not drawn from the history, no recent items, or nothing relates).

    Without content vectors the answer depends on the run, the history's items and the list alone, so it is
    computed once per (history, list) and run (`queries.py`): a shopper's next page with the same list reads it.
    (With content vectors, those of products added since training arrive in the background: computed each time.)"""
    if state.content is None:
        key = ("because", shopper.items.tobytes(), top.idx.tobytes(), tuple(top.reasons))
        return state.queries.memo(key, lambda: _because(state, catalog, shopper, top))
    return _because(state, catalog, shopper, top)


@functools.lru_cache(maxsize=256)
def _kind(reason: str) -> tuple[bool, bool]:
    """(drawn from the history, explained by text first) for a reason such as `also_bought` or `text+personal`
    (its first part counts): a model's few reasons, worked out once each instead of per listed item."""
    kind = reason.split("+")[0]
    return kind in HISTORY_REASONS, kind in TEXT_REASONS


def _because(state: LoadedRun, catalog: Snapshot, shopper: Shopper, top: Candidates) -> np.ndarray:
    out = np.full(len(top), -1, np.int64)
    flags = [_kind(r) for r in top.reasons]
    if not any(drawn for drawn, _ in flags):
        return out
    recent = recent_items(shopper)
    if not len(recent):
        return out
    wanted, text_first = np.array(flags, bool).reshape(-1, 2).T
    known = shopper.items[shopper.items >= 0]
    own = wanted & (top.idx[:, None] == known[None, :]).any(axis=1)  # a page of items against a history: no sort
    out[own] = top.idx[own]  # bought (or seen) before: the item itself
    rest = wanted & ~own
    if not rest.any():
        return out
    by_text = _text_relation(state, catalog, recent, top.idx)
    if by_text is None:  # no text vectors: the model explains every item (what the loop below does without text)
        by_model = _model_relation(state, recent, top.idx)
        if by_model is not None:
            ok = rest & (by_model.max(axis=0) > 0)
            out[ok] = recent[by_model.argmax(axis=0)[ok]]
        return out
    by_model = _model_relation(state, recent, top.idx) if (rest & ~text_first).any() else None
    # per relation, each listed item's most related recent item and whether it relates at all
    best = {id(r): (r.argmax(axis=0), r.max(axis=0) > 0) for r in (by_text, by_model) if r is not None}
    for first, second, rows in ((by_text, by_model, rest & text_first), (by_model, by_text, rest & ~text_first)):
        for relation in (first, second):
            if relation is None:
                continue
            most, relates = best[id(relation)]
            ok = rows & (out < 0) & relates
            out[ok] = recent[most[ok]]
    return out


def _text_relation(state: LoadedRun, catalog: Snapshot, recent: np.ndarray, items: np.ndarray) -> np.ndarray | None:
    """float [L, k] cosine of each recent item's text vector to each listed item's (0 without one); None when
    the run has no text vectors."""
    content = state.content
    if content is None or not content.has_text:
        return None
    ids = catalog.cols.ids
    rv, rok = content.text_vectors(ids[recent])
    iv, iok = content.text_vectors(ids[items])
    if not rok.any() or not iok.any():
        return None
    cosine = np.where(rok[:, None] & iok[None, :], rv @ iv.T, 0.0)
    return np.where(cosine >= TEXT_RELATED, cosine, 0.0)


def _model_relation(state: LoadedRun, recent: np.ndarray, items: np.ndarray) -> np.ndarray | None:
    """float [L, k]: how far above its average the model scores each listed item after a history of just one
    recent item (standard deviations; 0 for items or recent items the model does not know); None when the run
    cannot score whole rows cheaply."""
    n = state.n_model
    known_r, known_i = recent < n, items < n
    if state.model is None or not known_r.any() or not known_i.any():
        return None
    out = np.zeros((len(recent), len(items)))
    if state.similarity is not None:  # item-kNN: the neighbour lists themselves (zero: never bought together)
        rows = state.similarity[recent[known_r]][:, items[known_i]].toarray()
        out[np.ix_(known_r, known_i)] = rows
        return out
    if state.item_vectors is not None:
        # a vector model: the row statistics of each recent item come from the run's cache (computed once per
        # item), and only the listed items are scored here
        query, mean, std, kth = relation_rows(state).stats(recent[known_r])
        vectors = state.item_vectors[items[known_i]]
        listed = ((vectors @ query.T).T.astype(np.float64) - mean[:, None]) / std[:, None]
    elif state.dense_ok:
        rows = np.asarray(state.model.score(Histories.from_lists([[int(r)] for r in recent[known_r]])), np.float64)
        mean, std = rows.mean(axis=1), np.maximum(rows.std(axis=1), 1e-12)
        kth = _kth_largest(rows, RELATED_TOP)
        listed = (rows[:, items[known_i]] - mean[:, None]) / std[:, None]
        kth = (kth - mean) / std
    else:
        return None
    related = np.where(listed >= kth[:, None], np.maximum(listed, 1e-6), 0.0)
    if related.shape == out.shape:  # every recent and listed item known to the model (the usual case)
        return related
    out[np.ix_(known_r, known_i)] = related
    return out


def _kth_largest(rows: np.ndarray, k: int) -> np.ndarray:
    """[L]: each row's `k`-th largest value (its smallest when it is shorter). A listed item is among a row's
    `k` best (fewer than `k` scores above it) exactly when it scores at least this: one partition per row
    instead of sorting it."""
    top = min(k, rows.shape[1])
    return np.partition(rows, rows.shape[1] - top, axis=1)[:, rows.shape[1] - top]


class RelationRows:
    """For a vector model, what `_model_relation` needs of the model's whole row after a history of one item `r`:
    the query vector, the row's mean and standard deviation, and its `RELATED_TOP`-th largest score in standard
    deviations. It depends on the run only (not the catalogue, events or request), so it is computed once per
    item and run, and held for at most `capacity` items (the least recently used go first). A new run gets a
    new cache (`relation_rows`)."""

    def __init__(self, model, item_vectors: np.ndarray, index=None, capacity: int = 50_000):
        self.model = model
        self.item_vectors = item_vectors
        self.index = index  # the run's ANN index (a big catalogue), else None
        self.capacity = capacity
        self._rows: OrderedDict[int, tuple[np.ndarray, float, float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._centre: np.ndarray | None = None
        self._cov: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The item vectors' mean [d] and covariance [d, d] (float64, population), computed once."""
        with self._lock:
            if self._centre is None:
                vectors = self.item_vectors.astype(np.float64)
                self._centre = vectors.mean(axis=0)
                centred = vectors - self._centre
                self._cov = centred.T @ centred / len(vectors)
            return self._centre, self._cov

    def _kth(self, queries: np.ndarray) -> np.ndarray:
        """float64 [m]: each query's `RELATED_TOP`-th largest score over the items: exact (the whole row) on a
        catalogue scored densely; through the run's ANN index on a big one, as its recommendations are (so an item
        relates when the index would retrieve it among the `RELATED_TOP` best after that one item)."""
        if self.index is None:
            return _kth_largest(queries @ self.item_vectors.T, RELATED_TOP).astype(np.float64)
        _, scores = self.index.search(queries, RELATED_TOP)  # best first, -inf past the last hit
        scores = scores.astype(np.float64)
        # fewer hits than RELATED_TOP (a tiny catalogue): every item is among the best, as on the exact path
        return np.where(np.isfinite(scores).sum(axis=1) >= RELATED_TOP, scores[:, -1], -np.inf)

    def stats(self, recent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(query float32 [L, d], mean [L], std [L], kth [L]) for model indices `recent`."""
        keys = recent.tolist()
        rows = self._rows
        with self._lock:
            held = [rows.get(r) for r in keys]
            for r, row in zip(keys, held):
                if row is not None:
                    rows.move_to_end(r)
        if None in held:
            missing = list(dict.fromkeys(r for r, row in zip(keys, held) if row is None))
            queries = np.asarray(self.model.query_vectors(Histories.from_lists([[r] for r in missing])), np.float32)
            # the mean and variance of a row q @ V.T are q . mean(V) and q' cov(V) q: no pass over the row
            centre, cov = self._moments()
            q = queries.astype(np.float64)
            mean = q @ centre
            std = np.sqrt(np.maximum(np.einsum("md,de,me->m", q, cov, q), 0.0))
            std = np.maximum(std, 1e-12)
            kth = (self._kth(queries) - mean) / std
            fresh = {r: (queries[j], float(mean[j]), float(std[j]), float(kth[j])) for j, r in enumerate(missing)}
            held = [fresh[r] if row is None else row for r, row in zip(keys, held)]
            with self._lock:
                rows.update(fresh)
                while len(rows) > self.capacity:
                    rows.popitem(last=False)
        # one array per kind (a request's few rows: numpy's per-call cost is most of the work here)
        mean, std, kth = np.array([row[1:] for row in held], np.float64).reshape(-1, 3).T
        return np.stack([row[0] for row in held]), mean, std, kth


def warm(state: LoadedRun) -> int:
    """Fill a vector model's `RelationRows` with the rows of the run's trending items before the run serves
    (called when it is loaded, so also on a swap, while the old run still serves): the recent items of a
    shopper's history are mostly trending ones, so a fresh server explains its first requests from the cache
    instead of folding in and searching for each new recent item on the request. Bounded by the trending list
    (`trending.TRENDING_TOP` items, within the cache's capacity) and by `WARM_BUDGET_S`, most trending first;
    what it adds to the load is measured by benchmarks/serve_load.py (the Service section's start-up time).
    Returns the number of items warmed."""
    if state.model is None or state.item_vectors is None or state.trending is None:
        return 0
    cache = relation_rows(state)
    order = state.trending.order
    items = order[order < state.n_model][: cache.capacity]
    started = time.monotonic()
    done = 0
    while done < len(items) and time.monotonic() - started < WARM_BUDGET_S:
        cache.stats(items[done:done + WARM_CHUNK])
        done = min(done + WARM_CHUNK, len(items))
    log.info("row cache warmed with %d of %d trending items in %.2fs", done, len(items), time.monotonic() - started)
    return done


_CACHES: dict[int, tuple[weakref.ref, RelationRows]] = {}
_CACHES_LOCK = threading.Lock()


def relation_rows(state: LoadedRun) -> RelationRows:
    """The `RelationRows` of this loaded run (a reload, a variant's run: another object, another cache); a run
    no longer referenced anywhere drops its cache."""
    key = id(state)
    with _CACHES_LOCK:
        held = _CACHES.get(key)
        if held is not None and held[0]() is state:
            return held[1]
        cache = RelationRows(state.model, state.item_vectors, state.index)
        _CACHES[key] = (weakref.ref(state, lambda _, key=key: _drop(key)), cache)
        return cache


def _drop(key: int) -> None:
    with _CACHES_LOCK:
        held = _CACHES.get(key)
        if held is not None and held[0]() is None:
            del _CACHES[key]
