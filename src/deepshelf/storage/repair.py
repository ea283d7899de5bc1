"""Schema migration 3: rows stored before the edge checked its input (storage/cleaning.py) that break reads.

- a catalogue row keeps its place but its text is cleaned (lone surrogates become U+FFFD, control characters are
  dropped; attributes likewise, their non-finite numbers become null) and a non-finite price becomes null;
- an event whose text is not valid (or holds control characters), or whose time is not finite, before 1970 or
  more than a day ahead of the migration (it would stay "newest" and "trending" forever), is moved out of
  `events`; so is a catalogue row whose id is not valid text. Moved rows are kept, as JSON, in `quarantine`
  (source table, row, reason), for an operator to inspect; nothing is silently lost;
- an event's non-finite value becomes null.

Every catalogue and history page answers afterwards. SQLite rows are read as bytes (a text column may hold
invalid UTF-8 written by another tool, which Python's driver cannot even decode).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from deepshelf.storage.cleaning import clean_json, clean_text, text_problem
from deepshelf.storage.dialects import Dialect

FUTURE_SLACK_S = 86_400.0  # the server's default clock skew (Settings.max_clock_skew_s)
_CHUNK = 10_000


def statements(d: Dialect) -> list[str]:
    return [f"""CREATE TABLE IF NOT EXISTS quarantine (
        id {d.pk},
        source TEXT NOT NULL,
        row_json TEXT NOT NULL,
        reason TEXT NOT NULL,
        moved_at DOUBLE PRECISION NOT NULL)"""]


def _col(d: Dialect, name: str) -> str:
    return f"CAST({name} AS BLOB)" if d.name == "sqlite" else name


def _text(raw: Any) -> tuple[str | None, str | None]:
    """(text, problem) of a stored text cell (bytes from SQLite, str from PostgreSQL)."""
    if raw is None:
        return None, None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(raw).decode("utf-8", "replace"), "is not valid UTF-8"
    return raw, None


def _rows(cur, sql: str):
    cur.execute(sql)
    while True:
        chunk = cur.fetchmany(_CHUNK)
        if not chunk:
            return
        yield from chunk


def _quarantine(cur, d: Dialect, source: str, row: dict, reason: str) -> None:
    p = d.param
    cur.execute(f"INSERT INTO quarantine (source, row_json, reason, moved_at) VALUES ({p}, {p}, {p}, {p})",
                (source, json.dumps(row, default=str), reason, time.time()))


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def _events(cur, d: Dialect, now: float) -> None:
    text_cols = ("user_id", "item_id", "type", "session_id", "event_id")
    sql = f"SELECT id, ts, value, {', '.join(_col(d, c) for c in text_cols)} FROM events"
    moved, nulled = [], []
    for row in _rows(cur, sql):  # nothing is executed on the cursor before the last row is read
        event_id, ts, value = row[0], row[1], row[2]
        values = dict(zip(text_cols, row[3:]))
        reason = None
        for name, raw in values.items():
            text, problem = _text(raw)
            values[name] = text
            problem = problem or (text_problem(text, "line") if text is not None else None)
            if problem and reason is None:
                reason = f"{name} {problem}"
        if reason is None and not (_finite(ts) and 0 <= ts <= now + FUTURE_SLACK_S):
            reason = "ts is not a time between 1970 and a day from now"
        if reason is not None:
            moved.append((event_id, {"id": event_id, "ts": ts, "value": value, **values}, reason))
        elif value is not None and not _finite(value):
            nulled.append(event_id)
    p = d.param
    for event_id, row, reason in moved:
        _quarantine(cur, d, "events", row, reason)
        cur.execute(f"DELETE FROM events WHERE id = {p}", (event_id,))
    for event_id in nulled:
        cur.execute(f"UPDATE events SET value = NULL WHERE id = {p}", (event_id,))


def _items(cur, d: Dialect) -> None:
    text_cols = ("item_id", "title", "description", "category", "image_url", "attributes")
    sql = f"SELECT price, {', '.join(_col(d, c) for c in text_cols)} FROM items"
    p = d.param
    key = f"CAST(item_id AS BLOB) = {p}" if d.name == "sqlite" else f"item_id = {p}"
    for row in list(_rows(cur, sql)):  # read all first: the updates below reuse the cursor
        price, raw = row[0], dict(zip(text_cols, row[1:]))
        values = {name: _text(cell) for name, cell in raw.items()}
        item_id, problem = values["item_id"]
        problem = problem or text_problem(item_id, "line")
        if problem:
            _quarantine(cur, d, "items", {**{n: v[0] for n, v in values.items()}, "price": price},
                        f"item_id {problem}")
            cur.execute(f"DELETE FROM items WHERE {key}", (raw["item_id"],))
            continue
        fixed = {n: clean_text(values[n][0] or "", "text" if n in ("title", "description") else "line")
                 for n in ("title", "description", "category", "image_url")}
        try:
            stored = json.loads(values["attributes"][0] or "{}")
        except ValueError:
            stored = None
        attributes = clean_json(stored) if isinstance(stored, dict) else {}
        new_price = price if price is None or _finite(price) else None
        if (new_price != price or stored != attributes or values["attributes"][1]
                or any(fixed[n] != (values[n][0] or "") or values[n][1] for n in fixed)):
            cur.execute(f"UPDATE items SET title = {p}, description = {p}, category = {p}, image_url = {p}, "
                        f"attributes = {p}, price = {p} WHERE {key}",
                        (*fixed.values(), json.dumps(attributes, sort_keys=True), new_price, raw["item_id"]))


def run(cur, d: Dialect) -> None:
    _events(cur, d, time.time())
    _items(cur, d)
