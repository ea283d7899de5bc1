"""The shopper's current visit as a second ranking stage: a long history follows what was just clicked.

A model scores a history as a whole, so three clicks at the end of a 40-purchase history move a
collaborative model's list very little (issue 15: eight "Christmas Lights" views left a shopper's top 10 as
it was). The offline data a run learns from has no visits to learn this from (Online Retail is invoices only),
so serving adds it: the served model's own answer for the visit alone (the same call as
`POST /v1/sessions/recommendations`) takes every other place of the first `2 * share * k`, the answer for the
whole history the rest. The visit is the history's trailing events with gaps under `gap_s`, live (its newest
event under `gap_s` old), at most its last `max_events` (a big order placed minutes ago would otherwise drown
the clicks after it), and shorter than the history (else the model already sees only the visit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deepshelf.engine.catalog_view import Snapshot
from deepshelf.engine.ranking import Candidates, Shopper, model_candidates
from deepshelf.engine.rules import Rules
from deepshelf.engine.loaded import LoadedRun


def visit_start(timestamps: np.ndarray, gap_s: float, now: float, max_events: int) -> int:
    """Position in an oldest-first history where the current visit starts (at most its last `max_events`
    events); `len(timestamps)` when the newest event is older than `gap_s` (no visit in progress)."""
    n = len(timestamps)
    if not n or now - float(timestamps[-1]) > gap_s:
        return n
    breaks = np.flatnonzero(np.diff(timestamps.astype(np.float64)) > gap_s)
    return max(int(breaks[-1]) + 1 if len(breaks) else 0, n - max_events)


def interleave(visit: Candidates, whole: Candidates, places: int) -> Candidates:
    """`whole` with up to `places` items of `visit` put first and at every other place after (items already
    placed are skipped); each visit item takes the score of the item it precedes, so the list stays sorted and
    a boost moves both alike."""
    # plain lists: a numpy scalar per step of this loop cost more than the rest of the visit stage
    # (benchmarks/serve_wrk.py, the Service section's profile)
    v_idx, w_idx = visit.idx.tolist(), whole.idx.tolist()
    n_v, n_w = len(v_idx), len(w_idx)
    taken: set[int] = set()
    order: list[tuple[bool, int]] = []  # (from the visit, position there)
    v = w = 0
    placed = 0
    while w < n_w or (placed < places and v < n_v):
        if placed < places and v < n_v and (len(order) % 2 == 0 or w >= n_w):
            i = v_idx[v]
            v += 1
            if i not in taken:
                taken.add(i)
                order.append((True, v - 1))
                placed += 1
            continue
        i = w_idx[w]
        w += 1
        if i not in taken:
            taken.add(i)
            order.append((False, w - 1))
    w_scores = whole.scores.tolist()
    idx = np.array([v_idx[j] if from_visit else w_idx[j] for from_visit, j in order], np.int64)
    reasons = [visit.reasons[j] if from_visit else whole.reasons[j] for from_visit, j in order]
    scores = [None if from_visit else w_scores[j] for from_visit, j in order]
    # a visit item scores like the whole-history item after it (or before it, at the end of the list)
    return Candidates(idx, np.array(_fill_from_next(scores), np.float64), reasons)


def _fill_from_next(scores: list[float | None]) -> list[float]:
    out = list(scores)
    nxt = np.nan
    for j in range(len(out) - 1, -1, -1):
        if out[j] is None or out[j] != out[j]:  # a visit item (or a NaN score)
            out[j] = nxt
        else:
            nxt = out[j]
    prev = 0.0
    for j in range(len(out)):  # trailing visit items (nothing after them): the last whole-history score
        if out[j] is None or out[j] != out[j]:
            out[j] = prev
        else:
            prev = out[j]
    return out


@dataclass(frozen=True)
class VisitStage:
    """Second stage (`ranking.Stage`): the model's answer for the current visit, interleaved."""

    gap_s: float
    share: float
    max_events: int  # the visit's most recent events the model is asked about: what was just clicked

    def rescore(self, state: LoadedRun, catalog: Snapshot, shopper: Shopper, candidates: Candidates, k: int,
                rules: Rules, excluded: np.ndarray) -> Candidates:
        start = visit_start(shopper.timestamps, self.gap_s, time.time(), self.max_events)
        places = int(round(self.share * k))
        if start == 0 or start >= len(shopper.items) or places == 0:
            return candidates
        visit = Shopper(shopper.items[start:], shopper.types[start:], shopper.purchased,
                        shopper.timestamps[start:]).for_model(state.n_model)
        if not len(visit.items):
            return candidates
        found = model_candidates(state, catalog, visit, places + len(candidates), rules, excluded)
        return interleave(found, candidates, places)
