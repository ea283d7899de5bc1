"""Versioned schema migrations: a `schema_version` table and an ordered list of migrations, each applied once.

Opening a store brings its schema up to the newest version. Each pending migration runs in its own transaction
together with the row that records it, so a failure leaves the store at the previous version with nothing half
applied. The version is re-read inside the transaction, under the write lock (SQLite's `BEGIN IMMEDIATE`,
PostgreSQL's advisory lock), so servers starting at once apply each migration exactly once.

To change the schema, append a `Migration` with the next version number; never edit one that has shipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from deepshelf.errors import DeepshelfError
from deepshelf.storage import repair
from deepshelf.storage.dialects import Dialect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Dialect], list[str]]  # one SQL statement each, for the given dialect
    # then, in the same transaction, work on the rows SQL alone cannot express (given the cursor and the dialect)
    run: Callable[[Any, Dialect], None] | None = None


def _baseline(d: Dialect) -> list[str]:
    """The schema of every store made before versioning (all `IF NOT EXISTS`: such a store passes through)."""
    statements = [
        f"""CREATE TABLE IF NOT EXISTS events (
            id {d.pk},
            user_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            type TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            session_id TEXT,
            value DOUBLE PRECISION)""",
        "DROP INDEX IF EXISTS events_user_ts",  # replaced by the covering index below in early stores
        # covers the per-request read of a shopper's recent items (no table lookups), and orders their history
        "CREATE INDEX IF NOT EXISTS events_user_ts_item ON events (user_id, ts, item_id, type)",
        "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
        """CREATE TABLE IF NOT EXISTS items (
            item_id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL DEFAULT '',
            price DOUBLE PRECISION,
            in_stock BOOLEAN NOT NULL DEFAULT TRUE,
            image_url TEXT NOT NULL DEFAULT '',
            attributes TEXT NOT NULL DEFAULT '{}',
            seq BIGINT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS items_seq ON items (seq)",
        "CREATE INDEX IF NOT EXISTS items_category ON items (category)",
        f"""CREATE TABLE IF NOT EXISTS item_images (
            item_id TEXT PRIMARY KEY,
            content_type TEXT NOT NULL,
            data {d.blob} NOT NULL)""",
    ]
    if d.name == "postgresql":
        statements.append("CREATE SEQUENCE IF NOT EXISTS item_seq")  # the catalogue's upsert counter
    return statements


def _event_ids(d: Dialect) -> list[str]:
    # NULLs are distinct in a unique index (both databases): events sent without an id are all kept
    return ["ALTER TABLE events ADD COLUMN event_id TEXT",
            "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id)"]


def _impressions(d: Dialect) -> list[str]:
    # One row per list answer shown; `items` holds its item ids in order, one per line between newlines (ids carry
    # no control characters: validation.py), so a position is the item's place in it. Events gain the list they
    # came from, and an index to find a list's clicks.
    return [f"""CREATE TABLE IF NOT EXISTS impressions (
                id {d.pk},
                recommendation_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                user_id TEXT,
                session_id TEXT,
                placement TEXT NOT NULL,
                surface TEXT NOT NULL,
                model_version TEXT,
                experiment TEXT,
                variant TEXT,
                items TEXT NOT NULL)""",
            "CREATE UNIQUE INDEX IF NOT EXISTS impressions_recommendation_id ON impressions (recommendation_id)",
            "CREATE INDEX IF NOT EXISTS impressions_ts ON impressions (ts)",
            "CREATE INDEX IF NOT EXISTS impressions_user ON impressions (user_id)",
            "CREATE INDEX IF NOT EXISTS impressions_experiment ON impressions (experiment, variant)"]


def _add_column(cur, d: Dialect, table: str, column: str, kind: str) -> None:
    """ALTER TABLE ... ADD COLUMN that passes through a store which has the column already (as every other statement
    here does), which SQLite's ALTER TABLE cannot say by itself."""
    if d.name == "sqlite":
        cur.execute(f"PRAGMA table_info({table})")
        if column not in {row[1] for row in cur.fetchall()}:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    else:
        cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")


def _recommendation_ids(cur, d: Dialect) -> None:
    _add_column(cur, d, "events", "recommendation_id", "TEXT")
    cur.execute("CREATE INDEX IF NOT EXISTS events_recommendation_id ON events (recommendation_id)")


def _experiments(d: Dialect) -> list[str]:
    # One active experiment per placement (a stopped one keeps its row and its results): the partial unique index
    # holds that even when two servers define experiments at the same moment.
    return ["""CREATE TABLE IF NOT EXISTS experiments (
                name TEXT PRIMARY KEY,
                placement TEXT NOT NULL,
                spec TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                stopped_at DOUBLE PRECISION)""",
            "CREATE UNIQUE INDEX IF NOT EXISTS experiments_active_placement ON experiments (placement) "
            "WHERE stopped_at IS NULL"]


def _text_search(d: Dialect) -> list[str]:
    # The fallback search (Store.search_titles) reads an index instead of scanning every title; both backfill
    # the rows already stored. Titles weigh most, then categories, then descriptions.
    if d.name == "postgresql":
        # A stored generated column: PostgreSQL keeps it in step with every write and ranks from it.
        return ["ALTER TABLE items ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS ("
                "setweight(to_tsvector('simple'::regconfig, title), 'A') || "
                "setweight(to_tsvector('simple'::regconfig, category), 'B') || "
                "setweight(to_tsvector('simple'::regconfig, description), 'C')) STORED",
                "CREATE INDEX IF NOT EXISTS items_search ON items USING GIN (search_vector)"]
    # SQLite: an FTS5 index over `items` (external content: the text is not stored twice), keyed by its rowid,
    # which the triggers keep in step (an upsert updates its row in place, so the rowid stays; deepshelf never runs
    # VACUUM, which may renumber the rowids of a table like `items`: after one, run the 'rebuild' below again).
    cols = "title, description, category"
    old = "old.title, old.description, old.category"
    new = "new.title, new.description, new.category"
    return [f"CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5({cols}, content='items', "
            "content_rowid='rowid')",
            f"CREATE TRIGGER IF NOT EXISTS items_fts_insert AFTER INSERT ON items BEGIN "
            f"INSERT INTO items_fts (rowid, {cols}) VALUES (new.rowid, {new}); END",
            f"CREATE TRIGGER IF NOT EXISTS items_fts_delete AFTER DELETE ON items BEGIN "
            f"INSERT INTO items_fts (items_fts, rowid, {cols}) VALUES ('delete', old.rowid, {old}); END",
            f"CREATE TRIGGER IF NOT EXISTS items_fts_update AFTER UPDATE ON items BEGIN "
            f"INSERT INTO items_fts (items_fts, rowid, {cols}) VALUES ('delete', old.rowid, {old}); "
            f"INSERT INTO items_fts (rowid, {cols}) VALUES (new.rowid, {new}); END",
            "INSERT INTO items_fts (items_fts) VALUES ('rebuild')"]


def _erasures(d: Dialect) -> list[str]:
    # One row per erasure of a shopper's events (when, nothing of whom): a server keeping counts of events between
    # reads (live_counts.py) sees that some went and counts again.
    return [f"CREATE TABLE IF NOT EXISTS erasures (id {d.pk}, ts DOUBLE PRECISION NOT NULL)"]


def _search_prefixes(d: Dialect) -> list[str]:
    # SQLite: the FTS5 index again, now with prefix indexes of 1 to 6 characters, so a query's last word (a prefix:
    # "la" for "lamp") reads one list, walked newest first and only as far as the search needs, instead of merging
    # the lists of every word it begins (the search's tail). The price is space: on search_scale.py's catalogue the
    # index is about 3.6 times the indexed text instead of 0.7 times. The triggers of migration 6 keep it in step
    # as before. PostgreSQL's GIN index matches prefixes as it is.
    if d.name == "postgresql":
        return []
    cols = "title, description, category"
    return ["DROP TABLE IF EXISTS items_fts",
            f"CREATE VIRTUAL TABLE items_fts USING fts5({cols}, content='items', content_rowid='rowid', "
            "prefix='1 2 3 4 5 6')",
            "INSERT INTO items_fts (items_fts) VALUES ('rebuild')"]


def _no_statements(d: Dialect) -> list[str]:
    return []


def _new_items(cur, d: Dialect) -> None:
    # Which of a list's items were new products when it was shown (the engine's ranking.is_new), in the form of
    # `items`. Rows stored before keep NULL: unknown, and reported as such, never guessed from today's catalogue.
    _add_column(cur, d, "impressions", "new_items", "TEXT")


def _search_queries(cur, d: Dialect) -> None:
    # What a shopper searched for (normalised: engine/impressions.normalise_query), on the search's impression and
    # NULL on every other list: the search event that search learning reads (storage/search_log.py). Personal: it
    # goes with the impression when the shopper is erased.
    _add_column(cur, d, "impressions", "query", "TEXT")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events, items and item images with their indexes", _baseline),
    Migration(2, "events.event_id: a client's id that makes a retried write idempotent", _event_ids),
    Migration(3, "repair stored rows that break reads (invalid text, non-finite numbers, far-future events)",
              repair.statements, repair.run),
    Migration(4, "impressions (the lists shown) and events.recommendation_id (the list a click came from)",
              _impressions, _recommendation_ids),
    Migration(5, "experiments: online experiments (variants of runs per placement) shared by every server",
              _experiments),
    Migration(6, "full-text index over item titles, categories and descriptions (the fallback search)",
              _text_search),
    Migration(7, "erasures: a marker per erased shopper, so servers' live event counts start again", _erasures),
    Migration(8, "prefix indexes (1 to 6 characters) in the SQLite full-text index", _search_prefixes),
    Migration(9, "impressions.new_items: which items of a list were new products when it was shown",
              _no_statements, _new_items),
    Migration(10, "impressions.query: the words a search answered (search learning)", _no_statements,
              _search_queries),
)

_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, " \
                 "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"


def latest_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    return max((m.version for m in migrations), default=0)


def migrate(transaction: Callable[[], AbstractContextManager[Any]], dialect: Dialect, where: str,
            migrations: tuple[Migration, ...] | None = None) -> int:
    """Apply the pending migrations, each in its own `transaction()` (a context manager yielding a cursor that
    commits on exit and rolls back on error); returns the store's version. `where` names the store in errors."""
    migrations = MIGRATIONS if migrations is None else migrations
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise DeepshelfError(f"schema migrations must have increasing versions from 1, got {versions}")
    newest = latest_version(migrations)
    while True:
        with transaction() as cur:
            if dialect.lock:
                cur.execute(dialect.lock)
            cur.execute(_VERSION_TABLE)
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(cur.fetchone()[0])
            if current > newest:
                raise DeepshelfError(f"{where}: the store's schema is version {current}, newer than this deepshelf "
                                     f"knows ({newest}); upgrade deepshelf")
            pending = [m for m in migrations if m.version > current]
            if not pending:
                return current
            step = pending[0]
            try:
                for statement in step.statements(dialect):
                    cur.execute(statement)
                if step.run is not None:
                    step.run(cur, dialect)
            except DeepshelfError:
                raise
            except Exception as exc:  # the driver's error, tied to the store and the migration
                raise DeepshelfError(f"{where}: schema migration {step.version} ({step.description}) failed: "
                                     f"{str(exc).strip().splitlines()[0]}") from exc
            p = dialect.param
            cur.execute(f"INSERT INTO schema_version (version, description, applied_at) VALUES ({p}, {p}, {p})",
                        (step.version, step.description, time.time()))
        log.info("%s: schema migrated to version %d (%s)", where, step.version, step.description)
