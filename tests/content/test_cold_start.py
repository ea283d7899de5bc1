"""Content-aware SASRec: products with no events are scored from their words, next to similar products."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

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


def test_cold_products_score_the_same_after_load(cold_world, tmp_path):
    """The shared contract's save/load check has no products without events; here their imputed id vectors and
    raised text similarity must come back too."""
    from deepshelf.models.base import Recommender

    model, _ = cold_world
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    cold = np.flatnonzero(loaded.network.warm[1:].numpy() == 0)
    assert len(cold) == 8 and loaded.network.imputed[1:][cold].abs().sum() > 0
    h = Histories.from_lists([[0, 1, 2], [5]])
    np.testing.assert_array_equal(loaded.score(h), model.score(h))


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


def test_cold_calibration_picks_the_best_pseudo_cold_ranking_within_budget(cold_world, monkeypatch):
    """calibrate_cold, with a stubbed evaluation: validation NDCG (warm targets) falls as the cold factor rises
    and differs by neighbour count; each count stops at its first factor over budget; among the settings within
    budget, the best NDCG on pseudo-cold targets (products with events scored as if they had none) wins."""
    import math

    from deepshelf.data.splits import leave_one_out
    from deepshelf.models.base import Validation

    model, inter = cold_world
    net = model.network
    valid = leave_one_out(inter).valid
    log_scale = net.log_cold_similarity_scale
    base, warm_before, imputed_before = log_scale.item(), net.warm.clone(), net.imputed.clone()
    factor_before = model.cold_factor
    state = {"k": None}
    real_impute = model.impute_cold

    def impute(k):
        state["k"] = k
        real_impute(k)

    tried = []
    penalty, bonus = {1: 0.03, 3: 0.015, 10: 0.0}, {1: 0.0, 3: 0.07, 10: 0.0}

    def fake_ndcg(m, evalset):
        f, k = round(math.exp(log_scale.item() - base), 3), state["k"]
        n_cold = int((net.warm[1:] == 0).sum())
        if n_cold > 8:  # pseudo-cold: some products with events are scored as cold, on their cases only
            cold_now = np.flatnonzero((net.warm[1:] == 0).numpy())
            assert len(evalset) < len(valid) and np.isin(evalset.targets.items, cold_now).all()
            return 0.1 * f + bonus[k]
        tried.append((k, f))
        return 0.5 - 0.08 * (f - 1) - penalty[k]

    stub = Validation(valid, fake_ndcg)
    monkeypatch.setattr(model, "impute_cold", impute)
    factors = (1.0, 1.5, 2.0, 3.0)
    try:
        # budget 10% of 0.5: floor 0.45. Within it: k=10 at x1, x1.5 (0.46); k=3 and k=1 at x1 only.
        # Pseudo-cold: k=3 x1 scores 0.17 against k=10 x1.5's 0.15.
        assert model.calibrate_cold(stub, 0.1, factors=factors, reference=0.5, pseudo_share=0.3) == (3, 1.0)
        # the reference the caller just measured stands for the trained setting (10 neighbours, x1)
        assert tried == [(1, 1.0), (1, 1.5), (3, 1.0), (3, 1.5), (10, 1.5), (10, 2.0)]
        assert model.config.impute_neighbours == 3 and state["k"] == 3 and model.cold_factor == 1.0
        assert log_scale.item() == pytest.approx(base)
        assert torch.equal(net.warm, warm_before)  # the pseudo-cold products got their events back
        # Against an id-only model's 0.40: floor 0.38; x2 is within budget for every k, x3 for none; k=3 x2 wins.
        tried.clear()
        assert model.calibrate_cold(stub, 0.05, factors=factors, baseline=0.4, pseudo_share=0.3) == (3, 2.0)
        assert math.exp(log_scale.item() - base) == pytest.approx(2.0)
    finally:
        log_scale.data.fill_(base)
        net.warm.copy_(warm_before)
        net.imputed.copy_(imputed_before)
        model.config = model.config.model_copy(update={"impute_neighbours": 10})
        model.cold_factor = factor_before


def test_cold_calibration_on_real_validation_leaves_the_chosen_setting_in_place(cold_world):
    """Unstubbed: the choice is one of the candidates, the pseudo-cold products get their events back, and the
    cold products' id vectors are exactly those of the chosen neighbour count."""
    from deepshelf.data.splits import leave_one_out
    from deepshelf.evaluation.evaluate import validation

    model, inter = cold_world
    net = model.network
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    config, factor = model.config, model.cold_factor
    try:
        k, f = model.calibrate_cold(validation(leave_one_out(inter).valid), 0.05, neighbours=(1, 3), factors=(1.0, 2.0),
                                    pseudo_share=0.3)
        assert k in (1, 3) and f in (1.0, 2.0) and model.config.impute_neighbours == k
        assert torch.equal(net.warm, saved["warm"])
        chosen = net.imputed.clone()
        model.impute_cold(k)
        assert torch.equal(net.imputed, chosen)
    finally:
        net.load_state_dict(saved)
        model.config, model.cold_factor = config, factor


def test_interrupted_cold_calibration_leaves_the_model_as_it_was(cold_world):
    from deepshelf.data.splits import leave_one_out
    from deepshelf.evaluation.evaluate import validation
    from deepshelf.models.base import Validation

    model, inter = cold_world
    net = model.network
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    real, calls = validation(leave_one_out(inter).valid), []

    def failing_ndcg(m, evalset):  # fails on the first pseudo-cold scoring, with products made cold
        calls.append(int((net.warm[1:] == 0).sum()))
        if calls[-1] > 8:
            raise KeyboardInterrupt
        return real(m, evalset)

    with pytest.raises(KeyboardInterrupt):
        model.calibrate_cold(Validation(real.evalset, failing_ndcg), 0.5, neighbours=(3,), factors=(1.0, 2.0),
                             pseudo_share=0.3)
    assert calls[-1] > 8  # it did fail half-way
    for key, value in saved.items():
        assert torch.equal(net.state_dict()[key], value), key


def test_content_network_takes_the_block_options():
    """The content model builds its network with the SASRec block options it is given."""
    from deepshelf.models.sasrec_content import ContentSASRec

    model = ContentSASRec(dim=16, max_len=8, norm="query", scale_items=True, attn_dropout=0.1)
    model.item_map = Interactions.from_ids(np.array(["u", "u", "u"]), np.array(["a", "b", "c"])).item_map
    net = model._build(3)
    assert net.blocks[0].norm == "query" and net.item_scale == 4.0 and net.blocks[0].attn.dropout == 0.1
