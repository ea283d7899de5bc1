"""`Catalog`: the shop's products (titles, descriptions, categories, prices, stock, images, free attributes)."""

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

    def __init__(self, table: pl.DataFrame):
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
