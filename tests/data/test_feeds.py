"""Merchant Center feeds: RSS, Atom and TSV give the same catalogue rows; a bad item is named and left out."""

import pytest

from deepshelf.data.datasets import read_catalog_or_feed
from deepshelf.data.feeds import parse_feed, read_feed
from deepshelf.errors import DeepshelfError

RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>
<item><g:id>MUG-1</g:id><title>Red Enamel Camping Mug</title><description>Tin mug</description>
<link>https://shop.example/mug-1</link><g:image_link>https://shop.example/mug-1.jpg</g:image_link>
<g:price>12.50 EUR</g:price><g:sale_price>9.99 EUR</g:sale_price><g:availability>in_stock</g:availability>
<g:product_type>Home &amp; Garden &gt; Kitchen &gt; Mugs</g:product_type><g:brand>Acme</g:brand>
<g:item_group_id>MUG</g:item_group_id></item>
<item><g:id>MUG-2</g:id><title>Blue Mug</title><g:price>ten euros</g:price></item>
<item><title>No id</title></item>
<item><g:id>PAN-1</g:id><title>Frying Pan</title><g:price>30 EUR</g:price>
<g:availability>out_of_stock</g:availability><g:google_product_category>Kitchen</g:google_product_category></item>
</channel></rss>"""

ATOM = """<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">
<entry><g:id>MUG-1</g:id><title>Red Enamel Camping Mug</title><link href="https://shop.example/mug-1"/>
<g:price>12.50 EUR</g:price><g:sale_price>9.99 EUR</g:sale_price><g:availability>in stock</g:availability>
<g:product_type>Home &amp; Garden &gt; Kitchen &gt; Mugs</g:product_type></entry></feed>"""

TSV = ("id\ttitle\tdescription\tprice\tsale_price\tavailability\tproduct_type\timage_link\n"
       "MUG-1\tRed Enamel Camping Mug\tTin mug\t12.50 EUR\t9.99 EUR\tin_stock\tHome & Garden > Kitchen > Mugs\t"
       "https://shop.example/mug-1.jpg\n"
       "PAN-1\tFrying Pan\t\t30 EUR\t\tbackorder\t\t\n"
       "BAD-1\tBroken\t\t30 EUR\t\tsometimes\t\t\n")


def test_rss_items_parse_and_bad_items_are_named():
    feed = parse_feed(RSS)
    by_id = {it.item_id: it for it in feed.items}
    assert list(by_id) == ["MUG-1", "PAN-1"]
    mug = by_id["MUG-1"]
    assert (mug.title, mug.price, mug.in_stock, mug.category) == ("Red Enamel Camping Mug", 9.99, True, "Mugs")
    assert mug.image_url == "https://shop.example/mug-1.jpg"
    assert mug.attributes == {"regular_price": 12.5, "currency": "EUR", "link": "https://shop.example/mug-1",
                              "brand": "Acme", "item_group_id": "MUG",
                              "product_type": "Home & Garden > Kitchen > Mugs"}
    assert (by_id["PAN-1"].in_stock, by_id["PAN-1"].category, by_id["PAN-1"].price) == (False, "Kitchen", 30.0)
    errors = [str(e) for e in feed.errors]
    assert errors == ["item 'MUG-2', field g:price: 'ten euros' is not a price (expected like '12.50 EUR')",
                      "item #3 (no g:id), field g:id: missing"]


def test_atom_and_tsv_give_the_same_rows_as_rss(tmp_path):
    rss_mug = parse_feed(RSS).items[0]
    atom_mug = parse_feed(ATOM).items[0]
    assert (atom_mug.price, atom_mug.category, atom_mug.attributes["link"]) == (9.99, "Mugs", rss_mug.attributes["link"])
    path = tmp_path / "feed.tsv"
    path.write_text(TSV)
    feed = read_feed(path)
    assert [it.item_id for it in feed.items] == ["MUG-1", "PAN-1"]
    assert (feed.items[0].price, feed.items[0].category, feed.items[1].in_stock) == (9.99, "Mugs", False)
    assert [str(e) for e in feed.errors] == [
        "item 'BAD-1', field g:availability: 'sometimes': expected in_stock, out_of_stock, preorder or backorder"]
    catalog = read_catalog_or_feed(path)  # a feed is a catalogue for `deepshelf train --catalog`
    assert catalog.table["item"].to_list() == ["MUG-1", "PAN-1"]


def test_unreadable_feeds_are_clear_errors():
    with pytest.raises(DeepshelfError, match="not a well-formed XML feed"):
        parse_feed("<rss><channel><item></rss>")
    with pytest.raises(DeepshelfError, match="no <item>"):
        parse_feed("<rss><channel/></rss>")
    with pytest.raises(DeepshelfError, match="header has no id column"):
        parse_feed("sku\ttitle\nA\tMug\n")
