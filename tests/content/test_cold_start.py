"""Content-aware SASRec: products with no events are scored from their words, next to similar products."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.splits import EvalSet

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


def test_imputation_temperature_weighs_neighbours_by_softmax_of_their_cosines():
    """Hand-built texts: cold item 4 has cosines 0.8, 0.6, 0 to warm items 1, 2, 3. Temperature 0: weights in
    proportion to the cosine (0.8 : 0.6 over the top two); temperature 0.1: softmax(cos / 0.1); a tiny
    temperature: the nearest neighbour alone."""
    from deepshelf.models.sasrec_content.network import ContentSASRecNetwork

    net = ContentSASRecNetwork(4, content_dim=2, id_dropout=0.0, max_len=4, dim=3, layers=1, heads=1, dropout=0.0)
    with torch.no_grad():
        net.content.copy_(torch.tensor([[0, 0], [0.8, 0.6], [0.6, 0.8], [-0.6, 0.8], [1.0, 0.0]]))
        net.warm.copy_(torch.tensor([0.0, 1, 1, 1, 0]))
        net.item_embeddings.weight.copy_(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [5, 5, 5]]))
    net.impute_cold(2)
    torch.testing.assert_close(net.imputed[4], torch.tensor([0.8, 0.6, 0]) / 1.4)
    net.impute_cold(2, temperature=0.1)
    w = 1 / (1 + np.exp(-2.0))  # softmax of (8, 6): e^8 / (e^8 + e^6)
    torch.testing.assert_close(net.imputed[4], torch.tensor([w, 1 - w, 0], dtype=torch.float32))
    net.impute_cold(3, temperature=1e-3)
    torch.testing.assert_close(net.imputed[4], torch.tensor([1.0, 0, 0]))
    assert not net.imputed[:4].any()  # warm rows and padding keep no imputed part


def cold_target_cases(model, inter, n: int = 80) -> EvalSet:
    """Shoppers of the cold world whose next product is one of their group's products without events: the
    history is their events, the target a cold product of their group (what their words say they buy)."""
    ids = model.item_map.ids.astype(str)
    rng = np.random.default_rng(1)
    hist, targets = [], []
    for u in range(n):
        items = inter.item[inter.user == u]
        g = int(ids[items[0]][1])
        hist.append(items.tolist())
        targets.append([int(model.item_map.lookup([f"g{g}_{10 + rng.integers(2)}"])[0])])
    return EvalSet(np.arange(n), Histories.from_lists(hist), Histories.from_lists(targets))


@pytest.fixture
def restored(cold_world):
    """The cold world's model, its network and config put back as they were after the test."""
    model, _ = cold_world
    saved = {k: v.clone() for k, v in model.network.state_dict().items()}
    config, factor = model.config, model.cold_factor
    yield model
    model.network.load_state_dict(saved)
    model.config, model.cold_factor = config, factor


def test_the_kept_item_table_follows_every_change_of_the_network(cold_world, restored):
    """Scoring keeps the projected item table between calls (the content model projects every product's text to
    build it) and builds it again after any in-place change of a weight or buffer, as calibration and imputation
    make: scores always equal those of a freshly built table."""
    model = restored
    net = model.network
    h = Histories.from_lists([[0, 1, 2], [5], [13, 14]])

    def fresh():  # the table built now, as before it was kept
        with torch.no_grad():
            states = model.query_vectors(h)
            return states @ net.eval().output_embeddings.numpy().T

    first = model.score(h)
    table = model._output_table()
    assert model._output_table() is table  # kept
    np.testing.assert_allclose(first, fresh(), rtol=1e-5, atol=1e-6)
    for change in (lambda: net.cold_bias.fill_(3.0), lambda: net.imputed.zero_(),
                   lambda: net.item_embeddings.weight.mul_(2.0)):
        with torch.no_grad():
            change()
        after = model.score(h)
        assert not np.allclose(after, first)
        np.testing.assert_allclose(after, fresh(), rtol=1e-5, atol=1e-6)
        first = after


def test_served_input_embeddings_are_the_item_tables_rows(cold_world, restored):
    """Scoring embeds a history's items without building the whole item table (which projects every product's
    text): the same vectors as the table's rows, padding zero, warm and cold products alike."""
    net = restored.network.eval()
    cold = int(np.flatnonzero(net.warm[1:].numpy() == 0)[0]) + 1
    items = torch.tensor([[0, 0, 3, cold], [5, 1, 2, 7]])
    with torch.no_grad():
        torch.testing.assert_close(net.embed_items(items), F.embedding(items, net.item_table()), rtol=1e-5, atol=1e-6)
        assert net.embed_items(items)[0, :2].abs().sum() == 0


def test_an_item_table_past_the_bound_is_built_per_call(cold_world, restored, monkeypatch):
    """A large catalogue's content table is not kept beside the weights: built per call, the same scores."""
    import deepshelf.models.sasrec.estimator as estimator

    model = restored
    h = Histories.from_lists([[0, 1, 2], [5]])
    kept = model.score(h)
    monkeypatch.setattr(estimator, "KEEP_TABLE_BYTES", 0)
    model._forget_table()
    assert model._output_table() is not model._output_table()
    np.testing.assert_allclose(model.score(h), kept, rtol=1e-6, atol=1e-6)


def test_validation_during_training_scores_each_epochs_weights(cold_world, tmp_path):
    """Training steps (a fused optimizer, which moves no version counter) change what validation scores: each
    epoch's validation sees that epoch's weights, not the table kept from the first."""
    from deepshelf.models.base import Validation
    from deepshelf.models.sasrec_content import ContentSASRec

    model0, inter = cold_world
    h = Histories.from_lists([[0, 1, 2]])
    seen = []

    def measure(model, evalset):
        with torch.no_grad():
            fresh = model.query_vectors(h) @ model.network.eval().output_embeddings.numpy().T
        scores = model.score(h)
        np.testing.assert_allclose(scores, fresh, rtol=1e-5, atol=1e-6)
        seen.append(scores)
        return float(len(seen))  # better every epoch: training runs all of them

    catalog = Catalog(pl.DataFrame({"item": inter.item_map.ids.astype(str).tolist(),
                                    "title": inter.item_map.ids.astype(str).tolist()}))
    ContentSASRec(epochs=3, dim=16, max_len=10, batch_size=64, progress=False,
                  cache_dir=str(tmp_path)).fit(inter, catalog, Validation(cold_target_cases(model0, inter, 8), measure))
    assert len(seen) >= 3 and not np.allclose(seen[0], seen[2])  # 3 epochs, then the cold calibration


def test_history_text_is_the_recency_weighted_mean_and_ignores_padding(cold_world, restored):
    net = restored.network
    net.recency.fill_(0.5)
    content = net.content
    padded = torch.tensor([[0, 0, 3, 7, 9], [0, 0, 0, 0, 9]])
    got = net.history_text(padded)[:, -1]
    expected = (0.25 * content[3] + 0.5 * content[7] + 1.0 * content[9]) / 1.75  # by hand: 0.5 ** age
    torch.testing.assert_close(got[0], expected)
    torch.testing.assert_close(got[1], content[9])
    torch.testing.assert_close(net.history_text(padded[:, 2:])[:, -1], got)  # less padding, same vectors
    net.recency.fill_(0.0)  # the newest item alone
    torch.testing.assert_close(net.history_text(padded)[0, -1], content[9])


def test_cold_columns_keep_the_serving_promises(cold_world, restored, tmp_path):
    """With every cold-scoring part on: a dot product (VectorScorer), a batch scores as its rows one at a time,
    products with events keep their scores, and a save/load round trip gives identical scores."""
    from deepshelf.models.base import Recommender
    from deepshelf.models.sasrec_content.calibration import apply
    from deepshelf.models.sasrec_content.coldsearch import ColdSetting

    model = restored
    h = Histories.from_lists([[0, 1, 2], [5], [7, 7, 3, 40, 41, 2]])
    before = model.score(h)
    apply(model, model.config.impute_neighbours, ColdSetting(alpha=0.5, factor=2.0, weight=8.0, recency=0.5, bias=1.5))
    assert model.network.cold_columns
    scores = model.score(h)
    warm = model.network.warm[1:].numpy() > 0
    np.testing.assert_allclose(scores[:, warm], before[:, warm], rtol=1e-5, atol=1e-5)
    assert np.abs(scores[:, ~warm] - before[:, ~warm]).min() > 1e-3
    np.testing.assert_allclose(model.query_vectors(h) @ model.item_vectors().T, scores, rtol=1e-5, atol=1e-4)
    for row in range(len(h)):
        np.testing.assert_allclose(model.score(h.select([row]))[0], scores[row], rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(h), scores)


def test_cold_search_agrees_with_recommend(cold_world, restored):
    """The search's fast NDCG@10 (one scoring pass, then sums and merges of top-10 lists) against the full
    `recommend()` path with each setting put into the model, on cold and on warm targets."""
    from deepshelf.data.splits import leave_one_out
    from deepshelf.evaluation.evaluate import validation
    from deepshelf.models.sasrec_content import coldsearch
    from deepshelf.models.sasrec_content.calibration import apply
    from deepshelf.models.sasrec_content.coldsearch import ColdSetting

    model, inter = cold_world
    net = model.network
    base = net.log_cold_similarity_scale.item()
    cold = np.flatnonzero(net.warm[1:].numpy() == 0)
    settings = [ColdSetting(1.0, 1.0, 0.0, 0.0, 0.0), ColdSetting(0.5, 2.0, 8.0, 0.5, 1.3),
                ColdSetting(0.0, 0.5, 16.0, 0.0, -2.0), ColdSetting(1.0, 1.0, 4.0, 0.8, 6.0)]
    seen_values = set()
    for cases in (cold_target_cases(model, inter), leave_one_out(inter).valid):
        model.impute_cold(3)
        pool = coldsearch.build_pool(model, cases, cold, (0.0, 0.5, 0.8))
        measure = validation(cases)
        for s in settings:
            fast = pool.ndcg(pool.group_top(s), s.bias)
            apply(model, 3, s, base)
            assert fast == pytest.approx(measure(model), abs=1e-6), s
            seen_values.add(round(fast, 4))
            apply(model, 3, ColdSetting(1.0, 1.0, 0.0, 0.0, 0.0), base)
    assert len(seen_values) >= 4  # the settings rank differently: the comparison is not of constants


@pytest.fixture(scope="module")
def chain_world(tmp_path_factory):
    """6 product groups, each a line of 12 products with events bought in order (a shopper buys 6 in a row from
    a random start: the next product with events is predictable) and 3 products without events whose words
    name the group. Returns (model, the cases whose target is one of their group's products without events)."""
    words = ["running shoes", "red lipstick", "garden hose", "coffee beans", "dog leash", "wool scarf"]
    rng = np.random.default_rng(0)
    titles = {f"g{g}_{i}": f"{name} item {i}" for g, name in enumerate(words) for i in range(15)}
    users, items, cases = [], [], []
    for u in range(360):
        g, start = u % 6, rng.integers(7)
        for i in range(start, start + 6):
            users.append(f"u{u}")
            items.append(f"g{g}_{i}")
    inter = Interactions.from_ids(np.array(users), np.array(items))
    catalog = Catalog(pl.DataFrame({"item": list(titles), "title": list(titles.values())}))
    from deepshelf.models.sasrec_content import ContentSASRec

    model = ContentSASRec(epochs=30, dim=32, max_len=8, batch_size=64, progress=False, dropout=0.1, id_dropout=0.2,
                          cache_dir=str(tmp_path_factory.mktemp("cache"))).fit(inter, catalog)
    hist, targets = [], []
    for u in range(0, 360, 3):  # a shopper's six products, then one of the group's products without events
        g = u % 6
        hist.append(model.item_map.lookup([items[j] for j in range(6 * u, 6 * u + 6)]).tolist())
        targets.append(model.item_map.lookup([f"g{g}_{12 + rng.integers(3)}"]).tolist())
    cases = EvalSet(np.arange(len(hist)), Histories.from_lists(hist), Histories.from_lists(targets))
    return model, inter, cases


def test_cold_calibration_recovers_who_buys_the_cold_products(chain_world):
    """Planted: the group is in the products' words, and products without events are bought by the group's
    shoppers. Calibrated on pseudo-cold validation targets alone, the model puts them in those shoppers' top 10
    and nearer its top than the trained scoring does (measured: NDCG@10 0.43 -> 0.58), within its budget on the
    warm validation targets."""
    from deepshelf.data.splits import leave_one_out
    from deepshelf.evaluation.evaluate import evaluate, validation

    model, inter, cases = chain_world
    valid = validation(leave_one_out(inter).valid)
    trained = evaluate(model, cases, (10,)).metrics
    trained_warm = valid(model)
    model.calibrate_cold(valid, 0.05, pseudo_share=0.3)
    calibrated = evaluate(model, cases, (10,)).metrics
    assert calibrated["hr@10"] >= 0.95 and calibrated["ndcg@10"] >= trained["ndcg@10"] + 0.1
    assert valid(model) >= 0.95 * trained_warm - 1e-9


def test_cold_calibration_leaves_the_chosen_setting_in_place(cold_world, restored):
    """The choice is one of the candidates, the pseudo-cold products get their events back, and the cold
    products' id vectors are exactly those of the chosen neighbour count and temperature."""
    from deepshelf.data.splits import leave_one_out
    from deepshelf.evaluation.evaluate import validation

    model, inter = cold_world
    net = model.network
    warm = net.warm.clone()
    k, s = model.calibrate_cold(validation(leave_one_out(inter).valid), 0.05, neighbours=(1, 3), factors=(1.0, 2.0),
                                pseudo_share=0.3, temperatures=(0.0, 0.05))
    assert k in (1, 3) and s.factor in (1.0, 2.0) and model.config.impute_neighbours == k
    assert model.config.impute_temperature in (0.0, 0.05)
    assert torch.equal(net.warm, warm)
    assert (float(net.cold_bias), float(net.cold_sequence_weight), float(net.recency)) == pytest.approx(
        (s.bias, s.weight, s.recency))
    chosen = net.imputed.clone()
    model.impute_cold(k)
    assert torch.equal(net.imputed, chosen)


def test_interrupted_cold_calibration_leaves_the_model_as_it_was(cold_world, restored, monkeypatch):
    from deepshelf.data.splits import leave_one_out
    from deepshelf.evaluation.evaluate import validation
    from deepshelf.models.sasrec_content import coldsearch

    model, inter = cold_world
    net = model.network
    net.cold_bias.fill_(0.7)  # a setting in place before the search
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    real, calls = coldsearch.build_pool, []

    def failing(m, evalset, group, *args, **kwargs):  # fails on the first pseudo-cold pool, products made cold
        calls.append(int((net.warm[1:] == 0).sum()))
        if calls[-1] > 8:
            raise KeyboardInterrupt
        return real(m, evalset, group, *args, **kwargs)

    monkeypatch.setattr(coldsearch, "build_pool", failing)
    with pytest.raises(KeyboardInterrupt):
        model.calibrate_cold(validation(leave_one_out(inter).valid), 0.5, neighbours=(3,), pseudo_share=0.3)
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
