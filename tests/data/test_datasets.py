"""Built-in datasets match the published statistics."""

import numpy as np
import polars as pl
import pytest

from deepshelf.data.datasets import dataset_from_frames, load_dataset
from deepshelf.errors import DeepshelfError
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


def test_dataset_from_frames_validates_as_the_file_loaders_do():
    events = pl.DataFrame({"user": ["u", "u", "v"], "item": ["a", "b", "a"], "type": ["view", "purchase", "cart"],
                           "timestamp": [10.0, 20.0, 15.0]})
    catalog = pl.DataFrame({"item": ["a", "b"], "title": ["A", "B"], "price": [1.0, None]})
    ds = dataset_from_frames("shop", events, catalog)
    assert ds.name == "shop" and ds.timestamped and len(ds.interactions) == 3 and ds.interactions.n_users == 2
    assert ds.interactions.timestamp.tolist() == [10, 20, 15] and len(ds.catalog) == 2
    assert dataset_from_frames("shop", events).catalog is None
    with pytest.raises(DeepshelfError, match="shop: row 2, column 'type': unknown event type 'wish'"):
        dataset_from_frames("shop", events.with_columns(pl.Series("type", ["view", "wish", "cart"])))


def test_store_urls_are_not_datasets():
    """The caller (runs.sources.load_source) decides between a store and a dataset; data/ never opens a store."""
    with pytest.raises(DeepshelfError, match="unknown dataset 'sqlite:///shop.db'"):
        load_dataset("sqlite:///shop.db")
