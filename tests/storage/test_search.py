"""The fallback text search (Store.search_titles) through each store's full-text index: ranking, an index kept
in step with upserts, updates and deletes, hostile queries, and a store made before the index upgrading."""

from __future__ import annotations

import pytest

from deepshelf.storage import Item, migrations, open_store
from deepshelf.storage.base import search_terms

SEARCH_VERSION = next(m.version for m in migrations.MIGRATIONS if m.statements is migrations._text_search)


@pytest.fixture
def store(database):
    s = open_store(database)
    yield s
    s.close()


def ids(items) -> list[str]:
    return [i.item_id for i in items]


CATALOGUE = [
    Item("lamp-title", title="Red lamp", description="a light for the desk", category="lighting"),
    Item("lamp-desc", title="Desk light", description="not a lamp but close to one, red", category="lighting"),
    Item("mug", title="Enamel mug", description="red, for camping", category="kitchen"),
    Item("chair", title="Oak chair", description="", category="furniture"),
]


def test_best_matches_first_and_every_word_required(store):
    store.upsert_items(CATALOGUE)
    # "lamp" in the title outranks "lamp" in the description; items without it are not returned
    assert ids(store.search_titles("lamp", 10)) == ["lamp-title", "lamp-desc"]
    assert ids(store.search_titles("RED LAMP", 10)) == ["lamp-title"]  # the words in order, any case
    assert ids(store.search_titles("red for camp", 10)) == ["mug"]  # the last word may be cut short
    assert store.search_titles("lamp red", 10) == [] and store.search_titles("red camping", 10) == []
    assert ids(store.search_titles("kitchen", 10)) == ["mug"]  # the category is searched
    assert ids(store.search_titles("cha", 10)) == ["chair"]  # a word's beginning finds it
    assert store.search_titles("hair", 10) == [] and store.search_titles("zzz", 10) == []
    assert len(store.search_titles("red", 2)) == 2 and store.search_titles("red", 0) == []
    found = store.search_titles("chair", 1)[0]
    assert (found.title, found.category, found.in_stock) == ("Oak chair", "furniture", True)


def test_the_index_follows_upserts_updates_and_deletes(store):
    store.upsert_items(CATALOGUE)
    store.upsert_items([Item("new", title="Walnut bookshelf", category="furniture")])
    assert ids(store.search_titles("bookshelf", 10)) == ["new"]
    store.upsert_items([Item("chair", title="Pine stool", category="furniture")])  # renamed
    assert store.search_titles("oak", 10) == [] and ids(store.search_titles("stool", 10)) == ["chair"]
    assert ids(store.search_titles("furniture", 10)) == ["chair", "new"]
    with store._write() as cur:  # a row removed (as the repair migration does) leaves the index too
        cur.execute(store._sql("DELETE FROM items WHERE item_id = ?"), ("mug",))
    assert store.search_titles("enamel", 10) == [] and ids(store.search_titles("red", 10)) == ["lamp-title",
                                                                                                "lamp-desc"]


@pytest.mark.parametrize("query", ['"', '"red', "lamp*", "*", "NEAR(red lamp)", "red NEAR lamp", "-red", "red -lamp",
                                   "AND", "OR NOT", "title:red", "^red", "'; DROP TABLE items; --", "\\", "(", ")",
                                   "red & | ! :*", "½ ² ⅷ", "Lämpe 灯 🔥", "x" * 500, "é" * 3, "_", "r_d"])
def test_hostile_queries_do_not_error(store, query):
    store.upsert_items(CATALOGUE + [Item("u", title="Lämpe 灯 ½")])
    found = ids(store.search_titles(query, 10))
    if not search_terms(query):
        assert found == []
    assert store.count_items() == 5  # nothing ran but the search


def test_operator_words_are_searched_as_words(store):
    store.upsert_items(CATALOGUE + [Item("near", title="Near the sea: NEAR and AND")])
    assert ids(store.search_titles("NEAR", 10)) == ["near"]
    assert ids(store.search_titles("near and", 10)) == ["near"]
    assert ids(store.search_titles('"red" -lamp*', 10)) == ["lamp-title"]  # punctuation only separates


def test_a_store_made_before_the_index_upgrades_with_its_rows_searchable(database, monkeypatch):
    monkeypatch.setattr(migrations, "MIGRATIONS", tuple(m for m in migrations.MIGRATIONS
                                                        if m.version < SEARCH_VERSION))
    old = open_store(database)
    try:
        assert old.schema_version() == SEARCH_VERSION - 1
        old.upsert_items(CATALOGUE)
    finally:
        old.close()
    monkeypatch.undo()
    store = open_store(database)
    try:
        assert store.schema_version() == migrations.latest_version()
        assert ids(store.search_titles("lamp", 10)) == ["lamp-title", "lamp-desc"]  # backfilled
        store.upsert_items([Item("mug", title="Steel mug", category="kitchen")])
        assert store.search_titles("enamel", 10) == [] and ids(store.search_titles("steel", 10)) == ["mug"]
    finally:
        store.close()


def test_a_query_matching_more_than_the_bound_answers_its_newest_matches(store):
    store.upsert_items([Item(f"old{k}", title="red red red lamp") for k in range(3)])  # best matches, added first
    store.upsert_items([Item(f"new{k}", title=f"red {'lamp ' * k}") for k in range(4)])
    assert ids(store.search_titles("red", 3)) == ["old0", "old1", "old2"]  # 7 matches, within the bound: ranked
    lamp = ids(store.search_titles("lamp", 10))
    assert lamp[0] == "new3" and len(lamp) == 6  # "lamp" three times in a short title first
    store.search_candidates = 6
    # 7 matches, more than the bound: the newest, unranked
    assert ids(store.search_titles("red", 3)) == ["new3", "new2", "new1"]
    assert ids(store.search_titles("red", 10)) == ["new3", "new2", "new1", "new0", "old2", "old1", "old0"]
    assert store.search_item_ids("red", 3) == ["new3", "new2", "new1"]
    found = store.search_titles("red", 1)[0]
    assert (found.item_id, found.title) == ("new3", "red lamp lamp lamp ")
    # 6 matches, within the bound: still ranked by relevance, the same rows either way
    assert ids(store.search_titles("lamp", 10)) == lamp and store.search_item_ids("lamp", 10) == lamp


def test_a_store_with_the_first_index_gains_prefix_indexes_with_its_rows_searchable(tmp_path, monkeypatch):
    database = f"sqlite:///{tmp_path / 'v7.db'}"
    prefixes = next(m.version for m in migrations.MIGRATIONS if m.statements is migrations._search_prefixes)
    monkeypatch.setattr(migrations, "MIGRATIONS", tuple(m for m in migrations.MIGRATIONS if m.version < prefixes))
    old = open_store(database)
    old.upsert_items(CATALOGUE)
    old.close()
    monkeypatch.undo()
    store = open_store(database)
    try:
        assert store.schema_version() == migrations.latest_version()
        sql = store._read("SELECT sql FROM sqlite_master WHERE name = 'items_fts'")[0][0]
        assert "prefix='1 2 3 4 5 6'" in sql
        assert ids(store.search_titles("lam", 10)) == ["lamp-title", "lamp-desc"]  # rows indexed again
        store.upsert_items([Item("mug", title="Steel mug", category="kitchen")])  # the triggers still feed it
        assert store.search_titles("enamel", 10) == [] and ids(store.search_titles("ste", 10)) == ["mug"]
    finally:
        store.close()


def test_every_sqlite_connection_maps_the_file_and_finds_the_same_matches_as_without(tmp_path):
    import threading

    from deepshelf.storage.sqlite import MMAP_BYTES

    store = open_store(f"sqlite:///{tmp_path / 'shop.db'}", timeout_s=5)
    store.upsert_items(CATALOGUE)
    sizes = []
    worker = threading.Thread(target=lambda: sizes.append(store._conn().execute("PRAGMA mmap_size").fetchone()[0]))
    worker.start()
    worker.join()
    sizes.append(store._conn().execute("PRAGMA mmap_size").fetchone()[0])
    assert sizes == [MMAP_BYTES, MMAP_BYTES]  # a request thread's connection as well as this one
    mapped = [store.search_item_ids(q, 10) for q in ("red", "lamp", "de", "oak chair")]
    store._conn().execute("PRAGMA mmap_size=0")
    assert [store.search_item_ids(q, 10) for q in ("red", "lamp", "de", "oak chair")] == mapped
    assert mapped[0] and mapped[1]
    store.close()
