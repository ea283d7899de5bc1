"""The candidate stage of search (content/candidates.py): the same answers as scoring every product, found from a
vector index over the filtered products, BM25's best matches, products added since, and the search log's picks."""

from __future__ import annotations

import logging
import zlib

import numpy as np
import polars as pl
import pytest

from deepshelf.content.candidates import Candidates
from deepshelf.content.feedback import SearchFeedback
from deepshelf.content.query.text import tokens
from deepshelf.content.search import ANN, SearchIndex
from deepshelf.content.similar import SimilarIndex

TYPES = ["Shirts", "Jeans", "Shoes", "Watches", "Bags", "Caps", "Socks", "Belts", "Scarves", "Gloves"]
COLOURS = ["Red", "Blue", "Green", "Black", "White", "Grey"]
GENDERS = ["Men", "Women", "Kids"]
BRANDS = [f"brand{b}" for b in "abcdefghijklmnopqrst"]
N = 4000


class HashEncoder:
    """A fixed random vector per word, summed and normalised: a stand-in for a text model whose answers depend on
    every word of the text (unknown words included) without any download."""

    def __init__(self, dim: int = 48):
        self.dim = dim

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in tokens(t):
                out[i] += np.random.default_rng(zlib.crc32(w.encode())).standard_normal(self.dim)
            out[i] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def catalogue(n: int = N, seed: int = 0):
    rng = np.random.default_rng(seed)
    t, c, g, b = (rng.integers(len(x), size=n) for x in (TYPES, COLOURS, GENDERS, BRANDS))
    texts = [f"{BRANDS[b[i]]} {COLOURS[c[i]]} {TYPES[t[i]]} for {GENDERS[g[i]]} sku{i:05d}" for i in range(n)]
    texts[17] = "umbrella stand sku00017"  # the only products of their type
    texts[n - 5] = f"umbrella folding sku{n - 5:05d}"
    types = np.array([TYPES[x] for x in t], dtype=object)
    types[[17, n - 5]] = "Umbrellas"
    columns = {"type": types, "colour": np.array([COLOURS[x] for x in c]), "gender": np.array([GENDERS[x] for x in g])}
    return np.array([f"p{i}" for i in range(n)]), texts, columns


def build(exact_below: int, n: int = N) -> SearchIndex:
    ids, texts, columns = catalogue(n)
    enc = HashEncoder()
    meaning = enc.encode([t.rsplit(" ", 1)[0] for t in texts])  # a product code says nothing of its meaning
    return SearchIndex(ids, texts, meaning, np.zeros((n, 1), np.float32), np.zeros(n, bool), None,
                       encoder=enc, attributes=columns, exact_below=exact_below)


@pytest.fixture(scope="module")
def pair():
    return build(10**9), build(0)  # every product scored; the candidate stage


def queries(n: int = 80, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(BRANDS), rng.choice(COLOURS).lower(), rng.choice(TYPES).lower(),
                 f"for {rng.choice(GENDERS).lower()}"]
        keep = rng.random(len(words)) < 0.6
        out.append(" ".join(w for w, k in zip(words, keep) if k) or str(rng.choice(BRANDS)))
    return out


def test_candidates_score_as_every_product_scored(pair):
    exact, fast = pair
    assert exact._rows.candidates is None and fast._rows.candidates is not None
    same = 0
    for q in queries():
        e_rows, e_scores, e_und = exact.find(q, k=10, by="text")
        f_rows, f_scores, f_und = fast.find(q, k=10, by="text")
        assert f_und.as_dict() == e_und.as_dict()  # understanding reads the same catalogue
        # every candidate is scored as the full pass scores it
        rows, scores, _ = exact.find(q, k=N, by="text")  # every product the filters pass, scored
        full = dict(zip(rows.tolist(), scores.tolist()))
        np.testing.assert_allclose(f_scores, [full[r] for r in f_rows.tolist()], rtol=1e-5, atol=1e-5)
        same += len(e_scores) == len(f_scores) and np.allclose(e_scores, f_scores, atol=1e-5)
    assert same >= 0.95 * 80  # the same best scores (tied products may differ) for nearly every query


def test_a_product_code_is_found_by_its_words_alone(pair):
    exact, fast = pair
    # the products' text vectors do not hold their codes (nor would a text model's): only BM25's candidates can
    # find a code; with the lexical term weighing most, the product comes first, as when every product is scored
    for ix in pair:
        ix.lexical_weight = 5.0
    try:
        for i in np.random.default_rng(2).choice(N, 20, replace=False):
            code = f"sku{i:05d}"
            rows, _, _ = fast.find(code, k=5, by="text")
            assert fast.item_ids[rows[0]] == f"p{i}" == exact.item_ids[exact.find(code, k=5, by="text")[0][0]]
    finally:
        for ix in pair:
            ix.lexical_weight = 0.5


def test_a_filter_passing_two_products_returns_both(pair):
    _, fast = pair
    rows, _, understood = fast.find("umbrella", k=10, by="text")
    assert understood.filters.get("type") == {"Umbrellas"}
    assert sorted(fast.item_ids[rows].tolist()) == ["p17", f"p{N - 5}"]


def test_products_added_or_changed_since_the_index_are_found():
    ix = build(0, n=1500)
    ix.lexical_weight = 0.0  # by meaning alone: the new rows share no word with the query
    enc = ix.encoder
    index_before = ix._rows.candidates.index
    target = enc.encode(["red shirts"])  # text vector of the query as understood, words no product shares
    ix.add(["new1"], ["zzz"], target, attributes={"type": ["Shirts"], "colour": ["Red"], "gender": ["Men"]})
    ix.add(["p7"], ["yyy"], target, attributes={"type": ["Shirts"], "colour": ["Red"], "gender": ["Women"]})
    assert ix._rows.candidates.index is index_before  # not rebuilt: the two rows are fresh
    assert set(ix._rows.candidates.fresh.tolist()) == {7, 1500}
    rows, _, _ = ix.find("red shirts", k=2, by="text")
    assert sorted(ix.item_ids[rows].tolist()) == ["new1", "p7"]


def test_many_added_products_rebuild_the_index():
    ix = build(0, n=1000)
    before = ix._rows.candidates.index
    enc = ix.encoder
    texts = [f"brandz red shirts extra{i}" for i in range(60)]  # 6% of the catalogue
    ix.add([f"n{i}" for i in range(60)], texts, enc.encode(texts))
    assert ix._rows.candidates.index is not before and len(ix._rows.candidates.index) == 1060
    assert not len(ix._rows.candidates.fresh)


def test_save_and_load_keep_the_index_and_the_answers(tmp_path, monkeypatch, caplog):
    ix = build(0, n=1500)
    ix.add(["new1"], ["zzz"], ix.encoder.encode(["blue jeans"]),
           attributes={"type": ["Jeans"], "colour": ["Blue"], "gender": ["Men"]})
    ix.save(tmp_path)
    SimilarIndex(ix.item_ids[:1], {"text": ix.text_vectors[:1]}, {"text": np.ones(1, bool)}).save(tmp_path)
    assert (tmp_path / ANN).exists()
    monkeypatch.setattr(Candidates, "build", classmethod(lambda *a, **k: pytest.fail("index built again")))
    back = SearchIndex.load(tmp_path, encoder=ix.encoder, exact_below=0)
    monkeypatch.undo()
    assert len(back._rows.candidates.index) == 1501 and not len(back._rows.candidates.fresh)
    for q in queries(30, seed=3) + ["blue jeans"]:
        a, sa, _ = ix.find(q, k=10, by="text")
        b, sb, _ = back.find(q, k=10, by="text")
        np.testing.assert_allclose(sa, sb, atol=1e-5)
    # an index file from other rows is built again, with a warning
    other = build(0, n=1200)
    other._rows.candidates.save(tmp_path / ANN)
    with caplog.at_level(logging.WARNING):
        again = SearchIndex.load(tmp_path, encoder=ix.encoder, exact_below=0)
    assert "building the search's vector index again" in caplog.text
    assert len(again._rows.candidates.index) == 1501
    # below the threshold a loaded run scores every product, whatever files it has
    assert SearchIndex.load(tmp_path, encoder=ix.encoder)._rows.candidates is None


def test_the_search_log_s_picks_are_candidates():
    ix = build(0, n=3000)
    # a product's own words (a literal query, so no filter), none of them p5's but "for"
    q = next(t.rsplit(" ", 1)[0] for t in catalogue(3000)[1] if not {"brandt", "red", "shirts", "men"} & set(tokens(t)))
    assert ix.understand(q).literal

    def candidates():
        keep, _ = ix._rows.understanding.mask(ix._rows.understanding.understand(q))
        return ix._candidates(q, q, "text", ix._rows, keep, 200)

    at, _ = candidates()
    assert 5 not in at  # "brandt Red Shirts for Men": nothing in the query finds it
    log = pl.DataFrame([(q, "p5", "purchase")] * 6, schema=["query", "item", "kind"], orient="row").with_columns(
        ts=pl.lit(0.0), shown_at=pl.lit(0.0))
    ix.feedback = SearchFeedback.fit(log, ix.item_ids, ix._rows.attributes)
    at, scores = candidates()
    assert 5 in at  # bought after this very query: scored, with its learnt boost
    assert scores[at.tolist().index(5)] > ix._semantic(ix.encoder.encode([q]), "text", ix._rows, np.array([5]))[0][0]


def test_the_query_encoder_is_the_index_s_own_and_survives_save_load(tmp_path):
    ids, texts, columns = catalogue(200)
    vectors = HashEncoder().encode(texts)
    made = SearchIndex(ids, texts, vectors, np.zeros((200, 1), np.float32), np.zeros(200, bool), None,
                       attributes=columns)
    assert made.query_backend == "onnx" and made.encoder.config.backend == "onnx"  # built lazily, not loaded
    torch_queries = SearchIndex(ids, texts, vectors, np.zeros((200, 1), np.float32), np.zeros(200, bool), None,
                                attributes=columns, query_backend="torch")
    torch_queries.save(tmp_path)
    SimilarIndex(ids[:1], {"text": vectors[:1]}, {"text": np.ones(1, bool)}).save(tmp_path)
    back = SearchIndex.load(tmp_path)
    assert back.query_backend == "torch" and back.encoder.config.backend == "torch"
