"""Loaders for events tables (CSV / Parquet / JSONL), sequence files and catalogues, with precise errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl

from deepshelf.data.catalog import Catalog
from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Interactions
from deepshelf.data.schema import (
    CATALOG_COLUMN_ALIASES,
    EVENT_COLUMN_ALIASES,
    EVENT_TYPE_NAMES,
    EventType,
)
from deepshelf.errors import DeepshelfError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".json")


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes else ""


def read_table(path: str | Path) -> pl.DataFrame:
    """Read a CSV / TSV / Parquet / JSONL file into a DataFrame, refusing empty files and duplicate headers."""
    path = Path(path)
    if not path.exists():
        raise DeepshelfError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DeepshelfError(f"{path}: file is empty")
    kind = _suffix(path)
    try:
        if kind in (".csv", ".tsv"):
            sep = "\t" if kind == ".tsv" else ","
            with _open_text(path) as f:
                header = f.readline().rstrip("\r\n").split(sep)
            seen = set()
            for name in header:
                if name.strip().lower() in seen:
                    raise DeepshelfError(f"{path}: duplicate column {name.strip()!r} in header")
                seen.add(name.strip().lower())
            df = pl.read_csv(path, separator=sep, infer_schema_length=0)  # all strings; we parse columns ourselves
        elif kind == ".parquet":
            df = pl.read_parquet(path)
        elif kind in (".jsonl", ".ndjson", ".json"):
            df = pl.read_ndjson(path, infer_schema_length=None)
        else:
            raise DeepshelfError(f"{path}: unknown file type {kind!r}; expected one of {', '.join(TABLE_SUFFIXES)}")
    except DeepshelfError:
        raise
    except Exception as exc:  # the reader's own message, tied to the file
        raise DeepshelfError(f"{path}: cannot read as {kind[1:]}: {str(exc).splitlines()[0]}") from None
    if df.height == 0:
        raise DeepshelfError(f"{path}: file has a header but no rows")
    return df


def _resolve_columns(df: pl.DataFrame, aliases: dict[str, tuple[str, ...]], required: tuple[str, ...],
                     path: Path) -> pl.DataFrame:
    lower = {c.strip().lower(): c for c in df.columns}
    rename = {}
    for canonical, names in aliases.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is not None:
            rename[found] = canonical
    for canonical in required:
        if canonical not in rename.values():
            raise DeepshelfError(
                f"{path}: missing column {canonical!r} (accepted names: {', '.join(aliases[canonical])}; "
                f"found: {', '.join(df.columns)}){_delimiter_hint(df.columns, path)}"
            )
    return df.rename(rename)


def _delimiter_hint(columns: list[str], path: Path) -> str:
    """A hint when the header reads as one column holding another separator (a `;`-separated "CSV")."""
    if len(columns) != 1:
        return ""
    read_as = "tab" if _suffix(path) == ".tsv" else "comma"
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'"), (",", "commas")):
        if sep in columns[0]:
            return (f"; the header looks separated by {name}, but this file is read as {read_as}-separated: "
                    "save it with commas as .csv or with tabs as .tsv")
    return ""


def _first_bad_row(mask: pl.Series) -> int:
    """1-based data row number (header excluded) of the first true value."""
    return int(mask.arg_true()[0]) + 1


def header_lines(path: Path) -> int | None:
    """Lines before the first data row in a text table (the header of a CSV/TSV, none in JSONL), so a data row's
    number becomes the line an editor shows; None for a file without lines (Parquet) or a table in memory."""
    kind = _suffix(path)
    return 1 if kind in (".csv", ".tsv") else 0 if kind in (".jsonl", ".ndjson", ".json") else None


def _at(path: Path, row: int, lines: int | None) -> str:
    """Where a bad value is: `file: line N` in a text file, `source: row N` otherwise."""
    return f"{path}: row {row}" if lines is None else f"{path}: line {row + lines}"


def parse_timestamps(col: pl.Series, path: Path, lines: int | None = None) -> np.ndarray:
    """Unix seconds (int64) from ISO 8601 strings, datetimes or numbers (mixed per row); names the first bad row."""
    if col.dtype in (pl.Datetime, pl.Date):
        seconds = col.cast(pl.Datetime("us")).dt.epoch("s").cast(pl.Float64)
    elif col.dtype.is_numeric():
        seconds = col.cast(pl.Float64)
    else:
        text = col.cast(pl.Utf8).str.strip_chars()
        # ISO 8601's `Z` (UTC, what the API writes) and a lower-case `t` / `z` read as `+00:00` and `T`; a date
        # and time may be joined by `T` or a space, seconds may carry a fraction, the zone may be ±HH:MM or ±HHMM
        iso = (text.str.replace(r"(?i)(\d)z$", "${1}+00:00")
               .str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d)", "${1}T${2}"))
        frame = pl.DataFrame({"t": text, "iso": iso})
        # Each row may be Unix seconds or ISO 8601 with or without time / zone: try each reading in turn.
        readings = [pl.col("t").cast(pl.Float64, strict=False)] + [
            pl.col("iso").str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
            .dt.epoch("s").cast(pl.Float64)
            for fmt in ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S%.f",
                        "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
        ]
        seconds = frame.select(pl.coalesce(readings)).to_series()
        bad = seconds.is_null() & text.is_not_null() & (text != "")
        if bad.any():
            row = _first_bad_row(bad)
            raise DeepshelfError(f"{_at(path, row, lines)}, column 'timestamp': {col[row - 1]!r} is not a time "
                                 "(expected ISO 8601 like 2024-05-01T12:00:00Z, 2024-05-01T14:00:00+02:00 or "
                                 "2024-05-01, or Unix seconds)")
    if seconds.null_count():
        row = _first_bad_row(seconds.is_null())
        raise DeepshelfError(f"{_at(path, row, lines)}, column 'timestamp' is empty")
    return seconds.to_numpy().astype(np.int64)


def events_from_frame(df: pl.DataFrame, path: Path | str = "<events>",
                      user_map: IdMap | None = None, item_map: IdMap | None = None,
                      lines: int | None = None) -> Interactions:
    """Validate an events DataFrame (columns per `schema.EVENT_COLUMN_ALIASES`) into `Interactions`; `lines`: see
    `header_lines` (errors then name the file's line, else the data row)."""
    path = Path(path)
    df = _resolve_columns(df, EVENT_COLUMN_ALIASES, ("user", "item"), path)
    for key in ("user", "item"):
        col = df[key].cast(pl.Utf8)
        empty = col.is_null() | (col.str.strip_chars() == "")
        if empty.any():
            raise DeepshelfError(f"{_at(path, _first_bad_row(empty), lines)}, column {key!r} is empty")
    n = df.height
    timestamp = parse_timestamps(df["timestamp"], path, lines) if "timestamp" in df.columns else np.arange(n, dtype=np.int64)
    if "type" in df.columns:
        names = df["type"].cast(pl.Utf8).str.strip_chars().str.to_lowercase().fill_null("purchase")
        known = names.is_in(EVENT_TYPE_NAMES)
        if not known.all():
            row = _first_bad_row(~known)
            raise DeepshelfError(f"{_at(path, row, lines)}, column 'type': unknown event type {names[row - 1]!r} "
                                 f"(expected one of {', '.join(EVENT_TYPE_NAMES)})")
        lut = {name: int(EventType.parse(name)) for name in EVENT_TYPE_NAMES}
        types = names.replace_strict(lut, return_dtype=pl.Int8).to_numpy()
    else:
        types = np.full(n, EventType.PURCHASE, np.int8)
    weight = np.ones(n, np.float32)
    if "value" in df.columns:
        value = df["value"].cast(pl.Float64, strict=False)
        bad = value.is_null() & df["value"].is_not_null()
        if bad.any():
            row = _first_bad_row(bad)
            raise DeepshelfError(f"{_at(path, row, lines)}, column 'value': {df['value'][row - 1]!r} is not a number")
    return Interactions.from_ids(df["user"].cast(pl.Utf8).to_numpy(), df["item"].cast(pl.Utf8).to_numpy(),
                                 timestamp=timestamp, type=types, weight=weight,
                                 user_map=user_map, item_map=item_map)


def read_events(path: str | Path) -> Interactions:
    """Load an events table (CSV / Parquet / JSONL) into `Interactions`."""
    return events_from_frame(read_table(path), path, lines=header_lines(Path(path)))


def read_sequences(path: str | Path) -> Interactions:
    """Load a sequences file (`user item item ...` per line, oldest first, optionally gzipped).

    Timestamps are the position of each event within the file, so time order is the file order.
    """
    path = Path(path)
    if not path.exists():
        raise DeepshelfError(f"{path}: file not found")
    users, items, seen_users = [], [], set()
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DeepshelfError(f"{path}: line {lineno}: expected 'user item item ...', got {line.strip()!r}")
            if parts[0] in seen_users:
                raise DeepshelfError(f"{path}: line {lineno}: user {parts[0]!r} appears on more than one line")
            seen_users.add(parts[0])
            users.extend([parts[0]] * (len(parts) - 1))
            items.extend(parts[1:])
    if not users:
        raise DeepshelfError(f"{path}: file is empty")
    return Interactions.from_ids(np.asarray(users), np.asarray(items))


def catalog_from_frame(df: pl.DataFrame, path: Path | str = "<catalog>", lines: int | None = None) -> Catalog:
    path = Path(path)
    df = _resolve_columns(df, CATALOG_COLUMN_ALIASES, ("item",), path)
    if "price" in df.columns:
        price = df["price"].cast(pl.Float64, strict=False)
        bad = price.is_null() & df["price"].is_not_null() & (df["price"].cast(pl.Utf8) != "")
        if bad.any():
            row = _first_bad_row(bad)
            raise DeepshelfError(f"{_at(path, row, lines)}, column 'price': {df['price'][row - 1]!r} is not a number")
        df = df.with_columns(price)
    if "in_stock" in df.columns and df["in_stock"].dtype != pl.Boolean:
        text = df["in_stock"].cast(pl.Utf8).str.to_lowercase().str.strip_chars()
        truth = {"1": True, "true": True, "yes": True, "y": True, "0": False, "false": False, "no": False, "n": False}
        ok = text.is_in(list(truth)) | text.is_null()
        if not ok.all():
            row = _first_bad_row(~ok)
            raise DeepshelfError(f"{_at(path, row, lines)}, column 'in_stock': {text[row - 1]!r} is not a yes/no value")
        df = df.with_columns(text.replace_strict(truth, default=True, return_dtype=pl.Boolean).alias("in_stock"))
    try:
        return Catalog(df)
    except ValueError as exc:
        raise DeepshelfError(f"{path}: {exc}") from None


def read_catalog(path: str | Path) -> Catalog:
    """Load a catalogue table (CSV / Parquet / JSONL); only the item id column is required."""
    return catalog_from_frame(read_table(path), path, lines=header_lines(Path(path)))


def is_sequence_file(path: Path) -> bool:
    return _suffix(path) in (".txt", "")
