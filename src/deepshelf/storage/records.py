"""The rows a store holds (`Event`, `Item`) and the one conversion of a catalogue table into `Item`s."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import polars as pl

from deepshelf.errors import DeepshelfError


# The largest amount one event's `value` (or a product's price) may carry, either sign: a billion in the shop's
# currency is beyond any real order, and sums and squares of many of them stay finite in float64 (analytics).
MAX_VALUE = 1e9


class Event(NamedTuple):
    """One shopper event as stored. `ts` is Unix seconds (float)."""

    user_id: str
    item_id: str
    type: str
    ts: float
    session_id: str | None = None
    value: float | None = None
    event_id: str | None = None  # the client's id: an event whose id is stored already is not stored again
    recommendation_id: str | None = None  # the list answer this event came from (a click on a shown item)


class Impression(NamedTuple):
    """One list answer as shown: `items` are its item ids in order, each between newlines ("\\ni1\\ni2\\n");
    `new_items` those of them that were new products when shown, in the same form and order ("\\n\\n": none),
    or None where that is unknown (lists stored before the store recorded it: schema migration 9). `query`: what a
    search answered, normalised (engine/impressions.normalise_query); None for every other list."""

    recommendation_id: str
    ts: float
    user_id: str | None
    session_id: str | None
    placement: str
    surface: str  # recommendations | sessions | similar | search | popular
    model_version: str | None
    experiment: str | None
    variant: str | None
    items: str
    new_items: str | None = None
    query: str | None = None


@dataclass
class Item:
    """One catalogue row as stored; `seq` increases with every upsert (for incremental catalogue refresh)."""

    item_id: str
    title: str = ""
    description: str = ""
    category: str = ""
    price: float | None = None
    in_stock: bool = True
    image_url: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    has_image: bool = False
    updated_at: float = 0.0


class ItemCard(NamedTuple):
    """What a list answer shows of a product (`Store.item_cards`): the catalogue row without its description,
    attributes and bookkeeping."""

    item_id: str
    title: str
    category: str
    price: float | None
    image_url: str
    has_image: bool
    currency: str = ""  # the feed's currency code for the price (attributes["currency"]), "" when none


def _missing(value: Any) -> bool:
    """The one notion of "no value" for catalogue cells: null, NaN or an empty / blank string."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def items_from_table(table: pl.DataFrame, attributes: Sequence[str] = ()) -> list[Item]:
    """Catalogue rows (a table with an `item` column, as `deepshelf.data.Catalog.table`) as store `Item`s.

    One policy for missing values, whatever the table came from:
    - `item` is required in every row (else `DeepshelfError` naming the row); it becomes a string;
    - `title`, `description`, `category`: missing (null) -> "" (absent columns too);
    - `price`: null, NaN or infinite -> None, else the float as given (no rounding);
    - `in_stock`: null or absent column -> True, else its truth value;
    - `attributes`: only the named columns, and in each row only the values that are present: null, NaN and
      blank strings are left out rather than stored as empty attributes;
    - `image_url` stays "": a catalogue's `image` column names a local file, not a URL a shopper's browser can load.
    """
    if "item" not in table.columns:
        raise DeepshelfError(f"catalogue table has no 'item' column (columns: {', '.join(table.columns)})")
    unknown = [a for a in attributes if a not in table.columns]
    if unknown:
        raise DeepshelfError(f"catalogue table has no attribute column {unknown[0]!r}")
    n = table.height
    ids = table["item"].cast(pl.Utf8)
    if ids.null_count():
        raise DeepshelfError(f"catalogue table: row {int(ids.is_null().arg_true()[0]) + 1}, column 'item' is empty")

    def text(name: str) -> list[str]:
        return table[name].cast(pl.Utf8).fill_null("").to_list() if name in table.columns else [""] * n

    try:
        price = (table.select(pl.when(pl.col("price").cast(pl.Float64).is_finite()).then(pl.col("price")))
                 .to_series().cast(pl.Float64).to_list() if "price" in table.columns else [None] * n)
        in_stock = (table["in_stock"].cast(pl.Boolean).fill_null(True).to_list() if "in_stock" in table.columns
                    else [True] * n)
    except pl.exceptions.PolarsError as exc:  # e.g. prices as text: parse the table with data.loaders first
        raise DeepshelfError(f"catalogue table: {str(exc).splitlines()[0]}") from None
    attr_values = {a: table[a].to_list() for a in attributes}
    return [Item(item_id=item_id, title=title, description=description, category=category, price=p,
                 in_stock=bool(stock),
                 attributes={a: values[row] for a, values in attr_values.items() if not _missing(values[row])})
            for row, (item_id, title, description, category, p, stock) in enumerate(
                zip(ids.to_list(), text("title"), text("description"), text("category"), price, in_stock))]
