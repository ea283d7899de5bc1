"""Ranking one answer from a loaded run, in steps:

    candidates   the model's best items for a history (an ANN index over item vectors, the sparse neighbour
                 lists, exact scores from a vector model's cached query vector, or the model's own
                 `recommend()`, the reference) with the rules as filter; each
                 candidate carries its score and the reason shown to the shopper
    stages       each of the run's `stages`, then the service's (the shopper's current visit, `visit.py`),
                 re-scores the candidates; without stages the first list is served as it is
    fill         fallback items (trending, then the rest of the catalogue) below every model item, up to
                 `pool_size(k)`
    rules        boosts and per-category limits (`rules.rerank`), then the top k
    new items    up to `new_item_slots` places for products the model has never seen

Every step works on catalogue indices of one `Snapshot` taken at the start of the request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from deepshelf.data.interactions import Histories
from deepshelf.index.exact import topk_allowed
from deepshelf.models.base import Explains, VectorScorer
from deepshelf.engine.catalog_view import Snapshot
from deepshelf.engine.rules import Rules, allowed, rerank
from deepshelf.engine.loaded import LoadedRun
from deepshelf.engine.trending import fallback

ANN_FETCH_LIMIT = 50_000  # a filter so narrow that this many ANN hits hold too few allowed items: answer short


def pool_size(k: int) -> int:
    """Candidates gathered for an answer of `k`: room for boosts and per-category limits to reorder."""
    return 4 * k + 20


def excluded_items(catalog: Snapshot, rules: Rules, also=()) -> np.ndarray:
    """int64 indices no answer may contain: the rules' `exclude` ids plus `also` (history, purchases, the item
    itself); unknown ids dropped, each index once."""
    excluded = set(catalog.lookup(rules.exclude).tolist()) if rules.exclude else set()
    excluded.update(also)
    excluded.discard(-1)
    return np.fromiter(excluded, dtype=np.int64, count=len(excluded))


def history_row(items, n: int) -> sp.csr_matrix:
    """[1, n] binary csr row of a history's model indices (an item counts once, as in `ItemKNN.score`)."""
    row = Histories.from_lists([list(items)]).to_csr(n)
    row.data[:] = 1.0
    return row


@dataclass(frozen=True)
class Shopper:
    """Whom an answer is for: a history in catalogue indices, oldest first (-1 where the catalogue lacks an id)."""

    items: np.ndarray  # int64 [L]
    types: np.ndarray  # int8 [L] event type codes (0 when unknown, e.g. an anonymous session)
    purchased: np.ndarray  # int64 indices the shopper bought
    timestamps: np.ndarray  # int64 [L] Unix seconds of each event (an anonymous session's: the request's time)

    def for_model(self, n_model: int) -> Histories:
        """The part of the history the model knows, as a one-row batch with event types and times."""
        known = (self.items >= 0) & (self.items < n_model)
        items = self.items[known]
        return Histories(np.array([0, len(items)], dtype=np.int64), items.astype(np.int32),
                         self.types[known].astype(np.int8), self.timestamps[known].astype(np.int64))


@dataclass
class Candidates:
    """Items for an answer, best first: catalogue indices, scores and the reason shown for each."""

    idx: np.ndarray  # int64 [m]
    scores: np.ndarray  # float64 [m]
    reasons: list[str]

    @classmethod
    def of(cls, idx, scores, reason: str | list[str]) -> Candidates:
        idx = np.asarray(idx, dtype=np.int64)
        reasons = [reason] * len(idx) if isinstance(reason, str) else list(reason)
        return cls(idx, np.asarray(scores, dtype=np.float64), reasons)

    def __len__(self) -> int:
        return len(self.idx)

    def then(self, more: Candidates) -> Candidates:
        """These candidates followed by `more`, whose scores move below every one of these (so scores stay
        monotone down the list and a boost cannot lift a fallback item over a model item by much)."""
        scores = more.scores
        if len(self):
            scores = min(float(self.scores.min()), 0.0) - 1.0 + scores * 1e-3
        return Candidates(np.concatenate([self.idx, more.idx]), np.concatenate([self.scores, scores]),
                          self.reasons + more.reasons)


class Stage(Protocol):
    """A second ranking stage: re-scores (and may reorder, drop or add to) the first stage's candidates for a
    shopper, giving each item its own reason; an item it adds must be allowed by `rules` and not `excluded`.
    `k`: the size of the answer the candidates are for."""

    def rescore(self, state: LoadedRun, catalog: Snapshot, shopper: Shopper, candidates: Candidates, k: int,
                rules: Rules, excluded: np.ndarray) -> Candidates: ...


def top_up(state: LoadedRun, catalog: Snapshot, candidates: Candidates, need: int, rules: Rules,
           excluded: np.ndarray) -> Candidates:
    """`candidates` followed by fallback items until there are `need` (when the catalogue has them)."""
    if len(candidates) >= need:
        return candidates
    fi, fs, fr = fallback(catalog, state.trending, need - len(candidates), rules, excluded,
                          set(candidates.idx.tolist()))
    return candidates.then(Candidates.of(fi, fs, fr))


def model_candidates(state: LoadedRun, catalog: Snapshot, histories: Histories, m: int, rules: Rules,
                     excluded: np.ndarray) -> Candidates:
    """Up to `m` allowed items scored by the model for the one-row batch `histories` (model indices), each
    with its own reason when the model explains itself (`Explains`), else the model's one reason."""
    found = _scored_candidates(state, catalog, histories, m, rules, excluded)
    if len(found) and _explains(type(state.model)):
        named = state.model.reasons(histories, found.idx[None, :])[0]
        found.reasons = [str(r) or state.reason for r in named.tolist()]
    return found


@functools.cache
def _vectors(model_class: type) -> bool:
    """Whether a model class scores by a dot product (`VectorScorer`), checked once per class."""
    return issubclass(model_class, VectorScorer)


@functools.cache
def _explains(model_class: type) -> bool:
    """Whether a model class names its own reasons (`Explains`), checked once per class: a runtime-protocol
    isinstance check inspects the class's attributes on every call of the hot path."""
    return issubclass(model_class, Explains)


def _scored_candidates(state: LoadedRun, catalog: Snapshot, histories: Histories, m: int, rules: Rules,
                       excluded: np.ndarray) -> Candidates:
    n = state.n_model
    if state.index is not None:  # big catalogue, vector model: ANN retrieval, then the rules
        fetch = m + len(excluded)
        while True:
            # a history seen before (the shopper's next page) is not folded in and searched again (queries.py)
            idx, scores = state.queries.search(state.index, state.model, histories, fetch)
            idx, scores = idx[0], scores[0]
            ok = allowed(catalog, idx, rules, excluded) & np.isfinite(scores)
            if ok.sum() >= m or fetch >= n or fetch >= ANN_FETCH_LIMIT:
                return Candidates.of(idx[ok][:m], scores[ok][:m], state.reason)
            fetch *= 8  # a narrow filter: look further down the ranking
    if state.similarity is not None and not state.dense_ok:
        # item-kNN over a big catalogue: the sparse sum of neighbour lists, never a dense [n_items] row
        scored = (history_row(histories[0], n) @ state.similarity).tocsr()
        return _best_allowed(catalog, scored.indices, scored.data, m, rules, excluded, state.reason)
    mask = allowed(catalog, np.arange(n), rules, excluded)
    if _vectors(type(state.model)):
        # exact scores of a dot-product model from the history's query vector, which a shopper's next list reads
        # from the run's cache instead of folding in again (queries.py): `score(h) == query_vectors(h) @
        # item_vectors().T` is the model contract (tests/models/test_contract.py)
        query = state.queries.query(state.model, histories)
        scores = (query @ state.model.item_vectors().T).astype(np.float32, copy=False)  # a fresh array: masked in place
        idx, scores = topk_allowed(scores, min(m, n), mask)
    else:  # the reference path: the same recommend() evaluation uses, with the rules as its filter mask
        idx, scores = state.model.recommend(histories, k=min(m, n), exclude_seen=False, filters=mask)
    keep = idx[0] >= 0
    if state.similarity is not None:  # for item-kNN a zero means "never bought together": not a signal
        keep &= scores[0] > 0
    return Candidates.of(idx[0][keep], scores[0][keep], state.reason)


def _best_allowed(catalog: Snapshot, cand, scores, m: int, rules: Rules, excluded: np.ndarray,
                  reason: str) -> Candidates:
    """The `m` best of sparse (index, score) pairs that the rules allow and that score above zero."""
    cand, scores = np.asarray(cand, np.int64), np.asarray(scores, np.float32)
    ok = allowed(catalog, cand, rules, excluded) & (scores > 0)
    cand, scores = cand[ok], scores[ok]
    order = np.lexsort((cand, -scores))[:m]
    return Candidates.of(cand[order], scores[order], reason)


def behavior_neighbours(state: LoadedRun, catalog: Snapshot, i: int, m: int, rules: Rules,
                        excluded: np.ndarray) -> Candidates:
    """Items bought with model item `i`: its neighbour list (item-kNN), else what the model recommends after a
    session of just this item."""
    if state.similarity is not None:
        row = state.similarity[i]
        return _best_allowed(catalog, row.indices, row.data, m, rules, excluded, "also_bought")
    found = model_candidates(state, catalog, Histories.from_lists([[i]], [[0]]), m, rules, excluded)
    return Candidates.of(found.idx, found.scores, "also_bought")


def recommend(state: LoadedRun, catalog: Snapshot, shopper: Shopper, k: int, rules: Rules,
              stages: tuple[Stage, ...] = ()) -> tuple[Candidates, str]:
    """The top `k` for `shopper` under `rules`, and what produced the list (`model` or `fallback`); the run's
    stages, then `stages`, re-rank the model's candidates; then up to `rules.new_slots` places for new products."""
    also = [*shopper.items.tolist()] if rules.exclude_seen else []
    if rules.exclude_purchased:
        also += shopper.purchased.tolist()
    excluded = excluded_items(catalog, rules, also)
    m = pool_size(k)
    histories = shopper.for_model(state.n_model)
    candidates, source = Candidates.of([], [], []), "fallback"
    if state.model is not None and len(histories.items):
        candidates, source = model_candidates(state, catalog, histories, m, rules, excluded), "model"
        for stage in (*state.stages, *stages):
            candidates = stage.rescore(state, catalog, shopper, candidates, k, rules, excluded)
    candidates = top_up(state, catalog, candidates, m, rules, excluded)
    top = Candidates.of(*rerank(catalog, candidates.idx, candidates.scores, candidates.reasons, rules, k))
    if rules.new_slots and (catalog.n_new or state.new_items is not None):
        top = new_item_slots_fill(state, catalog, top, k, rules.new_slots, rules, excluded, shopper.items,
                                  candidates)
    return top, source


def is_new(state: LoadedRun, catalog: Snapshot, idx: np.ndarray) -> np.ndarray:
    """bool per catalogue index: a new product (added since the run was trained, or new to the run itself)."""
    idx = np.asarray(idx, dtype=np.int64)
    out = idx >= catalog.n_model
    if state.new_items is not None:
        known = ~out & (idx >= 0)
        out[known] = state.new_items[idx[known]]
    return out


def new_item_slots_fill(state: LoadedRun, catalog: Snapshot, top: Candidates, k: int, slots: int, rules: Rules,
                        excluded: np.ndarray, history: np.ndarray, pool: Candidates | None = None) -> Candidates:
    """At least `slots` new products in the top `k` (`Rules.new_slots`: the exploration share), counting those
    already there. First the new products the run itself ranked (a ranker's new products, in its candidate
    `pool`, with their own score and reason, `new`), then catalogue items the run has never seen (added since
    training), so a new product is recommended without retraining: with content text vectors (the run has
    content indexes) and a history, by the cosine similarity of their text to the shopper's recent items (reason
    `text`, that similarity as score); otherwise by live trending, then newest first (reason `new_arrival`, their
    trending score as score: 0 for a product nobody has touched yet).
    Each new item takes the place of the lowest-ranked item of `top` and keeps its own score, which may be on
    another scale than the model's: so the list is ordered by (slot, score), `top`'s items first by their
    score, highest first, then the new products' slots by theirs; a client must not re-sort it by score alone."""
    need = slots - int(is_new(state, catalog, top.idx).sum())
    if need <= 0:
        return top
    picks, scores, reasons = [], [], []
    if pool is not None and state.new_items is not None and len(pool):
        mine = is_new(state, catalog, pool.idx) & ~np.isin(pool.idx, top.idx)
        mine &= allowed(catalog, pool.idx, rules, excluded)
        for j in np.flatnonzero(mine)[:need]:
            picks.append(int(pool.idx[j]))
            scores.append(float(pool.scores[j]))
            reasons.append(pool.reasons[j] if pool.reasons[j] != state.reason else "new")
    unseen = np.arange(catalog.n_model, len(catalog))
    unseen = unseen[allowed(catalog, unseen, rules, excluded) & ~np.isin(unseen, top.idx)]
    if len(picks) < need and len(unseen):
        more, more_scores, more_reasons = _unseen_by_text(state, catalog, unseen, history, need - len(picks))
        picks += more
        scores += more_scores
        reasons += more_reasons
    if not picks:
        return top
    keep = max(0, min(len(top), k - len(picks)))
    return Candidates(np.concatenate([top.idx[:keep], np.asarray(picks, np.int64)]),
                      np.concatenate([np.asarray(top.scores[:keep], np.float64), np.asarray(scores, np.float64)]),
                      top.reasons[:keep] + reasons)


def _unseen_by_text(state: LoadedRun, catalog: Snapshot, new: np.ndarray, history: np.ndarray,
                    n: int) -> tuple[list[int], list[float], list[str]]:
    """The `n` best of catalogue items `new` the run has never seen, their scores and reasons."""
    trend = state.trending.scores_of(new) if state.trending else np.zeros(len(new), np.float32)
    content_score = np.zeros(len(new))
    content = state.content
    recent = history[-20:]
    recent = recent[recent >= 0]
    if content is not None and content.has_text and len(recent):
        hist_vecs, hist_ok = content.text_vectors(catalog.cols.ids[recent])
        new_vecs, new_ok = content.text_vectors(catalog.cols.ids[new])
        if hist_ok.any() and new_ok.any():
            query = hist_vecs[hist_ok].mean(0)
            content_score = np.where(new_ok, new_vecs @ query, 0.0)
    order = np.lexsort((-catalog.cols.added_at[new], -trend, -content_score))[:n]
    by_text = content_score[order] > 0
    reasons = ["text" if t else "new_arrival" for t in by_text.tolist()]
    scores = np.where(by_text, content_score[order], trend[order]).astype(np.float64)
    return new[order].tolist(), scores.tolist(), reasons


def personal_scores(state: LoadedRun, histories: Histories, idx: np.ndarray) -> np.ndarray | None:
    """The model's scores of candidate items `idx` for a one-row batch, scaled to [0, 1]; None when the run
    cannot score them cheaply (a big catalogue without vectors or neighbour lists)."""
    known = idx < state.n_model
    out = np.zeros(len(idx), np.float32)
    if state.item_vectors is not None:
        out[known] = state.item_vectors[idx[known]] @ state.queries.query(state.model, histories)[0]
    elif state.similarity is not None:
        out[known] = (history_row(histories[0], state.n_model) @ state.similarity)[:, idx[known]].toarray()[0]
    elif state.dense_ok:
        out[known] = state.model.score(histories)[0, idx[known]]
    else:
        return None
    span = float(out.max() - out.min())
    return (out - out.min()) / span if span > 0 else np.zeros_like(out)
