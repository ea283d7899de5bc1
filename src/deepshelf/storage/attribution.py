"""Attribution of clicks and purchases to the list answers shown (impressions), as counts per group.

The rule (README, "How a shop reads its numbers"):
- a *click* is a `view` or `cart` event carrying the `recommendation_id` of a recorded list whose items include the
  event's item; it is attributed to that list, at the item's position (1 = first);
- a *purchase* of the same item by the same shopper (`user_id`) at most `window_s` seconds after a click (and not
  before it) is attributed to the list of the latest such click (last click), its `value` counted as revenue;
  a purchase with no such click is not attributed.
A list counts once as clicked / carted / converted however many of its items were; revenue sums every attributed
purchase. The store's SQL selects the candidate rows (clicks of the lists in scope, purchases that follow a click
of theirs within the window); the rule itself is applied here, on whole columns.

New products, over the lists recorded with their `new_items` (unknown for lists stored before schema migration 9,
never guessed): the items shown and the new products among them, counted by the store's SQL; and a list's *clicked
items*, its distinct items with a click (a view and a cart of one item are one), the new ones those in its
`new_items`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from deepshelf.storage.records import MAX_VALUE

DEFAULT_WINDOW_S = 86_400.0  # a purchase up to a day after the click
GROUP_KEYS = ("bucket", "placement", "variant", "model_version")
CLICK_TYPES = ("view", "cart")
# the new-product counts of a group (group_totals): the first three from the impressions, the last two from clicks
NEW_COUNTS = ("known_impressions", "items_shown", "new_items_shown", "items_clicked", "new_items_clicked")


@dataclass(frozen=True)
class Scope:
    """Which impressions a report covers: shown from `since` to `until` (Unix seconds, inclusive), optionally one
    placement / variant / experiment."""

    since: float = 0.0
    until: float = float("inf")
    placement: str | None = None
    variant: str | None = None
    experiment: str | None = None

    def where(self, alias: str = "i") -> tuple[str, list]:
        """The SQL condition on impressions (`alias`) and its arguments."""
        clauses, args = [f"{alias}.ts >= ?", f"{alias}.ts <= ?"], [self.since, min(self.until, 1e300)]
        for column in ("placement", "variant", "experiment"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{alias}.{column} = ?")
                args.append(value)
        return " AND ".join(clauses), args


CLICK_COLUMNS = ("recommendation_id", "shown_at", "placement", "variant", "model_version", "items", "item_id", "type",
                 "user_id", "ts", "new_items")
PURCHASE_COLUMNS = ("purchase", "user_id", "item_id", "ts", "value")


def valid_clicks(clicks: Sequence[tuple]) -> pl.DataFrame:
    """The click rows (CLICK_COLUMNS) whose item is in their list, with its `position` (1-based) and `new` (the
    item was a new product when the list was shown; null: unknown)."""
    frame = pl.DataFrame(list(clicks), schema={c: (pl.Float64 if c in ("shown_at", "ts") else pl.Utf8)
                                               for c in CLICK_COLUMNS}, orient="row")
    exploded = (frame.with_row_index("click")
                .with_columns(pl.col("items").str.strip_chars("\n").str.split("\n").alias("shown"))
                .explode("shown")
                .with_columns(position=pl.int_range(1, pl.len() + 1).over("click")))
    return (exploded.filter(pl.col("shown") == pl.col("item_id"))
            .unique("click", keep="first", maintain_order=True)
            .with_columns(new=pl.col("new_items").str.contains(pl.lit("\n") + pl.col("item_id") + pl.lit("\n"),
                                                               literal=True))
            .drop("items", "new_items", "shown", "click"))


def list_outcomes(clicks: Sequence[tuple], purchases: Sequence[tuple], window_s: float) -> pl.DataFrame:
    """One row per clicked list: its group keys (shown_at, placement, variant, model_version), clicked (1),
    carted (0/1), converted (0/1), conversions (attributed purchases), revenue, and items_clicked /
    new_items_clicked (its distinct clicked items and the new products among them; 0 where unknown)."""
    valid = valid_clicks(clicks).sort("ts")
    bought = pl.DataFrame(list(purchases), schema={"purchase": pl.Int64, "user_id": pl.Utf8, "item_id": pl.Utf8,
                                                   "ts": pl.Float64, "value": pl.Float64}, orient="row")
    # a value stored before values were bounded (non-finite, or huge) must not turn revenue into inf / NaN: none
    # counts 0, a huge one MAX_VALUE
    value = pl.col("value")
    bought = (bought.unique("purchase").sort("ts")
              .with_columns(value=pl.when(value.is_finite()).then(value.clip(-MAX_VALUE, MAX_VALUE)).otherwise(0.0)))
    attributed = (bought.join_asof(valid.select("user_id", "item_id", "ts", "recommendation_id"), on="ts",
                                   by=["user_id", "item_id"], strategy="backward", tolerance=float(window_s),
                                   check_sortedness=False)  # both sorted by ts just above
                  .filter(pl.col("recommendation_id").is_not_null())
                  .group_by("recommendation_id")
                  .agg(conversions=pl.len().cast(pl.Int64), revenue=pl.col("value").fill_null(0.0).sum()))
    lists = valid.group_by("recommendation_id").agg(
        pl.col("shown_at", "placement", "variant", "model_version").first(),
        carted=(pl.col("type") == "cart").any().cast(pl.Int64),
        known=pl.col("new").is_not_null().all(),
        items_clicked=pl.col("item_id").n_unique().cast(pl.Int64),
        new_items_clicked=pl.col("item_id").filter(pl.col("new")).n_unique().cast(pl.Int64))
    return (lists.join(attributed, on="recommendation_id", how="left")
            .with_columns(clicked=pl.lit(1, pl.Int64), conversions=pl.col("conversions").fill_null(0),
                          revenue=pl.col("revenue").fill_null(0.0),
                          items_clicked=pl.when("known").then("items_clicked").otherwise(0),
                          new_items_clicked=pl.when("known").then("new_items_clicked").otherwise(0))
            .with_columns(converted=(pl.col("conversions") > 0).cast(pl.Int64)))


def group_totals(impressions: Sequence[tuple], outcomes: pl.DataFrame, bucket_s: float | None,
                 keys: Sequence[str]) -> list[dict]:
    """Per group of `keys` (a subset of GROUP_KEYS): impressions, clicks, carts, conversions (converted lists),
    purchases, revenue and revenue_sq (the sum over lists of their revenue squared, for a variance), and of new
    products: known_impressions (lists whose new products were recorded), items_shown / new_items_shown (their
    items, and the new products among them), items_clicked / new_items_clicked (list_outcomes).
    `impressions` are (bucket, placement, variant, model_version, count, known, items shown, new items shown) rows;
    `bucket_s` buckets the outcomes' shown_at the same way (None: one bucket)."""
    out: dict[tuple, dict] = {}
    index = [GROUP_KEYS.index(k) for k in keys]
    for row in impressions:
        key = tuple(row[i] for i in index)
        entry = out.setdefault(key, dict(zip(keys, key), impressions=0, clicks=0, carts=0, conversions=0,
                                         purchases=0, revenue=0.0, revenue_sq=0.0, **dict.fromkeys(NEW_COUNTS, 0)))
        entry["impressions"] += int(row[4])
        for name, value in zip(NEW_COUNTS[:3], row[5:8]):
            entry[name] += int(value)
    if outcomes.height:
        bucket = (pl.col("shown_at") // bucket_s * bucket_s) if bucket_s else pl.lit(0.0)
        sums = (outcomes.with_columns(bucket=bucket.cast(pl.Float64))
                .group_by(list(keys))
                .agg(clicks=pl.col("clicked").sum(), carts=pl.col("carted").sum(),
                     conversions=pl.col("converted").sum(), purchases=pl.col("conversions").sum(),
                     revenue=pl.col("revenue").sum(), revenue_sq=(pl.col("revenue") ** 2).sum(),
                     items_clicked=pl.col("items_clicked").sum(),
                     new_items_clicked=pl.col("new_items_clicked").sum()))
        for row in sums.iter_rows(named=True):
            entry = out.get(tuple(row[k] for k in keys))
            if entry is None:  # a list clicked whose impression is not in scope cannot happen: both come from it
                continue
            for name in ("clicks", "carts", "conversions", "purchases", *NEW_COUNTS[3:]):
                entry[name] += int(row[name])
            entry["revenue"] += float(row["revenue"])
            entry["revenue_sq"] += float(row["revenue_sq"])
    return [out[k] for k in sorted(out, key=lambda k: tuple("" if v is None else str(v) for v in k))]
