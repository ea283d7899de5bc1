"""Why an item is on a shopper's list, in their own terms: for an item whose reason comes from the shopper's
history (`also_bought`, `sequence`, `similar_to_recent`, ...), the recent item of that history it relates to
most, shown as "because you viewed …".

Relatedness is read from what the run has: text reasons from the content run's text vectors (cosine), the
others from the served model itself (what it scores after a history of just that one recent item: the
neighbour list of item-kNN, the query vector of a vector model, the full model otherwise), each falling back
to the other when it has nothing to say.
"""

from __future__ import annotations

import numpy as np

from deepshelf.data.interactions import Histories
from deepshelf.serving.catalog_view import Snapshot
from deepshelf.serving.ranking import Candidates, Shopper
from deepshelf.serving.state import LoadedRun

# Reasons that point at the shopper's own history (trending, popular, new_arrival, ... do not).
HISTORY_REASONS = frozenset({"bought_before", "sequence", "also_bought", "similar_to_recent", "text", "personal",
                             "session", "collaborative", "similar"})
TEXT_REASONS = frozenset({"similar_to_recent", "text", "similar"})
RECENT = 5  # the shopper's most recent distinct items an answer is explained by
# A recent item explains a listed one when the model ranks that one among its RELATED_TOP best after the
# recent item alone, or when their text vectors' cosine is at least TEXT_RELATED.
RELATED_TOP = 50
TEXT_RELATED = 0.5


def recent_items(shopper: Shopper, n: int = RECENT) -> np.ndarray:
    """int64 catalogue indices of the shopper's `n` most recent distinct known items, newest first."""
    newest_first = shopper.items[::-1]
    newest_first = newest_first[newest_first >= 0]
    _, first = np.unique(newest_first, return_index=True)
    return newest_first[np.sort(first)][:n]


def because(state: LoadedRun, catalog: Snapshot, shopper: Shopper, top: Candidates) -> np.ndarray:
    """int64 [len(top)]: per listed item, the catalogue index of the recent item it relates to most, or -1
    (a reason not drawn from the history, no recent items, or nothing relates)."""
    out = np.full(len(top), -1, np.int64)
    recent = recent_items(shopper)
    kinds = [r.split("+")[0] for r in top.reasons]
    wanted = np.array([k in HISTORY_REASONS for k in kinds], bool)
    if not len(recent) or not wanted.any():
        return out
    own = wanted & np.isin(top.idx, shopper.items[shopper.items >= 0])
    out[own] = top.idx[own]  # bought (or seen) before: the item itself
    rest = wanted & ~own
    if not rest.any():
        return out
    text_first = np.array([k in TEXT_REASONS for k in kinds], bool)
    by_text = _text_relation(state, catalog, recent, top.idx)
    by_model = _model_relation(state, recent, top.idx) if (rest & ~text_first).any() or by_text is None else None
    for first, second, rows in ((by_text, by_model, rest & text_first), (by_model, by_text, rest & ~text_first)):
        for relation in (first, second):
            if relation is None:
                continue
            best = relation.argmax(axis=0)
            ok = rows & (out < 0) & (relation[best, np.arange(len(top))] > 0)
            out[ok] = recent[best[ok]]
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
    out = np.zeros((len(recent), len(items)))
    if state.model is None or not known_r.any() or not known_i.any():
        return None
    singles = Histories.from_lists([[int(r)] for r in recent[known_r]])
    if state.similarity is not None:  # item-kNN: the neighbour lists themselves (zero: never bought together)
        rows = state.similarity[recent[known_r]][:, items[known_i]].toarray()
        out[np.ix_(known_r, known_i)] = rows
        return out
    if state.item_vectors is not None:
        rows = state.model.query_vectors(singles) @ state.item_vectors.T
    elif state.dense_ok:
        rows = np.asarray(state.model.score(singles), np.float64)
    else:
        return None
    rows = np.asarray(rows, np.float64)
    z = (rows - rows.mean(axis=1, keepdims=True)) / np.maximum(rows.std(axis=1, keepdims=True), 1e-12)
    listed = z[:, items[known_i]]
    # a listed item is among a row's RELATED_TOP best (fewer than RELATED_TOP scores above it) exactly when it
    # scores at least the row's RELATED_TOP-th largest value: one partition per row instead of sorting it
    top = min(RELATED_TOP, z.shape[1])
    kth = np.partition(z, z.shape[1] - top, axis=1)[:, z.shape[1] - top, None]
    out[np.ix_(known_r, known_i)] = np.where(listed >= kth, np.maximum(listed, 1e-6), 0.0)
    return out
