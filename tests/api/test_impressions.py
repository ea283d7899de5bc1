"""Impressions (issue 17): every list answer carries a recommendation_id and is stored, in order, with its
placement, surface, shopper and model version, by a background writer: batched, flushed on shutdown, never
blocking a request (a full queue drops and counts)."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from deepshelf.api.app import create_app
from deepshelf.engine.impressions import ImpressionWriter
from deepshelf.api.metrics import Metrics
from deepshelf.storage import open_store
from tests.api.conftest import auth, make_settings


def shown(store, recommendation_id: str) -> list[str]:
    row = store.impressions_of(recommendation_id)
    assert row is not None, recommendation_id
    return row.items.strip("\n").split("\n")


def test_every_list_answer_is_recorded_with_its_id(client):
    service = client.app.state.service
    answers = {
        "recommendations": client.get("/v1/users/u0_1/recommendations", params={"k": 5, "placement": "cart"}),
        "sessions": client.post("/v1/sessions/recommendations", params={"k": 4, "session_id": "visit-9"},
                                json={"item_ids": ["i1", "i2"]}),
        "similar": client.get("/v1/items/i3/similar", params={"k": 3}),
        "search": client.get("/v1/search", params={"q": "group 1", "k": 3, "user_id": "u1_2"}),
        "popular": client.get("/v1/popular", params={"k": 2}),
    }
    bodies = {surface: r.json() for surface, r in answers.items()}
    assert all(r.status_code == 200 for r in answers.values())
    ids = [b["recommendation_id"] for b in bodies.values()]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)
    assert all(b["model_version"] and "variant" not in b for b in bodies.values())  # no experiment here
    service.impressions.flush()  # (the writer thread may have stored some already)
    for surface, body in bodies.items():
        row = service.store.impressions_of(body["recommendation_id"])
        assert row.surface == surface and row.model_version == body["model_version"]
        assert shown(service.store, body["recommendation_id"]) == [it["item_id"] for it in body["items"]]
    by_surface = {s: service.store.impressions_of(b["recommendation_id"]) for s, b in bodies.items()}
    assert by_surface["recommendations"].placement == "cart" and by_surface["recommendations"].user_id == "u0_1"
    assert by_surface["sessions"].session_id == "visit-9" and by_surface["sessions"].user_id is None
    assert by_surface["search"].user_id == "u1_2" and by_surface["popular"].placement == "home"


def test_impressions_queued_at_shutdown_are_stored(run_link, tmp_path):
    database = f"sqlite:///{tmp_path / 'store.db'}"
    # a writer that would not flush by itself for an hour: only the shutdown stores them
    settings = make_settings(run_link, database, impression_flush_s=3600)
    with TestClient(create_app(settings), headers=auth()) as c:
        ids = [c.get("/v1/popular", params={"k": 3}).json()["recommendation_id"] for _ in range(7)]
        assert c.app.state.service.impressions.pending == 7
    store = open_store(database)
    try:
        assert all(store.impressions_of(i) is not None for i in ids)
    finally:
        store.close()


def test_recording_off_stores_nothing_and_answers_still_carry_an_id(run_link, tmp_path):
    database = f"sqlite:///{tmp_path / 'store.db'}"
    with TestClient(create_app(make_settings(run_link, database, record_impressions=False)), headers=auth()) as c:
        rid = c.get("/v1/popular", params={"k": 3}).json()["recommendation_id"]
        assert c.app.state.service.impressions is None
        assert c.app.state.service.store.impressions_of(rid) is None


class BlockedStore:
    """A store whose writes wait until released (a database that stopped answering), counting batches."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.fail = False

    def add_impressions(self, rows):
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            raise ConnectionError("the database is down")
        self.batches.append(len(rows))
        return len(rows)


def record(writer: ImpressionWriter, n: int) -> list[bool]:
    return [writer.record(f"r{i}", "u", None, "home", "popular", "v1", None, None, ["a", "b"]) for i in range(n)]


def test_a_full_queue_drops_and_counts_instead_of_blocking():
    store, metrics = BlockedStore(), Metrics()
    registry = metrics.registry
    writer = ImpressionWriter(store, flush_s=0.01, batch=2, capacity=5, metrics=metrics)
    writer.start()
    try:
        record(writer, 2)  # the writer takes these two and blocks in the store
        assert store.entered.wait(5)
        # the requests go on: 5 more fit the queue, the next 3 are dropped at once (this thread never waits)
        assert record(writer, 8) == [True] * 5 + [False] * 3
        assert registry.get_sample_value("deepshelf_impressions_dropped_total") == 3
    finally:
        store.release.set()
        writer.stop()
    assert sum(store.batches) == 7 and max(store.batches) <= 2  # batches of at most `batch` rows
    assert registry.get_sample_value("deepshelf_impressions_recorded_total") == 7


def test_a_failed_write_keeps_the_rows_for_the_next_try():
    store = BlockedStore()
    store.release.set()
    store.fail = True
    writer = ImpressionWriter(store, flush_s=3600, batch=10, capacity=100)
    record(writer, 3)
    with pytest.raises(ConnectionError):
        writer.flush()
    assert writer.pending == 3
    store.fail = False
    assert writer.flush() == 3 and writer.pending == 0 and store.batches == [3]


class KeptStore:
    def __init__(self):
        self.rows = []

    def add_impressions(self, rows):
        self.rows += rows
        return len(rows)


def test_the_writer_stores_which_items_were_new_and_unknown_when_not_told():
    store = KeptStore()
    writer = ImpressionWriter(store, flush_s=3600, batch=10, capacity=100)
    writer.record("r1", "u", None, "home", "popular", "v1", None, None, ["a", "b", "c"], [False, True, True])
    writer.record("r2", "u", None, "home", "popular", "v1", None, None, ["a"], [False])
    writer.record("r3", "u", None, "home", "popular", "v1", None, None, ["a"])
    assert writer.flush() == 3
    assert [(r.items, r.new_items) for r in store.rows] == [("\na\nb\nc\n", "\nb\nc\n"), ("\na\n", "\n\n"),
                                                            ("\na\n", None)]


def test_new_products_are_recorded_as_the_engine_finds_them_and_reported(client):
    """A product added after training is new for the served run: recorded as new in each list that shows it,
    whatever its reason (the new-arrival slot, a keyword match), and the analytics count it (both stores)."""
    from deepshelf.engine.ranking import is_new

    assert client.put("/v1/items/brand-new", json={"title": "Brand new lamp", "category": "cat0"}).status_code == 200
    assert client.post("/v1/events", json={"events": [{"user_id": "n", "item_id": "i1"}]}).status_code == 200
    bodies = {"recommendations": client.get("/v1/users/n/recommendations", params={"k": 8}).json(),
              "search": client.get("/v1/search", params={"q": "lamp", "k": 3}).json(),
              "popular": client.get("/v1/popular", params={"k": 5}).json()}
    assert bodies["recommendations"]["items"][-1] == {**bodies["recommendations"]["items"][-1],
                                                      "item_id": "brand-new", "reason": "new_arrival"}
    assert [(it["item_id"], it["reason"]) for it in bodies["search"]["items"]] == [("brand-new", "text_match")]
    service = client.app.state.service
    service.impressions.flush()
    state = service.state
    catalog = state.view.snapshot
    slots = new = 0
    for body in bodies.values():
        ids = [it["item_id"] for it in body["items"]]
        expected = [i for i, flag in zip(ids, is_new(state, catalog, catalog.lookup(ids))) if flag]
        row = service.store.impressions_of(body["recommendation_id"])
        assert row.new_items == "\n" + "\n".join(expected) + "\n"
        slots, new = slots + len(ids), new + len(expected)
    assert shown(service.store, bodies["recommendations"]["recommendation_id"])[-1] == "brand-new"
    assert new >= 2 and service.store.impressions_of(bodies["search"]["recommendation_id"]).new_items \
        == "\nbrand-new\n"
    # clicks from the personal list: the new product (viewed, then carted: one clicked item) and an old one
    rid, old = bodies["recommendations"]["recommendation_id"], bodies["recommendations"]["items"][0]["item_id"]
    clicks = [{"user_id": "n", "item_id": "brand-new", "type": "view", "recommendation_id": rid},
              {"user_id": "n", "item_id": "brand-new", "type": "cart", "recommendation_id": rid},
              {"user_id": "n", "item_id": old, "type": "view", "recommendation_id": rid}]
    assert client.post("/v1/events", json={"events": clicks}).status_code == 200
    answer = client.get("/v1/analytics/recommendations")
    assert answer.status_code == 200, answer.text
    total = answer.json()["total"]
    assert total["impressions"] == 3 and total["clicks"] == 1
    assert total["new_products"] == {"impressions": 3, "unknown_impressions": 0, "items_shown": slots,
                                     "new_items_shown": new, "impression_share": new / slots, "items_clicked": 2,
                                     "new_items_clicked": 1, "click_share": 0.5}
