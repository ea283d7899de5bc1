"""deepshelf.client.Client against a real app (in process): every method reaches its endpoint and reads its answer;
an error answer is an ApiError with the status and the server's detail."""

from __future__ import annotations

import pytest

from deepshelf.client import ApiError, Client
from tests.api.conftest import KEY, PUBLIC_KEY, make_settings, train, write_shop


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    folder = tmp_path_factory.mktemp("client")
    events, catalog = write_shop(folder)
    run = train(events, catalog, folder / "runs" / "knn", "itemknn")
    app = create_app(make_settings(run, f"sqlite:///{folder / 'store.db'}"))
    with TestClient(app) as c:
        yield c


def test_client_round_trip(http):
    shop = Client("http://testserver", KEY, http=http)
    assert shop.send_events([{"user_id": "web-1", "item_id": "i1", "type": "view"},
                             {"user_id": "web-1", "item_id": "i2", "type": "purchase", "value": 12.0}]) == 2
    assert [e["item_id"] for e in shop.user_events("web-1")] == ["i2", "i1"]
    recs = shop.recommendations("web-1", k=5)
    assert len(recs.items) == 5 and recs.model_version and not {"i1", "i2"} & set(recs.ids)  # seen: left out
    assert all(isinstance(r.score, float) and r.reason for r in recs.items)
    assert len(shop.similar("i1", k=3).items) == 3
    assert len(shop.session_recommendations(["i1", "i2"], k=4).items) == 4
    assert len(shop.popular(k=3).items) == 3
    assert shop.search("Product", k=3).items
    assert shop.put_item("NEW-1", title="Red Mug", price=3.5) == 1
    assert shop.item("NEW-1")["title"] == "Red Mug"
    imported = shop.import_feed("id\ttitle\tprice\tavailability\nF-1\tFeed Mug\t4 EUR\tin_stock\nF-2\t\t\t\n")
    assert imported["accepted"] == 1 and imported["errors"][0]["item_id"] == "F-2"
    assert shop.send_ga4({"client_id": "c9", "events": [{"name": "view_item", "params": {"items": [{"item_id": "i1"}]}}]}) \
        == {"accepted": 1, "skipped": 0}
    assert shop.erase_user("c9") == 1


def test_client_errors_carry_status_and_detail(http):
    public = Client("http://testserver", PUBLIC_KEY, http=http)
    with pytest.raises(ApiError) as err:
        public.put_item("X", title="no")  # a public key may not write the catalogue
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        Client("http://testserver", KEY, http=http).recommendations("u0_1", k=0)
    assert err.value.status == 422 and any("k" in e["loc"] for e in err.value.errors) and "k" in err.value.detail


def test_client_put_items_stores_a_batch_or_nothing(http):
    """`put_items` (POST /v1/items): every product of the batch is readable after it; a batch the server refuses
    (an id twice) is an ApiError naming the field, and none of its products is stored."""
    shop = Client("http://testserver", KEY, http=http)
    assert shop.put_items([{"item_id": "B-1", "title": "Blue Mug", "price": 4.0},
                           {"item_id": "B-2", "title": "Green Mug", "category": "mugs", "in_stock": False}]) == 2
    first, second = shop.item("B-1"), shop.item("B-2")
    assert (first["title"], first["price"]) == ("Blue Mug", 4.0)
    assert (second["category"], second["in_stock"]) == ("mugs", False)
    with pytest.raises(ApiError) as err:
        shop.put_items([{"item_id": "B-3", "title": "one"}, {"item_id": "B-3", "title": "two"}])
    assert err.value.status == 422 and any("items" in e["loc"] for e in err.value.errors)
    with pytest.raises(ApiError) as err:
        shop.item("B-3")
    assert err.value.status == 404


def test_import_feed_reads_a_path_given_as_a_string(http, tmp_path, monkeypatch):
    """`import_feed("products.xml")` reads the file (it used to send the file name as the feed: a 400); a Path
    too; a one-line string naming no file is a FileNotFoundError naming it, before anything is sent."""
    shop = Client("http://testserver", KEY, http=http)
    feed = tmp_path / "products.xml"
    feed.write_text('<?xml version="1.0"?><rss xmlns:g="http://base.google.com/ns/1.0" version="2.0"><channel>'
                    "<item><g:id>PATH-1</g:id><g:title>Path Mug</g:title><g:price>5.00 GBP</g:price>"
                    "<g:availability>in_stock</g:availability></item></channel></rss>")
    monkeypatch.chdir(tmp_path)
    assert shop.import_feed("products.xml")["accepted"] == 1
    assert shop.item("PATH-1")["title"] == "Path Mug"
    assert shop.import_feed(feed)["accepted"] == 1
    with pytest.raises(FileNotFoundError, match="no-such-feed.xml"):
        shop.import_feed("no-such-feed.xml")
