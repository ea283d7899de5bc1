"""Business rules applied to every answer: filters (category, price, stock, excluded ids, already bought),
boosts, and at most N items per category. Vectorised over candidate index arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepshelf.serving.catalog_view import CatalogView


@dataclass
class Rules:
    categories: list[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = True
    exclude: list[str] = field(default_factory=list)
    exclude_purchased: bool = True
    exclude_seen: bool = True  # items in the shopper's recent history (or the session's items)
    max_per_category: int | None = None
    # multiplier per category / per item id (score * f when the score is >= 0, score / f when negative, so a
    # boost > 1 always moves an item up)
    boost_categories: dict[str, float] = field(default_factory=dict)
    boost_items: dict[str, float] = field(default_factory=dict)


def allowed(view: CatalogView, idx: np.ndarray, rules: Rules, excluded: np.ndarray | None = None) -> np.ndarray:
    """bool mask over candidate indices `idx` (into `view`): which items the rules let through."""
    idx = np.asarray(idx, dtype=np.int64)
    cols = view.cols
    ok = (idx >= 0) & (idx < len(cols.ids))
    safe = np.where(ok, idx, 0)
    if rules.categories:
        codes = [view.category_code[c] for c in rules.categories if c in view.category_code]
        ok &= np.isin(cols.category[safe], codes)
    if rules.min_price is not None:
        ok &= cols.price[safe] >= rules.min_price  # unknown price (NaN) fails a price filter
    if rules.max_price is not None:
        ok &= cols.price[safe] <= rules.max_price
    if rules.in_stock:
        ok &= cols.in_stock[safe]
    if excluded is not None and len(excluded):
        if len(excluded) * len(idx) <= 200_000:  # the usual case (a page of candidates, a short history)
            ok &= ~(idx[:, None] == excluded[None, :]).any(axis=1)  # a broadcast compare beats isin's sort
        else:
            ok &= ~np.isin(idx, excluded)
    return ok


def full_mask(view: CatalogView, n: int, rules: Rules, excluded: np.ndarray | None) -> np.ndarray:
    """The allowed-items mask over indices 0..n-1 (the dense scoring path)."""
    return allowed(view, np.arange(n), rules, excluded)


def rerank(view: CatalogView, idx: np.ndarray, scores: np.ndarray, reasons: list[str], rules: Rules,
           k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Apply boosts, re-sort, then keep at most `max_per_category` per category; returns the top `k`."""
    idx = np.asarray(idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64).copy()
    if rules.boost_categories or rules.boost_items:
        factor = np.ones(len(idx))
        cats = view.cols.category[idx]
        for name, f in rules.boost_categories.items():
            code = view.category_code.get(name)
            if code is not None:
                factor[cats == code] *= f
        if rules.boost_items:
            ids = view.cols.ids[idx]
            for i, item in enumerate(ids):
                factor[i] *= rules.boost_items.get(item, 1.0)
        scores = np.where(scores >= 0, scores * factor, scores / factor)
        order = np.argsort(-scores, kind="stable")
        idx, scores, reasons = idx[order], scores[order], [reasons[i] for i in order]
    if rules.max_per_category:
        cats = view.cols.category[idx]
        counts: dict[int, int] = {}
        keep = []
        for i, c in enumerate(cats.tolist()):
            if c >= 0:
                if counts.get(c, 0) >= rules.max_per_category:
                    continue
                counts[c] = counts.get(c, 0) + 1
            keep.append(i)
            if len(keep) == k:
                break
        keep = np.asarray(keep, dtype=np.int64)
        idx, scores, reasons = idx[keep], scores[keep], [reasons[i] for i in keep]
    return idx[:k], scores[:k].astype(np.float32), reasons[:k]
