"""The statistics of an experiment, from plain counts: CTR intervals, the verdict, and Thompson traffic shares.

- `fixed` allocation: a two-sided two-proportion z-test on CTR (clicks / impressions, pooled standard error) of the
  variant with the highest CTR against each other one, Bonferroni-corrected over those k - 1 comparisons; the best
  is the winner when the corrected p-value is below `alpha`. The p-value holds for one look at a planned sample
  size: checking again and again and stopping at the first winner declares more false winners than `alpha`.
- `thompson` allocation: each variant's CTR has a Beta(1 + clicks, 1 + impressions - clicks) posterior; the
  probability that a variant is best is estimated from `DRAWS` joint posterior draws (a fixed seed, so servers with
  the same counts compute the same numbers); the winner is a variant whose probability is at least 1 - `alpha`.
  Traffic goes to each variant with its probability of being best (Thompson sampling's allocation).
- No winner before `min_impressions`: per variant for the z-test (its normal approximation needs them), in all for
  the posteriors (Thompson allocation starves a clearly worse variant of impressions, by design).
"""

from __future__ import annotations

import math

import numpy as np

from deepshelf.engine import attribution
from deepshelf.engine.attribution import Z95

DRAWS = 20_000


def wilson(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) without trials."""
    low, high = attribution.wilson(successes, trials, z)
    return (0.0, 1.0) if low is None else (low, high)


def two_proportion_p(c1: float, n1: float, c2: float, n2: float) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of c1/n1 against c2/n2 (1.0 when undefined)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (c1 + c2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (c1 / n1 - c2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def probability_best(clicks, impressions) -> np.ndarray:
    """P(each variant has the highest CTR) under independent Beta(1 + clicks, 1 + misses) posteriors."""
    clicks = np.asarray(clicks, np.float64)
    impressions = np.asarray(impressions, np.float64)
    misses = np.maximum(impressions - clicks, 0)
    rng = np.random.default_rng(0)
    draws = rng.beta(1 + clicks, 1 + misses, size=(DRAWS, len(clicks)))
    wins = np.bincount(draws.argmax(axis=1), minlength=len(clicks))
    return wins / DRAWS


def verdict(allocation: str, names: list[str], impressions, clicks, alpha: float, min_impressions: int) -> dict:
    """{"winner": name or None, "method": ..., "alpha": ..., and "p_value" (fixed) or "probability_best"
    (thompson, per variant)}: see the module's text."""
    impressions = [float(n) for n in impressions]
    clicks = [float(c) for c in clicks]
    if allocation == "thompson":
        enough = sum(impressions) >= min_impressions
        prob = probability_best(clicks, impressions)
        best = int(prob.argmax())
        winner = names[best] if enough and prob[best] >= 1 - alpha else None
        return {"winner": winner, "method": f"Beta posterior probability best >= {1 - alpha:g}",
                "alpha": alpha, "probability_best": {n: float(p) for n, p in zip(names, prob)}}
    enough = min(impressions, default=0) >= min_impressions
    ctr = [c / n if n > 0 else 0.0 for c, n in zip(clicks, impressions)]
    best = int(np.argmax(ctr))
    others = [j for j in range(len(names)) if j != best]
    p = max((two_proportion_p(clicks[best], impressions[best], clicks[j], impressions[j]) for j in others),
            default=1.0)
    p = min(1.0, p * max(len(others), 1))
    winner = names[best] if enough and p < alpha else None
    return {"winner": winner, "method": f"two-proportion z-test on CTR, best against each other variant "
                                        f"(Bonferroni), alpha {alpha:g}", "alpha": alpha, "p_value": p}


def traffic_shares(allocation: str, configured, impressions, clicks) -> np.ndarray:
    """The share of traffic each variant gets now: as configured (fixed), or its probability of being best
    (thompson; the configured shares until every variant has had an impression)."""
    configured = np.asarray(configured, np.float64)
    configured = configured / configured.sum()
    if allocation != "thompson" or min(impressions, default=0) <= 0:
        return configured
    return probability_best(clicks, impressions)
