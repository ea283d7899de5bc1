"""A newcomer's friction points (issue 19), each answered in words: unknown items in events and sessions, a category
the catalogue lacks, one `k` limit, and the new-arrival slot's own score."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import auth, make_settings


@contextmanager
def app_client(run_link, tmp_path, name: str = "store", **overrides):
    from deepshelf.api.app import create_app

    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / f'{name}.db'}", **overrides))
    with TestClient(app, headers=auth()) as c:
        yield c


def events(c, *rows):
    return c.post("/v1/events", json={"events": [dict(r) for r in rows]})


def session(c, items, **body):
    return c.post("/v1/sessions/recommendations", json={"item_ids": items, **body})


def test_events_for_unknown_items_are_kept_and_named(sqlite_client):
    c = sqlite_client
    r = events(c, {"user_id": "a", "item_id": "i1"}, {"user_id": "a", "item_id": "ghost-1"},
               {"user_id": "b", "item_id": "ghost-1"}, {"user_id": "b", "item_id": "ghost-2"})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "unknown_items": ["ghost-1", "ghost-2"]}  # each once, in batch order
    assert [e["item_id"] for e in c.get("/v1/users/b/events").json()["events"]] == ["ghost-2", "ghost-1"]
    assert events(c, {"user_id": "a", "item_id": "i2"}).json() == {"accepted": 1}  # the field only when needed
    # a product upserted later is no longer unknown
    assert c.put("/v1/items/ghost-1", json={"title": "Ghost"}).status_code == 200
    assert events(c, {"user_id": "c", "item_id": "ghost-1"}).json() == {"accepted": 1}


def test_session_answer_says_why_it_fell_back(sqlite_client):
    c = sqlite_client
    only_unknown = session(c, ["ghost-1", "ghost-2", "ghost-1"]).json()
    assert only_unknown["source"] == "fallback" and only_unknown["fallback_reason"] == "unknown_items"
    assert only_unknown["unknown_items"] == ["ghost-1", "ghost-2"]
    mixed = session(c, ["i1", "ghost-1"]).json()
    assert mixed["source"] == "model" and mixed["unknown_items"] == ["ghost-1"] and "fallback_reason" not in mixed
    known = session(c, ["i1"]).json()
    assert known["source"] == "model" and known["unknown_items"] == [] and "fallback_reason" not in known
    empty = session(c, []).json()
    assert empty["source"] == "fallback" and empty["fallback_reason"] == "empty_session"
    # in the catalogue but added since training: the model cannot be asked about it
    assert c.put("/v1/items/fresh", json={"title": "Fresh", "category": "cat0"}).status_code == 200
    new_only = session(c, ["fresh"]).json()
    assert new_only["source"] == "fallback" and new_only["fallback_reason"] == "not_in_model"
    assert new_only["unknown_items"] == []


def test_user_answer_says_why_it_fell_back(sqlite_client):
    c = sqlite_client
    recs = lambda user: c.get(f"/v1/users/{user}/recommendations").json()  # noqa: E731
    nobody = recs("never-seen")
    assert nobody["source"] == "fallback" and nobody["fallback_reason"] == "no_history"
    assert events(c, {"user_id": "ghostly", "item_id": "ghost-9"}).status_code == 200
    assert recs("ghostly")["fallback_reason"] == "unknown_items"  # none of their items is in catalogue or run
    assert c.put("/v1/items/fresh-u", json={"title": "Fresh", "category": "cat0"}).status_code == 200
    assert events(c, {"user_id": "newish", "item_id": "fresh-u"}, {"user_id": "newish", "item_id": "ghost-9"}).is_success
    assert recs("newish")["fallback_reason"] == "not_in_model"  # only products added since training
    assert events(c, {"user_id": "known", "item_id": "i1"}).status_code == 200
    known = recs("known")
    assert known["source"] == "model" and "fallback_reason" not in known


def test_unknown_category_is_refused_with_the_catalogues_categories(sqlite_client):
    c = sqlite_client
    r = c.get("/v1/popular", params={"category": "Kitchen"})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["loc"] == ["query", "category"] and "'Kitchen'" in error["msg"]
    assert all(f"cat{g}" in error["msg"] for g in range(4))
    assert c.get("/v1/popular", params={"category": "cat1"}).status_code == 200
    r = c.get("/v1/users/u0_0/recommendations", params={"category": ["cat1", "Kitchen"]})
    assert r.status_code == 422 and r.json()["errors"][0]["input"] == ["Kitchen"]
    r = session(c, ["i1"], rules={"categories": ["Kitchen"]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "rules", "categories"]


def test_catalogue_without_categories_says_so(run_link, tmp_path):
    from contextlib import closing

    from deepshelf.storage import Item, open_store

    database = f"sqlite:///{tmp_path / 'plain.db'}"
    with closing(open_store(database)) as store:  # the shop's items, no category on any
        store.upsert_items([Item(item_id=f"i{i}", title=f"Product {i}") for i in range(100)])
    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(run_link, database)), headers=auth()) as c:
        r = c.get("/v1/popular", params={"category": "Kitchen"})
    assert r.status_code == 422 and "this catalogue has no categories" in r.json()["errors"][0]["msg"]


@pytest.mark.parametrize("k", [200, 100_000])
def test_one_k_limit_in_validation_message_and_schema(sqlite_client, k):
    c = sqlite_client
    for r in (c.get("/v1/popular", params={"k": k}), session(c, ["i1"], k=k)):
        assert r.status_code == 422
        (error,) = r.json()["errors"]
        assert error["msg"] == "k must be at most 100" and error["loc"][-1] == "k"
    assert c.get("/v1/popular", params={"k": 100}).status_code == 200
    params = c.get("/openapi.json").json()["paths"]["/v1/popular"]["get"]["parameters"]
    assert next(p for p in params if p["name"] == "k")["schema"]["maximum"] == 100


def test_k_limit_follows_the_servers_max_k(run_link, tmp_path):
    with app_client(run_link, tmp_path, max_k=20) as c:
        r = c.get("/v1/popular", params={"k": 21})
        assert r.status_code == 422 and r.json()["errors"][0]["msg"] == "k must be at most 20"
        params = c.get("/openapi.json").json()["paths"]["/v1/popular"]["get"]["parameters"]
        assert next(p for p in params if p["name"] == "k")["schema"]["maximum"] == 20


def _new_arrival_answer(c, new_buyers: int):
    """A shopper's list after two products were added since training (new-b the newer), the older one, new-a,
    bought `new_buyers` times."""
    for item in ("new-a", "new-b"):
        assert c.put(f"/v1/items/{item}", json={"title": item, "category": "cat0"}).status_code == 200
    rows = [{"user_id": "n", "item_id": "i1"}]
    rows += [{"user_id": f"buyer{j}", "item_id": "new-a", "type": "purchase"} for j in range(new_buyers)]
    assert events(c, *rows).status_code == 200
    service = c.app.state.service
    service.runs.refresh_trending()
    state = service.state
    trend = dict(zip(["new-a", "new-b"], state.trending.scores_of(state.view.snapshot.lookup(["new-a", "new-b"]))))
    return c.get("/v1/users/n/recommendations", params={"k": 8}).json()["items"], trend


@pytest.mark.parametrize("buyers", [0, 40])
def test_new_arrival_slot_has_its_own_score_and_the_list_stays_sorted(run_link, tmp_path, buyers):
    with app_client(run_link, tmp_path) as c:
        items, trend = _new_arrival_answer(c, buyers)
    new = [it for it in items if it["item_id"].startswith("new-")]
    assert len(new) == 1 and new[0]["reason"] == "new_arrival"  # at most one slot by default
    expected = "new-a" if buyers else "new-b"  # trending first, then newest
    assert new[0]["item_id"] == expected
    assert new[0]["score"] == pytest.approx(float(trend[expected]))  # its own score, not its neighbour's
    # sorted by (slot, score): the model's items by their score, then the new-arrival slot with its own
    assert len(items) == 8 and items[-1]["item_id"] == expected
    scores = [it["score"] for it in items[:-1]]
    assert scores == sorted(scores, reverse=True)
    if buyers:  # bought by 40 shoppers: a trending score above the model's, not the one of the item above it
        assert new[0]["score"] > items[-2]["score"] and new[0]["score"] > 0
    else:
        assert trend["new-b"] == 0.0


def test_new_item_slots_zero_turns_the_slot_off(run_link, tmp_path):
    with app_client(run_link, tmp_path, new_item_slots=0) as c:
        items, _ = _new_arrival_answer(c, 0)
    assert len(items) == 8 and not any(it["item_id"].startswith("new-") for it in items)
    assert not np.any([it["reason"] == "new_arrival" for it in items])


def test_exploration_share_per_request_and_per_placement(run_link, tmp_path):
    """`new_slots` in the query (or the body's rules) sets the share of new products for one answer; a placement's
    share (`new_item_slots_by_placement`) is its default, the server's `new_item_slots` everyone else's."""
    with app_client(run_link, tmp_path, new_item_slots_by_placement={"cart": 0, "home": 2}) as c:
        _new_arrival_answer(c, 0)

        def new_ones(**params):
            r = c.get("/v1/users/n/recommendations", params={"k": 8, **params})
            assert r.status_code == 200, r.text
            return [it["item_id"] for it in r.json()["items"] if it["item_id"].startswith("new-")]

        assert len(new_ones()) == 2  # home's share
        assert new_ones(placement="cart") == []
        assert len(new_ones(placement="product_page")) == 1  # the server's default
        assert new_ones(placement="cart", new_slots=1) and len(new_ones(new_slots=0)) == 0
        body = {"item_ids": ["i1"], "k": 8, "rules": {"new_slots": 2}}
        answer = c.post("/v1/sessions/recommendations", json=body, params={"placement": "cart"}).json()
        assert sum(it["item_id"].startswith("new-") for it in answer["items"]) == 2
        assert c.get("/v1/users/n/recommendations", params={"new_slots": -1}).status_code == 422


def test_the_runs_own_new_products_count_in_the_share(run_link, tmp_path):
    """Products new to the run itself (a ranker's never-sold products: `new_items()`) fill the share first from
    the run's own candidates, with the run's reason, and one already in the list counts toward it."""
    from deepshelf.engine import ranking
    from deepshelf.engine.rules import Rules

    with app_client(run_link, tmp_path) as c:
        service = c.app.state.service
        state, catalog = service.state, service.state.view.snapshot
        n = state.n_model
        shopper = ranking.Shopper(np.array([1], np.int64), np.zeros(1, np.int8), np.zeros(0, np.int64),
                                  np.array([0], np.int64))
        plain, _ = ranking.recommend(state, catalog, shopper, 5, Rules(new_slots=0))
        state.new_items = np.zeros(n, bool)
        outside = [i for i in range(n) if i not in plain.idx.tolist() and i != 1][:3]
        state.new_items[outside] = True
        top, _ = ranking.recommend(state, catalog, shopper, 5, Rules(new_slots=2))
        assert int(ranking.is_new(state, catalog, top.idx).sum()) == 2
        assert list(top.idx[:3]) == list(plain.idx[:3])  # the new ones take the last places
        state.new_items[:] = False
        state.new_items[plain.idx[0]] = True  # one already in the list
        top, _ = ranking.recommend(state, catalog, shopper, 5, Rules(new_slots=1))
        assert list(top.idx) == list(plain.idx)
        state.new_items = None
