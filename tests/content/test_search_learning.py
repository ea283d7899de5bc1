"""Search learning (content/feedback.py): a planted search log the search must learn from (a word no product
text has, used by shoppers for one type; a query whose shoppers always pick one product), nothing learnt and
nothing changed without a log, and the learnt tables kept through save / load."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from deepshelf.content.feedback import FeedbackConfig, SearchFeedback, normalise_query, query_words
from deepshelf.content.search import SearchIndex
from deepshelf.content.similar import SimilarIndex
from tests.content.test_query import COLUMNS, TEXTS, WordEncoder

IDS = np.array([f"p{i}" for i in range(len(TEXTS))])
WALLETS = {"p9", "p10"}  # the shop's two wallets (test_query.PRODUCTS)


def index() -> SearchIndex:
    enc = WordEncoder()
    return SearchIndex(IDS, TEXTS, enc.encode(TEXTS), np.zeros((len(IDS), 1), np.float32),
                       np.zeros(len(IDS), bool), None, encoder=enc, attributes=COLUMNS)


def planted_log() -> pl.DataFrame:
    """Shoppers say "zorb" for a wallet (no title has the word), pick among the wallets, and now and then click
    something else (noise); everyone searching "gift for dad" buys p10."""
    rng = np.random.default_rng(0)
    rows = []
    for n in range(200):
        query = ["zorb", "zorbs for her", "black zorb", "leather zorb"][n % 4]
        item = rng.choice(sorted(WALLETS)) if rng.random() < 0.85 else f"p{rng.integers(len(IDS))}"
        rows.append((query, item, "view"))
    rows += [("Gift  for DAD", "p10", "purchase")] * 3 + [("gift for dad", "p10", "view")] * 3
    rows += [("tshirt", f"p{i}", "view") for i in (2, 3, 4, 5, 6)]  # a word the catalogue has: many types stay
    rows += [(q, f"p{i}", "view") for q in ("tshirt for her", "jeans for him", "shoes for him")
             for i in range(len(IDS)) for _ in range(5)]  # other searches: "for" is chosen after with every type
    return pl.DataFrame(rows, schema=["query", "item", "kind"], orient="row").with_columns(
        ts=pl.lit(0.0), shown_at=pl.lit(0.0))


def top(ix: SearchIndex, query: str, k: int = 3) -> list[str]:
    rows, _, _ = ix.find(query, k=k, by="text")
    return ix.item_ids[rows].tolist()


def test_normalised_queries_and_their_words():
    assert normalise_query("  Gift\tfor  DAD ") == "gift for dad"
    assert normalise_query("Ｔshirt") == "tshirt"  # NFKC: a full-width letter is the plain one
    assert query_words("red-red t_shirt 30") == ["red", "t", "shirt", "30"]


def test_a_planted_word_is_learnt_and_lifts_its_type_in_queries_never_searched():
    ix = index()
    # today the word means nothing to the search: a gender alone picks other products first
    assert top(ix, "men zorbs", k=1) != ["p10"] and top(ix, "women zorbs", k=1) != ["p9"]
    ix.feedback = SearchFeedback.fit(planted_log(), ix.item_ids, ix._rows.attributes)
    assert set(top(ix, "zorbs", k=2)) == WALLETS
    # never searched: the word's type carries over (the men's and the women's wallet)
    assert top(ix, "men zorbs", k=1) == ["p10"] and top(ix, "women zorbs", k=1) == ["p9"]
    assert ix.feedback.named("zorb", "type") == {"Wallets"} and ix.feedback.named("for", "type") is None
    words, lifts = ix.feedback.words.tolist(), ix.feedback.lifts["type"]
    wallets = ix.feedback.values["type"].tolist().index("Wallets")
    assert lifts[words.index("zorb"), wallets] > 0.7  # strong evidence for Wallets (over 2x as likely) ...
    assert abs(lifts[words.index("for"), wallets]) < abs(lifts[words.index("zorb"), wallets])  # a filler word less


def test_a_query_s_own_choices_come_first():
    ix = index()
    assert top(ix, "gift for dad", k=1) != ["p10"]
    ix.feedback = SearchFeedback.fit(planted_log(), ix.item_ids, ix._rows.attributes)
    assert top(ix, "GIFT for dad", k=1) == ["p10"]  # bought after that query (any case and spacing)
    no_pairs = SearchFeedback.fit(planted_log(), ix.item_ids, ix._rows.attributes,
                                  FeedbackConfig(pair_weight=0.0, attribute_weight=0.0))
    ix.feedback = no_pairs
    assert top(ix, "gift for dad", k=1) != ["p10"]  # the weights off: today's order


@pytest.mark.parametrize("log", [None, pl.DataFrame(schema={"query": pl.Utf8, "item": pl.Utf8, "kind": pl.Utf8}),
                                 pl.DataFrame({"query": ["zorb"], "item": ["not-a-product"], "kind": ["view"]})])
def test_no_search_log_searches_exactly_as_today(log):
    ix, today = index(), index()
    assert SearchFeedback.fit(log, ix.item_ids, ix._rows.attributes) is None
    ix.feedback = SearchFeedback.fit(log, ix.item_ids, ix._rows.attributes)
    for q in ("red tshrit for him", "zorbs", "gift for dad", "wallet"):
        a, b = ix.find(q, k=10, by="text"), today.find(q, k=10, by="text")
        assert a[0].tolist() == b[0].tolist() and np.array_equal(a[1], b[1])
        c, d = ix.search_rows(q, k=10, by="text"), today.search_rows(q, k=10, by="text")
        assert c[0].tolist() == d[0].tolist() and np.array_equal(c[1], d[1])


def test_the_learnt_tables_survive_save_and_load_and_follow_added_products(tmp_path):
    ix = index()
    ix.feedback = SearchFeedback.fit(planted_log(), ix.item_ids, ix._rows.attributes,
                                     FeedbackConfig(attribute_weight=0.2))
    enc = WordEncoder()
    SimilarIndex(IDS, {"text": enc.encode(TEXTS)}, {"text": np.ones(len(IDS), bool)}).save(tmp_path)
    ix.save(tmp_path)
    loaded = SearchIndex.load(tmp_path, encoder=enc)
    assert loaded.feedback is not None and loaded.feedback.config.attribute_weight == 0.2
    for q in ("brown zorbs", "gift for dad"):
        assert np.array_equal(loaded.feedback.boost(q, loaded.item_ids, loaded._rows.attributes),
                              ix.feedback.boost(q, ix.item_ids, ix._rows.attributes))
    # a wallet added after the run: its type earns it the learnt lift at once
    text = "Hidesign Men Brown Leather Wallet Two. Wallets"
    loaded.add(["new"], [text], enc.encode([text]), attributes={"type": ["Wallets"], "colour": ["Brown"],
                                                                "gender": ["Men"]})
    assert "new" in top(loaded, "brown zorbs", k=3)
