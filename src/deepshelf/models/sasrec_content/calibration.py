"""The two settings of the content-aware SASRec chosen on validation after training, never on test: the weight
of the newest item's text similarity (`calibrate_similarity`) and how products without events are scored
(`calibrate_cold`). Both are searches over a few candidates, each measured by the `Validation` the caller gave."""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import torch

from deepshelf.models.base import Validation
from deepshelf.models.sasrec_content.config import ContentSASRecConfig
from deepshelf.models.sasrec_content.network import ContentSASRecNetwork

log = logging.getLogger(__name__)


class Calibrated(Protocol):
    """What the searches read and set on the model: `ContentSASRec` is one (named by what it offers, since the
    estimator imports this module); `Validation` measures it as the recommender it is."""

    network: ContentSASRecNetwork
    config: ContentSASRecConfig
    cold_factor: float

    def impute_cold(self, k: int) -> None: ...


def calibrate(model: Calibrated, validation: Validation) -> None:
    """Both searches, as `fit` runs them: the similarity weight, then (with a budget and products without events)
    the cold products' setting against the validation NDCG@10 just measured."""
    if model.network.log_similarity_weight is None:
        return
    _, ndcg = calibrate_similarity(model, validation)
    if model.config.cold_exposure_budget > 0 and bool((model.network.warm[1:] == 0).any()):
        calibrate_cold(model, validation, model.config.cold_exposure_budget, reference=ndcg)


@torch.no_grad()
def calibrate_similarity(model: Calibrated, validation: Validation,
                         factors=(1.0, 2.0, 4.0, 8.0)) -> tuple[float, float]:
    """Scale the text-similarity weight by the factor with the best validation NDCG@10; returns (factor,
    validation NDCG@10 with it).

    Trained under dropout, the weight settles where noisy training outputs want it; the clean outputs at
    serving time may rank better with more of it. One scalar, chosen
    on validation, never on test."""
    log_weight = model.network.log_similarity_weight
    base = float(log_weight)
    scores = {}
    for f in factors:
        log_weight.fill_(base + math.log(f))
        scores[f] = validation(model)
    best = max(scores, key=scores.get)
    log_weight.fill_(base + math.log(best))
    log.info("sasrec-content: text similarity weight %.2f -> %.2f, cold items x%.2f (validation NDCG@10 %s)",
             math.exp(base), math.exp(base) * best, float(model.network.log_cold_similarity_scale.exp()),
             {f: round(v, 4) for f, v in scores.items()})
    return best, scores[best]


@torch.no_grad()
def calibrate_cold(model: Calibrated, validation: Validation, budget: float, neighbours=(1, 3, 10),
                   factors=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0), reference: float | None = None,
                   baseline: float | None = None, pseudo_share: float = 0.1, seed: int = 0) -> tuple[int, float]:
    """Choose how products without events are scored: from how many text neighbours their id vector is
    borrowed (`impute_cold`) and by what factor their text similarity is raised. Returns (neighbours, factor).

    Nothing ranks a product without events from evidence about itself, and a ranking tuned for accuracy on
    past events alone keeps such products out of sight, so they never earn the events that would teach the
    model about them. The budget makes the trade explicit: validation NDCG@10 may fall at most `budget` (a
    share) below `baseline`: by default the model's own value as trained, given an id-only model's
    validation NDCG@10, what the shop would have without texts. `reference` is the model's own value when
    the caller has just measured it (at its current neighbour count and factor x1, so it is not measured
    again).

    Validation has no targets without events, so it can count what exposure costs but not what it gains.
    The gain is measured on "pseudo-cold" products: a random `pseudo_share` of the products with events is
    scored as if it had none (id part dropped and borrowed from text neighbours, raised text similarity), on
    the validation cases with one of them among their targets (the only target under leave-one-out). Among
    the settings within budget (factors are tried in increasing order and each neighbour count stops at its
    first one over budget), the one that ranks those targets best (NDCG@10) wins; ties go to the smaller
    factor. Without pseudo-cold cases (a tiny catalogue), or with no setting within budget, the setting with
    the best validation NDCG@10 wins."""
    net = model.network
    log_scale = net.log_cold_similarity_scale
    base = float(log_scale)
    trained_k = model.config.impute_neighbours
    if reference is None and baseline is None:
        reference = validation(model)
    floor = (1 - budget) * (reference if baseline is None else baseline)
    warm = net.warm.clone()
    warm_items = np.flatnonzero(warm[1:].cpu().numpy() > 0)
    rng = np.random.default_rng(seed)
    pseudo = rng.choice(warm_items, size=int(round(pseudo_share * len(warm_items))), replace=False)
    valid = validation.evalset
    case_of_target = np.repeat(np.arange(len(valid.targets)), valid.targets.lengths)
    pseudo_cases = valid.select(np.unique(case_of_target[np.isin(valid.targets.items, pseudo)]))

    def ndcg(evalset, factor: float) -> float:
        log_scale.fill_(base + math.log(factor))
        return validation(model, evalset)

    costs: dict[tuple[int, float], float] = {}
    gains: dict[tuple[int, float], float] = {}
    try:
        for k in neighbours:
            model.impute_cold(k)
            for f in factors:
                measured = reference is not None and (k, f) == (trained_k, 1.0)
                costs[k, f] = reference if measured else ndcg(valid, f)
                if costs[k, f] < floor:
                    break
            within = [f for f in factors if costs.get((k, f), -1.0) >= floor]
            if within and len(pseudo_cases):
                net.warm[1:][torch.from_numpy(pseudo)] = 0  # the pseudo-cold products lose their events
                model.impute_cold(k)
                for f in within:
                    gains[k, f] = ndcg(pseudo_cases, f)
                net.warm.copy_(warm)
    except BaseException:  # interrupted: leave the model as it was, not half-way through the search
        net.warm.copy_(warm)
        model.impute_cold(trained_k)
        log_scale.fill_(base)
        raise
    if gains:
        k, f = max(gains, key=lambda kf: (gains[kf], -kf[1]))
    elif costs:  # nothing within budget: the setting that costs least
        k, f = max(costs, key=costs.get)
    else:
        k, f = trained_k, 1.0
    model.impute_cold(k)
    log_scale.fill_(base + math.log(f))
    model.cold_factor = f
    model.config = model.config.model_copy(update={"impute_neighbours": k})
    log.info("sasrec-content: cold products borrow %d text neighbours' id vectors, text similarity x%.2f; "
             "validation NDCG@10 >= %.4f (%.0f%% budget) %s; pseudo-cold NDCG@10 (%d cases) %s", k, f, floor,
             budget * 100, {kf: round(v, 4) for kf, v in costs.items()}, len(pseudo_cases),
             {kf: round(v, 4) for kf, v in gains.items()})
    return k, f
