"""Loaders: every format loads, and every kind of bad input is a one-line error naming file, row and column."""

import gzip
import json

import polars as pl
import pytest

from deepshelf.data.datasets import load_dataset
from deepshelf.data.loaders import read_catalog, read_events, read_sequences
from deepshelf.data.schema import EventType
from deepshelf.errors import DeepshelfError

CSV = "user_id,item_id,type,timestamp\nu1,a,view,2024-05-01T10:00:00\nu1,b,purchase,2024-05-01T11:00:00\nu2,a,cart,1714560000\n"


def test_csv_parquet_jsonl_agree(tmp_path):
    (tmp_path / "e.csv").write_text(CSV)
    csv = read_events(tmp_path / "e.csv")
    pl.read_csv(tmp_path / "e.csv", infer_schema_length=0).write_parquet(tmp_path / "e.parquet")
    with open(tmp_path / "e.jsonl", "w") as f:
        for row in pl.read_csv(tmp_path / "e.csv", infer_schema_length=0).iter_rows(named=True):
            f.write(json.dumps(row) + "\n")
    for other in (read_events(tmp_path / "e.parquet"), read_events(tmp_path / "e.jsonl")):
        assert other.item.tolist() == csv.item.tolist()
        assert other.timestamp.tolist() == csv.timestamp.tolist()
        assert other.type.tolist() == csv.type.tolist()
    assert csv.type.tolist() == [EventType.VIEW, EventType.PURCHASE, EventType.CART]
    assert csv.timestamp.tolist() == [1714557600, 1714561200, 1714560000]


# One instant, 2025-07-03 06:01:24 UTC, in every spelling a shop's export (or deepshelf's own API, which writes the
# `Z` form) uses: ISO 8601 with Z / z, an offset with or without a colon, a fraction, a space for the T, and Unix
# seconds; a date alone is its midnight UTC, a time without seconds its minute.
INSTANT = 1751522484
SPELLINGS = [
    ("2025-07-03T06:01:24Z", INSTANT), ("2025-07-03T06:01:24z", INSTANT), ("2025-07-03T06:01:24.250Z", INSTANT),
    ("2025-07-03T06:01:24.123456Z", INSTANT), ("2025-07-03 06:01:24Z", INSTANT),
    ("2025-07-03T06:01:24+00:00", INSTANT), ("2025-07-03T08:01:24+02:00", INSTANT),
    ("2025-07-03T08:01:24+0200", INSTANT), ("2025-07-02T23:01:24.5-07:00", INSTANT),
    ("2025-07-03T06:01:24", INSTANT), ("2025-07-03 06:01:24", INSTANT), ("2025-07-03T06:01:24.9", INSTANT),
    ("2025-07-03T06:01Z", INSTANT - 24), ("2025-07-03", INSTANT - (6 * 3600 + 84)), (str(INSTANT), INSTANT),
]


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_every_iso_8601_spelling_reads_in_every_format(tmp_path, kind):
    """Issue 28: `2025-07-03T06:01:24Z` was "not a time" in a CSV although the API writes it."""
    frame = pl.DataFrame({"user": [f"u{i}" for i in range(len(SPELLINGS))], "item": "a",
                          "timestamp": [text for text, _ in SPELLINGS]})
    path = tmp_path / f"events.{kind}"
    {"csv": frame.write_csv, "parquet": frame.write_parquet, "jsonl": frame.write_ndjson}[kind](path)
    assert read_events(path).timestamp.tolist() == [seconds for _, seconds in SPELLINGS]


def test_zoned_datetime_columns_and_unix_numbers_read_alike(tmp_path):
    """A Parquet datetime column with a zone, and JSONL numbers mixed with Z strings, are the same instants."""
    import datetime as dt

    when = dt.datetime(2025, 7, 3, 8, 1, 24, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    pl.DataFrame({"user": ["u"], "item": ["a"], "timestamp": [when]}).write_parquet(tmp_path / "e.parquet")
    assert read_events(tmp_path / "e.parquet").timestamp.tolist() == [INSTANT]
    (tmp_path / "e.jsonl").write_text(f'{{"user": "u", "item": "a", "timestamp": {INSTANT}}}\n'
                                      '{"user": "v", "item": "a", "timestamp": "2025-07-03T06:01:24Z"}\n')
    assert read_events(tmp_path / "e.jsonl").timestamp.tolist() == [INSTANT, INSTANT]


@pytest.mark.parametrize("content, message", [
    ("", "file is empty"),
    ("user,item,timestamp\nu,a,2025-07-03T25:01:24Z\n", "line 2, column 'timestamp': '2025-07-03T25:01:24Z' is not"),
    ("user,item,timestamp\nu,a,2025-07-03TZ\n", "line 2, column 'timestamp': '2025-07-03TZ' is not a time"),
    ("user,item\n", "header but no rows"),
    ("user,item,item\nu,a,b\n", "duplicate column 'item'"),
    ("user,product_name\nu,a\n", "missing column 'item'"),
    # a CSV's errors name the line an editor shows: the header is line 1, the second data row line 3
    ("user,item,timestamp\nu,a,2024-01-01\nu,b,yesterday\n", "line 3, column 'timestamp'"),
    ("user,item,type\nu,a,view\nu,b,like\n", "line 3, column 'type': unknown event type 'like'"),
    ("user,item\nu,a\n,b\n", "line 3, column 'user' is empty"),
    ("user;item;type\nu;a;view\n", "missing column 'user'.*looks separated by semicolons"),
])
def test_bad_events_files(tmp_path, content, message):
    path = tmp_path / "events.csv"
    path.write_text(content)
    with pytest.raises(DeepshelfError, match=message) as err:
        read_events(path)
    assert str(path) in str(err.value)


def test_sequences_file(tmp_path):
    path = tmp_path / "s.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("1 10 11 12\n2 11 13\n")
    inter = read_sequences(path)
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 4, 5)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 10 11\n1 12\n")
    with pytest.raises(DeepshelfError, match="line 2: user '1' appears on more than one line"):
        read_sequences(bad)


def test_catalog_validation(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("sku,name,price,in_stock\nA,Mug,3.5,yes\nB,Cup,abc,no\n")
    with pytest.raises(DeepshelfError, match="line 3, column 'price'"):
        read_catalog(path)
    path.write_text("sku,name,price,in_stock,colour\nA,Mug,3.5,yes,red\nB,Cup,,no,blue\n")
    cat = read_catalog(path)
    assert cat.table["in_stock"].to_list() == [True, False] and cat.attributes == ["colour"]
    path.write_text("sku,name\nA,Mug\nA,Cup\n")
    with pytest.raises(DeepshelfError, match="'A' appears more than once"):
        read_catalog(path)


def test_unknown_dataset_name():
    with pytest.raises(DeepshelfError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_jsonl_lines_and_frame_rows(tmp_path):
    """JSONL has no header: data row N is line N; a table in memory (the event store) has rows, not lines."""
    import polars as pl

    from deepshelf.data.loaders import events_from_frame

    path = tmp_path / "e.jsonl"
    path.write_text('{"user": "u", "item": "a", "type": "view"}\n{"user": "u", "item": "b", "type": "like"}\n')
    with pytest.raises(DeepshelfError, match="e.jsonl: line 2, column 'type'"):
        read_events(path)
    frame = pl.DataFrame({"user": ["u", "u"], "item": ["a", "b"], "type": ["view", "like"]})
    with pytest.raises(DeepshelfError, match="shop: row 2, column 'type'"):
        events_from_frame(frame, "shop")


def test_online_retail_titles_keep_contractions_lower_case():
    import polars as pl

    from deepshelf.data.datasets import title_case

    raw = pl.DataFrame({"t": ["CHILDREN'S APRON", "DON\u2019T PANIC", "O'NEILL MUG", "SET OF 3 CAKE TINS"]})
    assert raw.select(title_case(pl.col("t")))["t"].to_list() == [
        "Children's Apron", "Don\u2019t Panic", "O'Neill Mug", "Set Of 3 Cake Tins"]
