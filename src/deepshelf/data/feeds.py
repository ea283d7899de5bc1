"""Google Merchant Center product feeds (RSS 2.0 / Atom XML with the `g:` namespace, or the tab-separated form) ->
catalogue rows (`storage.Item`), item by item: a malformed item is reported (item id and field) and left out, the
good ones import.

Mapping: `g:id` -> item id; `title`, `description`; `g:price` / `g:sale_price` ("12.50 EUR") -> price (the sale price
when there is one; the regular price and the currency are kept as attributes); `g:availability` -> in stock
(`in_stock` yes; `out_of_stock`, `preorder`, `backorder` no); `g:product_type` ("Home > Kitchen > Mugs") ->
category, its last level (else `g:google_product_category`'s); `g:image_link` -> image URL; `link`, `g:brand`,
`g:item_group_id`, `g:google_product_category` and the full product type -> attributes.

Both forms are validated alike: an item without `g:id`, `title` or `g:price` (Merchant Center's required fields for
a shop's catalogue here), with a value that does not read, or a TSV row whose cells do not match the header, is left
out with its line, item and field named.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from xml.parsers import expat
from dataclasses import dataclass, field
from pathlib import Path

from deepshelf.errors import DeepshelfError
from deepshelf.storage import Item
from deepshelf.storage.cleaning import text_problem

G_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
FIELDS = ("id", "title", "description", "link", "image_link", "price", "sale_price", "availability",
          "product_type", "google_product_category", "brand", "item_group_id")
IN_STOCK = {"in_stock": True, "in stock": True, "out_of_stock": False, "out of stock": False,
            "preorder": False, "backorder": False}
_PRICE = re.compile(r"^\s*(?P<amount>[0-9]+(?:[.,][0-9]+)?)\s*(?P<currency>[A-Za-z]{3})?\s*$")


@dataclass
class FeedError:
    """One malformed item: its position in the feed (1-based), its id when it has one, the field and why, and the
    line of the file where the item (XML) or row (TSV) starts, when known."""

    position: int
    item_id: str | None
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        who = f"item {self.item_id!r}" if self.item_id else f"item #{self.position} (no g:id)"
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{who}, field {self.field}: {self.message}"


@dataclass
class _Record:
    """One item's raw fields as the feed spells them (names without `g:`), where it starts, and (TSV) how many
    cells its row has against the header's."""

    fields: dict[str, str]
    line: int | None = None
    cells: int | None = None
    header: list[str] = field(default_factory=list)


@dataclass
class Feed:
    items: list[Item] = field(default_factory=list)
    errors: list[FeedError] = field(default_factory=list)


def parse_feed(data: bytes | str, source: str = "<feed>") -> Feed:
    """Parse a feed's bytes: XML when it starts with `<`, else the tab-separated form."""
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data.lstrip("\ufeff")
    if not text.strip():
        raise DeepshelfError(f"{source}: the feed is empty")
    records = _xml_records(text, source) if text.lstrip().startswith("<") else _tsv_records(text, source)
    feed = Feed()
    seen: set[str] = set()
    for position, record in enumerate(records, 1):
        item, error = _item(record, position)
        if error is None and item.item_id in seen:
            error = FeedError(position, item.item_id, "g:id", "appears more than once in the feed")
        if error is not None:
            error.line = record.line
            feed.errors.append(error)
            continue
        seen.add(item.item_id)
        feed.items.append(item)
    return feed


def read_feed(path: str | Path) -> Feed:
    """Parse a feed file (`.xml`, `.tsv`, `.txt`; the content decides)."""
    path = Path(path)
    if not path.exists():
        raise DeepshelfError(f"{path}: file not found")
    return parse_feed(path.read_bytes(), str(path))


def _local(tag: str) -> tuple[str, str]:
    ns, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return ns, name


def _field_name(name: str) -> str:
    """A field as Merchant Center spells it: RSS's own `title`, `description`, `link`, else `g:NAME`."""
    return name if name in ("title", "description", "link") else f"g:{name}"


def _entry_lines(text: str) -> list[int | None]:
    """The line each <item> / <entry> starts on, in document order (as `Element.iter` walks them)."""
    parser = expat.ParserCreate(namespace_separator="}")
    lines: list[int | None] = []

    def start(name, attrs):
        if name.rpartition("}")[2] in ("item", "entry"):
            lines.append(parser.CurrentLineNumber)

    parser.StartElementHandler = start
    try:
        parser.Parse(text, True)
    except expat.ExpatError:  # ElementTree read it, so this does not happen; lines are only a help
        return []
    return lines


def _xml_records(text: str, source: str) -> list[_Record]:
    try:
        root = ET.fromstring(text)  # expat refuses entity-expansion bombs; feeds hold no DTDs
    except ET.ParseError as exc:
        raise DeepshelfError(f"{source}: not a well-formed XML feed ({exc})") from None
    entries = [el for el in root.iter() if _local(el.tag)[1] in ("item", "entry")]
    if not entries:
        raise DeepshelfError(f"{source}: no <item> (RSS 2.0) or <entry> (Atom) elements in the feed")
    records = []
    for entry in entries:
        record: dict[str, str] = {}
        for child in entry:
            ns, name = _local(child.tag)
            if ns not in ("", G_NS, ATOM_NS) or name not in FIELDS:
                continue
            value = child.get("href", "") if (name == "link" and ns == ATOM_NS and not (child.text or "").strip()) \
                else (child.text or "")
            # `g:title` and a plain `title` may both be present: the g: one is the Merchant Center field
            if ns == G_NS or name not in record:
                record[name] = value.strip()
        records.append(record)
    lines = _entry_lines(text)
    return [_Record(record, lines[i] if len(lines) == len(entries) else None) for i, record in enumerate(records)]


def _tsv_records(text: str, source: str) -> list[_Record]:
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    rows = []  # (first line, cells); a quoted cell may span lines
    line = 1
    for row in reader:
        rows.append((line, row))
        line = reader.line_num + 1
    if not rows:
        raise DeepshelfError(f"{source}: the feed is empty")
    header = [h.strip().lower().removeprefix("g:") for h in rows[0][1]]
    if "id" not in header:
        raise DeepshelfError(f"{source}: the TSV feed's header has no id column (found: {', '.join(rows[0][1])})")
    return [_Record({name: value.strip() for name, value in zip(header, row) if name in FIELDS}, line, len(row),
                    header)
            for line, row in rows[1:] if any(cell.strip() for cell in row)]


def _price(raw: str) -> tuple[float, str | None]:
    match = _PRICE.match(raw)
    if not match:
        raise ValueError(f"{raw!r} is not a price (expected like '12.50 EUR')")
    return float(match["amount"].replace(",", ".")), match["currency"]


def _item(raw: _Record, position: int) -> tuple[Item | None, FeedError | None]:
    record = raw.fields
    item_id = record.get("id", "")

    def bad(name: str, message: str):
        return None, FeedError(position, item_id or None, name, message)

    if raw.cells is not None and raw.cells != len(raw.header):  # a cut or shifted row: no cell can be trusted
        if raw.cells < len(raw.header):
            return bad(_field_name(raw.header[raw.cells]),
                       f"missing (the row has {raw.cells} of the header's {len(raw.header)} columns)")
        return bad(f"column {len(raw.header) + 1}",
                   f"not in the header (the row has {raw.cells} columns, the header {len(raw.header)})")
    if not item_id:
        return bad("g:id", "missing")
    problem = text_problem(item_id, "id") if len(item_id) <= 256 else "longer than 256 characters"
    if problem:
        return bad("g:id", problem)
    if not record.get("title"):
        return bad("title", "missing")
    for name, kind in (("title", "text"), ("description", "text"), ("product_type", "line")):
        problem = text_problem(record.get(name, ""), kind)
        if problem:
            return bad(name, problem)
    attributes: dict[str, str | float] = {}
    if not record.get("price"):
        return bad("g:price", "missing")
    try:
        price, currency = _price(record["price"])
        attributes["regular_price"] = price
        if currency:
            attributes["currency"] = currency.upper()
    except ValueError as exc:
        return bad("g:price", str(exc))
    try:
        if record.get("sale_price"):
            price = _price(record["sale_price"])[0]
    except ValueError as exc:
        return bad("g:sale_price", str(exc))
    availability = record.get("availability", "in_stock").lower()
    if availability not in IN_STOCK:
        return bad("g:availability", f"{availability!r}: expected in_stock, out_of_stock, preorder or backorder")
    path = record.get("product_type") or record.get("google_product_category") or ""
    category = path.split(">")[-1].strip() if not path.strip().isdigit() else ""
    for name in ("link", "brand", "item_group_id", "google_product_category", "product_type"):
        if record.get(name):
            attributes[name] = record[name]
    return Item(item_id=item_id, title=record["title"], description=record.get("description", ""),
                category=category, price=price, in_stock=IN_STOCK[availability],
                image_url=record.get("image_link", ""), attributes=attributes), None
