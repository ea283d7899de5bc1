"""Query understanding (deepshelf.content.query): spelling against the catalogue's words, attribute and price
parsing, words learnt from the catalogue, relaxation, and `SearchIndex.find` using them. Hand-made cases."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from deepshelf.content.query import Lexicon, QueryUnderstanding
from deepshelf.content.query.speller import Speller
from deepshelf.content.query.text import key, price_bounds, tokens

# (title, type, colour, gender): a small shop; "loafers" is a word of one category's titles only
PRODUCTS = [
    ("Nike Men Black Running Shoes", "Sports Shoes", "Black", "Men"),
    ("Adidas Men White Running Shoes", "Sports Shoes", "White", "Men"),
    ("Puma Women Black Tshirt", "Tshirts", "Black", "Women"),
    ("Puma Women Red Tshirt", "Tshirts", "Red", "Women"),
    ("Puma Men Red Tshirt", "Tshirts", "Red", "Men"),
    ("Gini Boys Blue Tshirt", "Tshirts", "Blue", "Boys"),
    ("Gini Girls Pink Tshirt", "Tshirts", "Pink", "Girls"),
    ("Levis Men Blue Jeans", "Jeans", "Blue", "Men"),
    ("Levis Women Blue Jeans", "Jeans", "Blue", "Women"),
    ("Fossil Women Brown Leather Wallet", "Wallets", "Brown", "Women"),
    ("Fossil Men Black Leather Wallet", "Wallets", "Black", "Men"),
    ("Roadster Women Navy Blue Jacket", "Jackets", "Navy Blue", "Women"),
] + [(f"Clarks Men Brown Loafers {i}", "Casual Shoes", "Brown", "Men") for i in range(10)] + [
    ("Puma Men Grey Sports Bra Insert", "Sports Shoes", "Grey", "Men"),  # "sports" leans to shoes in this shop
    ("Enamor Women Black Sports Bra", "Bra", "Black", "Women"),
]
TEXTS = [f"{t}. {ty}" for t, ty, _, _ in PRODUCTS]
COLUMNS = {"type": np.array([p[1] for p in PRODUCTS]), "colour": np.array([p[2] for p in PRODUCTS]),
           "gender": np.array([p[3] for p in PRODUCTS])}


@pytest.fixture(scope="module")
def qu():
    return QueryUnderstanding(Lexicon(TEXTS, COLUMNS))


# ---- spelling -------------------------------------------------------------------------------------------
def test_speller_corrects_one_edit_of_each_kind_to_the_commonest_catalogue_word():
    s = Speller(Counter({"shirt": 10, "skirt": 5, "wallet": 8, "jacket": 4, "shorts": 3, "sandals": 6}))
    assert s.correct("shrit") == "shirt"  # swapped letters
    assert s.correct("wallett") == "wallet"  # doubled
    assert s.correct("jaket") == "jacket"  # dropped
    assert s.correct("sgirt") == "shirt"  # a keyboard neighbour (g for h)
    assert s.correct("sjirt") == "shirt"  # one edit from shirt (10) and from skirt (5): the commoner one
    assert s.correct("sandlas") == "sandals"
    assert s.correct("qqqqzz") is None  # nothing near: not forced onto some word


def test_speller_never_corrects_a_catalogue_word_or_a_protected_one():
    s = Speller(Counter({"shirt": 100, "skirt": 1, "shorts": 5}), protected={"him"})
    assert s.correct("skirt") == "skirt"  # a catalogue word (even a rare one) is never changed into a commoner one
    assert s.correct("him") == "him"  # the query lexicon's words neither
    assert s.correct("30") == "30" and s.correct("xl") == "xl"  # numbers and very short words are left alone
    assert s.candidates("skirt")[0] == ("shirt", 1)  # ... although a commoner word is one edit away


def test_speller_prefers_the_word_the_catalogue_writes_beside_the_next_one():
    counts = Counter({"top": 50, "tote": 5, "bag": 20, "sweet": 9, "sweat": 3, "sweatshirt": 4, "shirt": 30})
    pairs = frozenset({("tote", "bag"), ("", "sweatshirt")} | {("", w) for w in counts})
    # slips off: "tot" is "tote" with a letter dropped, "top" with a far key, which would decide alone (the slip
    # comes after the pairs: tests/content/test_query_reading.py)
    s = Speller(counts, pairs=pairs, slips=False)
    assert s.correct("tot", after="bag") == "tote"  # as in "Tote Bag", though "top" is commoner
    assert s.correct("tot") == "top" and s.correct("tot", after="shirt") == "top"  # no context: the commonest
    assert s.correct("swaet", after="shirt") == "sweat"  # written joined: "Sweatshirt"
    assert s.correct("top", after="bag") == "top"  # a catalogue word is never changed, whatever its neighbours
    assert Speller(counts, slips=False).correct("tot", after="bag") == "top"  # the pairs are what decides
    assert Speller(counts).correct("tot") == "tote"  # the slip, with no pairs


def test_speller_offers_only_words_seen_twice_and_two_edits_for_long_words():
    s = Speller(Counter({"sweatshirt": 4, "typo": 1}))
    assert s.correct("typu") is None  # "typo" occurs once: not a spelling to correct to
    assert s.is_known("typo")  # ... but it is never corrected either
    assert s.correct("swaetshrit") == "sweatshirt"  # two swaps in a long word


# ---- words and price ------------------------------------------------------------------------------------
def test_keys_join_spacing_and_plural_variants():
    assert key("T-Shirts") == key("t shirt") == key("tshirt") == "tshirt"
    assert key("Flip Flops") == key("flipflops") and key("dresses") == key("dress") == "dress"
    assert tokens("Men's Watches") == ["mens", "watches"]


@pytest.mark.parametrize("query, low, high, rest", [
    ("red dress under 30", None, 30.0, "red dress"),
    ("below £20 black shoes", None, 20.0, "black shoes"),
    ("shoes over 50 dollars", 50.0, None, "shoes"),
    ("jeans 20-40", 20.0, 40.0, "jeans"),
    ("between 20 and 40 tops", 20.0, 40.0, "tops"),
    ("tops less than $15.50", None, 15.5, "tops"),
    ("size 10 shoes", None, None, "size 10 shoes"),
])
def test_price_bounds(query, low, high, rest):
    assert price_bounds(query) == (low, high, rest)


# ---- attributes -----------------------------------------------------------------------------------------
def test_colour_type_gender_and_a_misspelling_parse_into_filters(qu):
    u = qu.understand("blakc tshirt for her under 25")
    assert u.corrections == [("blakc", "black")]
    # the table's "for her" means Women or Unisex; this shop has no Unisex products, so Women alone
    assert u.filters == {"colour": {"Black"}, "type": {"Tshirts"}, "gender": {"Women"}}
    assert u.price_max == 25.0 and u.price_min is None
    assert u.text == "Women Black Tshirts"  # the catalogue's own words, commonest gender value first
    keep, relaxed = qu.mask(u)
    assert np.flatnonzero(keep).tolist() == [2] and relaxed == []


@pytest.mark.parametrize("query, attribute, values", [
    ("t shirt", "type", {"Tshirts"}), ("T-Shirts", "type", {"Tshirts"}), ("tees", "type", {"Tshirts"}),
    ("womens", "gender", {"Women"}), ("mens", "gender", {"Men"}),
    ("kids", "gender", {"Boys", "Girls"}), ("navy", "colour", {"Navy Blue"}), ("navy blue", "colour", {"Navy Blue"}),
    ("gray", "colour", {"Grey"}),  # the table says Grey, Grey Melange or Charcoal; this shop has Grey only
])
def test_shoppers_words_map_to_catalogue_values(qu, query, attribute, values):
    assert qu.understand(query).filters.get(attribute, set()) == values


def test_a_word_of_one_category_only_votes_that_type_but_a_named_type_wins(qu):
    u = qu.understand("brown loafers")  # no phrase names a type: the ten products saying "loafers" vote
    assert u.filters["type"] == {"Casual Shoes"} and ("loafers", "type", "Casual Shoes") in u.learnt
    assert QueryUnderstanding(qu.lexicon, type_share=2.0).understand("brown loafers").filters.get("type") is None
    u = qu.understand("black sports bra")  # "sports" alone leans to shoes here; the bra is named
    assert u.filters["type"] == {"Bra"}


# a shop where "office" alone is mostly bags, but "office shoes" are formal shoes; "zest" a brand of many types
OFFICE = [("Hidesign Women Brown Office Bag", "Handbags"), ("Baggit Women Black Office Bag", "Handbags"),
          ("Lino Women Tan Office Bag", "Handbags"), ("Red Tape Men Black Office Shoes", "Formal Shoes"),
          ("Franco Men Brown Office Shoes", "Formal Shoes"), ("Zest Men Blue Shirt", "Shirts"),
          ("Zest Men Blue Jeans", "Jeans"), ("Zest Women Red Dress", "Dresses"), ("Zest Men Black Belt", "Belts"),
          ("Zest Women Pink Top", "Tops"), ("Nike Men White Sneakers", "Casual Shoes")]


def test_a_phrase_votes_its_type_by_the_products_using_all_its_words():
    qu = QueryUnderstanding(Lexicon([t for t, _ in OFFICE], {"type": np.array([ty for _, ty in OFFICE])}),
                            type_ratio=0.0)
    assert qu.understand("office shoes").filters["type"] == {"Formal Shoes"}  # not the bags "office" leans to
    assert qu.understand("office").filters["type"] == {"Handbags", "Formal Shoes"}  # 3 + 2 of 5: both needed
    # a second type with under `type_ratio` of the first's votes is dropped: 2 < 0.7 x 3, but 2 >= 0.6 x 3
    assert QueryUnderstanding(qu.lexicon, type_ratio=0.7).understand("office").filters["type"] == {"Handbags"}
    assert QueryUnderstanding(qu.lexicon, type_ratio=0.6).understand("office").filters["type"] == \
        {"Handbags", "Formal Shoes"}
    assert "type" not in qu.understand("zest").filters  # a brand of five types names none
    assert "type" not in QueryUnderstanding(qu.lexicon, max_types=1).understand("office").filters


def test_colour_and_gender_are_read_from_texts_without_columns():
    lex = Lexicon(TEXTS, {"type": COLUMNS["type"]})
    assert lex.attributes["colour"].values[lex.attributes["colour"].codes[11]] == "Navy Blue"  # longest phrase
    assert lex.attributes["gender"].values[lex.attributes["gender"].codes[5]] == "Boys"
    u = QueryUnderstanding(lex).understand("red tshirt for him")
    keep, _ = QueryUnderstanding(lex).mask(u)
    assert np.flatnonzero(keep).tolist() == [4]


def test_an_unknown_word_is_read_by_the_products_nearest_to_it_by_meaning():
    # a toy encoder: shoe-ish texts point one way, the rest another
    def encode(texts):
        v = np.array([[1.0, 0.0] if any(w in t.lower() for w in ("shoe", "kicks", "loafer")) else [0.0, 1.0]
                      for t in texts], np.float32)
        return v
    lex = Lexicon(TEXTS, COLUMNS, vectors=encode(TEXTS))
    u = QueryUnderstanding(lex, neighbours=10).understand("white kicks", encode=encode)  # no product says "kicks"
    assert u.learnt and u.learnt[0][:2] == ("kicks", "type") and u.filters["type"] <= {"Sports Shoes", "Casual Shoes"}
    assert u.filters["colour"] == {"White"}
    assert QueryUnderstanding(lex).understand("white kicks").filters.get("type") is None  # nothing to read it by
    assert QueryUnderstanding(lex, neighbours=0).understand("white kicks", encode=encode).filters.get("type") is None


def test_neighbours_too_far_to_mean_anything_do_not_vote():
    """A misspelt word the encoder cannot read lands far from every product: its nearest products are noise."""
    def encode(texts):  # shoe-ish texts and the rest on their own axes; an unreadable word faintly shoe-ish
        return np.array([[1.0, 0, 0] if "shoe" in t.lower() or "kicks" in t else
                         [0.3, 0, 0.954] if "zqx" in t else [0, 1.0, 0] for t in texts], np.float32)

    lex = Lexicon(TEXTS, COLUMNS, vectors=encode(TEXTS))
    assert "type" not in QueryUnderstanding(lex).understand("zqxvw", encode=encode).filters
    assert "type" in QueryUnderstanding(lex, min_similarity=0.0).understand("zqxvw", encode=encode).filters
    assert QueryUnderstanding(lex).understand("kicks", encode=encode).filters["type"] <= {"Sports Shoes",
                                                                                          "Casual Shoes"}


# ---- relaxation -----------------------------------------------------------------------------------------
def test_relaxation_drops_the_least_informative_filter_first(qu):
    u = qu.understand("pink jeans for kids")  # no such product: pink (1 product), jeans (2), kids (2)
    keep, relaxed = qu.mask(u)
    # jeans and kids keep most (a tie, kept in the query's order): jeans goes, the pink kids' t-shirt stays
    assert relaxed == ["type Jeans"] and np.flatnonzero(keep).tolist() == [6]
    u2 = qu.understand("navy blue walet")  # navy blue (1 product: a jacket) and wallets (2): navy blue is rarer
    keep2, relaxed2 = qu.mask(u2)
    assert relaxed2 == ["type Wallets"] and np.flatnonzero(keep2).tolist() == [11]


def test_nothing_matching_any_filter_leaves_the_text_match_alone():
    lex = Lexicon(TEXTS, COLUMNS)
    qu = QueryUnderstanding(lex)
    u = qu.understand("tshrit")
    u.filters = {"type": {"Sarees"}}  # a value no product has
    assert qu.mask(u) == (None, ["type Sarees"])


# ---- the search index using it --------------------------------------------------------------------------
class WordEncoder:
    """One axis per word of the shop's titles: enough to check the plumbing without a model."""

    def __init__(self, texts=TEXTS):
        self.vocab = sorted({w for t in texts for w in tokens(t)})

    def encode(self, texts):
        out = np.array([[w in tokens(t) for w in self.vocab] for t in texts], np.float32) + 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_find_filters_by_what_it_understood_and_save_load_keeps_the_attributes(tmp_path):
    from deepshelf.content.search import SearchIndex

    enc = WordEncoder()
    ids = np.array([f"p{i}" for i in range(len(TEXTS))])
    index = SearchIndex(ids, TEXTS, enc.encode(TEXTS), np.zeros((len(ids), 1), np.float32), np.zeros(len(ids), bool),
                        None, encoder=enc, attributes=COLUMNS)
    rows, _, understood = index.find("red tshrit for him", k=10, by="text")
    assert understood.corrections == [("tshrit", "tshirt")]
    assert rows.tolist() == [4]  # the one red men's t-shirt, although other red and men's products match words
    plain, _ = index.search_rows("red tshrit for him", k=10, by="text")
    assert len(plain) == 10  # without understanding: every product scores
    from deepshelf.content.similar import SimilarIndex

    SimilarIndex(ids, {"text": enc.encode(TEXTS)}, {"text": np.ones(len(ids), bool)}).save(tmp_path)  # a content dir
    index.save(tmp_path)
    loaded = SearchIndex.load(tmp_path, encoder=enc)
    assert loaded.find("red tshrit for him", k=10, by="text")[0].tolist() == [4]
    rows, _, understood = loaded.find("pink jeans for kids", k=10, by="text")
    assert understood.relaxed == ["type Jeans"] and rows.tolist() == [6]
    # an upserted product brings its type and colour; the understanding is rebuilt with it
    loaded.add(["new"], ["Puma Men Red Tshirt Two. Tshirts"], enc.encode(["Puma Men Red Tshirt Two. Tshirts"]),
               attributes={"type": ["Tshirts"], "colour": ["Red"], "gender": ["Men"]})
    assert sorted(loaded.item_ids[loaded.find("red tshirt mens", k=10, by="text")[0]].tolist()) == ["new", "p4"]


def test_words_naming_two_types_keep_the_one_the_phrase_means():
    def encode(texts):  # jeans-ish texts one way, the rest the other
        return np.array([[1.0, 0.0] if any(w in t.lower() for w in ("jean", "denim")) else [0.0, 1.0]
                         for t in texts], np.float32)

    qu = QueryUnderstanding(Lexicon(TEXTS, COLUMNS, vectors=encode(TEXTS)))
    u = qu.understand("denim tshirt", encode=encode)  # "denim" (the table: Jeans) and "tshirt" (Tshirts)
    assert u.filters["type"] == {"Jeans"} and sorted(u.phrases["type"]) == ["denim", "tshirt"]
    assert qu.understand("denim tshirt").filters["type"] == {"Jeans", "Tshirts"}  # without meaning: either


def test_a_shop_without_gender_words_or_any_attribute_answers():
    """No gender in the texts (nothing to compare a word with by meaning), no attribute at all: still an answer."""
    def encode(texts):
        return np.ones((len(texts), 2), np.float32) / np.sqrt(2)

    texts = ["red ceramic mug", "blue ceramic mug", "blue garden chair"]
    qu = QueryUnderstanding(Lexicon(texts, {}, vectors=encode(texts)), colour_threshold=0.5, gender_threshold=0.5)
    u = qu.understand("mugg for grandad", encode=encode)
    assert u.corrections == [("mugg", "mug")] and "gender" not in u.filters


# a shop whose labels and names disagree in places: "Catwalk Women Blue Flats" is labelled Heels
LITERAL = [("Catwalk Women Blue Flats", "Heels"), ("Catwalk Women Blue Heels", "Heels"),
           ("Bata Women Blue Flats", "Flats"), ("Bata Women Black Flats", "Flats"), ("Inc Women Blue Flats", "Flats"),
           ("Nike Men Blue Shoes", "Sports Shoes")]


def _literal_index(**settings):
    from deepshelf.content.search import SearchIndex

    texts = [t for t, _ in LITERAL]
    enc = WordEncoder(texts)
    columns = {"type": np.array([ty for _, ty in LITERAL]), "colour": np.array(["Blue"] * len(texts)),
               "gender": np.array(["Women"] * 5 + ["Men"])}
    columns["colour"][3] = "Black"
    out = SearchIndex(np.array([f"p{i}" for i in range(len(texts))]), texts, enc.encode(texts),
                      np.zeros((len(texts), 1), np.float32), np.zeros(len(texts), bool), None, encoder=enc,
                      attributes=columns)
    for k, v in settings.items():
        setattr(out._rows.understanding, k, v)
    return out


def test_a_literal_query_boosts_its_attributes_instead_of_filtering_by_them():
    index = _literal_index
    rows, _, u = index().find("catwalk women blue flats", k=10, by="text")
    assert u.literal and u.filters["type"] == {"Flats"} and not u.changed and "filters" not in u.as_dict()
    assert 0 in rows  # the product the words name is kept, although its label says Heels ...
    assert rows.tolist()[:2] == [2, 4]  # ... after those that have every named attribute (a boost of 4)
    assert index(literal_boost=0.2).find("catwalk women blue flats", k=10, by="text")[0][0] == 0  # a small one
    qu = index()._rows.understanding
    boost = qu.boosts(u)  # the share of the named attributes each product has
    assert np.allclose(boost, qu.literal_boost * np.array([2, 2, 3, 2, 3, 1]) / 3)
    assert 0 not in index(literal_boost=None).find("catwalk women blue flats", k=10, by="text")[0]  # filters lose it
    rows, _, u = index().find("catwalk women blue flatts", k=10, by="text")  # a misspelling: not literal
    assert not u.literal and 0 not in rows and set(rows.tolist()) == {2, 4}


def test_catalogue_words_no_product_uses_together_are_read_as_attributes_not_as_a_name():
    # every word is the catalogue's, but no product is a Bata heel: the words name attributes, which filter
    rows, _, u = _literal_index().find("bata women blue heels", k=10, by="text")
    assert not u.literal and u.filters == {"type": {"Heels"}, "colour": {"Blue"}, "gender": {"Women"}}
    assert sorted(rows.tolist()) == [0, 1]  # the Heels (one named Flats); not the Bata flats the words also match
    assert _literal_index().understand("bata women blue flats").literal  # a product's words, together
