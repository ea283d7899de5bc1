"""`Catalog`: the shop's products (titles, descriptions, categories, prices, stock, images, free attributes).

A catalogue built from a sales file (the bundled Online Retail data: every order line has a title and a unit price)
also carries those lines (`Catalog.sales`), so `as_of(cut)` gives the catalogue as the shop knew it at a cut:
every product listed (a shop lists products before they sell), but prices and titles from the lines before the cut.
A catalogue from a catalogue file, a product feed or a store has no sales: it is already "as of now".
"""

from __future__ import annotations

import numpy as np
import polars as pl

from deepshelf.data.idmap import IdMap


class Catalog:
    """Products as a Polars table with one row per item and a string `item` column.

    Standard columns (all but `item` optional): title, description, category, price, in_stock, image.
    Any other column is a free attribute (colour, brand, article type ...).
    """

    STANDARD = ("item", "title", "description", "category", "price", "in_stock", "image")
    SALES_COLUMNS = ("item", "timestamp", "price", "title")

    def __init__(self, table: pl.DataFrame, sales: pl.DataFrame | None = None):
        """`sales` (optional): one row per sale line, columns item (str), timestamp (int64 Unix seconds), price
        (float, null where unknown) and title (str, "" where none), which `as_of` reads prices and titles from."""
        if "item" not in table.columns:
            raise ValueError("Catalog table needs an 'item' column")
        table = table.with_columns(pl.col("item").cast(pl.Utf8))
        dupes = table["item"].is_duplicated()
        if dupes.any():
            first = table.filter(dupes)["item"][0]
            raise ValueError(f"Catalog: item id {first!r} appears more than once")
        defaults = {"title": pl.lit(""), "description": pl.lit(""), "category": pl.lit(""),
                    "price": pl.lit(None, dtype=pl.Float64), "in_stock": pl.lit(True), "image": pl.lit("")}
        table = table.with_columns([v.alias(k) for k, v in defaults.items() if k not in table.columns])
        self.table = table.with_columns(
            pl.col("title").cast(pl.Utf8).fill_null(""),
            pl.col("description").cast(pl.Utf8).fill_null(""),
            pl.col("category").cast(pl.Utf8).fill_null(""),
            pl.col("price").cast(pl.Float64),
            pl.col("in_stock").cast(pl.Boolean).fill_null(True),
            pl.col("image").cast(pl.Utf8).fill_null(""),
        )
        self.item_map = IdMap(self.table["item"].to_list())
        self.sales: pl.DataFrame | None = None
        if sales is not None:
            missing = [c for c in self.SALES_COLUMNS if c not in sales.columns]
            if missing:
                raise ValueError(f"Catalog sales need columns {', '.join(self.SALES_COLUMNS)} (missing: {missing})")
            self.sales = sales.select(
                pl.col("item").cast(pl.Utf8), pl.col("timestamp").cast(pl.Int64), pl.col("price").cast(pl.Float64),
                pl.col("title").cast(pl.Utf8).fill_null(""),
            ).sort("timestamp", maintain_order=True)

    def as_of(self, cut: int | float) -> "Catalog":
        """The catalogue as known at `cut` (Unix seconds): every product and its entry (title, description,
        category, image) as listed, with what the sales before the cut say (`sales` rows with timestamp < cut):

        - price: the median of its sale prices before the cut; unknown (NaN) for a product not sold before it.
          Not the price on its first later row: that is its first sale (quantity and customer discounts included),
          which a shop does not know at the cut, and no file says when or at what price it was listed.
        - title: its newest non-empty title before the cut (a later retitling is not known yet); for a product not
          sold before the cut, its first non-empty title, the name it was listed under.

        The sales kept are those before the cut, so `as_of` of the result at an earlier time is `as_of` at that
        time. Without sales (a catalogue file, a feed, a store: already as of now) the catalogue itself."""
        if self.sales is None:
            return self
        before = self.sales.filter(pl.col("timestamp") < cut)
        named = pl.col("title").filter(pl.col("title") != "")
        known = before.group_by("item").agg(pl.col("price").median().alias("_price"), named.last().alias("_title"))
        listed = self.sales.group_by("item").agg(named.first().alias("_listed"))
        table = (self.table.join(known, on="item", how="left", maintain_order="left")
                 .join(listed, on="item", how="left", maintain_order="left")
                 .with_columns(pl.col("_price").alias("price"),
                               pl.coalesce("_title", "_listed", "title").alias("title"))
                 .drop("_price", "_title", "_listed"))
        return Catalog(table, before)

    def __len__(self) -> int:
        return self.table.height

    def __repr__(self) -> str:
        return f"Catalog(items={len(self)}, columns={self.table.columns})"

    @property
    def attributes(self) -> list[str]:
        return [c for c in self.table.columns if c not in self.STANDARD]

    def texts(self) -> list[str]:
        """Title, category and description joined: the text a product is understood by."""
        parts = self.table.select(
            pl.concat_str([pl.col("title"), pl.col("category"), pl.col("description")], separator=". ")
            .str.strip_chars(". ")
        )
        return parts.to_series().to_list()

    def texts_for(self, item_map: IdMap) -> list[str]:
        """`texts()` aligned to `item_map` indices; "" where the item has no catalogue row."""
        rows = self.rows_for(item_map)
        texts = np.array(self.texts(), dtype=object)
        return np.where(rows >= 0, texts[np.maximum(rows, 0)], "").astype(str).tolist()

    def rows_for(self, item_map: IdMap) -> np.ndarray:
        """Catalogue row of each index in `item_map` (int64, -1 where the item has no catalogue row)."""
        return self.item_map.lookup(item_map.ids)

    def column_for(self, item_map: IdMap, column: str, fill=None) -> np.ndarray:
        """`column` aligned to `item_map` indices; `fill` where the item has no catalogue row."""
        rows = self.rows_for(item_map)
        values = self.table[column].to_numpy()
        out = np.empty(len(rows), dtype=values.dtype if fill is None else object)
        known = rows >= 0
        out[known] = values[rows[known]]
        if (~known).any():
            out = out.astype(object)
            out[~known] = fill
        return out
