"""The event store on both backends, and training data read back from it."""

from __future__ import annotations

import pytest

from deepshelf.errors import DeepshelfError
from deepshelf.runs.sources import load_source
from deepshelf.storage import Event, Item, open_store, read_training_frames


@pytest.fixture
def store(database):
    s = open_store(database)
    yield s
    s.close()


def test_events_roundtrip_and_order(store):
    assert store.add_events([Event("u", "a", "view", 10.0), Event("u", "b", "purchase", 30.0, "s", 2.0),
                             Event("u", "c", "cart", 20.0), Event("v", "a", "view", 5.0)]) == 4
    assert [e.item_id for e in store.history("u", 10)] == ["b", "c", "a"]
    assert store.history("u", 1)[0] == Event("u", "b", "purchase", 30.0, "s", 2.0)
    assert store.count_events() == 4
    top = store.item_counts(0.0, {"view": 1.0, "cart": 2.0, "purchase": 4.0}, 10)
    assert top[0] == ("b", 4.0) and dict(top)["a"] == 2.0
    assert store.item_counts(25.0, {"view": 1.0, "purchase": 4.0}, 10) == [("b", 4.0)]
    buckets = store.event_buckets(20, 0.0)
    assert sum(n for _, _, n in buckets) == 4 and min(b for b, _, _ in buckets) == 0.0
    assert [u for u, _, _ in store.recent_users(5)] == ["u", "v"]
    # the recommendation input: newest first, with each event's type and time (the ranker reads both)
    assert store.recent_events("u", 2) == [("b", "purchase", 30.0), ("c", "cart", 20.0)]
    # a served ranker's sales since its fit (engine/live_sales.py): by type, after a time and an id, in id order
    assert store.count_events(5.0, 20.0, ["view", "cart"]) == 2 and store.count_events(None, 10.0) == 2
    rows, marker = store.events_after(5.0, 0, ["view", "purchase"])
    assert [(item, kind, ts) for _, item, kind, ts in rows] == [("a", "view", 10.0), ("b", "purchase", 30.0)]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert store.events_after(5.0, rows[0][0], ["view", "purchase"], limit=1)[0] == rows[1:]
    store.erase_user("v")
    assert store.events_after(5.0, 0, ["view"])[1] != marker  # an erasure moves the marker


def test_catalog_upsert_and_incremental_changes(store):
    store.upsert_items([Item("a", title="A", category="x", price=1.5), Item("b", title="B", in_stock=False)])
    seq = max(r[4] for r in store.catalog_columns())
    store.upsert_items([Item("a", title="A2", category="y", attributes={"colour": "red"})])
    changed = store.catalog_columns(seq)
    assert [r[0] for r in changed] == ["a"] and changed[0][1] == "y"
    item = store.get_item("a")
    assert item.title == "A2" and item.price is None and item.attributes == {"colour": "red"}
    assert store.get_item("b").in_stock is False and store.get_item("zzz") is None
    page, total = store.list_items(1, 1)
    assert total == 2 and page[0].item_id == "b"
    store.put_image("a", "image/png", b"\x89PNG")
    assert store.get_image("a") == ("image/png", b"\x89PNG") and store.get_item("a").has_image
    assert [i.item_id for i in store.search_titles("a2", 10)] == ["a"]


def test_training_data_from_the_store(database):
    store = open_store(database)
    store.add_events([Event(f"u{u}", f"i{(u + j) % 5}", "view" if j else "purchase", 1000.0 + 10 * j + u)
                      for u in range(6) for j in range(4)])
    store.upsert_items([Item(f"i{i}", title=f"T{i}", category="c", price=float(i)) for i in range(5)])
    store.close()
    ds = load_source(database)  # what `deepshelf train --database URL` reads
    assert ds.timestamped and len(ds.interactions) == 24 and ds.interactions.n_users == 6
    assert ds.catalog is not None and len(ds.catalog) == 5
    assert "@" not in ds.name or ":" not in ds.name.split("@")[0].split("//")[1]  # no password in the name
    from deepshelf.models.itemknn import ItemKNN

    model = ItemKNN().fit(ds.interactions)
    assert model.n_items == 5


def test_training_frames_are_plain_tables_in_time_order(database):
    store = open_store(database)
    store.add_events([Event("u", "b", "purchase", 30.0), Event("v", "a", "view", 10.0), Event("u", "a", "cart", 20.0)])
    store.close()
    events, catalog = read_training_frames(database)
    assert events.columns == ["user", "item", "type", "timestamp"] and catalog is None
    assert events.rows() == [("v", "a", "view", 10.0), ("u", "a", "cart", 20.0), ("u", "b", "purchase", 30.0)]
    store = open_store(database)
    store.upsert_items([Item("a", title="A", price=2.5, in_stock=False), Item("b")])
    store.close()
    _, catalog = read_training_frames(database)
    assert catalog.columns == ["item", "title", "description", "category", "price", "in_stock", "image"]
    assert catalog.row(0) == ("a", "A", "", "", 2.5, False, "") and catalog["price"][1] is None


def test_a_catalogue_file_replaces_the_stores(database, tmp_path):
    store = open_store(database)
    store.add_events([Event("u", "a", "view", 1.0), Event("u", "b", "view", 2.0)])
    store.upsert_items([Item("a", title="from the store")])
    store.close()
    (tmp_path / "cat.csv").write_text("item,title\na,from the file\nb,B\n")
    ds = load_source(database, str(tmp_path / "cat.csv"))
    assert ds.catalog.table["title"].to_list() == ["from the file", "B"]


def test_empty_store_and_bad_urls(tmp_path):
    with pytest.raises(DeepshelfError, match="no events"):
        load_source(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DeepshelfError, match="expected sqlite"):
        open_store("mysql://x")
    with pytest.raises(DeepshelfError, match="cannot connect"):
        open_store("postgresql://nobody@127.0.0.1:1/nothing")
