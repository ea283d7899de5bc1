"""Google Analytics 4 events -> deepshelf events: the Measurement Protocol body a site posts
(`POST /v1/events/ga4`) and the BigQuery export (newline-delimited JSON, one event per line) a shop trains from
and imports into the service's store (`export_events`).

One mapping for both: `view_item` -> view, `add_to_cart` -> cart, `purchase` -> purchase (value = price x
quantity), `search` / `view_search_results` -> search, one event per entry of `items`; an event without items (a
`search` with only its `search_term`) or of another name carries no product, so it is skipped and counted. The
shopper is `user_id` when given, else `client_id` (the export's `user_pseudo_id`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from deepshelf.errors import DeepshelfError
from deepshelf.data.fields import MAX_QUANTITY
from deepshelf.storage import Event
from deepshelf.storage.records import MAX_VALUE

MAX_MICROS = 10**17  # a timestamp in microseconds: year 5138; later is no time a shop's event has
GA4_TYPES = {"view_item": "view", "add_to_cart": "cart", "purchase": "purchase", "search": "search",
             "view_search_results": "search"}


@dataclass
class Mapped:
    """Events as plain rows (user, item, type, timestamp in Unix seconds, value or None) and what was skipped."""

    rows: list[tuple[str, str, str, float, float | None]] = field(default_factory=list)
    skipped: int = 0  # GA4 events with no product or of a name deepshelf has no type for


def _number(value: Any, where: str, bound: float = MAX_VALUE) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # an integer too large for a float overflows
        raise DeepshelfError(f"{where}: {str(value)[:40]!r} is not a number (or too large)") from None
    if not math.isfinite(number):
        raise DeepshelfError(f"{where}: must be a finite number")
    if abs(number) > bound:
        raise DeepshelfError(f"{where}: must be at most {bound:g} either way")
    return number


def map_event(out: Mapped, shopper: str, name: str, items: list[dict] | None, ts: float, where: str) -> None:
    """Append the deepshelf events of one GA4 event (one per product in `items`) to `out`."""
    kind = GA4_TYPES.get(name)
    if kind is None or not items:
        out.skipped += 1
        return
    for n, item in enumerate(items):
        at = f"{where}.items[{n}]"
        if not isinstance(item, dict):
            raise DeepshelfError(f"{at}: expected an object with item_id")
        item_id = item.get("item_id")
        if item_id is None or str(item_id).strip() == "":
            raise DeepshelfError(f"{at}.item_id: missing")
        value = None
        if kind == "purchase":
            price = _number(item.get("price"), f"{at}.price")
            quantity = _number(item.get("quantity", 1), f"{at}.quantity", MAX_QUANTITY)
            value = None if price is None else price * (1.0 if quantity is None else quantity)
            if value is not None and abs(value) > MAX_VALUE:
                raise DeepshelfError(f"{at}: price x quantity = {value:g} is more than an event's value may be "
                                     f"({MAX_VALUE:g})")
        out.rows.append((shopper, str(item_id).strip(), kind, ts, value))


def map_measurement_protocol(body: dict, now: float) -> Mapped:
    """Events of one Measurement Protocol body: `{"client_id", "user_id"?, "timestamp_micros"?, "events": [{"name",
    "params": {"items": [{"item_id", "price", "quantity"}], "value", "search_term"}, "timestamp_micros"?}]}`.
    An event's own `timestamp_micros` wins over the body's; without either, `now`."""
    shopper = str(body.get("user_id") or body.get("client_id") or "").strip()
    if not shopper:
        raise DeepshelfError("body: client_id or user_id is required (the shopper)")
    events = body.get("events")
    if not isinstance(events, list):
        raise DeepshelfError("body.events: expected a list of {name, params}")
    default_ts = _micros(body.get("timestamp_micros"), "body.timestamp_micros", now)
    out = Mapped()
    for n, event in enumerate(events):
        where = f"body.events[{n}]"
        if not isinstance(event, dict) or not isinstance(event.get("name"), str):
            raise DeepshelfError(f"{where}.name: missing")
        params = event.get("params") or {}
        if not isinstance(params, dict):
            raise DeepshelfError(f"{where}.params: expected an object")
        ts = _micros(event.get("timestamp_micros"), f"{where}.timestamp_micros", default_ts)
        items = params.get("items")
        if items is not None and not isinstance(items, list):
            raise DeepshelfError(f"{where}.params.items: expected a list")
        map_event(out, shopper, event["name"], items, ts, f"{where}.params")
    return out


def _micros(value: Any, where: str, default: float) -> float:
    number = _number(value, where, MAX_MICROS)
    return default if number is None else number / 1e6


def read_bigquery_export(path: str | Path) -> pl.DataFrame:
    """GA4's BigQuery export as newline-delimited JSON (optionally gzipped) -> an events table with the columns
    `events_from_frame` reads (user, item, type, timestamp, value). Errors name the file's line."""
    path = Path(path)
    if not path.exists():
        raise DeepshelfError(f"{path}: file not found")
    out = Mapped()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}: line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DeepshelfError(f"{where}: not JSON ({exc.msg})") from None
            shopper = str(row.get("user_id") or row.get("user_pseudo_id") or "").strip()
            if not shopper:
                raise DeepshelfError(f"{where}: user_id or user_pseudo_id is required")
            if row.get("event_timestamp") in (None, ""):
                raise DeepshelfError(f"{where}: event_timestamp is missing")
            ts = _micros(row.get("event_timestamp"), f"{where}, event_timestamp", 0.0)
            map_event(out, shopper, str(row.get("event_name", "")), row.get("items"), ts, where)
    if not out.rows:
        raise DeepshelfError(f"{path}: no view_item, add_to_cart, purchase or search events with items")
    users, items, types, times, values = zip(*out.rows)
    return pl.DataFrame({"user": users, "item": items, "type": types, "timestamp": times, "value": values},
                        schema={"user": pl.Utf8, "item": pl.Utf8, "type": pl.Utf8, "timestamp": pl.Float64,
                                "value": pl.Float64})


def export_events(path: str | Path) -> list[Event]:
    """The export's events as store records (`deepshelf import-events`), each with an event id made from its
    content (shopper, product, type, time, and which of identical events it is), so importing the same export, or
    one overlapping it, again stores nothing twice (the store skips an event id it holds)."""
    frame = read_bigquery_export(path)
    seen: Counter[tuple] = Counter()
    events = []
    for user, item, kind, ts, value in frame.iter_rows():
        key = (user, item, kind, ts)
        seen[key] += 1
        digest = hashlib.sha1(repr((*key, seen[key])).encode()).hexdigest()[:24]
        events.append(Event(user, item, kind, ts, value=value, event_id=f"ga4-{digest}"))
    return events


def is_bigquery_export(path: str | Path) -> bool:
    """Whether a JSON-lines file is a GA4 export (its first record has `event_name` and `event_timestamp`)."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if not suffixes or suffixes[-1] not in (".jsonl", ".ndjson", ".json") or not path.is_file():
        return False
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        record = json.loads(first)
    except (OSError, UnicodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and "event_name" in record and "event_timestamp" in record
