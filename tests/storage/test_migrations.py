"""Versioned schema migrations on both backends: a fresh store, a store made before versioning, re-opening,
a failing migration, a store newer than the code, and servers opening one store at once."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from deepshelf.errors import DeepshelfError
from deepshelf.storage import Event, Item, open_store
from deepshelf.storage.migrations import MIGRATIONS, Migration, latest_version, migrate

# The DDL deepshelf ran on every open before migrations were versioned (storage/store.py at b53cae6), plus the
# index of still earlier stores that it dropped. Stores made by it must upgrade without losing a row.
OLD_DDL = """
CREATE TABLE IF NOT EXISTS events (
    id {pk},
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    session_id TEXT,
    value DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS events_user_ts ON events (user_id, ts);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    price DOUBLE PRECISION,
    in_stock BOOLEAN NOT NULL DEFAULT TRUE,
    image_url TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{{}}',
    seq BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS items_seq ON items (seq);
CREATE INDEX IF NOT EXISTS items_category ON items (category);
CREATE TABLE IF NOT EXISTS item_images (
    item_id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    data {blob} NOT NULL
);
INSERT INTO events (user_id, item_id, type, ts) VALUES ('u', 'a', 'view', 10.0), ('u', 'b', 'purchase', 20.0);
INSERT INTO items (item_id, title, price, attributes, seq, updated_at) VALUES ('a', 'Old A', 3.5, '{{"colour": "red"}}', 7, 1.0);
"""


def run_raw(url: str, script: str) -> None:
    """Run SQL on the database behind `url` without deepshelf (as an older deepshelf did)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.executescript(script.format(pk="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB"))
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(script.format(pk="BIGSERIAL PRIMARY KEY", blob="BYTEA")
                         + "CREATE SEQUENCE IF NOT EXISTS item_seq START 8;")


def tables_and_indexes(store) -> set[str]:
    if store.kind == "sqlite":
        return {r[0] for r in store._read("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    return ({r[0] for r in store._read("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            | {r[0] for r in store._read("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")})


def applied(store) -> list[tuple]:
    return [tuple(r) for r in store._read("SELECT version, description, applied_at FROM schema_version ORDER BY version")]


BASELINE = {"events", "items", "item_images", "schema_version", "events_user_ts_item", "events_ts", "items_seq",
            "items_category"}


def test_a_fresh_store_gets_every_migration_once(database):
    store = open_store(database)
    try:
        assert store.schema_version() == latest_version() == MIGRATIONS[-1].version
        assert [r[0] for r in applied(store)] == [m.version for m in MIGRATIONS]
        assert BASELINE <= tables_and_indexes(store)
    finally:
        store.close()


def test_a_store_made_before_versioning_upgrades_with_its_rows(database):
    run_raw(database, OLD_DDL)
    store = open_store(database)
    try:
        assert store.schema_version() == latest_version()
        names = tables_and_indexes(store)
        assert BASELINE <= names and "events_user_ts" not in names  # the early index is replaced
        assert [e.item_id for e in store.history("u", 10)] == ["b", "a"]
        old = store.get_item("a")
        assert (old.title, old.price, old.attributes, old.seq) == ("Old A", 3.5, {"colour": "red"}, 7)
        store.upsert_items([Item("b", title="New B")])
        assert store.get_item("b").seq > 7  # the upsert counter continues past the old rows
        store.add_events([Event("u", "c", "view", 30.0)])
        assert store.count_events() == 3
    finally:
        store.close()


def test_reopening_applies_nothing_again(database):
    first = open_store(database)
    first.add_events([Event("u", "a", "view", 1.0)])
    before = applied(first)
    first.close()
    for _ in range(2):
        again = open_store(database)
        assert applied(again) == before and again.count_events() == 1
        again.close()


def test_a_failing_migration_leaves_the_previous_version_whole(database):
    store = open_store(database)
    try:
        base = latest_version()
        broken = MIGRATIONS + (Migration(base + 1, "half", lambda d: [
            "CREATE TABLE extra (x INTEGER)", "INSERT INTO events (user_id) VALUES ('no item')"]),)
        with pytest.raises(DeepshelfError, match=f"migration {base + 1} \\(half\\) failed"):
            migrate(store._write, store.dialect, "test store", broken)
        assert store.schema_version() == base and "extra" not in tables_and_indexes(store)  # rolled back whole

        fixed = MIGRATIONS + (Migration(base + 1, "extra table", lambda d: ["CREATE TABLE extra (x INTEGER)"]),)
        assert migrate(store._write, store.dialect, "test store", fixed) == base + 1
        assert "extra" in tables_and_indexes(store) and store.schema_version() == base + 1
        assert migrate(store._write, store.dialect, "test store", fixed) == base + 1  # applied once only

        with pytest.raises(DeepshelfError, match=f"version {base + 1}, newer than this deepshelf knows \\({base}\\)"):
            migrate(store._write, store.dialect, "test store")
    finally:
        store.close()


def test_migrations_must_be_numbered_in_order(database):
    store = open_store(database)
    try:
        with pytest.raises(DeepshelfError, match="increasing versions"):
            migrate(store._write, store.dialect, "test store", (MIGRATIONS[0], MIGRATIONS[0]))
    finally:
        store.close()


def test_servers_opening_one_new_store_at_once_migrate_it_once(database):
    errors, stores = [], []
    start = threading.Barrier(4)

    def open_one():
        start.wait()
        try:
            stores.append(open_store(database))
        except Exception as exc:  # noqa: BLE001 - any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(stores) == 4
        assert [r[0] for r in applied(stores[0])] == [m.version for m in MIGRATIONS]
    finally:
        for s in stores:
            s.close()


def test_lists_stored_before_new_products_were_recorded_read_as_unknown(database, monkeypatch):
    """A store from before migration 9 (impressions without `new_items`) with a list shown and clicked: after the upgrade
    that list's new products are unknown (NULL), reported apart and left out of the shares; new lists count."""
    from deepshelf.engine.attribution import report
    from deepshelf.storage import Impression, migrations
    from deepshelf.storage.attribution import Scope

    recorded = next(m.version for m in MIGRATIONS if m.run is migrations._new_items)
    monkeypatch.setattr(migrations, "MIGRATIONS", tuple(m for m in MIGRATIONS if m.version < recorded))
    old = open_store(database)
    try:
        assert old.schema_version() == recorded - 1
        with old._write() as cur:  # as deepshelf wrote lists before
            cur.execute(old._sql("INSERT INTO impressions (recommendation_id, ts, user_id, session_id, placement, "
                                 "surface, model_version, experiment, variant, items) "
                                 "VALUES (?, ?, ?, NULL, 'home', 'popular', 'v1', NULL, NULL, ?)"),
                        ("before", 100.0, "u", "\na\nb\n"))
        old.add_events([Event("u", "b", "view", 110.0, recommendation_id="before")])
    finally:
        old.close()
    monkeypatch.undo()

    store = open_store(database)
    try:
        assert store.schema_version() == latest_version() >= recorded
        before = store.impressions_of("before")
        assert before.items == "\na\nb\n" and before.new_items is None
        store.add_impressions([Impression("after", 200.0, "u", None, "home", "popular", "v1", None, None,
                                          "\nb\nc\n", "\nc\n")])
        store.add_events([Event("u", "c", "view", 210.0, recommendation_id="after")])
        total = report(store, Scope(), 86400.0, 86400.0)["total"]
        assert (total["impressions"], total["clicks"]) == (2, 2)
        assert total["new_products"] == {"impressions": 1, "unknown_impressions": 1, "items_shown": 2,
                                         "new_items_shown": 1, "impression_share": 0.5, "items_clicked": 1,
                                         "new_items_clicked": 1, "click_share": 1.0}
    finally:
        store.close()
