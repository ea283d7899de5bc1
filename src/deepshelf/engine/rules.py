"""Business rules applied to every answer: filters (category, price, stock, excluded ids, already bought),
boosts, and at most N items per category. Vectorised over candidate index arrays.

`RulesIn` is the one schema of the rules: the JSON body takes it as it is, the query string spells the same
fields for URLs (`deps.ListQuery`), and `RulesIn.resolve` fills in the server's defaults, giving the `Rules`
the ranking applies.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepshelf.engine.catalog_view import Snapshot
from deepshelf.data.fields import Finite, Id, Line

Name = Line(256)
Factor = Annotated[Finite, Field(gt=0, le=1000)]


class RulesIn(BaseModel):
    """Business rules for one request; any field left out takes the server's default."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a body's rules; the query's are parsed (deps.ListQuery)

    categories: list[Name] | None = Field(default=None, max_length=100)
    min_price: Finite | None = None
    max_price: Finite | None = None
    in_stock: bool | None = Field(default=None, description="only in-stock items (server default: true)")
    exclude: list[Id] = Field(default_factory=list, max_length=1000,
                                description="item ids to leave out (repeat, or comma-separated)")
    exclude_purchased: bool | None = Field(default=None, description="leave out items the shopper bought")
    exclude_seen: bool | None = Field(default=None, description="leave out items in the shopper's history")
    max_per_category: int | None = Field(default=None, ge=1, le=1000, description="diversity: at most N per category")
    # multiplier per category / per item id (score * f when the score is >= 0, score / f when negative, so a
    # boost > 1 always moves an item up)
    boost_categories: dict[Name, Factor] = Field(default_factory=dict, max_length=100)
    boost_items: dict[Id, Factor] = Field(default_factory=dict, max_length=1000)
    # exploration: places for new products (never sold when the run was trained, or added to the catalogue since)
    new_slots: int | None = Field(default=None, ge=0, le=100, description="exploration: at least this many new "
                                  "products in the list when there are any (server default: new_item_slots, or "
                                  "new_item_slots_by_placement for the placement; 0: none)")

    def resolve(self, in_stock: bool, exclude_purchased: bool, max_per_category: int | None,
                new_slots: int = 1) -> Rules:
        """These rules over the server's defaults (the `default_*` settings)."""
        return Rules.model_construct(**{
            **self.__dict__,
            "categories": self.categories or None,
            "in_stock": in_stock if self.in_stock is None else self.in_stock,
            "exclude": list(self.exclude),
            "exclude_purchased": exclude_purchased if self.exclude_purchased is None else self.exclude_purchased,
            "exclude_seen": True if self.exclude_seen is None else self.exclude_seen,
            "max_per_category": self.max_per_category or max_per_category,
            "boost_categories": dict(self.boost_categories), "boost_items": dict(self.boost_items),
            "new_slots": new_slots if self.new_slots is None else self.new_slots,
        })


class Rules(RulesIn):
    """The rules one answer is ranked under: a request's `RulesIn` with every default filled in."""

    in_stock: bool = True
    exclude_purchased: bool = True
    exclude_seen: bool = True  # items in the shopper's recent history (or the session's items)
    new_slots: int = 1


EXCLUDE_BROADCAST_MAX = 200_000  # candidates x excluded items tested pairwise at most


def allowed(catalog: Snapshot, idx: np.ndarray, rules: Rules, excluded: np.ndarray | None = None) -> np.ndarray:
    """bool mask over candidate indices `idx` (into `catalog`): which items the rules let through."""
    idx = np.asarray(idx, dtype=np.int64)
    cols = catalog.cols
    ok = (idx >= 0) & (idx < len(cols.ids))
    safe = np.where(ok, idx, 0)
    if rules.categories:
        codes = [code for code in map(catalog.code, rules.categories) if code is not None]
        ok &= np.isin(cols.category[safe], codes)
    if rules.min_price is not None:
        ok &= cols.price[safe] >= rules.min_price  # unknown price (NaN) fails a price filter
    if rules.max_price is not None:
        ok &= cols.price[safe] <= rules.max_price
    if rules.in_stock:
        ok &= cols.in_stock[safe]
    if excluded is not None and len(excluded):
        if len(excluded) * len(idx) <= min(EXCLUDE_BROADCAST_MAX, 4 * len(cols.ids)):
            # a page of candidates against a short history: pairwise, no sort (unlike isin), no catalogue-sized
            # array
            ok &= ~(idx[:, None] == excluded[None, :]).any(axis=1)
        else:
            # many candidates (every product of a small catalogue, a wide ANN fetch): one flag per product. The
            # pairwise test of 3,706 products against a 50-event history took about 0.19 ms of a 0.6 ms list
            # (benchmarks/serve_wrk.py --items 3706 --users 300 --events-per-user 50, profiled in process)
            out = np.zeros(len(cols.ids), dtype=bool)
            out[excluded[(excluded >= 0) & (excluded < len(out))]] = True
            ok &= ~out[safe]
    return ok


def rerank(catalog: Snapshot, idx: np.ndarray, scores: np.ndarray, reasons: list[str], rules: Rules,
           k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Apply boosts, re-sort, then keep at most `max_per_category` per category; returns the top `k`."""
    idx = np.asarray(idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64).copy()
    if rules.boost_categories or rules.boost_items:
        factor = np.ones(len(idx))
        cats = catalog.cols.category[idx]
        for name, f in rules.boost_categories.items():
            code = catalog.code(name)
            if code is not None:
                factor[cats == code] *= f
        if rules.boost_items:
            ids = catalog.cols.ids[idx]
            for i, item in enumerate(ids):
                factor[i] *= rules.boost_items.get(item, 1.0)
        scores = np.where(scores >= 0, scores * factor, scores / factor)
        order = np.argsort(-scores, kind="stable")
        idx, scores, reasons = idx[order], scores[order], [reasons[i] for i in order]
    if rules.max_per_category:
        cats = catalog.cols.category[idx]
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
    return idx[:k], scores[:k].astype(np.float32), list(reasons[:k])
