"""IdMap, Interactions and Histories: mapping, validation, conversions against simple references."""

import numpy as np
import pytest

from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.schema import EventType


def test_idmap_first_appearance_and_unknown(tmp_path):
    m, codes = IdMap.from_values(["b", "a", "b", "c"])
    assert list(m.ids) == ["b", "a", "c"] and codes.tolist() == [0, 1, 0, 2]
    assert m.lookup(["c", "zzz"]).tolist() == [2, -1]
    with pytest.raises(KeyError):
        m.index("zzz")
    m.save(tmp_path / "ids.npy")
    assert IdMap.load(tmp_path / "ids.npy") == m
    assert list(m.extend(["a", "d"]).ids) == ["b", "a", "c", "d"]


def test_interactions_validate():
    m = IdMap(["a", "b"])
    with pytest.raises(ValueError, match="out of range"):
        Interactions(np.array([0, 5]), np.array([0, 1]), m, m)
    with pytest.raises(ValueError, match="rows"):
        Interactions(np.array([0, 1]), np.array([0]), m, m)


def test_sequences_in_time_order_and_truncated():
    inter = Interactions.from_ids(np.array(["u1", "u2", "u1", "u1"]), np.array(["x", "y", "z", "y"]),
                                  timestamp=np.array([30, 5, 10, 20]))
    seq = inter.to_sequences()
    ids = inter.item_map.ids
    assert [list(ids[seq[u]]) for u in range(2)] == [["z", "y", "x"], ["y"]]
    last2 = inter.to_sequences(max_len=2)
    assert [list(ids[last2[u]]) for u in range(2)] == [["y", "x"], ["y"]]


def test_csr_weights_and_type_weights():
    inter = Interactions.from_ids(np.array(["u", "u", "u"]), np.array(["a", "a", "b"]),
                                  type=np.array([EventType.VIEW, EventType.PURCHASE, EventType.CART]))
    weighted = inter.with_type_weights()
    dense = weighted.to_csr().toarray()
    assert dense.tolist() == [[1.0 + 4.0, 2.0]]
    assert inter.to_csr(binary=True).toarray().tolist() == [[1.0, 1.0]]
    assert inter.with_type_weights({"view": 0.5}).to_csr().toarray()[0, 0] == 4.5


def test_histories_windows_hand_computed():
    h = Histories.from_lists([[1, 2, 3, 4, 5, 6, 7], [8], [9, 10], [11, 12, 13], []],
                             types=[[0] * 7, [1], [2, 2], [1, 0, 2], []])
    w = h.windows(3)
    # 7 items: targets 2..7 in windows of 2 targets each, newest first; one item or none: no window
    assert [w[b].tolist() for b in range(len(w))] == [[5, 6, 7], [3, 4, 5], [1, 2, 3], [9, 10], [11, 12, 13]]
    assert w.types.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 1, 0, 2]


def test_histories_windows_cover_every_target_once():
    rng = np.random.default_rng(1)
    lists = [list(rng.integers(0, 1000, size=rng.integers(0, 40))) for _ in range(60)]
    for size in (2, 5, 16, 64):
        w = Histories.from_lists(lists).windows(size)
        assert (w.lengths >= 2).all() and (w.lengths <= size).all()
        # (previous item, target) pairs over all windows == those of the full rows, each exactly once
        pairs = sorted((int(w[b][t - 1]), int(w[b][t])) for b in range(len(w)) for t in range(1, len(w[b])))
        full = sorted((int(x[t - 1]), int(x[t])) for x in lists for t in range(1, len(x)))
        assert pairs == full
    with pytest.raises(ValueError, match="window size"):
        Histories.from_lists(lists).windows(1)


def test_histories_padded_select_against_reference():
    rng = np.random.default_rng(0)
    lists = [list(rng.integers(0, 50, size=rng.integers(0, 9))) for _ in range(40)]
    h = Histories.from_lists(lists)
    padded = h.padded(5)
    for row, items in zip(padded, lists):
        tail = [i + 1 for i in items[-5:]]
        assert row.tolist() == [0] * (5 - len(tail)) + tail
    rows = np.array([3, 0, 17, 17])
    sub = h.select(rows)
    assert [list(sub[b]) for b in range(4)] == [lists[r] for r in rows]
    dense = h.to_csr(50).toarray()
    for b, items in enumerate(lists):
        assert dense[b].sum() == len(items)


def test_to_csr_leaves_the_histories_unchanged_when_items_repeat():
    """scipy's sum_duplicates sorts and compacts in place: the batch's own rows must not be the ones it rewrites."""
    hist = Histories.from_lists([[5, 3, 5, 1], [2, 2, 4]])
    m = hist.to_csr(10)
    assert hist[0].tolist() == [5, 3, 5, 1] and hist[1].tolist() == [2, 2, 4]
    assert hist.indptr.tolist() == [0, 4, 7]
    assert m.toarray()[0, 5] == 2 and m.toarray()[1, 2] == 2 and m.toarray()[1, 4] == 1


def test_first_occurrences_drop_repeats_and_keep_order_and_columns():
    h = Histories.from_lists([[1, 2, 1, 3, 2], [], [5, 5], [4]], types=[[0, 1, 2, 0, 1], [], [2, 0], [1]],
                             timestamps=[[1, 2, 3, 4, 5], [], [6, 7], [8]])
    f = h.first_occurrences()
    assert [f[b].tolist() for b in range(len(f))] == [[1, 2, 3], [], [5], [4]]
    assert f.types.tolist() == [0, 1, 0, 2, 1] and f.timestamps.tolist() == [1, 2, 4, 6, 8]
    assert Histories.from_lists([]).first_occurrences().indptr.tolist() == [0]


def test_newest_keeps_each_rows_last_items():
    h = Histories.from_lists([[1, 2, 3], [4], []]).newest(2)
    assert [h[b].tolist() for b in range(len(h))] == [[2, 3], [4], []]
