"""Built-in datasets match the published statistics."""

import numpy as np

from deepshelf.data.datasets import load_dataset
from deepshelf.data.splits import leave_one_out, temporal


def test_ml_1m_counts(data_dir):
    inter = load_dataset("ml-1m").interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (6040, 3416, 999611)


def test_beauty_counts_and_titles(data_dir):
    ds = load_dataset("beauty")
    inter = ds.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (22363, 12101, 198502)
    assert len(ds.catalog) == 12101 and (ds.catalog.table["title"] != "").sum() >= 12094


def test_online_retail_is_clean_purchases():
    ds = load_dataset("online-retail")  # bundled in the package: no data dir needed
    inter = ds.interactions
    assert inter.n_users > 4000 and inter.n_items > 3000 and len(inter) > 300_000
    assert not any(i.startswith(("POST", "C2", "M")) for i in inter.item_map.ids[:50])
    titles = ds.catalog.column_for(inter.item_map, "title", fill="")
    assert (titles != "").mean() > 0.99
    assert ds.timestamped


def test_leave_one_out_split(data_dir):
    inter = load_dataset("ml-1m").interactions
    split = leave_one_out(inter)
    assert len(split.test) == 6040 and len(split.train) == 999611 - 2 * 6040
    seq = inter.to_sequences()
    u = 17
    full = list(seq[split.test.users[u]])
    assert list(split.test.inputs[u]) == full[:-1] and split.test.targets[u].tolist() == [full[-1]]
    assert list(split.valid.inputs[u]) == full[:-2] and split.valid.targets[u].tolist() == [full[-2]]


def test_temporal_split_has_no_leak():
    inter = load_dataset("online-retail").interactions
    split = temporal(inter, test_days=30, valid_days=30)
    cut = inter.timestamp.max() - 30 * 86400
    assert split.train.timestamp.max() < cut - 30 * 86400 + 1
    # targets are never already in the input history (seen items are excluded from ranking)
    for u in range(0, len(split.test), 97):
        assert not set(split.test.targets[u]) & set(split.test.inputs[u])
    assert split.test.slices["new_users"].any() and split.test.slices["warm_users"].any()
    assert np.all(split.test.targets.lengths >= 1)
