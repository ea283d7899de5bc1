"""ContentModel end to end on a tiny planted catalogue with real encoders, plus the CLI exports."""

from __future__ import annotations


import numpy as np
import polars as pl
import pytest

from deepshelf.content.search import SearchIndex
from deepshelf.content.similar import SimilarIndex
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import Recommender


def test_heldout_products_find_their_twin_by_picture(content_model, planted):
    _, twin = planted
    index = content_model.similar_index
    held = [i for i in index.item_ids if int(i) % 5 == 0]
    rows = index.lookup(held)
    idx, scores = index.similar(rows, k=1, mode="visual", exact=True)
    found = index.item_ids[idx[:, 0]]
    assert found.tolist() == [twin[i] for i in held]
    assert np.isfinite(scores).all()


def test_every_mode_excludes_itself_and_matches_exact(content_model):
    index = content_model.similar_index
    assert index.modes == ["text", "visual", "hybrid"]
    rows = np.arange(len(index))
    for mode in index.modes:
        approx, _ = index.similar(rows, 5, mode)
        exact, _ = index.similar(rows, 5, mode, exact=True)
        assert not (exact == rows[:, None]).any()
        assert (approx == exact).mean() > 0.95


def test_content_metrics_recorded(content_model):
    m = content_model.content_metrics
    assert m["heldout_items"] == 8
    for mode in ("text", "visual", "hybrid", "words_to_pictures"):
        assert set(m[mode]) == {"category", "baseColour"}
    assert m["visual"]["category"] > 0.5  # chance is 0.25


def test_single_id_api_and_errors(content_model):
    index = content_model.similar_index
    ids, scores = index.similar("1", k=3, mode="hybrid")
    assert len(ids) == 3 and "1" not in ids.tolist()
    with pytest.raises(DeepshelfError, match="unknown item id"):
        index.similar("no-such-item", k=3)
    with pytest.raises(DeepshelfError, match="behavior"):
        index.similar("1", k=3, mode="behavior")
    with pytest.raises(DeepshelfError, match="mode"):
        index.similar("1", k=3, mode="smell")


def test_in_stock_mask(content_model):
    index = content_model.similar_index
    in_stock = np.ones(len(index), bool)
    in_stock[1] = False  # product "2", the twin of "1"
    idx, _ = index.similar(np.array([0]), k=5, mode="visual", in_stock=in_stock)
    assert 1 not in idx[0].tolist()


def test_search_words_to_pictures_and_lexical(content_model):
    s = content_model.search_index
    ids, _ = s.search("model 17", k=1, by="hybrid")  # an exact code wins through the lexical term
    assert ids.tolist() == ["17"]
    ids, _ = s.search("red", k=4, by="photo")  # photo vectors only
    titles = dict(zip(s.item_ids.tolist(), s.texts))
    assert sum("Red" in titles[i] for i in ids) >= 2  # chance: 1 in 5
    for bad, msg in (("", "empty"), ("   ", "empty"), ("x" * 10_000, "10,000 characters")):
        with pytest.raises(DeepshelfError, match=msg):
            s.search(bad, k=5)


def test_rerank_by_a_shoppers_model(content_model):
    s = content_model.search_index
    base, _ = s.search_rows("watch", k=10, by="text")

    class Favours:  # a stand-in sequential model that loves product "40"
        item_map = content_model.item_map

        def score(self, histories):
            out = np.zeros((len(histories), len(self.item_map)), np.float32)
            out[:, self.item_map.index("40")] = 100.0
            return out

    ranked, _ = s.search_rows("watch", k=10, by="text", user_history=[0, 1], scorer=Favours(), rerank_weight=5.0)
    assert s.item_ids[ranked[0]] == "40"


def test_indexes_and_metrics_survive_save_load(content_model, tmp_path):
    """Beyond the shared contract's identical scores: the similar and search indexes and the content metrics."""
    content_model.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    a = SimilarIndex.load(tmp_path / "model")
    np.testing.assert_array_equal(a.similar(np.arange(10), 3, "visual")[0],
                                  content_model.similar_index.similar(np.arange(10), 3, "visual")[0])
    s = SearchIndex.load(tmp_path / "model", encoder=content_model.search_index.encoder)
    assert s.search("model 17", k=1)[0].tolist() == ["17"]
    assert loaded.content_metrics == content_model.content_metrics


def test_recommend_more_like_the_last_items(content_model):
    from deepshelf.data.interactions import Histories

    idx, _ = content_model.recommend(Histories.from_lists([[0]]), k=1)  # product "1" -> its twin "2"
    assert content_model.item_map.ids[idx[0, 0]] == "2"


def test_cli_similar_and_search(content_model, tmp_path):
    from typer.testing import CliRunner

    from deepshelf.cli import main as cli
    from deepshelf.runs.artifacts import content_dir, write_run
    from deepshelf.runs.config import TrainConfig

    run = tmp_path / "run"
    write_run(run, TrainConfig(dataset="planted", model="content"), content_model, {}, lambda tmp: None)
    assert (content_dir(run) / "similar.npz").exists()  # where the server looks
    cli._register_command_groups()
    runner = CliRunner()
    res = runner.invoke(cli.app, ["similar", "--run", str(run), "--mode", "visual", "--k", "3",
                                  "--output", str(tmp_path / "sim.csv")])
    assert res.exit_code == 0, res.output
    sim = pl.read_csv(tmp_path / "sim.csv", schema_overrides={"item_id": pl.Utf8, "similar_item_id": pl.Utf8})
    assert sim.columns == ["item_id", "similar_item_id", "rank", "score"]
    assert sim.height == 40 * 3 and (sim["item_id"] != sim["similar_item_id"]).all()
    (tmp_path / "q.tsv").write_text("q1\tred cap\nq2\t\nbroken line\nq3\tmodel 17\n")
    res = runner.invoke(cli.app, ["search", "--run", str(run), "--queries", str(tmp_path / "q.tsv"), "--k", "5",
                                  "--by", "hybrid", "--output", str(tmp_path / "hits.csv")])
    assert res.exit_code == 0, res.output
    hits = pl.read_csv(tmp_path / "hits.csv", schema_overrides={"query_id": pl.Utf8, "item_id": pl.Utf8})
    assert hits.columns == ["query_id", "item_id", "rank", "score"]
    assert set(hits["query_id"]) == {"q1", "q3"}  # the empty query was skipped with a message
    assert hits.filter(pl.col("query_id") == "q3")["item_id"][0] == "17"


def test_fit_with_events_adds_behaviour(planted, tmp_path):
    from deepshelf.data.interactions import Interactions
    from deepshelf.models.content import ContentModel

    catalog, _ = planted
    # Shoppers of group g buy products of one category only: behaviour neighbours share the category.
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(200):
        g = u % 4
        for i in rng.choice(10, size=5, replace=False):
            users.append(f"u{u}")
            items.append(str(g * 10 + i + 1))
    inter = Interactions.from_ids(np.array(users), np.array(items))
    model = ContentModel(cache_dir=str(tmp_path), images=False).fit(inter, catalog)
    index = model.similar_index
    assert "behavior" in index.modes and "visual" not in index.modes
    idx, _ = index.similar(np.arange(len(index)), 3, "behavior", exact=True)
    group = (index.item_ids.astype(int) - 1) // 10
    assert (group[idx] == group[:, None]).mean() > 0.9
    with pytest.raises(DeepshelfError, match="photo alignment"):
        model.search_index.search("red", by="photo")
