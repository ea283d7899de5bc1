"""What a list answer shows of its products (`Store.item_cards`, read on every list request) is what the full
catalogue row says: the same title, category, price, image URL and uploaded-image flag as `get_item`."""

from __future__ import annotations

from contextlib import closing

from deepshelf.storage import Item, open_store


def test_item_cards_match_the_full_rows(tmp_path):
    with closing(open_store(f"sqlite:///{tmp_path / 'cards.db'}")) as store:
        store.upsert_items([
            Item("a", title="Red lamp", category="lamps", price=12.5, image_url="https://shop.example/a.jpg",
                 description="a long text", attributes={"colour": "red"}),
            Item("b", title="", category="", price=None),
            Item("c/1", title="Mug", category="kitchen", price=3.0)])
        store.put_image("c/1", "image/png", b"\x89PNG....")
        ids = ["a", "b", "c/1", "unknown"]
        cards = store.item_cards(ids)
        rows = {i: row for i in ids if (row := store.get_item(i)) is not None}
        assert set(cards) == set(rows) == {"a", "b", "c/1"}
        for item_id, row in rows.items():
            card = cards[item_id]
            assert (card.item_id, card.title, card.category, card.price, card.image_url, card.has_image) == (
                row.item_id, row.title, row.category, row.price, row.image_url, row.has_image)
        assert cards["c/1"].has_image and not cards["a"].has_image and cards["b"].price is None
        assert store.item_cards([]) == {}


def test_item_cards_carry_the_feeds_currency(tmp_path):
    """A feed's "14.00 GBP" keeps GBP as attributes["currency"]: list answers show prices in it (issue 28, item 10)."""
    with closing(open_store(f"sqlite:///{tmp_path / 'cur.db'}")) as store:
        store.upsert_items([Item("gbp", title="Mug", price=14.0, attributes={"currency": "GBP", "colour": "red"}),
                            Item("plain", title="Cup", price=3.0, attributes={"colour": "blue"}),
                            Item("odd", title="Pot", price=3.0, attributes={"currency": 7})])
        cards = store.item_cards(["gbp", "plain", "odd"])
    assert (cards["gbp"].currency, cards["plain"].currency, cards["odd"].currency) == ("GBP", "", "")
