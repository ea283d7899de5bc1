"""The serving caches, each dropped by what it depends on, on both stores:

- shoppers' histories (engine/shoppers.py): by the shopper's events through this service at once, by events and
  erasures another process stores at the next poll, by a run swap; a list answered from memory equals the one
  read from the store;
- product cards (engine/cards.py): by the catalogue refresh that brings an upsert of the product, by a run swap;
- fold-in and ANN hits (engine/queries.py): once per history and run, a new event is a new history, a run swap
  a new cache; the answers equal the uncached ones;
- the parsed list query (api/deps.py): shared rules are never changed by a request that adds to them;
- verified shopper tokens (api/deps.py): an expired one is refused though it was verified before.
"""

from __future__ import annotations

import time
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from deepshelf.engine.service import NeedsStore, Service
from deepshelf.engine.rules import RulesIn
from deepshelf.storage import Event, Item, open_store

from .conftest import PUBLIC_KEY, auth, make_settings

USER = "u0_1"  # a shopper of the planted shop (group 0)


def rules():
    return RulesIn().resolve(False, True, None, 0)


@pytest.fixture
def service(runs_dir, database):
    # the background poll far apart: each test polls when it means to
    settings = make_settings(runs_dir / "als", database, shopper_cache_poll_s=3600, catalog_refresh_s=3600,
                             ann_threshold=10, ann_nprobe=64,
                             new_item_slots=0)
    store = open_store(database)
    now = time.time() - 3600
    store.add_events([Event(f"u{g}_{u}", f"i{g * 25 + j}", "view", now + j) for g in range(4) for u in range(6)
                      for j in range(u % 3, u % 3 + 4)])  # each a few items of their group
    svc = Service(settings, store)
    svc.start()
    yield svc
    svc.stop()


def answer(service, cached_only=False):
    a = service.recommend_user(USER, 10, rules(), cached_only=cached_only)
    return a.item_ids, a.because


def test_history_held_until_the_shoppers_own_event(service):
    with pytest.raises(NeedsStore):
        answer(service, cached_only=True)  # never read yet
    first = answer(service)
    assert answer(service, cached_only=True) == first  # from memory, the same answer
    new_item = first[0][0]
    service.ingest([Event(USER, new_item, "view", time.time())])
    with pytest.raises(NeedsStore):
        answer(service, cached_only=True)  # dropped by the event
    after = answer(service)
    assert new_item not in after[0]  # the new history is read: the item just viewed is excluded now
    assert answer(service, cached_only=True) == after


def test_history_dropped_by_another_process_events_and_erasures(service, database):
    first = answer(service)
    other_answer = service.recommend_user("u1_1", 10, rules())
    service.shoppers.poll()
    assert answer(service, cached_only=True) == first
    with closing(open_store(database)) as other:  # another server process's connection
        other.add_events([Event(USER, first[0][0], "view", time.time())])
        service.shoppers.poll()
        with pytest.raises(NeedsStore):
            answer(service, cached_only=True)
        assert service.recommend_user("u1_1", 10, rules(), cached_only=True).item_ids == other_answer.item_ids
        answer(service)
        other.erase_user("u3_3")  # anyone's erasure drops every history (the marker does not say whose)
        service.shoppers.poll()
        with pytest.raises(NeedsStore):
            service.recommend_user("u1_1", 10, rules(), cached_only=True)


def test_history_and_cards_dropped_by_a_run_swap(service, runs_dir):
    answer(service)
    service.item_cards(["i1"])
    assert len(service.shoppers) == 1 and len(service.state.view.cards) == 1
    service.reload(runs_dir / "knn")
    assert len(service.shoppers) == 0 and len(service.state.view.cards) == 0
    with pytest.raises(NeedsStore):
        answer(service, cached_only=True)
    with pytest.raises(NeedsStore):
        service.item_cards(["i1"], cached_only=True)


def test_cards_dropped_by_the_catalogue_refresh_of_an_upsert(service, database):
    assert service.item_cards(["i1", "nothing"])["i1"].title == "Product 1 of group 0"
    assert set(service.item_cards(["i1", "nothing"], cached_only=True)) == {"i1"}  # the unknown one is held too
    with closing(open_store(database)) as other:
        other.upsert_items([Item("i1", title="Renamed lamp", category="cat0", price=11.0)])
    assert service.item_cards(["i1"], cached_only=True)["i1"].title == "Product 1 of group 0"  # not refreshed yet
    service.state.view.refresh()
    with pytest.raises(NeedsStore):
        service.item_cards(["i1"], cached_only=True)
    assert service.item_cards(["i1"])["i1"].title == "Renamed lamp"


def test_fold_in_once_per_history_and_run(service, runs_dir):
    state = service.state
    assert state.index is not None  # the ANN path (ann_threshold=10)
    calls = []
    fold_in = state.model.query_vectors
    state.model.query_vectors = lambda h: calls.append(1) or fold_in(h)
    try:
        first = answer(service)
        n = len(calls)
        assert n >= 1
        service.shoppers.clear()  # the history read again from the store: the same history, the same fold-in
        assert answer(service) == first and len(calls) == n
        service.ingest([Event(USER, "i3", "view", time.time())])
        answer(service)
        assert len(calls) > n  # a new history, folded in
    finally:
        state.model.query_vectors = fold_in
    held = len(state.queries)
    assert held >= 2
    service.reload(runs_dir / "als")
    assert service.state is not state and len(service.state.queries) == 0


def test_cached_fold_in_and_explanations_give_the_uncached_answers(service):
    users = [f"u{g}_{u}" for g in range(4) for u in range(5)]

    def answers(cached_only=False):
        return [(a.item_ids, a.because) for a in (service.recommend_user(u, 10, rules(), cached_only=cached_only)
                                                  for u in users)]

    cached = answers()
    assert any(b is not None for _, because in cached for b in because)  # explained from the histories
    cached_again = answers(cached_only=True)
    service.state.queries.capacity = 0  # every lookup computes afresh
    service.state.queries._rows.clear()
    service.shoppers.clear()
    assert cached == cached_again == answers()


def test_explanations_once_per_history_list_and_run(service, runs_dir, monkeypatch):
    from deepshelf.engine import explain

    calls = []
    real = explain._because
    monkeypatch.setattr(explain, "_because", lambda *a: calls.append(1) or real(*a))
    first = answer(service)
    n = len(calls)
    assert n >= 1 and answer(service) == first and len(calls) == n  # the same history and list: not again
    service.ingest([Event(USER, "i3", "view", time.time())])
    answer(service)
    assert len(calls) > n  # a new history: explained again
    n = len(calls)
    service.reload(runs_dir / "als")  # a new run: a new cache
    answer(service)
    assert len(calls) > n


def test_a_request_adding_exclusions_leaves_the_shared_query_rules_alone(runs_dir, tmp_path):
    from deepshelf.api.app import create_app

    settings = make_settings(runs_dir / "knn", f"sqlite:///{tmp_path / 'q.db'}", new_item_slots=0)
    with TestClient(create_app(settings), headers=auth()) as c:
        query = "k=5&in_stock=false"
        top = c.get(f"/v1/popular?{query}").json()["items"][0]["item_id"]
        session = c.post(f"/v1/sessions/recommendations?{query}", json={"item_ids": [], "exclude": [top]})
        assert top not in [i["item_id"] for i in session.json()["items"]]
        assert c.get(f"/v1/popular?{query}").json()["items"][0]["item_id"] == top


def test_a_verified_token_is_refused_once_expired(runs_dir, tmp_path, monkeypatch):
    from deepshelf.api import deps
    from deepshelf.api.app import create_app
    from deepshelf.tokens import mint

    settings = make_settings(runs_dir / "knn", f"sqlite:///{tmp_path / 't.db'}", token_secret="s3cret")
    token = mint("s3cret", USER, ttl=60)
    with TestClient(create_app(settings)) as c:
        headers = {"X-API-Key": PUBLIC_KEY, "X-Shopper-Token": token}
        assert c.get(f"/v1/users/{USER}/recommendations", headers=headers).status_code == 200
        now = time.time()
        monkeypatch.setattr(deps.time, "time", lambda: now + 120)
        monkeypatch.setattr("deepshelf.tokens.time.time", lambda: now + 120)
        refused = c.get(f"/v1/users/{USER}/recommendations", headers=headers)
        assert refused.status_code == 401 and "expired" in refused.json()["detail"]
