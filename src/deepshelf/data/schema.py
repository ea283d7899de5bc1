"""Event and catalogue schema: column names, event types and their default weights."""

from __future__ import annotations

from enum import IntEnum


class EventType(IntEnum):
    """Kinds of shopper event; the integer is what `Interactions.types` stores."""

    VIEW = 0
    CART = 1
    PURCHASE = 2
    RATING = 3
    SEARCH = 4
    IMPRESSION = 5

    @classmethod
    def parse(cls, name: str) -> "EventType":
        try:
            return cls[name.strip().upper()]
        except KeyError:
            allowed = ", ".join(t.name.lower() for t in cls)
            raise ValueError(f"unknown event type {name!r}; expected one of {allowed}") from None


# Implicit-feedback strength of each event type: a purchase says more than a cart, a cart more than a view.
# Impressions and searches carry no item preference on their own, so they weigh nothing by default.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "cart": 2.0,
    "purchase": 4.0,
    "rating": 1.0,
    "search": 0.0,
    "impression": 0.0,
}

EVENT_TYPE_NAMES = [t.name.lower() for t in EventType]

# The columns of an events table (CSV / Parquet / JSONL) and the spellings accepted for each, so common exports
# load without renaming. `user` and `item` are required; the rest are optional.
EVENT_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "customer_id", "visitorid"),
    "item": ("item", "item_id", "itemid", "product_id", "sku"),
    "type": ("type", "event", "event_type"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date"),
    "session": ("session", "session_id"),
    "value": ("value", "rating", "quantity", "amount"),
}

# The same for a catalogue table. Only `item` is required.
CATALOG_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "item": ("item", "item_id", "itemid", "product_id", "sku", "id"),
    "title": ("title", "name", "product_name", "productdisplayname"),
    "description": ("description", "desc"),
    "category": ("category", "categories"),
    "price": ("price",),
    "in_stock": ("in_stock", "stock", "available"),
    "image": ("image", "image_path", "image_file"),
}
