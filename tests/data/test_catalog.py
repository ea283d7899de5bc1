"""The catalogue as of a cut: every product listed, prices and titles only from the sales before it."""

import numpy as np
import polars as pl

from deepshelf.data.catalog import Catalog
from deepshelf.data.datasets import dataset_from_sales, load_dataset, title_case

DAY = 86400


def sales_lines() -> pl.DataFrame:
    """Order lines of three products: "a" sold throughout (dearer and retitled later), "b" first sold on day 10
    (its first line without a title), "c" never sold before day 20."""
    rows = [  # user, item, day, invoice, title, price
        ("u1", "a", 0, "1", "RED MUG", 2.0), ("u2", "a", 1, "2", "RED MUG", 4.0), ("u1", "a", 2, "3", "RED MUG", 3.0),
        ("u3", "b", 10, "4", "", 5.0), ("u3", "b", 10, "4", "BLUE BOWL", 5.0), ("u2", "a", 15, "5", "RUBY MUG", 9.0),
        ("u1", "c", 20, "6", "GREEN JUG", 7.0), ("u2", "c", 21, "7", "EMERALD JUG", 8.0),
    ]
    return pl.DataFrame(rows, schema=["user", "item", "day", "invoice", "title", "price"], orient="row").select(
        "user", "item", (pl.col("day") * DAY).alias("timestamp"), "invoice", "title", "price")


def by_item(catalog: Catalog, column: str) -> dict:
    return dict(zip(catalog.table["item"].to_list(), catalog.table[column].to_list()))


def test_as_of_prices_and_titles_come_from_the_sales_before_the_cut():
    ds = dataset_from_sales("lines", sales_lines(), title=title_case)
    now = ds.catalog
    # as of now (the loaded catalogue): newest titles, median over every line; one purchase per invoice line
    assert by_item(now, "title") == {"a": "Ruby Mug", "b": "Blue Bowl", "c": "Emerald Jug"}
    assert by_item(now, "price") == {"a": 3.5, "b": 5.0, "c": 7.5}
    assert len(ds.interactions) == 7 and ds.timestamped

    at_12 = ds.catalog_as_of(12 * DAY)
    assert at_12.table["item"].to_list() == ["a", "b", "c"]  # every product listed, sold or not
    assert by_item(at_12, "price")["a"] == 3.0 and by_item(at_12, "price")["b"] == 5.0
    assert by_item(at_12, "price")["c"] is None  # not sold before the cut: price unknown (null, NaN in arrays)
    # the name before the later retitling; a product not sold yet is listed under its first name
    assert by_item(at_12, "title") == {"a": "Red Mug", "b": "Blue Bowl", "c": "Green Jug"}
    prices = at_12.column_for(ds.interactions.item_map, "price", fill=np.nan).astype(float)
    assert np.isnan(prices[ds.interactions.item_map.index("c")])

    # lines after the cut change nothing as of it: dearer prices, new names, more sales of a new product, except
    # the name a product not sold yet was listed under (its catalogue entry, known from the cut)
    after = pl.col("timestamp") >= 12 * DAY
    listing = (pl.col("item") == "c") & (pl.col("timestamp") == 20 * DAY)
    later = pl.concat([sales_lines(), pl.DataFrame({"user": ["u3"], "item": ["c"], "timestamp": [22 * DAY],
                                                    "invoice": ["8"], "title": ["JADE JUG"], "price": [99.0]})])
    later = later.with_columns(pl.when(after).then(pl.col("price") * 10).otherwise("price").alias("price"),
                               pl.when(after & ~listing).then(pl.lit("RENAMED")).otherwise("title").alias("title"))
    assert dataset_from_sales("lines", later, title=title_case).catalog_as_of(12 * DAY).table.equals(at_12.table)

    # as of an earlier cut, from the catalogue as of a later one: the same as from the whole file
    assert at_12.as_of(5 * DAY).table.equals(now.as_of(5 * DAY).table)
    assert by_item(now.as_of(5 * DAY), "title")["b"] == "Blue Bowl" and at_12.as_of(5 * DAY).sales.height == 3


def test_a_catalogue_without_sales_is_as_of_now():
    catalog = Catalog(pl.DataFrame({"item": ["a"], "title": ["A"], "price": [1.0]}))
    assert catalog.sales is None and catalog.as_of(0) is catalog


def test_online_retail_as_of_the_validation_cut_prices_only_from_before_it():
    ds = load_dataset("online-retail")
    inter = ds.interactions
    cut = int(inter.timestamp.max()) - 60 * DAY
    at_cut = ds.catalog_as_of(cut)
    assert at_cut.table["item"].equals(ds.catalog.table["item"])
    price = at_cut.column_for(inter.item_map, "price", fill=np.nan).astype(float)
    sold = np.zeros(inter.n_items, bool)
    sold[inter.item[inter.timestamp < cut]] = True
    assert np.isnan(price[~sold]).all() and np.isfinite(price[sold]).all()
    whole = ds.catalog.column_for(inter.item_map, "price", fill=np.nan).astype(float)
    # the whole year's median differs for a few percent of the products sold before the cut (the old leak)
    assert 0.01 < (price[sold] != whole[sold]).mean() < 0.1
