"""Content-aware SASRec: products with no events are scored from their words, next to similar products."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions

GROUPS = ["running shoes", "red lipstick", "garden hose", "coffee beans"]


@pytest.fixture(scope="module")
def cold_world(tmp_path_factory):
    """4 product groups x 12 items; shoppers stay inside one group; items 10, 11 of each group have no events."""
    rng = np.random.default_rng(0)
    titles = {f"g{g}_{i}": f"{name} model {i}" for g, name in enumerate(GROUPS) for i in range(12)}
    users, items = [], []
    for u in range(240):
        g = u % 4
        for i in rng.choice(10, size=8, replace=False):  # only items 0..9 ever get events
            users.append(f"u{u}")
            items.append(f"g{g}_{i}")
    inter = Interactions.from_ids(np.array(users), np.array(items))
    catalog = Catalog(pl.DataFrame({"item": list(titles), "title": list(titles.values())}))
    from deepshelf.models.sasrec_content import ContentSASRec

    model = ContentSASRec(epochs=15, dim=32, max_len=10, batch_size=64, progress=False, dropout=0.1,
                          id_dropout=0.3, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return model.fit(inter, catalog), inter


def test_cold_items_are_scored_and_land_near_their_group(cold_world):
    model, inter = cold_world
    ids = model.item_map.ids.astype(str)
    assert len(ids) == 48 and inter.n_items == 40  # the table covers the cold products too
    cold = np.array([i.endswith(("_10", "_11")) for i in ids])
    group = np.array([int(i[1]) for i in ids])
    hist = [model.item_map.lookup([f"g{g}_0", f"g{g}_1", f"g{g}_2"]).tolist() for g in range(4)]
    scores = model.score(Histories.from_lists(hist))  # (4, 48)
    assert np.isfinite(scores).all() and (scores[:, cold] != 0).all()
    # For a history in group g, g's cold products outrank every other group's cold products.
    for g in range(4):
        own = scores[g, cold & (group == g)]
        other = scores[g, cold & (group != g)]
        assert own.min() > other.max()


def test_save_load_roundtrip(cold_world, tmp_path, monkeypatch):
    from deepshelf.models import registry
    from deepshelf.models.base import Recommender

    monkeypatch.setitem(registry.MODELS, "sasrec-content", ("deepshelf.models.sasrec_content", "ContentSASRec"))
    model, _ = cold_world
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    h = Histories.from_lists([[0, 1, 2]])
    np.testing.assert_allclose(loaded.score(h), model.score(h), atol=1e-5)


def test_cold_products_borrow_their_text_neighbours_id_vectors(cold_world):
    """impute_cold: warm rows stay untouched; a cold product's id part is its own group's, not another's."""
    model, _ = cold_world
    net = model.network
    ids = model.item_map.ids.astype(str)
    group = np.array([int(i[1]) for i in ids])
    cold = net.warm[1:].numpy() == 0
    imputed = net.imputed[1:].numpy()
    assert cold.sum() == 8 and not imputed[~cold].any() and (np.abs(imputed[cold]).sum(1) > 0).all()
    id_vectors = net.item_embeddings.weight[1:].detach().numpy()
    centres = np.stack([id_vectors[~cold & (group == g)].mean(0) for g in range(4)])
    for row in np.flatnonzero(cold):
        sims = centres @ imputed[row] / np.linalg.norm(centres, axis=1) / np.linalg.norm(imputed[row])
        assert sims.argmax() == group[row]
    model.impute_cold(0)  # k = 0 clears it
    assert not net.imputed.any()
    model.impute_cold(model.config.impute_neighbours)


def test_cold_exposure_takes_the_largest_factor_within_budget(cold_world, monkeypatch):
    """calibrate_cold: validation NDCG falls as the cold scale rises; the last factor within the budget wins and
    the search stops at the first one over it."""
    import math
    from types import SimpleNamespace

    import deepshelf.evaluation.evaluate as ev

    model, _ = cold_world
    log_scale = model.network.log_cold_similarity_scale
    base = log_scale.item()
    tried = []

    def fake_evaluate(m, valid, ks):  # 0.50 at the trained scale, 0.01 less per +0.1 of factor
        factor = math.exp(log_scale.item() - base)
        tried.append(round(factor, 3))
        return SimpleNamespace(metrics={"ndcg@10": 0.5 - 0.1 * (factor - 1)})

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    try:
        chosen = model.calibrate_cold(object(), budget=0.05)  # bound 0.475: 1.2 (0.48) in, 1.3 (0.47) out
        assert chosen == 1.2 and tried == [1.0, 1.1, 1.2, 1.3]
        assert math.exp(log_scale.item() - base) == pytest.approx(1.2)
        log_scale.data.fill_(base)
        tried.clear()  # a reference the caller just measured is not measured again
        assert model.calibrate_cold(object(), budget=0.05, reference=0.5) == 1.2 and tried == [1.1, 1.2, 1.3]
        log_scale.data.fill_(base)
        tried.clear()  # against an id-only model's 0.40: bound 0.38, so 2.0 (0.40) is in and 2.5 (0.35) out
        assert model.calibrate_cold(object(), budget=0.05, reference=0.5, baseline=0.4) == 2.0
        assert tried == [1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5]
    finally:
        log_scale.data.fill_(base)
