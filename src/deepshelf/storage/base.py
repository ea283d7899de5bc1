"""The SQL store behind one interface: events, catalogue and images (the drivers live in sqlite.py, postgres.py).

Every write is committed before the call returns, so an HTTP 200 means the events are on disk. The server keeps no
state of its own beyond caches: several server processes can share one PostgreSQL store.

Over 400 lines: the one class both drivers share for every query (events, catalogue, images, impressions); the
attribution and live-count SQL already live in their own modules.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from deepshelf.errors import DeepshelfError
from deepshelf.storage.attribution import (
    CLICK_TYPES,
    DEFAULT_WINDOW_S,
    Scope,
    group_totals,
    list_outcomes,
)
from deepshelf.storage.live_counts import WindowCounts, weighted_sum
from deepshelf.storage.dialects import Dialect
from deepshelf.storage.event_ids import Ingested, conflicts, first_of_each, outcome
from deepshelf.storage.migrations import migrate
from deepshelf.storage.outages import FullDisk, StoreFull, StoreUnavailable  # noqa: F401 (re-exported)
from deepshelf.storage.records import Event, Impression, Item, ItemCard
from deepshelf.storage.signal import ChangeSignal
from deepshelf.storage.urls import redact_url


def _currency(attributes: str | None) -> str:
    """A catalogue row's price currency (a feed's `g:price` "14.00 GBP" keeps it as attributes["currency"]); the
    attributes text is parsed only when it names one."""
    if not attributes or '"currency"' not in attributes:
        return ""
    value = json.loads(attributes).get("currency")
    return value if isinstance(value, str) else ""


class ExperimentConflict(DeepshelfError):
    """Another active experiment already holds the placement."""


# A search term: a run of letters or digits. Everything else (quotes, `*`, `-`, operators' punctuation) only
# separates terms, so no query can reach the databases' query syntax; both tokenizers split words there too.
_TERM = re.compile(r"[^\W_]+")


def search_terms(query: str) -> list[str]:
    """The distinct lower-case words of a search query, in order."""
    return list(dict.fromkeys(t.lower() for t in _TERM.findall(query)))


_ITEM_COLS = "item_id, title, description, category, price, in_stock, image_url, attributes, seq, updated_at"


def _ids_in(column: str) -> str:
    """SQL: how many ids a column in the impressions' form ("\\ni1\\ni2\\n") holds: its newlines less one, none
    in "\\n\\n" (ids are never empty); NULL stays NULL. Takes one argument: a newline."""
    return (f"(CASE WHEN LENGTH({column}) < 3 THEN 0 "
            f"ELSE LENGTH({column}) - LENGTH(REPLACE({column}, ?, '')) - 1 END)")


class Store(ABC):
    """What the service needs from storage. Implementations are thread-safe (one connection per thread)."""

    kind: str
    dialect: Dialect
    search_candidates = 2000  # a query with more matches answers its newest ones unranked (search_titles)
    # An embedded store (a file this process reads through a library, no server between): a keyed read (one
    # shopper's events, some products' cards) is a function call of tens of microseconds, which the server makes
    # on the event loop rather than handing to a thread (api/routes/recommendations.py `respond`). A networked
    # store's reads stay off the loop, where a stalled database cannot hold the other requests.
    embedded = False

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()
        self._all_conns: list = []
        self._lock = threading.Lock()
        self._live_counts: dict = {}  # live_item_counts' WindowCounts by (name, weights)
        self.full_disk = FullDisk()  # a write refused for a full disk lately (/ready answers 503 meanwhile)

    # ---- connection plumbing ------------------------------------------------------------------------------
    @abstractmethod
    def _connect(self): ...

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all_conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            self._discard(conn)

    def _discard(self, conn) -> None:
        with self._lock:
            if conn in self._all_conns:
                self._all_conns.remove(conn)
        try:
            conn.close()
        except Exception:  # a broken connection may fail to close; it is discarded either way
            pass

    def close(self) -> None:
        if "changes" in self.__dict__:
            self.changes.close()
        with self._lock:
            conns, self._all_conns = self._all_conns, []
        for conn in conns:
            try:
                conn.close()
            except Exception:
                pass

    @abstractmethod
    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A cursor inside a transaction that is committed (durably) when the block exits."""

    @abstractmethod
    def _read(self, sql: str, args: Sequence = ()) -> list[tuple]: ...

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.dialect.param)

    def _migrate(self) -> int:
        """Bring the schema up to the newest version (drivers call this when they open a store)."""
        return migrate(self._write, self.dialect, redact_url(self.url))

    def schema_version(self) -> int:
        """The newest schema migration applied to this store."""
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    # ---- events -------------------------------------------------------------------------------------------
    def add_events(self, events: Sequence[Event]) -> int:
        """`ingest_events`, answering only how many events were accepted."""
        return self.ingest_events(events).accepted

    def ingest_events(self, events: Sequence[Event]) -> Ingested:
        """Insert a batch in one transaction; returns only after the commit. An event whose `event_id` is stored
        already is not stored again: the same event (a retry) counts as accepted, another one under that id is
        refused and named, as is a second copy of an id in the batch (event_ids.py)."""
        if not events:
            return Ingested(0, [])
        kept, later = first_of_each(events)
        with self._write() as cur:
            cur.executemany(
                self._sql("INSERT INTO events (user_id, item_id, type, ts, session_id, value, event_id, "
                          "recommendation_id) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"),
                [tuple(e) for e in kept])
            taken = conflicts(cur, self._sql, kept)
        self.changes.bump()
        return outcome(events, later, taken)

    def history(self, user_id: str, limit: int) -> list[Event]:
        """The shopper's `limit` most recent events, newest first."""
        rows = self._read(
            "SELECT user_id, item_id, type, ts, session_id, value FROM events WHERE user_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT ?", (user_id, int(limit)))
        return [Event(*r) for r in rows]

    def recent_users(self, limit: int) -> list[tuple[str, int, float]]:
        """(user_id, events, last event time) of the most recently active shoppers (from the last 50k events)."""
        return [(r[0], int(r[1]), float(r[2])) for r in self._read(
            "SELECT user_id, COUNT(*), MAX(ts) FROM (SELECT user_id, ts FROM events ORDER BY id DESC LIMIT 50000) r "
            "GROUP BY user_id ORDER BY MAX(ts) DESC, user_id LIMIT ?", (int(limit),))]

    def recent_events(self, user_id: str, limit: int) -> list[tuple[str, str, float]]:
        """(item_id, type, ts) of the shopper's `limit` most recent events, newest first: the recommendation
        input (the event types and times a model reads), answered from the covering index alone."""
        rows = self._read("SELECT item_id, type, ts FROM events WHERE user_id = ? ORDER BY ts DESC, id DESC LIMIT ?",
                          (user_id, int(limit)))
        return [(r[0], r[1], float(r[2])) for r in rows]

    @cached_property
    def changes(self) -> ChangeSignal:
        """This host's signal that the store's events changed (storage/signal.py)."""
        return ChangeSignal(redact_url(self.url))

    def event_changes(self, after_id: int | None) -> tuple[int, list[tuple[int, str]], int]:
        """For caches of shoppers' histories in any process: the last event id, (id, user_id) of the events above
        `after_id` oldest first (at most 100,000; none for None), and the erasures marker (moves on any erasure)."""
        rows = [] if after_id is None else self._read(
            "SELECT id, user_id FROM events WHERE id > ? ORDER BY id LIMIT 100000", (int(after_id),))
        return (int(self._read("SELECT COALESCE(MAX(id), 0) FROM events")[0][0]), [(int(r[0]), r[1]) for r in rows],
                self.erasure_marker())

    def erase_user(self, user_id: str) -> int:
        """Delete every event and every recorded impression of the shopper (theirs, those of their events'
        sessions, shown before they signed in, and the lists their events clicked: a search's words go with it) in
        one transaction (committed before returning): afterwards no read, training data and analytics included,
        sees them. Returns how many events were deleted."""
        with self._write() as cur:
            self._erasing(cur)
            # the lists shown to them, signed in or in a visit of theirs (its session id, before their events go),
            # and any list they clicked (an anonymous search's words would otherwise outlive the shopper)
            cur.execute(self._sql(
                "DELETE FROM impressions WHERE user_id = ? OR session_id IN (SELECT session_id FROM events WHERE "
                "user_id = ? AND session_id IS NOT NULL) OR recommendation_id IN (SELECT recommendation_id FROM "
                "events WHERE user_id = ? AND recommendation_id > '')"), (user_id, user_id, user_id))
            cur.execute(self._sql("DELETE FROM events WHERE user_id = ?"), (user_id,))
            n = cur.rowcount
            # tells every process's live counts (live_counts.py) that events went; no trace of whose
            cur.execute(self._sql("INSERT INTO erasures (ts) VALUES (?)"), (time.time(),))
        self._after_erase()
        self.changes.bump()
        return max(int(n), 0)

    def _erasing(self, cur) -> None:
        """Driver-specific set-up inside the erasing transaction (SQLite zeroes the deleted rows' bytes)."""

    def _after_erase(self) -> None:
        """Driver-specific clean-up after an erasure is committed."""

    def count_events(self, since_ts: float | None = None, until_ts: float | None = None,
                     types: Sequence[str] | None = None) -> int:
        """How many events are stored (with `since_ts` < ts <= `until_ts` and of `types`, where given: the
        library's event type names, never user input)."""
        where, args = [], []
        if since_ts is not None:
            where.append("ts > ?")
            args.append(float(since_ts))
        if until_ts is not None:
            where.append("ts <= ?")
            args.append(float(until_ts))
        if types is not None:
            where.append(f"type IN ({_type_list(types)})")
        sql = "SELECT COUNT(*) FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self._read(sql, args)[0][0])

    def item_counts(self, since_ts: float, weights: dict[str, float], limit: int) -> list[tuple[str, float]]:
        """The `limit` items with the most weighted events since `since_ts`, best first: live trending."""
        rows = self._read(f"SELECT item_id, {weighted_sum(weights)} AS w FROM events WHERE ts >= ? "
                          "GROUP BY item_id ORDER BY w DESC, item_id LIMIT ?", (since_ts, int(limit)))
        return [(r[0], float(r[1])) for r in rows if r[1] and r[1] > 0]

    def events_after(self, since_ts: float, after_id: int, types: Sequence[str],
                     limit: int = 1_000_000) -> tuple[list[tuple[int, str, str, float]], int]:
        """(id, item_id, type, ts) of the events of `types` later than `since_ts` with ids above `after_id`, in id
        order (at most `limit`), and the erasures marker (moves on any erasure): a run's sales since its fit
        (engine/live_sales.py). The types are the library's event type names, never user input."""
        rows = self._read(f"SELECT id, item_id, type, ts FROM events WHERE id > ? AND ts > ? AND type IN "
                          f"({_type_list(types)}) "
                          "ORDER BY id LIMIT ?", (int(after_id), float(since_ts), int(limit)))
        return [(int(r[0]), r[1], r[2], float(r[3])) for r in rows], self.erasure_marker()

    def erasure_marker(self) -> int:
        """Moves on every erasure (migration 7's `erasures`): what a cache derived from events compares to know
        that some were deleted."""
        return int(self._read("SELECT COALESCE(MAX(id), 0) FROM erasures")[0][0])

    # SQLite: ids become visible in increasing order (one writer), so `live_item_counts` can add just the new ones
    ids_in_commit_order = False

    def live_item_counts(self, name: str, since_ts: float, weights: dict[str, float],
                         limit: int) -> list[tuple[str, float]]:
        """What `item_counts` answers, from counts this store object keeps up to date between calls (one set per
        `name`; its `since_ts` only moving forward) where its event ids allow (`live_counts.py`)."""
        if not self.ids_in_commit_order:
            return self.item_counts(since_ts, weights, limit)
        key = (name, tuple(sorted(weights.items())))
        with self._lock:
            counts = self._live_counts.get(key)
            if counts is None:
                counts = self._live_counts[key] = WindowCounts(self, weights)
        return counts.top(since_ts, limit)

    @abstractmethod
    def _bucket_expr(self) -> str: ...

    def event_buckets(self, bucket_s: int, since_ts: float,
                      until_ts: float = float("inf")) -> list[tuple[float, str, int]]:
        """(bucket start, type, count) for events from `since_ts` to `until_ts`, buckets of `bucket_s` seconds: with
        a finite `until_ts`, at most (until - since) / bucket_s + 1 buckets, whatever times are stored."""
        expr = self._bucket_expr()
        rows = self._read(f"SELECT {expr} AS b, type, COUNT(*) FROM events WHERE ts >= ? AND ts <= ? "
                          "GROUP BY b, type ORDER BY b", (bucket_s, bucket_s, since_ts, until_ts))
        return [(float(b), t, int(n)) for b, t, n in rows]

    def all_events(self) -> list[Event]:
        """Every event in time order (for training from the store)."""
        rows = self._read("SELECT user_id, item_id, type, ts, session_id, value FROM events ORDER BY ts, id")
        return [Event(*r) for r in rows]

    # ---- impressions and attribution (the rule: attribution.py) -------------------------------------------
    def add_impressions(self, rows: Sequence[Impression]) -> int:
        """Insert recorded list answers in one transaction (the impression writer's batches); a
        `recommendation_id` stored already is skipped."""
        if not rows:
            return 0
        with self._write() as cur:
            cur.executemany(self._sql(
                "INSERT INTO impressions (recommendation_id, ts, user_id, session_id, placement, surface, "
                "model_version, experiment, variant, items, new_items, query) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING"),
                [tuple(r) for r in rows])
        return len(rows)

    def impressions_of(self, recommendation_id: str) -> Impression | None:
        rows = self._read("SELECT recommendation_id, ts, user_id, session_id, placement, surface, model_version, "
                          "experiment, variant, items, new_items, query FROM impressions WHERE recommendation_id = ?",
                          (recommendation_id,))
        return Impression(*rows[0]) if rows else None

    def impression_counts(self, scope: Scope, bucket_s: float | None = None) -> list[tuple]:
        """(bucket start, placement, variant, model_version, lists shown, lists whose new products are known,
        their items shown, the new products among those) of the impressions in `scope`, counted by the database;
        one bucket (0.0) when `bucket_s` is None."""
        where, args = scope.where("i")
        bucket, bargs = (self._bucket_expr().replace("ts", "i.ts"), [bucket_s, bucket_s]) if bucket_s else ("0", [])
        shown = f"CASE WHEN i.new_items IS NULL THEN 0 ELSE {_ids_in('i.items')} END"  # in lists known
        rows = self._read(f"SELECT {bucket} AS b, i.placement, i.variant, i.model_version, COUNT(*), "
                          f"COUNT(i.new_items), COALESCE(SUM({shown}), 0), COALESCE(SUM({_ids_in('i.new_items')}), 0) "
                          f"FROM impressions i WHERE {where} GROUP BY b, i.placement, i.variant, i.model_version",
                          (*bargs, "\n", "\n", *args))
        return [(float(b), p, v, m, *map(int, counts)) for b, p, v, m, *counts in rows]

    def attribution_rows(self, scope: Scope, window_s: float) -> tuple[list[tuple], list[tuple]]:
        """The candidate rows for attribution.list_outcomes: clicks (CLICK_COLUMNS) on lists in `scope`, and
        purchases (PURCHASE_COLUMNS) of a clicked item by the clicking shopper within `window_s` after a click."""
        where, args = scope.where("i")
        # Driven by the events that carry a recommendation_id (few: the clicks), read through their index:
        # `> ''` is a range the index serves where `IS NOT NULL` is not, and SQLite's CROSS JOIN keeps that order
        # (else it may scan every event for the purchases); PostgreSQL plans it as the inner join it is.
        clicked = f"c.recommendation_id > '' AND c.type IN ({', '.join(repr(t) for t in CLICK_TYPES)})"
        clicks = self._read(
            "SELECT c.recommendation_id, i.ts, i.placement, i.variant, i.model_version, i.items, c.item_id, c.type, "
            "c.user_id, c.ts, i.new_items FROM events c CROSS JOIN impressions i "
            f"WHERE i.recommendation_id = c.recommendation_id AND {clicked} AND {where}", tuple(args))
        purchases = self._read(
            "SELECT DISTINCT p.id, p.user_id, p.item_id, p.ts, p.value FROM events c CROSS JOIN impressions i "
            "CROSS JOIN events p WHERE i.recommendation_id = c.recommendation_id AND p.user_id = c.user_id "
            f"AND p.item_id = c.item_id AND {clicked} AND p.type = 'purchase' AND p.ts >= c.ts "
            f"AND p.ts <= c.ts + ? AND {where}", (float(window_s), *args))
        return clicks, purchases

    def attributed_totals(self, scope: Scope, keys: Sequence[str], bucket_s: float | None = None,
                          window_s: float = DEFAULT_WINDOW_S) -> list[dict]:
        """Per group of `keys` (of bucket, placement, variant, model_version): impressions, clicks, carts,
        conversions, purchases, revenue, revenue_sq and the new-product counts (attribution.group_totals) for the
        impressions in `scope`."""
        outcomes = list_outcomes(*self.attribution_rows(scope, window_s), window_s)
        return group_totals(self.impression_counts(scope, bucket_s), outcomes, bucket_s, keys)

    def variant_summary(self, experiment: str, window_s: float = DEFAULT_WINDOW_S) -> list[dict]:
        """Per variant of the experiment: impressions (lists shown), clicks (lists clicked), conversions (lists
        with an attributed purchase) and revenue, from the impressions tagged with it."""
        rows = self.attributed_totals(Scope(experiment=experiment), ["variant"], window_s=window_s)
        return [{k: r[k] for k in ("variant", "impressions", "clicks", "conversions", "revenue")} for r in rows]

    # ---- catalogue ----------------------------------------------------------------------------------------
    @abstractmethod
    def _next_seq_sql(self) -> str: ...

    def upsert_items(self, items: Sequence[Item]) -> int:
        """Insert or replace catalogue rows (whole rows: fields not given are reset to defaults)."""
        if not items:
            return 0
        now = time.time()
        sql = self._sql(
            f"INSERT INTO items ({_ITEM_COLS}) VALUES (?,?,?,?,?,?,?,?,{self._next_seq_sql()},?) "
            "ON CONFLICT (item_id) DO UPDATE SET title=excluded.title, description=excluded.description, "
            "category=excluded.category, price=excluded.price, in_stock=excluded.in_stock, "
            "image_url=excluded.image_url, attributes=excluded.attributes, seq=excluded.seq, "
            "updated_at=excluded.updated_at")
        rows = [(i.item_id, i.title, i.description, i.category, i.price, bool(i.in_stock), i.image_url,
                 json.dumps(i.attributes, sort_keys=True, default=str), now) for i in items]
        with self._write() as cur:
            cur.executemany(sql, rows)
        return len(items)

    def _items_from_rows(self, rows: list[tuple]) -> list[Item]:
        return [Item(item_id=r[0], title=r[1], description=r[2], category=r[3], price=r[4], in_stock=bool(r[5]),
                     image_url=r[6], attributes=json.loads(r[7] or "{}"), seq=int(r[8]), updated_at=float(r[9]),
                     has_image=bool(r[10])) for r in rows]

    def _item_select(self) -> str:
        cols = ", ".join(f"i.{c.strip()}" for c in _ITEM_COLS.split(","))
        return (f"SELECT {cols}, (img.item_id IS NOT NULL) FROM items i "
                "LEFT JOIN item_images img ON img.item_id = i.item_id")

    def get_item(self, item_id: str) -> Item | None:
        rows = self._read(self._item_select() + " WHERE i.item_id = ?", (item_id,))
        return self._items_from_rows(rows)[0] if rows else None

    def item_cards(self, item_ids: Sequence[str]) -> dict[str, ItemCard]:
        """What list answers show of these products (`get_item` without descriptions and attributes, for many
        at once: a list answer reads this on every request)."""
        if not item_ids:
            return {}
        marks = ",".join("?" * len(item_ids))
        rows = self._read("SELECT i.item_id, i.title, i.category, i.price, i.image_url, (img.item_id IS NOT NULL), "
                          "i.attributes FROM items i LEFT JOIN item_images img ON img.item_id = i.item_id "
                          f"WHERE i.item_id IN ({marks})", tuple(item_ids))
        return {r[0]: ItemCard(r[0], r[1], r[2], r[3], r[4], bool(r[5]), _currency(r[6])) for r in rows}

    def list_items(self, limit: int, offset: int, category: str | None = None,
                   query: str | None = None) -> tuple[list[Item], int]:
        """A page of the catalogue in id order (optionally one category / titles containing `query`) and the total."""
        where, args = [], []
        if category:
            where.append("i.category = ?")
            args.append(category)
        if query:
            where.append("LOWER(i.title) LIKE ?")
            args.append(f"%{query.lower()}%")
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = int(self._read(f"SELECT COUNT(*) FROM items i{clause}", tuple(args))[0][0])
        rows = self._read(self._item_select() + clause + " ORDER BY i.item_id LIMIT ? OFFSET ?",
                          (*args, int(limit), int(offset)))
        return self._items_from_rows(rows), total

    def search_titles(self, query: str, limit: int) -> list[Item]:
        """Items whose title, category or description holds the words of `query` in order, side by side (the last
        one may be the start of a word, as while typing), case-insensitive, best match first: the fallback text
        search, answered from the store's full-text index (migrations 6 and 8). Punctuation only separates words;
        a query without letters or digits finds nothing. A query matching more than `search_candidates` products
        is too common for its words to tell one match from another: it answers its newest matches (most recently
        added on SQLite, upserted on PostgreSQL), and ranking every match is what made such queries slow."""
        return self._items_from_rows(self._search(query, limit, self._item_select()))

    def search_item_ids(self, query: str, limit: int) -> list[str]:
        """The ids `search_titles` finds, in its order, without reading the rest of the rows."""
        return [r[0] for r in self._search(query, limit, "SELECT i.item_id FROM items i")]

    def _search(self, query: str, limit: int, select: str) -> list[tuple]:
        terms = search_terms(query)
        if not terms or limit <= 0:
            return []
        return self._text_search(terms, int(limit), select)

    @abstractmethod
    def _text_search(self, terms: list[str], limit: int, select: str) -> list[tuple]:
        """The rows of `select` (columns of `items i`) for items holding `terms` as a phrase, best first."""

    def catalog_columns(self, after_seq: int = -1) -> list[tuple]:
        """(item_id, category, price, in_stock, seq, updated_at) rows after `after_seq`: light, for rule masks."""
        return self._read("SELECT item_id, category, price, in_stock, seq, updated_at FROM items WHERE seq > ? "
                          "ORDER BY seq", (int(after_seq),))

    def count_items(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM items")[0][0])

    # ---- images -------------------------------------------------------------------------------------------
    def put_image(self, item_id: str, content_type: str, data: bytes) -> None:
        with self._write() as cur:
            cur.execute(self._sql("INSERT INTO item_images (item_id, content_type, data) VALUES (?,?,?) "
                                  "ON CONFLICT (item_id) DO UPDATE SET content_type=excluded.content_type, "
                                  "data=excluded.data"), (item_id, content_type, data))

    def get_image(self, item_id: str) -> tuple[str, bytes] | None:
        rows = self._read("SELECT content_type, data FROM item_images WHERE item_id = ?", (item_id,))
        return (rows[0][0], bytes(rows[0][1])) if rows else None

    # ---- experiments: defined through any server, read by all (engine/experiments.py) ---------------------
    def put_experiment(self, name: str, placement: str, spec: dict) -> None:
        """Define (or redefine, restarting a stopped one) experiment `name` on `placement`; ExperimentConflict
        when another active experiment holds that placement."""
        now = time.time()
        with self._write() as cur:
            cur.execute(self._sql("SELECT name FROM experiments WHERE placement = ? AND stopped_at IS NULL "
                                  "AND name <> ?"), (placement, name))
            other = cur.fetchone()
            if other is not None:
                raise ExperimentConflict(f"experiment {other[0]!r} already runs on placement {placement!r}; "
                                         "stop it first (DELETE /v1/experiments/{name})")
            cur.execute(self._sql(
                "INSERT INTO experiments (name, placement, spec, created_at, updated_at, stopped_at) "
                "VALUES (?,?,?,?,?,NULL) ON CONFLICT (name) DO UPDATE SET placement=excluded.placement, "
                "spec=excluded.spec, updated_at=excluded.updated_at, stopped_at=NULL"),
                (name, placement, json.dumps(spec, sort_keys=True), now, now))

    def experiments(self, active_only: bool = True) -> list[dict]:
        """Experiments as {name, placement, spec, updated_at, active}, by name."""
        where = " WHERE stopped_at IS NULL" if active_only else ""
        rows = self._read(f"SELECT name, placement, spec, updated_at, stopped_at FROM experiments{where} "
                          "ORDER BY name")
        return [{"name": r[0], "placement": r[1], "spec": json.loads(r[2]), "updated_at": float(r[3]),
                 "active": r[4] is None} for r in rows]

    def get_experiment(self, name: str) -> dict | None:
        return next((e for e in self.experiments(active_only=False) if e["name"] == name), None)

    def stop_experiment(self, name: str) -> bool:
        """Stop an active experiment (its row and results stay); False when there is none of that name."""
        with self._write() as cur:
            cur.execute(self._sql("UPDATE experiments SET stopped_at = ?, updated_at = ? "
                                  "WHERE name = ? AND stopped_at IS NULL"), (time.time(), time.time(), name))
            return cur.rowcount > 0


def _type_list(types: Sequence[str]) -> str:
    """SQL list of event type names (alphabetic only: the library's own names, safe to inline)."""
    return ", ".join(f"'{t}'" for t in types if t.isalpha()) or "''"
