"""`deepshelf import-feed FILE --database URL`: good items reach the store, bad ones are named on stderr."""

import subprocess
import sys

from deepshelf.storage import open_store

FEED = ("id\ttitle\tprice\tavailability\tproduct_type\n"
        "MUG-1\tRed Enamel Camping Mug\t12.50 EUR\tin_stock\tHome > Kitchen\n"
        "MUG-2\tBlue Mug\tcheap\tin_stock\t\n")


def test_import_feed_into_the_store(tmp_path):
    feed = tmp_path / "feed.tsv"
    feed.write_text(FEED)
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    res = subprocess.run([sys.executable, "-m", "deepshelf", "import-feed", str(feed), "--database", url],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "imported 1 products" in res.stdout and "item 'MUG-2', field g:price" in res.stderr
    store = open_store(url)
    try:
        mug = store.get_item("MUG-1")
        assert (mug.title, mug.price, mug.category) == ("Red Enamel Camping Mug", 12.5, "Kitchen")
        assert store.get_item("MUG-2") is None
    finally:
        store.close()
