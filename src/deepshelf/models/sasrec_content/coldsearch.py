"""Validation NDCG@10 of many cold-scoring settings of a content-aware SASRec from one scoring pass.

A setting (`ColdSetting`) changes only the scores of one group of products (those without events): `model *
alpha + newest * factor + text[recency] * weight + bias`, each part a (cases, group) matrix measured once here. The
other products' scores do not move, so each case's top 10 among them is kept once, and a setting's top 10 is the
top 10 of those and the group's own top 10, which the bias does not reorder. That makes a setting cost a
(cases, group) sum and one top-10, and a bias a merge of two sorted lists of ten: the calibration can try hundreds of
settings and search each one's bias, where the full `Validation` would score every product again for each.
The calibration checks its choice with the full `Validation` (`calibration.calibrate_cold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepshelf.data.splits import EvalSet
from deepshelf.index.exact import topk


@dataclass(frozen=True)
class ColdSetting:
    alpha: float  # the cold products' id-and-text vector (`cold_model_scale`)
    factor: float  # their newest-item text similarity, times its value as trained
    weight: float  # their text cosine to the history's recency-weighted text (`cold_sequence_weight`)
    recency: float  # that weighting (`recency`)
    bias: float = 0.0  # added to their scores (`cold_bias`)


@dataclass
class Pool:
    """One set of cases scored with `group` (item indices) as the products without events."""

    evalset: EvalSet
    group: np.ndarray  # int64 [G]
    top_items: np.ndarray  # int64 [U, 10]: each case's top 10 among the other products, best first
    top_scores: np.ndarray  # float32 [U, 10]
    model: np.ndarray  # float32 [U, G]: the id-and-text vector's part of the group's scores
    newest: np.ndarray  # float32 [U, G]: the newest-item text similarity's part (as trained)
    text: dict[float, np.ndarray]  # recency -> float32 [U, G]: cosine to the history's weighted text
    excluded: np.ndarray  # bool [U, G]: group products the case may not be shown (seen)

    def group_top(self, s: ColdSetting) -> tuple[np.ndarray, np.ndarray]:
        """The group's top 10 per case under `s` without its bias: (item indices, scores) [U, 10] each."""
        scores = self.model * s.alpha + self.newest * s.factor
        if s.weight:
            scores += self.text[s.recency] * s.weight
        scores[self.excluded] = -np.inf
        idx, top = topk(scores, 10)
        return self.group[idx], top

    def ndcg(self, group_top: tuple[np.ndarray, np.ndarray], bias: float) -> float:
        """Mean NDCG@10 with the group's top 10 (`group_top`) raised by `bias`."""
        items = np.concatenate([self.top_items, group_top[0]], axis=1)  # (U, 20)
        scores = np.concatenate([self.top_scores, group_top[1] + np.float32(bias)], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        ranked = np.take_along_axis(items, order, axis=1)
        ranked[~np.isfinite(np.take_along_axis(scores, order, axis=1))] = -1
        return ndcg_at_10(ranked, self.evalset)


def ndcg_at_10(ranked: np.ndarray, evalset: EvalSet) -> float:
    """Mean NDCG@10 of top-10 lists `ranked` [U, 10] against `evalset`'s targets, as the evaluation layer counts it
    (gain 1 per target found, discount log2(rank + 1), over the ideal); the models layer may not import that
    layer, and the tests check the two agree through `recommend()`."""
    targets = evalset.targets
    case = np.repeat(np.arange(len(targets)), targets.lengths)
    hits = np.zeros(ranked.shape, bool)
    found = ranked[case] == targets.items[:, None]  # (n_targets, 10)
    np.logical_or.at(hits, case, found)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.clip(targets.lengths, 1, 10)]
    return float(((hits * discounts).sum(1) / ideal).mean()) if len(ranked) else 0.0


@torch.no_grad()
def build_pool(model, evalset: EvalSet, group: np.ndarray, recencies: tuple[float, ...],
               batch_size: int = 1024) -> Pool:
    """Score `evalset`'s cases once with `model` (a `ContentSASRec` whose network treats `group` as products
    without events, with its cold columns off and model scale 1) and keep what `Pool` needs."""
    net = model.network.eval()
    if net.cold_columns or float(net.cold_model_scale) != 1.0:
        raise ValueError("build_pool needs the network's cold scoring at its defaults")
    d = net.item_embeddings.embedding_dim
    table = net.output_embeddings.float()  # (n_items, d + similarity_dim)
    content = net.content[1:].float()
    in_group = np.zeros(len(table), bool)
    in_group[group] = True
    group_t = torch.from_numpy(group)
    U, G = len(evalset), len(group)
    top_items, top_scores = np.empty((U, 10), np.int64), np.empty((U, 10), np.float32)
    model_part, newest_part = np.empty((U, G), np.float32), np.empty((U, G), np.float32)
    text = {r: np.empty((U, G), np.float32) for r in recencies}
    excluded = np.zeros((U, G), bool)
    saved_recency = net.recency.clone()
    try:
        for start in range(0, U, batch_size):
            rows = np.arange(start, min(start + batch_size, U))
            part = evalset.inputs.select(rows)
            states = model._states(part).float()  # (b, d + similarity_dim)
            scores = (states @ table.T).numpy()  # (b, n_items)
            seen_rows = np.repeat(np.arange(len(rows)), part.lengths)
            if evalset.exclude_seen:
                scores[seen_rows, part.items] = -np.inf
            grouped = scores[:, group]  # (b, G) copy
            excluded[rows] = ~np.isfinite(grouped)
            scores[:, in_group] = -np.inf
            top_items[rows], top_scores[rows] = topk(scores, 10)
            newest = (states[:, d:] @ table[group_t, d:].T).numpy()
            newest_part[rows] = newest
            model_part[rows] = np.where(excluded[rows], 0.0, grouped - newest)
            T = int(max(1, min(model.config.max_len, part.lengths.max(initial=1))))
            padded = torch.from_numpy(part.padded(T))
            for r in recencies:
                net.recency.fill_(r)
                text[r][rows] = (net.history_text(padded)[:, -1].float() @ content[group_t].T).numpy()
    finally:
        net.recency.copy_(saved_recency)
    top_items[~np.isfinite(top_scores)] = -1
    return Pool(evalset, group, top_items, top_scores, model_part, newest_part, text, excluded)


def highest_bias_within(pool: Pool, group_top, floor: float, biases: np.ndarray) -> tuple[float, float] | None:
    """The largest of the (increasing) `biases` whose NDCG@10 on `pool` stays >= `floor`, and that NDCG; None
    when even the smallest falls below. NDCG on cases without a group target only falls as the bias rises
    (group products can only push their targets down), so a bisection finds it."""
    lo, hi = 0, len(biases) - 1
    first = pool.ndcg(group_top, float(biases[0]))
    if first < floor:
        return None
    best = (float(biases[0]), first)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        value = pool.ndcg(group_top, float(biases[mid]))
        if value >= floor:
            lo, best = mid, (float(biases[mid]), value)
        else:
            hi = mid - 1
    return best
