"""The sample files of the production recipe (deploy/samples) import cleanly, XML and TSV alike, and the GA4
export's events name the feed's products (tests/deploy/test_production.py imports them into a store)."""

from pathlib import Path

from deepshelf.data.feeds import read_feed
from deepshelf.data.ga4 import export_events

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def test_sample_feeds_import_without_errors_and_agree():
    xml, tsv = read_feed(SAMPLES / "products.xml"), read_feed(SAMPLES / "products.tsv")
    assert not xml.errors and not tsv.errors
    assert len(xml.items) == len(tsv.items) == 60
    by_id = {item.item_id: item for item in tsv.items}
    for item in xml.items:  # the same products, whichever format
        twin = by_id[item.item_id]
        assert (item.title, item.price, item.in_stock, item.category) == (twin.title, twin.price, twin.in_stock,
                                                                          twin.category)
    assert sum(not item.in_stock for item in xml.items) == 3  # out of stock: hidden from lists by default


def test_sample_ga4_export_names_the_feeds_products():
    events = export_events(SAMPLES / "ga4_events.ndjson")
    assert len(events) == 1500
    products = {item.item_id for item in read_feed(SAMPLES / "products.xml").items}
    assert {e.item_id for e in events} <= products
    assert {e.type for e in events} == {"view", "cart", "purchase"}
