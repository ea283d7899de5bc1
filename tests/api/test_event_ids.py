"""Client event ids never drop an event silently (issue 27, F4), on both stores: an id that names another event
(stored before, or earlier in the batch) is refused for that event and named in `duplicates`, never counted as
accepted; the same event retried is accepted each time and stored once."""

from __future__ import annotations

from contextlib import closing

from deepshelf.storage import Event, open_store
from tests.api.conftest import PUBLIC_KEY, auth


def stored(database: str, event_id: str) -> list[tuple]:
    with closing(open_store(database)) as store:
        return store._read("SELECT user_id, item_id, type FROM events WHERE event_id = ?", (event_id,))


def test_an_id_taken_by_another_event_is_named_not_accepted(client, database):
    real = {"user_id": "buyer", "item_id": "i1", "type": "purchase", "value": 20.0, "event_id": "order-1001"}
    squatter = {"user_id": "someone", "item_id": "i2", "type": "purchase", "event_id": "order-1002"}
    public = {"X-API-Key": PUBLIC_KEY}
    # anyone with the public key claims the next order number first ...
    assert client.post("/v1/events", json={"events": [squatter]}, headers=public).json() == {"accepted": 1}
    # ... and the real event under it is refused by name, not answered "accepted"
    r = client.post("/v1/events", json={"events": [real, {**real, "user_id": "buyer", "event_id": "order-1002"}]},
                    headers=public)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicates": [{"index": 1, "event_id": "order-1002", "reason": "conflict"}]}
    assert stored(database, "order-1002") == [("someone", "i2", "purchase")]
    assert stored(database, "order-1001") == [("buyer", "i1", "purchase")]


def test_a_retry_is_accepted_and_stored_once(client, database):
    batch = {"events": [{"user_id": "r", "item_id": "i1", "event_id": "v-1"},  # no timestamp: the server's
                        {"user_id": "r", "item_id": "i2", "event_id": "v-2", "type": "cart", "session_id": "s"}]}
    answers = [client.post("/v1/events", json=batch, headers=auth()).json() for _ in range(3)]
    assert answers == [{"accepted": 2}] * 3
    assert stored(database, "v-1") == [("r", "i1", "view")] and len(stored(database, "v-2")) == 1


def test_one_id_twice_in_a_batch(client, database):
    same = {"user_id": "t", "item_id": "i1", "event_id": "b-1"}
    other = {"user_id": "t", "item_id": "i9", "event_id": "b-1"}
    r = client.post("/v1/events", json={"events": [same, same, other]}, headers=auth())
    assert r.json() == {"accepted": 1, "duplicates": [{"index": 1, "event_id": "b-1", "reason": "repeated"},
                                                      {"index": 2, "event_id": "b-1", "reason": "conflict"}]}
    assert stored(database, "b-1") == [("t", "i1", "view")]


def test_the_store_reports_each_event(database):
    with closing(open_store(database)) as store:
        store.add_events([Event("a", "i1", "view", 1.0, event_id="x")])
        done = store.ingest_events([Event("a", "i1", "view", 2.0, event_id="x"),  # the same event, a later clock
                                    Event("b", "i1", "view", 2.0, event_id="x"),  # another shopper
                                    Event("a", "i1", "view", 2.0, value=1.0, event_id="x"),  # another value
                                    Event("a", "i1", "view", 2.0)])  # no id: always kept
        assert done.accepted == 2
        assert [(d.index, d.reason) for d in done.duplicates] == [(1, "conflict"), (2, "conflict")]
        assert store.count_events() == 2
