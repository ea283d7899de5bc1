"""Splits on hand-built events: the temporal views (discovery, buy again), the new-item flags, before_test."""

import numpy as np

from deepshelf.data.interactions import Interactions
from deepshelf.data.splits import leave_one_out, temporal

DAY = 86400
# (user, item, day). The newest event is on day 100, so test = days >= 70, validation = days 40..70, train < 40.
EVENTS = [
    ("u1", "A", 1), ("u2", "A", 2), ("u3", "A", 3), ("u2", "B", 4), ("u3", "B", 5), ("u3", "C", 6),
    ("u3", "D", 45),  # validation: D is first sold here
    ("u1", "A", 80),  # test: u1 buys A again (a repeat purchase)
    ("u1", "C", 81),  # test: C is new to u1, but others bought it before
    ("u2", "N", 90), ("u2", "B", 95),  # test: N is first sold in the test period; B again for u2
    ("u4", "A", 100),  # test: a brand-new shopper
]


def events() -> Interactions:
    users, items, days = zip(*EVENTS)
    return Interactions.from_ids(np.array(users), np.array(items), timestamp=np.array(days) * DAY)


def rows_of(inter: Interactions, evalset) -> dict[str, tuple[list[str], list[str]]]:
    """user id -> (history item ids, target item ids)."""
    ids = inter.item_map.ids
    return {inter.user_map.ids[u]: (list(ids[evalset.inputs[r]]), sorted(ids[evalset.targets[r]]))
            for r, u in enumerate(evalset.users)}


def test_discovery_and_buy_again_views_of_the_test_period():
    inter = events()
    split = temporal(inter, test_days=30, valid_days=30)
    assert split.test.exclude_seen and not split.test_again.exclude_seen
    # discovery: only items new to the shopper; u1's repeat purchase of A is no target, u2's B neither
    assert rows_of(inter, split.test) == {"u1": (["A"], ["C"]), "u2": (["A", "B"], ["N"]), "u4": ([], ["A"])}
    # buy again: every item bought in the period, repeats included, from the same histories
    assert rows_of(inter, split.test_again) == {"u1": (["A"], ["A", "C"]), "u2": (["A", "B"], ["B", "N"]),
                                                "u4": ([], ["A"])}
    # validation: scored from the events before day 40; u3 bought only D in it
    assert rows_of(inter, split.valid) == {"u3": (["A", "B", "C"], ["D"])}
    assert rows_of(inter, split.valid_again) == {"u3": (["A", "B", "C"], ["D"])}
    assert split.valid.exclude_seen and not split.valid_again.exclude_seen


def test_new_item_flags_mark_products_first_sold_in_the_period():
    inter = events()
    split = temporal(inter, test_days=30, valid_days=30)
    ids = inter.item_map.ids
    for evalset in (split.test, split.test_again):
        flagged = sorted(ids[evalset.targets.items[evalset.target_slices["new_items"]]])
        assert flagged == ["N"]  # C is new to u1 but was sold before the period: not a new item
        users = inter.user_map.ids[evalset.users[evalset.slices["new_item_targets"]]]
        assert list(users) == ["u2"]
        assert list(inter.user_map.ids[evalset.users[evalset.slices["new_users"]]]) == ["u4"]
    # D is new in the validation period (nobody bought it before day 40)
    assert ids[split.valid.targets.items[split.valid.target_slices["new_items"]]].tolist() == ["D"]


def test_before_test_is_every_event_before_the_test_cut():
    inter = events()
    split = temporal(inter, test_days=30, valid_days=30)

    def triples(x: Interactions) -> list[tuple[str, str, int]]:
        return sorted(zip(x.user_map.ids[x.user], x.item_map.ids[x.item], x.timestamp.tolist()))

    expected = sorted((u, i, d * DAY) for u, i, d in EVENTS if d < 70)
    assert triples(split.before_test) == expected
    assert triples(split.train) == [e for e in expected if e[2] < 40 * DAY]
    assert split.before_test.item_map == inter.item_map and split.before_test.user_map == inter.user_map


def test_leave_one_out_before_test_holds_everything_but_the_test_targets():
    inter = Interactions.from_ids(np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2), np.array(list("wxyzxyzwx")))
    split = leave_one_out(inter)
    assert split.test_again is None and split.valid_again is None
    seq = split.before_test.to_sequences()
    ids = inter.item_map.ids
    # a: w x y z -> z is the test target; b: x y z -> z; c has too few events and keeps both
    assert [list(ids[seq[u]]) for u in range(3)] == [list("wxy"), list("xy"), list("wx")]
    assert len(split.before_test) == len(split.train) + len(split.valid)


def test_select_keeps_target_flags_with_their_targets():
    split = temporal(events(), test_days=30, valid_days=30)
    es = split.test_again
    picked = es.select(np.array([1, 0]))
    for r, src in enumerate([1, 0]):
        start, stop = es.targets.indptr[src], es.targets.indptr[src + 1]
        assert picked.targets[r].tolist() == es.targets[src].tolist()
        lo, hi = picked.targets.indptr[r], picked.targets.indptr[r + 1]
        assert picked.target_slices["new_items"][lo:hi].tolist() == es.target_slices["new_items"][start:stop].tolist()
    assert not picked.exclude_seen
    rows, only_new = es.restrict_targets(es.target_slices["new_items"])
    assert rows.tolist() == [1] and only_new.targets.items.tolist() == [events().item_map.lookup(np.array(["N"]))[0]]
