"""`/v1/analytics/recommendations`: the attributed counts of storage/attribution.py as rates with 95% confidence
intervals, by placement, variant and model version, and over time.

Methods (README, "How a shop reads its numbers"):
- CTR, add-to-cart rate and conversion rate are proportions of lists shown (impressions) with at least one click,
  add-to-cart or attributed purchase; each gets the Wilson score interval (Wilson 1927), which stays inside [0, 1]
  and keeps its coverage for the small counts and rates near 0 that recommendation traffic has.
- Revenue per 1,000 impressions is 1000 x the mean attributed revenue per list shown (most lists earn 0); its
  interval is the normal approximation to that mean over impressions: 1000 x (mean +- z * s / sqrt(n)), s the
  sample standard deviation of the per-list revenue, the lower end clipped at 0. It needs n >= 2.
An interval is null when there is nothing to estimate from (no impressions).
- New products (`new_products`): of the lists whose new products were recorded (impressions.new_items), the share
  of impression slots that showed a new product (new items shown / items shown) and of clicked items that were
  one (new items clicked / items clicked, a list's item counted once however many clicks it had), with their
  counts. Lists stored before the store recorded it are counted apart (`unknown_impressions`) and left out of
  both shares, never guessed. A share is null when its denominator is 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from deepshelf.storage import Store
from deepshelf.storage.attribution import NEW_COUNTS, Scope

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval
GROUP_BY = ("placement", "variant", "model_version")
COUNTS = ("impressions", "clicks", "carts", "conversions", "purchases", "revenue", "revenue_sq", *NEW_COUNTS)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion `successes / n`; (None, None) for n = 0."""
    if n <= 0:
        return None, None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at 0 or n successes a bound is exactly 0 or 1 (computed, it misses by a rounding error)
    return (0.0 if successes <= 0 else max(0.0, centre - half)), (1.0 if successes >= n else min(1.0, centre + half))


def per_mille_interval(total: float, total_sq: float, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Normal-approximation interval of 1000 x the mean of n values with sum `total` and sum of squares
    `total_sq`; (None, None) for n < 2."""
    if n < 2:
        return None, None
    mean = total / n
    variance = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = z * math.sqrt(variance / n)
    return 1000 * max(0.0, mean - half), 1000 * (mean + half)


def rates(c: dict) -> dict:
    """The counts `c` (COUNTS) as the answer's numbers: counts, rates and their intervals."""
    n = int(c["impressions"])
    out = {"impressions": n}
    for count, rate, low_high in (("clicks", "ctr", "ctr"), ("carts", "add_to_cart_rate", "add_to_cart"),
                                  ("conversions", "conversion_rate", "conversion")):
        k = int(c[count])
        low, high = wilson(k, n)
        out.update({count: k, rate: k / n if n else 0.0, f"{low_high}_low": low, f"{low_high}_high": high})
    low, high = per_mille_interval(c["revenue"], c["revenue_sq"], n)
    out.update(purchases=int(c["purchases"]), revenue=round(float(c["revenue"]), 6),
               revenue_per_1000=1000 * c["revenue"] / n if n else 0.0,
               revenue_per_1000_low=low, revenue_per_1000_high=high, new_products=new_products(c))
    return out


def new_products(c: dict) -> dict:
    """The new-product share of impression slots and of clicked items, from the counts `c` (NEW_COUNTS)."""
    known, shown, new_shown, clicked, new_clicked = (int(c[name]) for name in NEW_COUNTS)
    return {"impressions": known, "unknown_impressions": int(c["impressions"]) - known,
            "items_shown": shown, "new_items_shown": new_shown,
            "impression_share": new_shown / shown if shown else None,
            "items_clicked": clicked, "new_items_clicked": new_clicked,
            "click_share": new_clicked / clicked if clicked else None}


def _sum(rows: Iterable[dict]) -> dict:
    total = dict.fromkeys(COUNTS, 0)
    for r in rows:
        for name in COUNTS:
            total[name] += r[name]
    return total


def report(store: Store, scope: Scope, bucket_s: float, window_s: float) -> dict:
    """Totals, groups (placement, variant, model_version) and the series over time (buckets of `bucket_s`) of the
    impressions in `scope`, purchases attributed within `window_s` of their click. One attribution pass."""
    rows = store.attributed_totals(scope, ("bucket", *GROUP_BY), bucket_s, window_s)
    groups: dict[tuple, list[dict]] = {}
    buckets: dict[float, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in GROUP_BY), []).append(r)
        buckets.setdefault(r["bucket"], []).append(r)
    return {
        "total": rates(_sum(rows)),
        "groups": [{**dict(zip(GROUP_BY, key)), **rates(_sum(members))}
                   for key, members in sorted(groups.items(), key=lambda kv: tuple(str(v) for v in kv[0]))],
        "series": [{"start": start, **rates(_sum(members))} for start, members in sorted(buckets.items())],
    }
