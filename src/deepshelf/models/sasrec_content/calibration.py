"""The settings of the content-aware SASRec chosen on validation after training, never on test: the weight of
the newest item's text similarity (`calibrate_similarity`, each candidate measured by the `Validation` the caller
gave) and how products without events are scored beside the others (`calibrate_cold`, a search over combinations
measured by `coldsearch` from one scoring pass, its choice measured by the `Validation` at the end)."""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import torch

from deepshelf.models.base import Validation
from deepshelf.models.sasrec_content import coldsearch
from deepshelf.models.sasrec_content.coldsearch import ColdSetting
from deepshelf.models.sasrec_content.config import ContentSASRecConfig
from deepshelf.models.sasrec_content.network import COLD_DEFAULTS, ContentSASRecNetwork

log = logging.getLogger(__name__)


class Calibrated(Protocol):
    """What the searches read and set on the model: `ContentSASRec` is one (named by what it offers, since the
    estimator imports this module); `Validation` measures it as the recommender it is."""

    network: ContentSASRecNetwork
    config: ContentSASRecConfig
    cold_factor: float

    def impute_cold(self, k: int, temperature: float | None = None) -> None: ...


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
                   alphas=(0.0, 0.5, 1.0), factors=(0.5, 1.0, 2.0), weights=(0.0, 4.0, 8.0, 16.0),
                   recencies=(0.0, 0.5, 0.8), reference: float | None = None, baseline: float | None = None,
                   pseudo_share: float = 0.1, seed: int = 0,
                   temperatures=(0.0, 0.05)) -> tuple[int, ColdSetting]:
    """Choose how products without events are scored beside the others; returns (neighbours, setting), and sets
    the chosen neighbour weighting (one of `temperatures`, see `impute_cold`) in the model's config.

    A product without events is scored `alpha * (its id-and-text vector) . state + factor * (newest-item text
    similarity, as trained) + weight * cos(its text, the history's recency-weighted text) + bias`, where its id
    part is borrowed from `neighbours` text neighbours weighted at one of `temperatures` (`impute_cold`; one
    neighbour needs no weights; 0.05 won on Beauty's pseudo-cold targets: docs/benchmarks.md, "Cold start
    (beauty)"). Products with events keep their scores.

    Nothing ranks a product without events from evidence about itself, and a ranking tuned for accuracy on
    past events alone keeps such products out of sight, so they never earn the events that would teach the
    model about them. The budget makes the trade explicit: validation NDCG@10 may fall at most `budget` (a
    share) below `baseline`: by default the model's own value without cold products in its lists, given an
    id-only model's validation NDCG@10, what the shop would have without texts (`reference`, when given,
    replaces the model's own value).

    Validation has no targets without events, so it can count what exposure costs but not what it gains.
    The gain is measured on "pseudo-cold" products: a random `pseudo_share` of the products with events is
    scored as if it had none (id part dropped and borrowed from text neighbours), on the validation cases with
    one of them among their targets. Every combination of the candidates is tried (`coldsearch`, from one
    scoring pass per neighbour count), each with the largest bias that keeps validation NDCG@10 within budget
    (the NDCG only falls as the bias rises); the one that ranks the pseudo-cold targets best (NDCG@10) wins,
    ties to the earlier candidate. Without pseudo-cold cases (a tiny catalogue) the first candidate within
    budget wins; with none within budget the trained scoring stays."""
    net = model.network
    warm = net.warm.clone()
    saved = {name: getattr(net, name).clone() for name in COLD_DEFAULTS}
    log_scale = net.log_cold_similarity_scale
    base = float(log_scale) if log_scale is not None else 0.0
    trained_k, trained_t = model.config.impute_neighbours, model.config.impute_temperature
    if log_scale is None:
        factors = (1.0,)  # no newest-item similarity to scale
    settings = [ColdSetting(a, f, w, r) for a in alphas for f in factors for w in weights
                for r in (recencies if w else recencies[:1])]
    warm_items = np.flatnonzero(warm[1:].cpu().numpy() > 0)
    cold_items = np.flatnonzero(warm[1:].cpu().numpy() == 0)
    rng = np.random.default_rng(seed)
    pseudo = rng.choice(warm_items, size=int(round(pseudo_share * len(warm_items))), replace=False)
    valid = validation.evalset
    case_of_target = np.repeat(np.arange(len(valid.targets)), valid.targets.lengths)
    pseudo_cases = valid.select(np.unique(case_of_target[np.isin(valid.targets.items, pseudo)]))
    pseudo_group = np.sort(np.concatenate([cold_items, pseudo]))
    # (neighbours, temperature, setting) -> (validation, pseudo-cold NDCG@10)
    results: dict[tuple[int, float, ColdSetting], tuple[float, float]] = {}
    imputations = [(k, t) for k in neighbours for t in (temperatures if k > 1 else temperatures[:1])]
    try:
        for name, value in COLD_DEFAULTS.items():
            getattr(net, name).fill_(value)
        for k, t in imputations:
            model.impute_cold(k, t)
            cost = coldsearch.build_pool(model, valid, cold_items, recencies)
            net.warm[1:][torch.from_numpy(pseudo)] = 0  # the pseudo-cold products lose their events
            model.impute_cold(k, t)
            gain = coldsearch.build_pool(model, pseudo_cases, pseudo_group, recencies) if len(pseudo_cases) else None
            net.warm.copy_(warm)
            span = float(np.abs(cost.top_scores[np.isfinite(cost.top_scores)]).max(initial=1.0))
            biases = np.linspace(-4 * span, 4 * span, 401)
            own = cost.ndcg(cost.group_top(settings[0]), -np.inf)  # no cold product in any list
            floor = (1 - budget) * (baseline if baseline is not None else own if reference is None else reference)
            for s in settings:
                top = cost.group_top(s)
                found = coldsearch.highest_bias_within(cost, top, floor, biases)
                if found is None:
                    continue
                bias, kept = found
                setting = ColdSetting(s.alpha, s.factor, s.weight, s.recency, bias)
                results[k, t, setting] = (kept, gain.ndcg(gain.group_top(s), bias) if gain is not None else 0.0)
    except BaseException:  # interrupted: leave the model as it was, not half-way through the search
        net.warm.copy_(warm)
        model.impute_cold(trained_k, trained_t)
        for name, value in saved.items():
            getattr(net, name).copy_(value)
        raise
    if results:
        k, t, chosen = max(results, key=lambda kts: results[kts][1])  # max keeps the first of equals
    else:
        k, t, chosen = trained_k, trained_t, ColdSetting(1.0, 1.0, 0.0, 0.0, 0.0)
    if log.isEnabledFor(logging.INFO):  # the best pseudo-cold NDCG@10 each imputation reached
        best = {kt: max((v[1] for (k2, t2, _), v in results.items() if (k2, t2) == kt), default=float("nan"))
                for kt in imputations}
        log.info("sasrec-content: pseudo-cold NDCG@10 by (neighbours, temperature): %s",
                 {kt: round(v, 4) for kt, v in best.items()})
    apply(model, k, chosen, base, temperature=t)
    log.info("sasrec-content: cold products: %d neighbours (temperature %g), %s; validation NDCG@10 %.4f by search, "
             "%.4f through recommend(); pseudo-cold NDCG@10 %.4f (%d cases, %d settings within a %.0f%% budget)",
             k, t, chosen, results.get((k, t, chosen), (float("nan"),))[0], validation(model),
             results.get((k, t, chosen), (0, 0))[1], len(pseudo_cases), len(results), budget * 100)
    return k, chosen


@torch.no_grad()
def apply(model: Calibrated, k: int, s: ColdSetting, base_log_scale: float | None = None,
          temperature: float | None = None) -> None:
    """Put setting `s` with `k` neighbours (weighted at `temperature`; default: the config's) into the model
    (`base_log_scale`: the newest-item similarity's cold scale that `s.factor` multiplies; default: the current
    one)."""
    net = model.network
    if temperature is None:
        temperature = model.config.impute_temperature
    model.impute_cold(k, temperature)
    if net.log_cold_similarity_scale is not None:
        base = float(net.log_cold_similarity_scale) if base_log_scale is None else base_log_scale
        net.log_cold_similarity_scale.fill_(base + math.log(s.factor))
    net.cold_model_scale.fill_(s.alpha)
    net.cold_sequence_weight.fill_(s.weight)
    net.recency.fill_(s.recency)
    net.cold_bias.fill_(s.bias)
    model.cold_factor = s.factor
    model.config = model.config.model_copy(update={"impute_neighbours": k, "impute_temperature": temperature})
