"""The search log: what shoppers searched for and which of the products shown they then clicked, carted or bought,
as (query, item) rows that search learning (content/feedback.py) reads.

A *search event* is a search's impression (`impressions.surface = 'search'`, its words in `impressions.query`,
migration 10) and what followed it, by the attribution rule every report uses (attribution.py): a `view` or `cart`
event carrying the search's `recommendation_id` for an item the search showed is a click (or a cart) on it, and a
purchase of that item by the same shopper at most `window_s` after the click is attributed to the search of the
latest such click. Lists of other surfaces, and searches stored before migration 10 (no words), are not read.
"""

from __future__ import annotations

import polars as pl

from deepshelf.storage.attribution import CLICK_COLUMNS, DEFAULT_WINDOW_S, CLICK_TYPES, valid_clicks

SEARCH_LOG_COLUMNS = ("query", "item", "kind", "ts", "shown_at")  # kind: view | cart | purchase

_SEARCHED = "i.surface = 'search' AND i.query IS NOT NULL AND i.ts >= ?"
_CLICKED = f"c.recommendation_id > '' AND c.type IN ({', '.join(repr(t) for t in CLICK_TYPES)})"


def search_events(store, since: float = 0.0, window_s: float = DEFAULT_WINDOW_S) -> pl.DataFrame:
    """Every clicked, carted or bought product of a search shown from `since` (Unix seconds): SEARCH_LOG_COLUMNS,
    oldest first; an empty table when the store has no search log."""
    # as Store.attribution_rows: driven by the clicks (events with a recommendation_id), through their index
    clicks = store._read(
        "SELECT c.recommendation_id, i.ts, i.placement, i.variant, i.model_version, i.items, c.item_id, c.type, "
        f"c.user_id, c.ts, i.new_items, i.query FROM events c CROSS JOIN impressions i "
        f"WHERE i.recommendation_id = c.recommendation_id AND {_CLICKED} AND {_SEARCHED}", (since,))
    purchases = store._read(
        "SELECT DISTINCT p.id, p.user_id, p.item_id, p.ts FROM events c CROSS JOIN impressions i "
        "CROSS JOIN events p WHERE i.recommendation_id = c.recommendation_id AND p.user_id = c.user_id "
        f"AND p.item_id = c.item_id AND {_CLICKED} AND p.type = 'purchase' AND p.ts >= c.ts AND p.ts <= c.ts + ? "
        f"AND {_SEARCHED}", (float(window_s), since))
    return search_log(clicks, purchases, window_s)


def search_log(clicks, purchases, window_s: float) -> pl.DataFrame:
    """The rows of `search_events` from the candidate rows its SQL reads: clicks (CLICK_COLUMNS + query) kept when
    the item was in the list shown, and each purchase attributed to the latest click on that item by that shopper
    within `window_s` before it."""
    empty = pl.DataFrame(schema={"query": pl.Utf8, "item": pl.Utf8, "kind": pl.Utf8, "ts": pl.Float64,
                                 "shown_at": pl.Float64})
    if not clicks:
        return empty
    queries = pl.DataFrame([(r[0], r[-1]) for r in clicks], schema={"recommendation_id": pl.Utf8,
                                                                    "query": pl.Utf8}, orient="row").unique()
    valid = (valid_clicks([r[:len(CLICK_COLUMNS)] for r in clicks])
             .join(queries, on="recommendation_id", how="inner").sort("ts"))
    seen = valid.select("query", pl.col("item_id").alias("item"), pl.col("type").alias("kind"), "ts", "shown_at")
    if not purchases:
        return seen.sort("ts")
    bought = (pl.DataFrame(list(purchases), schema={"purchase": pl.Int64, "user_id": pl.Utf8, "item_id": pl.Utf8,
                                                    "ts": pl.Float64}, orient="row")
              .unique("purchase").sort("ts"))
    attributed = (bought.join_asof(valid.select("user_id", "item_id", "ts", "query", "shown_at"), on="ts",
                                   by=["user_id", "item_id"], strategy="backward", tolerance=float(window_s),
                                   check_sortedness=False)
                  .filter(pl.col("query").is_not_null())
                  .select("query", pl.col("item_id").alias("item"), pl.lit("purchase").alias("kind"), "ts",
                          "shown_at"))
    return pl.concat([seen, attributed]).sort("ts")
