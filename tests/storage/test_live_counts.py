"""Live trending counts (`Store.live_item_counts`): kept up to date between calls from the events stored since,
they must answer what a fresh aggregation (`Store.item_counts`) answers, through new events, a window that moves
on, ties, and erasures made by this store object or by another process's."""

from __future__ import annotations

import random

import pytest

from deepshelf.storage import Event, open_store

WEIGHTS = {"view": 1.0, "cart": 2.0, "purchase": 4.0, "search": 0.0}


@pytest.fixture
def store(database):
    s = open_store(database)
    yield s
    s.close()


def events(rng: random.Random, n: int, t0: float, t1: float, users: int = 30, items: int = 40) -> list[Event]:
    kinds = ["view", "view", "view", "cart", "purchase", "search"]
    return [Event(f"u{rng.randrange(users)}", f"i{rng.randrange(items)}", rng.choice(kinds), rng.uniform(t0, t1))
            for _ in range(n)]


def live(store, since: float, limit: int = 15):
    return store.live_item_counts("trending", since, WEIGHTS, limit)


def test_live_counts_equal_a_fresh_aggregation_as_events_arrive_and_the_window_moves(store):
    rng = random.Random(0)
    store.add_events(events(rng, 400, 0.0, 1000.0))
    since = 300.0
    for step in range(8):
        assert live(store, since) == store.item_counts(since, WEIGHTS, 15), step
        # new events: some inside the window, some older than it (they never count), some far ahead
        store.add_events(events(rng, 60, since - 200, since + 900))
        since += rng.choice([0.0, 25.0, 80.0])
    assert live(store, since, 1000) == store.item_counts(since, WEIGHTS, 1000)  # every item, ties by id
    # ties: equal weights are ordered by item id, and the limit cuts inside a tie as SQL's ORDER BY ... LIMIT does
    store.add_events([Event("t", f"tie{k}", "view", 5000.0) for k in (3, 1, 2)])
    assert live(store, 4000.0, 2) == store.item_counts(4000.0, WEIGHTS, 2) == [("tie1", 1.0), ("tie2", 1.0)]


def test_an_erasure_restarts_the_counts_here_and_in_another_process(database, store):
    rng = random.Random(1)
    store.add_events(events(rng, 200, 0.0, 100.0) + [Event("gone", "only-theirs", "purchase", 50.0)] * 3)
    assert dict(live(store, 0.0, 100))["only-theirs"] == 12.0
    other = open_store(database)  # another server process on the same store
    try:
        assert dict(other.live_item_counts("trending", 0.0, WEIGHTS, 100))["only-theirs"] == 12.0
        store.erase_user("gone")
        # the erasing store object and the other one both count again: the erased events no longer weigh
        assert "only-theirs" not in dict(live(store, 0.0, 100))
        assert "only-theirs" not in dict(other.live_item_counts("trending", 0.0, WEIGHTS, 100))
        assert other.live_item_counts("trending", 0.0, WEIGHTS, 100) == store.item_counts(0.0, WEIGHTS, 100)
    finally:
        other.close()


def test_sqlite_adds_only_the_new_events_between_calls(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        rng = random.Random(2)
        store.add_events(events(rng, 100, 0.0, 100.0))
        live(store, 10.0)
        store.add_events(events(rng, 50, 50.0, 150.0))
        assert live(store, 20.0) == store.item_counts(20.0, WEIGHTS, 15)
        counts = next(iter(store._live_counts.values()))
        assert counts.full_aggregations == 1  # the second call read only what changed
        assert live(store, 5.0) == store.item_counts(5.0, WEIGHTS, 15)  # a window moved back: aggregated again
        assert counts.full_aggregations == 2
    finally:
        store.close()
