"""Built-in datasets, resolved under `DEEPSHELF_DATA_DIR`, and loading any events / sequences file by path."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from deepshelf.data.catalog import Catalog
from deepshelf.data.feeds import read_feed
from deepshelf.data.ga4 import is_bigquery_export, read_bigquery_export
from deepshelf.data.interactions import Interactions
from deepshelf.data.loaders import (
    catalog_from_frame,
    events_from_frame,
    is_sequence_file,
    read_catalog,
    read_events,
    read_sequences,
)
from deepshelf.data.schema import EventType
from deepshelf.errors import DeepshelfError


@dataclass
class Dataset:
    """Events plus (optionally) the catalogue of the products they are about."""

    name: str
    interactions: Interactions | None
    catalog: Catalog | None = None
    timestamped: bool = False  # real times (temporal split possible) vs file order only
    # searches and the products chosen from them (storage.search_log: query, item, kind, ts, shown_at); only a
    # store has one, so None elsewhere: search learning then leaves the run's search as it is
    search_log: pl.DataFrame | None = None

    def listing_catalog(self) -> "Dataset":
        """Every catalogue product in the item map, sold or not (appended after the items with events, whose
        indices stay): a shop lists products before they sell, and a model can only recommend what it knows,
        so a product with no events yet is a new product to the models (`newitems`), not an unknown id."""
        if self.catalog is not None and self.interactions is not None:
            inter = self.interactions
            items = inter.item_map.extend(self.catalog.item_map.ids)
            if len(items) != len(inter.item_map):
                self.interactions = Interactions(inter.user, inter.item, inter.user_map, items, inter.timestamp,
                                                 inter.type, inter.weight)
        return self

    def catalog_as_of(self, cut: int | float | None) -> Catalog | None:
        """The catalogue as known at `cut` (Unix seconds; None: as of now): see `Catalog.as_of`."""
        if self.catalog is None or cut is None:
            return self.catalog
        return self.catalog.as_of(cut)


def data_dir() -> Path:
    """Where the shared datasets live: `DEEPSHELF_DATA_DIR`, else `../shared/data` beside the checkout."""
    env = os.environ.get("DEEPSHELF_DATA_DIR")
    if env:
        return Path(env)
    for base in (Path.cwd(), *Path.cwd().parents):
        candidate = base / "shared" / "data"
        if candidate.is_dir():
            return candidate
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path("../shared/data")


def _need(path: Path) -> Path:
    if not path.exists():
        raise DeepshelfError(f"dataset file {path} not found; set DEEPSHELF_DATA_DIR to the folder holding the "
                             "shared datasets")
    return path


def filter_min_item_count(inter: Interactions, min_count: int) -> Interactions:
    """Drop items with fewer than `min_count` events (one pass, as in the SASRec/BERT4Rec preprocessing)."""
    keep_items = np.flatnonzero(inter.item_popularity() >= min_count)
    mask = np.isin(inter.item, keep_items)
    sub = inter.subset(mask)
    return Interactions.from_ids(sub.user_map.ids[sub.user], sub.item_map.ids[sub.item], timestamp=sub.timestamp,
                                 type=sub.type, weight=sub.weight)


def load_ml_1m() -> Dataset:
    inter = read_sequences(_need(data_dir() / "movielens-1m" / "ml-1m_user_sequences.txt.gz"))
    inter = filter_min_item_count(inter, 5)
    movies = pl.read_csv(data_dir() / "movielens-1m" / "movies.dat", separator="\x1f", has_header=False,
                         encoding="latin1", new_columns=["raw"], quote_char=None)
    parts = movies["raw"].str.split_exact("::", 2).struct.rename_fields(["item", "title", "category"]).struct.unnest()
    catalog = Catalog(parts.with_columns(pl.col("category").str.replace_all(r"\|", ", ")))
    return Dataset("ml-1m", inter, catalog)


def load_beauty() -> Dataset:
    inter = read_sequences(_need(data_dir() / "amazon-s3rec-5core" / "Beauty.txt.gz"))
    items = pl.read_csv(data_dir() / "amazon-s3rec-5core" / "Beauty_items.tsv.gz", separator="\t",
                        schema_overrides={"item_id": pl.Utf8}, quote_char=None)
    catalog = Catalog(items.rename({"item_id": "item"}).with_columns(pl.col("title").fill_null("")))
    return Dataset("beauty", inter, catalog)


def load_ml_latest_small() -> Dataset:
    base = data_dir() / "movielens-latest-small"
    ratings = pl.read_csv(_need(base / "ratings.csv.gz"))
    inter = Interactions.from_ids(ratings["userId"].cast(pl.Utf8).to_numpy(), ratings["movieId"].cast(pl.Utf8).to_numpy(),
                                  timestamp=ratings["timestamp"].to_numpy(),
                                  type=np.full(ratings.height, EventType.RATING, np.int8))
    movies = pl.read_csv(base / "movies.csv").rename({"movieId": "item", "genres": "category"})
    return Dataset("ml-latest-small", inter, Catalog(movies.with_columns(pl.col("category").str.replace_all(r"\|", ", "))),
                   timestamped=True)


def load_ml_100k() -> Dataset:
    base = data_dir() / "movielens-100k"
    with gzip.open(_need(base / "u.data.gz"), "rt") as f:
        rows = np.loadtxt(f, dtype=np.int64)
    inter = Interactions.from_ids(rows[:, 0].astype(str), rows[:, 1].astype(str), timestamp=rows[:, 3],
                                  type=np.full(len(rows), EventType.RATING, np.int8))
    rows_ = [line.split("|")[:2] for line in (base / "u.item").read_text(encoding="latin1").splitlines() if line]
    catalog = Catalog(pl.DataFrame(rows_, schema=["item", "title"], orient="row"))
    return Dataset("ml-100k", inter, catalog, timestamped=True)


# StockCodes that are fees, postage or adjustments rather than products.
NON_PRODUCT_CODES = ("POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "ADJUST")


def online_retail_frame() -> pl.DataFrame:
    """The bundled UCI Online Retail rows as clean purchases: user, item, timestamp, title, price."""
    path = resources.files("deepshelf") / "datasets_bundled" / "online_retail_2010-2011.parquet"
    raw = pl.read_parquet(Path(str(path)))
    return (
        raw.filter(
            pl.col("CustomerID").is_not_null()
            & ~pl.col("InvoiceNo").str.starts_with("C")
            & (pl.col("Quantity") > 0)
            & (pl.col("UnitPrice") > 0)
            & ~pl.col("StockCode").str.to_uppercase().is_in(NON_PRODUCT_CODES)
            & pl.col("StockCode").str.contains(r"^\d")  # product codes start with digits; fees do not
        )
        .select(
            pl.col("CustomerID").cast(pl.Utf8).alias("user"),
            pl.col("StockCode").str.to_uppercase().alias("item"),
            pl.col("InvoiceDate").alias("timestamp"),
            pl.col("Description").fill_null("").str.strip_chars().alias("title"),
            pl.col("UnitPrice").alias("price"),
            pl.col("Quantity").alias("quantity"),
            pl.col("InvoiceNo").alias("invoice"),
        )
        .sort("timestamp", maintain_order=True)
    )


def title_case(text: pl.Expr) -> pl.Expr:
    """Title Case for shouting product names ("CHILDREN'S APRON" -> "Children's Apron"): Polars capitalises the
    letter after an apostrophe too, so the English contractions' endings are put back in lower case."""
    cased = text.str.to_titlecase()
    for ending in ("S", "T", "Ll", "Re", "Ve", "D", "M"):
        cased = cased.str.replace_all(f"(['\u2019]){ending}\\b", f"${{1}}{ending.lower()}")
    return cased


def load_online_retail() -> Dataset:
    return dataset_from_sales("online-retail", online_retail_frame(), title=title_case)


def dataset_from_sales(name: str, sales: pl.DataFrame, title: Callable[[pl.Expr], pl.Expr] | None = None) -> Dataset:
    """Purchases and a catalogue from one table of order lines (user, item, timestamp (datetime or Unix seconds),
    invoice, title, price): one purchase per (customer, product, invoice), and a catalogue of every product
    carrying the lines (`Catalog.sales`), so a protocol hands each fit the catalogue as of its cut
    (`Dataset.catalog_as_of`). `title` rewrites the titles (e.g. `title_case`).

    The catalogue itself is the one as of now: each product's newest non-empty title and its median price over
    every line. The shop sells one range here, so category is unknown."""
    ts = sales["timestamp"]
    if ts.dtype.is_temporal():
        ts = ts.dt.epoch("s")
    sales = sales.with_columns(ts.cast(pl.Int64).alias("timestamp"), pl.col("title").fill_null("").str.strip_chars())
    if title is not None:  # on each distinct title once, not on every line
        names = sales.select(pl.col("title").unique())
        names = names.with_columns(title(pl.col("title")).alias("_cased"))
        sales = (sales.join(names, on="title", how="left", maintain_order="left")
                 .with_columns(pl.col("_cased").alias("title")).drop("_cased"))
    # One event per (customer, product, invoice): an invoice line repeated in a basket is one purchase.
    events = sales.unique(subset=["user", "item", "invoice"], keep="first", maintain_order=True)
    inter = Interactions.from_ids(events["user"].to_numpy(), events["item"].to_numpy(),
                                  timestamp=events["timestamp"].to_numpy(),
                                  type=np.full(events.height, EventType.PURCHASE, np.int8))
    now = (sales.group_by("item", maintain_order=True)
                .agg(pl.col("title").filter(pl.col("title") != "").last(), pl.col("price").median())
                .with_columns(pl.col("title").fill_null("")))
    return Dataset(name, inter, Catalog(now, sales.select(Catalog.SALES_COLUMNS)), timestamped=True)


def load_fashion() -> Dataset:
    base = data_dir() / "fashion-product-images"
    styles = pl.read_csv(_need(base / "styles.csv.gz"), infer_schema_length=0, truncate_ragged_lines=True)
    images = base / "images"
    with_image = {p.stem for p in images.glob("*.jpg")}
    styles = styles.filter(pl.col("id").is_in(list(with_image))).with_columns(
        pl.col("id").alias("item"),
        pl.col("productDisplayName").fill_null("").alias("title"),
        pl.col("articleType").alias("category"),
        (pl.lit(str(images) + "/") + pl.col("id") + pl.lit(".jpg")).alias("image"),
    ).drop("id", "productDisplayName")
    return Dataset("fashion", None, Catalog(styles))


BUILTIN: dict[str, tuple[Callable[[], Dataset], str]] = {
    "ml-1m": (load_ml_1m, "MovieLens 1M as chronological sequences, items with < 5 events removed"),
    "beauty": (load_beauty, "Amazon Beauty 5-core (S3-Rec preprocessing) with product titles"),
    "ml-latest-small": (load_ml_latest_small, "MovieLens latest-small ratings with timestamps"),
    "ml-100k": (load_ml_100k, "MovieLens 100K ratings with timestamps"),
    "online-retail": (load_online_retail, "UCI Online Retail 2010-11 purchases (bundled, CC BY 4.0)"),
    "fashion": (load_fashion, "Fashion product photos and catalogue (no events)"),
}


def load_dataset(name_or_path: str, catalog: str | None = None) -> Dataset:
    """A built-in dataset by name, or an events table / sequences file by path (with an optional catalogue).

    Event stores are not datasets: `deepshelf.runs.sources.load_source` reads a store URL with
    `deepshelf.storage.read_training_frames` and `dataset_from_frames`."""
    if name_or_path in BUILTIN:
        ds = BUILTIN[name_or_path][0]()
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise DeepshelfError(f"unknown dataset {name_or_path!r}: not a built-in name "
                                 f"({', '.join(BUILTIN)}) and no such file")
        if is_sequence_file(path):
            ds = Dataset(path.name, read_sequences(path))
        elif is_bigquery_export(path):  # GA4's export: one analytics event per line
            ds = Dataset(path.name, events_from_frame(read_bigquery_export(path), path), timestamped=True)
        else:
            inter = read_events(path)
            ds = Dataset(path.name, inter, timestamped=bool(inter.timestamp.max() > 10_000_000))
    if catalog is not None:
        ds.catalog = read_catalog_or_feed(catalog)
    # a shop's own files list products that have not sold yet; the built-in datasets keep their published item
    # sets (their catalogues hold only products with events, or more than their benchmarks count)
    return ds.listing_catalog() if catalog is not None or name_or_path not in BUILTIN else ds


def read_catalog_or_feed(path: str | Path) -> Catalog:
    """A catalogue table, or a Merchant Center feed (`.xml`, or a `.tsv` / `.txt` whose header has the feed's
    `id` and `title`); a feed's malformed items are left out (`deepshelf import-feed` lists them)."""
    path = Path(path)
    kind = "".join(s.lower() for s in path.suffixes[-1:])
    if kind == ".xml" or (kind in (".tsv", ".txt") and _looks_like_feed(path)):
        feed = read_feed(path)
        if not feed.items:
            raise DeepshelfError(f"{path}: no valid items in the feed (first problem: {feed.errors[0]})"
                                 if feed.errors else f"{path}: no items in the feed")
        return Catalog(pl.DataFrame([{"item": it.item_id, "title": it.title, "description": it.description,
                                      "category": it.category, "price": it.price, "in_stock": it.in_stock,
                                      "image": it.image_url} for it in feed.items]))
    return read_catalog(path)


def _looks_like_feed(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = [h.strip().lower().removeprefix("g:") for h in f.readline().split("\t")]
    return "id" in header and "title" in header and "availability" in header


def dataset_from_frames(name: str, events: pl.DataFrame, catalog: pl.DataFrame | None = None,
                        timestamped: bool = True) -> Dataset:
    """A dataset from an events table and an optional catalogue table (columns as in `schema`), validated as the
    file loaders validate; `name` stands for the source in messages."""
    return Dataset(name, events_from_frame(events, name),
                   None if catalog is None else catalog_from_frame(catalog, name), timestamped=timestamped
                   ).listing_catalog()
