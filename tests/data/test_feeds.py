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
    assert errors == ["line 8: item 'MUG-2', field g:price: 'ten euros' is not a price (expected like '12.50 EUR')",
                      "line 9: item #3 (no g:id), field g:id: missing"]


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
        "line 4: item 'BAD-1', field g:availability: 'sometimes': expected in_stock, out_of_stock, preorder or backorder"]
    catalog = read_catalog_or_feed(path)  # a feed is a catalogue for `deepshelf train --catalog`
    assert catalog.table["item"].to_list() == ["MUG-1", "PAN-1"]


def test_unreadable_feeds_are_clear_errors():
    with pytest.raises(DeepshelfError, match="not a well-formed XML feed"):
        parse_feed("<rss><channel><item></rss>")
    with pytest.raises(DeepshelfError, match="no <item>"):
        parse_feed("<rss><channel/></rss>")
    with pytest.raises(DeepshelfError, match="header has no id column"):
        parse_feed("sku\ttitle\nA\tMug\n")


# The same five products as an RSS feed and as its TSV form: one good, the others each wrong in one required field.
PARITY_ROWS = [  # id, title, price
    ("OK-1", "Mug", "4.00 GBP"),
    ("NO-PRICE", "Pan", ""),
    ("BAD-PRICE", "Pot", "cheap"),
    ("NO-TITLE", "", "3 GBP"),
    ("", "Lid", "2 GBP"),
]


def _rss(rows) -> str:
    items = "".join(f"\n<item><g:id>{i}</g:id><title>{t}</title><g:price>{p}</g:price></item>" for i, t, p in rows)
    return f'<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>{items}\n</channel></rss>'


def _tsv(rows) -> str:
    return "id\ttitle\tprice\n" + "".join(f"{i}\t{t}\t{p}\n" for i, t, p in rows)


def test_xml_and_tsv_feeds_are_validated_alike():
    """Issue 28 (6): a TSV row with an empty price imported silently (price null, in stock) where the XML item was
    left out with a reason; now both forms leave out the same items for the same field and name the line."""
    xml, tsv = parse_feed(_rss(PARITY_ROWS)), parse_feed(_tsv(PARITY_ROWS))
    assert [it.item_id for it in xml.items] == [it.item_id for it in tsv.items] == ["OK-1"]
    expected = [("NO-PRICE", "g:price", "missing"),
                ("BAD-PRICE", "g:price", "'cheap' is not a price (expected like '12.50 EUR')"),
                ("NO-TITLE", "title", "missing"), (None, "g:id", "missing")]
    for feed in (xml, tsv):
        assert [(e.item_id, e.field, e.message) for e in feed.errors] == expected
        assert [e.line for e in feed.errors] == [3, 4, 5, 6]  # the header / <channel> is line 1
    assert str(tsv.errors[0]) == str(xml.errors[0]) == "line 3: item 'NO-PRICE', field g:price: missing"


def test_tsv_rows_with_missing_or_extra_columns_are_left_out_with_a_reason():
    header = "id\ttitle\tdescription\tlink\timage_link\tprice\tavailability\tbrand\n"
    full = "A-1\tMug\tTin mug\thttps://s.example/a\thttps://s.example/a.jpg\t4 GBP\tin_stock\tAcme\n"
    short = "A-2\tPan\tIron pan\n"  # 3 of 8 columns: price, stock and the rest cut off
    long = "A-3\tPot\tA pot\thttps://s.example/c\t\t5 GBP\tin_stock\tAcme\textra\n"
    feed = parse_feed(header + full + short + long)
    assert [it.item_id for it in feed.items] == ["A-1"]
    assert [str(e) for e in feed.errors] == [
        "line 3: item 'A-2', field link: missing (the row has 3 of the header's 8 columns)",
        "line 4: item 'A-3', field column 9: not in the header (the row has 9 columns, the header 8)"]
    # a row cut before its id is still named by its line
    feed = parse_feed("title\tid\tprice\nMug\n")
    assert [str(e) for e in feed.errors] == [
        "line 2: item #1 (no g:id), field g:id: missing (the row has 1 of the header's 3 columns)"]
