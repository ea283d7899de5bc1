"""items_from_table: the one conversion of a catalogue table into store Items, with one missing-value policy."""

from __future__ import annotations

import math

import polars as pl
import pytest

from deepshelf.errors import DeepshelfError
from deepshelf.storage import Item, items_from_table, open_store

NAN = float("nan")


def test_missing_values_follow_one_policy():
    table = pl.DataFrame({
        "item": [1, 2, 3, 4],
        "title": ["A", None, "C", "D"],
        "category": ["x", "y", None, ""],
        "price": [1.25, NAN, None, math.inf],
        "in_stock": [True, None, False, True],
        "image": ["/photos/1.jpg", None, None, None],
        "colour": ["red", "", None, "  "],
        "size": [NAN, 2.0, None, 0.0],
        "ignored": ["z", "z", "z", "z"],
    })
    items = items_from_table(table, ["colour", "size"])
    assert items == [
        Item("1", title="A", category="x", price=1.25, in_stock=True, attributes={"colour": "red"}),
        Item("2", title="", category="y", price=None, in_stock=True, attributes={"size": 2.0}),
        Item("3", title="C", category="", price=None, in_stock=False, attributes={}),
        Item("4", title="D", category="", price=None, in_stock=True, attributes={"size": 0.0}),
    ]


def test_only_the_item_column_is_required():
    assert items_from_table(pl.DataFrame({"item": ["a"]})) == [Item("a")]
    assert items_from_table(pl.DataFrame({"item": ["a"], "price": [3]}))[0].price == 3.0


def test_bad_tables_are_refused_by_name():
    with pytest.raises(DeepshelfError, match="no 'item' column"):
        items_from_table(pl.DataFrame({"title": ["a"]}))
    with pytest.raises(DeepshelfError, match="row 2, column 'item' is empty"):
        items_from_table(pl.DataFrame({"item": ["a", None]}))
    with pytest.raises(DeepshelfError, match="no attribute column 'brand'"):
        items_from_table(pl.DataFrame({"item": ["a"]}), ["brand"])
    with pytest.raises(DeepshelfError, match="price"):
        items_from_table(pl.DataFrame({"item": ["a"], "price": ["cheap"]}))


def test_a_catalogue_round_trips_through_the_store(tmp_path):
    from deepshelf.data.catalog import Catalog

    catalog = Catalog(pl.DataFrame({"item": ["a", "b"], "title": ["A", None], "price": [2.5, NAN],
                                    "brand": ["acme", None]}))
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.upsert_items(items_from_table(catalog.table, catalog.attributes))
        a, b = store.get_item("a"), store.get_item("b")
        assert (a.title, a.price, a.attributes) == ("A", 2.5, {"brand": "acme"})
        assert (b.title, b.price, b.attributes) == ("", None, {})  # NaN is no price, not a NaN in the database
    finally:
        store.close()
