"""Recompute HR@K / Recall@K / NDCG@K from a `deepshelf recommend` export and the raw data, without deepshelf.

Written independently of the deepshelf package (polars, csv, gzip and math only; nothing of deepshelf's loaders,
splits or metrics is imported) so anyone can check the numbers deepshelf reports.

Leave-one-out (a sequences file, `user item item ...` per line, oldest first):

    deepshelf recommend --run runs/NAME --users test --k 10 --output recs.csv
    python -m benchmarks.recompute_metrics --recs recs.csv --sequences ml-1m_user_sequences.txt.gz --min-item-count 5

Temporal (timestamped events; the last `--test-days` are the test period, the `--valid-days` before it validation):

    deepshelf recommend --run runs/demo/ease --users test --k 10 --output recs.csv
    python -m benchmarks.recompute_metrics --recs recs.csv --events online-retail [--view discovery|again]

`--events` takes `online-retail` (the raw UCI file bundled with the project), a raw UCI Online Retail file
(.parquet / .csv with InvoiceNo, StockCode, CustomerID, Quantity, UnitPrice, InvoiceDate), or an events table
(.csv / .parquet / .jsonl with user, item and timestamp columns; an optional type column).

Cleaning, re-implemented here from the dataset's documented rules:
- UCI Online Retail: keep rows with a CustomerID, an invoice not starting with "C" (cancellations), Quantity > 0,
  UnitPrice > 0 and a StockCode starting with a digit (postage, fees and adjustments — POST, DOT, M, C2, D, S, B,
  BANK CHARGES, AMAZONFEE, CRUK, PADS, ADJUST — all start with a letter); the product is the upper-cased
  StockCode, the shopper the CustomerID, the time InvoiceDate (read as UTC seconds); one event per (shopper,
  product, invoice), at the invoice's first line (a few invoices span two minutes).
- Events table: events of the types deepshelf weighs 0 by default (search, impression) are dropped.

Protocol: end = the newest event; test period = events at or after end - test_days; validation = the valid_days
before it. Each period's shoppers are scored from their events before the period. Targets per shopper:
- discovery: the items with an event in the period and none before it for that shopper (a discovery export must
  contain no seen item: `seen_rows` counts export rows whose item the shopper had before the period);
- again ("buy again"): every item with an event in the period, repeat purchases included (seen items allowed).
Metrics per evaluated shopper, averaged over them (a shopper missing from the export scores 0): HR@K = any target
in the top K; Recall@K = targets found / targets; NDCG@K = sum over hits of 1/log2(rank + 1) over the ideal DCG of
min(targets, K) hits. "new_items" repeats them over only the targets no one had an event on before the period.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
from collections import Counter
from pathlib import Path

import polars as pl

BUNDLED_ONLINE_RETAIL = Path(__file__).resolve().parents[1] / "src" / "deepshelf" / "datasets_bundled" / \
    "online_retail_2010-2011.parquet"
UCI_COLUMNS = {"InvoiceNo", "StockCode", "CustomerID", "Quantity", "UnitPrice", "InvoiceDate"}
ZERO_WEIGHT_TYPES = ("search", "impression")
COLUMN_NAMES = {"user": ("user", "user_id", "userid", "customer_id", "visitorid"),
                "item": ("item", "item_id", "itemid", "product_id", "sku"),
                "timestamp": ("timestamp", "time", "ts", "datetime", "date"),
                "type": ("type", "event", "event_type")}


# ---- leave-one-out ---------------------------------------------------------------------------------------------
def load_targets(path: str, min_item_count: int, which: str) -> dict[str, str]:
    """Leave-one-out targets from a sequences file: each user's last item (test) or second-to-last (valid)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [line.split() for line in f if line.strip()]
    counts = Counter(item for row in rows for item in row[1:])
    targets = {}
    for row in rows:
        items = [i for i in row[1:] if counts[i] >= min_item_count]
        if len(items) >= 3:
            targets[row[0]] = items[-1] if which == "test" else items[-2]
    return targets


def recompute(recs_path: str, targets: dict[str, str], k: int) -> dict[str, float]:
    """HR / Recall / NDCG @k of an export against one target per user (leave-one-out)."""
    frame = pl.DataFrame({"user": list(targets), "item": list(targets.values())}, schema={"user": pl.Utf8,
                                                                                           "item": pl.Utf8})
    return ranking_metrics(read_recs(recs_path), frame, k)


# ---- temporal ---------------------------------------------------------------------------------------------------
def read_recs(path: str) -> pl.DataFrame:
    """The export as (user, item, rank) with string ids."""
    recs = pl.read_csv(path, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8, "rank": pl.Int64})
    return recs.select(pl.col("user_id").alias("user"), pl.col("item_id").alias("item"), "rank")


def clean_online_retail(raw: pl.DataFrame) -> pl.DataFrame:
    """UCI Online Retail rows -> purchases (user, item, timestamp seconds), by the rules in the module docstring."""
    code = pl.col("StockCode").cast(pl.Utf8).str.to_uppercase()
    when = pl.col("InvoiceDate")
    if raw.schema["InvoiceDate"] == pl.Utf8:
        when = when.str.to_datetime(strict=True)
    return raw.filter(
        pl.col("CustomerID").is_not_null()
        & ~pl.col("InvoiceNo").cast(pl.Utf8).str.starts_with("C")
        & (pl.col("Quantity").cast(pl.Float64) > 0)
        & (pl.col("UnitPrice").cast(pl.Float64) > 0)
        & code.str.contains(r"^\d")
    ).select(pl.col("CustomerID").cast(pl.Int64).cast(pl.Utf8).alias("user"), code.alias("item"),
             when.dt.epoch("s").alias("timestamp"), pl.col("InvoiceNo").cast(pl.Utf8).alias("invoice")
    ).sort("timestamp", maintain_order=True).unique(["user", "item", "invoice"], keep="first", maintain_order=True
    ).drop("invoice")


def clean_events_table(raw: pl.DataFrame) -> pl.DataFrame:
    """An events table -> (user, item, timestamp seconds), dropping zero-weight event types."""
    lower = {c.strip().lower(): c for c in raw.columns}
    found = {key: next((lower[n] for n in names if n in lower), None) for key, names in COLUMN_NAMES.items()}
    for key in ("user", "item", "timestamp"):
        if found[key] is None:
            raise SystemExit(f"events table: no {key} column (accepted: {', '.join(COLUMN_NAMES[key])})")
    if found["type"] is not None:
        kind = pl.col(found["type"]).cast(pl.Utf8).str.strip_chars().str.to_lowercase()
        raw = raw.filter(~kind.is_in(ZERO_WEIGHT_TYPES) | kind.is_null())
    ts = raw[found["timestamp"]]
    if ts.dtype in (pl.Datetime, pl.Date):
        seconds = ts.cast(pl.Datetime("us")).dt.epoch("s")
    else:
        text = ts.cast(pl.Utf8).str.strip_chars()
        seconds = pl.DataFrame({"t": text}).select(pl.coalesce(
            pl.col("t").cast(pl.Float64, strict=False),
            pl.col("t").str.to_datetime(strict=False, time_unit="us", time_zone="UTC").dt.epoch("s"),
            pl.col("t").str.to_datetime(strict=False, time_unit="us").dt.epoch("s"))).to_series()
        if seconds.null_count():
            row = int(seconds.is_null().arg_true()[0]) + 1
            raise SystemExit(f"events table: row {row}: timestamp {text[row - 1]!r} is neither seconds nor ISO 8601")
    return pl.DataFrame({"user": raw[found["user"]].cast(pl.Utf8), "item": raw[found["item"]].cast(pl.Utf8),
                         "timestamp": seconds.cast(pl.Int64)})


def load_events(source: str) -> pl.DataFrame:
    """(user, item, timestamp) events from `online-retail`, a raw UCI file or an events table."""
    path = BUNDLED_ONLINE_RETAIL if source == "online-retail" else Path(source)
    suffix = "".join(s for s in path.suffixes if s != ".gz").lower()
    if suffix.endswith(".parquet"):
        raw = pl.read_parquet(path)
    elif suffix.endswith((".jsonl", ".ndjson", ".json")):
        raw = pl.read_ndjson(path)
    else:
        raw = pl.read_csv(path, separator="\t" if suffix.endswith(".tsv") else ",", infer_schema_length=0)
    return clean_online_retail(raw) if UCI_COLUMNS <= set(raw.columns) else clean_events_table(raw)


def period_targets(events: pl.DataFrame, which: str, view: str, test_days: float = 30.0,
                   valid_days: float = 30.0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(targets, history, new_items) of one period under the temporal protocol.

    targets: unique (user, item) to find; history: unique (user, item) before the period (what counts as seen);
    new_items: the items (one column) with no event at all before the period.
    """
    end = int(events["timestamp"].max())
    test_cut = end - int(test_days * 86400)
    valid_cut = test_cut - int(valid_days * 86400)
    start, stop = (test_cut, end + 1) if which == "test" else (valid_cut, test_cut)
    ts = pl.col("timestamp")
    before = events.filter(ts < start)
    history = before.select("user", "item").unique()
    period = events.filter((ts >= start) & (ts < stop)).select("user", "item").unique()
    targets = period.join(history, on=["user", "item"], how="anti") if view == "discovery" else period
    new_items = period.select("item").unique().join(before.select("item").unique(), on="item", how="anti")
    return targets, history, new_items


def ranking_metrics(recs: pl.DataFrame, targets: pl.DataFrame, k: int) -> dict[str, float]:
    """HR / Recall / NDCG @k per target user, averaged; users absent from `recs` score 0."""
    per_user = targets.group_by("user").agg(pl.len().alias("n_targets"))
    hits = (recs.filter(pl.col("rank") <= k).join(targets, on=["user", "item"], how="inner")
            .group_by("user").agg(pl.len().alias("hits"),
                                  (1.0 / (pl.col("rank") + 1).log(2)).sum().alias("dcg")))
    ideal = [0.0]
    for r in range(1, k + 1):
        ideal.append(ideal[-1] + 1 / math.log2(r + 1))
    joined = per_user.join(hits, on="user", how="left").fill_null(0)
    idcg = pl.Series([ideal[min(t, k)] for t in joined["n_targets"]], dtype=pl.Float64)
    n = joined.height
    return {f"hr@{k}": float((joined["hits"] > 0).sum() / n) if n else 0.0,
            f"recall@{k}": float((joined["hits"] / joined["n_targets"]).sum() / n) if n else 0.0,
            f"ndcg@{k}": float((joined["dcg"] / idcg).sum() / n) if n else 0.0,
            "users": n, "targets": int(joined["n_targets"].sum())}


def seen_rows(recs: pl.DataFrame, history: pl.DataFrame) -> dict[str, int]:
    """Export rows whose item the shopper had an event on before the period, and the shoppers they touch."""
    seen = recs.join(history, on=["user", "item"], how="inner")
    return {"seen_rows": seen.height, "users_with_seen": seen["user"].n_unique()}


def recompute_temporal(recs: pl.DataFrame, events: pl.DataFrame, which: str, view: str, k: int,
                       test_days: float = 30.0, valid_days: float = 30.0) -> dict:
    """Every number of one (period, view) from the export and the cleaned events."""
    targets, history, new_items = period_targets(events, which, view, test_days, valid_days)
    evaluated = targets.select("user").unique()
    exported = recs.select("user").unique()
    return {"protocol": "temporal", "users_set": which, "view": view, "k": k,
            **ranking_metrics(recs, targets, k),
            "new_items": ranking_metrics(recs, targets.join(new_items, on="item", how="semi"), k),
            **seen_rows(recs, history), "export_rows": recs.height,
            "evaluated_users_missing_from_export": evaluated.join(exported, on="user", how="anti").height,
            "exported_users_not_evaluated": exported.join(evaluated, on="user", how="anti").height}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recs", required=True, help="deepshelf recommend export: user_id,item_id,rank,score")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--sequences", help="leave-one-out: a sequences file (optionally gzipped)")
    data.add_argument("--events", help="temporal: online-retail, a raw UCI Online Retail file or an events table")
    parser.add_argument("--min-item-count", type=int, default=0, help="leave-one-out only")
    parser.add_argument("--users", default="test", choices=["test", "valid"])
    parser.add_argument("--view", default="discovery", choices=["discovery", "again"], help="temporal only")
    parser.add_argument("--test-days", type=float, default=30.0)
    parser.add_argument("--valid-days", type=float, default=30.0)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    if args.sequences:
        result = recompute(args.recs, load_targets(args.sequences, args.min_item_count, args.users), args.k)
    else:
        result = recompute_temporal(read_recs(args.recs), load_events(args.events), args.users, args.view, args.k,
                                    args.test_days, args.valid_days)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
