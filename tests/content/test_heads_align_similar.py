"""Heads, alignment and the similar-products index on synthetic vectors with planted structure (no encoders)."""

from __future__ import annotations

import numpy as np
import pytest

from deepshelf.content.align import AlignConfig, train_alignment
from deepshelf.content.heads import HeadConfig, Projection, combine, encode_labels, train_attribute_heads
from deepshelf.content.quality import attribute_precision, heldout_mask
from deepshelf.content.similar import SimilarIndex, behaviour_vectors
from deepshelf.errors import DeepshelfError


def planted_features(n=600, classes=6, d=48, noise=0.3, seed=0):
    """Features where the class is a weak direction buried in larger nuisance variation."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d))
    nuisance = rng.normal(size=(8, d))  # shape-like variation unrelated to the class
    x = centres[y] + rng.normal(size=(n, 8)) @ nuisance + noise * rng.normal(size=(n, d))
    return x.astype(np.float32), y


def test_heldout_mask():
    assert heldout_mask(["5", "10", "11", "14"]).tolist() == [True, True, False, False]
    assert heldout_mask(["abc", "abc"]).tolist()[0] == heldout_mask(["abc"]).tolist()[0]  # stable


def test_heads_beat_raw_features_on_heldout_rows():
    x, y = planted_features()
    held = np.arange(len(x)) % 5 == 0
    codes, names = encode_labels(y.astype(str), ~held)
    heads = train_attribute_heads(x, {"cls": codes}, ~held, HeadConfig(hidden=64, dim=16, epochs=30))
    tuned = heads["cls"](x)
    q = np.flatnonzero(held)
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    p_raw = attribute_precision(raw[q], q, raw, {"cls": y}, 10)["cls"]
    p_tuned = attribute_precision(tuned[q], q, tuned, {"cls": y}, 10)["cls"]
    assert p_raw < 0.5 and p_tuned > 0.85


def test_projection_state_roundtrip():
    rng = np.random.default_rng(0)
    p = Projection(np.zeros(4, np.float32), np.ones(4, np.float32), rng.normal(size=(4, 8)).astype(np.float32),
                   np.zeros(8, np.float32), rng.normal(size=(8, 3)).astype(np.float32), np.zeros(3, np.float32))
    q = Projection.from_state(p.state("x"), "x")
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(p(x), q(x))
    np.testing.assert_allclose(np.linalg.norm(p(x), axis=1), 1, atol=1e-5)


def test_alignment_beats_chance():
    """Text and image vectors of one class share nothing but the class, through different random maps."""
    rng = np.random.default_rng(1)
    n, classes = 800, 8
    y = rng.integers(0, classes, n)
    text = np.eye(classes)[y] @ rng.normal(size=(classes, 32)) + 0.5 * rng.normal(size=(n, 32))
    image = np.eye(classes)[y] @ rng.normal(size=(classes, 40)) + 1.0 * rng.normal(size=(n, 40))
    held = np.arange(n) % 5 == 0
    t_tower, i_tower = train_alignment(text.astype(np.float32), image.astype(np.float32), ~held,
                                       config=AlignConfig(hidden=64, dim=16, epochs=30, batch_size=128))
    q = np.flatnonzero(held)
    p = attribute_precision(t_tower(text[q].astype(np.float32)), q, i_tower(image.astype(np.float32)),
                            {"cls": y}, 10, exclude_self=False)["cls"]
    assert p > 0.6  # chance is 1/8


def test_combine_is_weighted_mean_of_cosines():
    a, b = np.eye(2, dtype=np.float32), np.array([[1, 0], [0.6, 0.8]], np.float32)
    v = combine([(a, 1.0), (b, 3.0)])
    expected = (1.0 * (a[0] @ a[1]) + 3.0 * (b[0] @ b[1])) / 4.0
    assert v[0] @ v[1] == pytest.approx(expected, abs=1e-6)


def planted_index(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 24))
    x = centres[rng.integers(0, 40, n)] + 0.4 * rng.normal(size=(n, 24))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    valid = np.ones(n, bool)
    valid[7] = False  # a product without a vector in this mode
    x[7] = 0
    index = SimilarIndex(np.arange(n).astype(str), {"visual": x, "hybrid": x}, {"visual": valid, "hybrid": valid})
    index.build_faiss("hnsw")
    return index


def test_faiss_similar_recall_against_exact():
    index = planted_index()
    assert index.check_recall("visual", k=10, sample=500) >= 0.95


def test_similar_excludes_self_out_of_stock_and_vectorless():
    index = planted_index(n=500)
    rows = np.arange(50)
    in_stock = np.ones(500, bool)
    in_stock[::2] = False
    for exact in (True, False):
        idx, scores = index.similar(rows, 10, "visual", in_stock=in_stock, exact=exact)
        assert not (idx == rows[:, None]).any()
        assert in_stock[idx[idx >= 0]].all() and 7 not in idx
        assert (idx[7] == -1).all() and np.isneginf(scores[7]).all()


def test_similar_input_errors():
    index = planted_index(n=100)
    with pytest.raises(DeepshelfError, match="unknown item id"):
        index.lookup(["nope"])
    with pytest.raises(DeepshelfError, match="out of range"):
        index.similar(np.array([100]), 5, "visual")
    with pytest.raises(DeepshelfError, match="not available"):
        index.similar(np.array([1]), 5, "text")


def test_behaviour_vectors_recover_planted_groups(clusters):
    vecs, valid = behaviour_vectors(clusters.to_csr(binary=True).T, dim=8)
    assert valid.all()
    index = SimilarIndex(clusters.item_map.ids, {"behavior": vecs}, {"behavior": valid})
    idx, _ = index.similar(np.arange(len(index)), 5, "behavior", exact=True)
    group = np.array([int(i[1:]) // 25 for i in clusters.item_map.ids])  # the planted groups of 25 items
    assert (group[idx] == group[:, None]).mean() > 0.95


def test_attribute_precision_over_a_catalogue_smaller_than_k():
    """Issue 28: 9 products and k=10 crashed (the top-k holds at most the 8 other products). P@k is then taken over
    the neighbours there are, the query itself and unusable gallery rows never among them, and equals the
    hand count; one product alone has no neighbour (NaN)."""
    category = np.array(["mug", "mug", "mug", "pan", "pan", "pan", "knife", "knife", "knife"])
    vectors = np.eye(3, dtype=np.float32)[[0, 0, 0, 1, 1, 1, 2, 2, 2]] + 0.01 * np.arange(9)[:, None]
    q = np.array([0, 4])
    p = attribute_precision(vectors[q], q, vectors, {"category": category}, k=10)["category"]
    assert p == pytest.approx(2 / 8)  # each query: 8 others, 2 of its own category
    ok = np.ones(9, bool)
    ok[[1, 3]] = False  # no vector for two products: out of the gallery
    p = attribute_precision(vectors[q], q, vectors, {"category": category}, k=20, gallery_ok=ok)["category"]
    assert p == pytest.approx((1 / 6 + 1 / 6) / 2)  # 6 usable others each, one of its own category
    lone = attribute_precision(vectors[:1], np.array([0]), vectors[:1], {"category": category[:1]}, k=10)
    assert np.isnan(lone["category"])
