"""Query understanding, how shoppers' words are read (deepshelf.content.query): which correction wins among equally
near ones, plurals, rare catalogue words, the weight of the products using a word against its neighbours, a
second type far behind the first, the type nearest by meaning and colour by the products that use a word. Hand-made cases."""

from __future__ import annotations

from collections import Counter

import numpy as np

from deepshelf.content.query import Lexicon, QueryUnderstanding
from deepshelf.content.query.speller import Speller


# ---- spelling -------------------------------------------------------------------------------------------
def test_among_equally_near_corrections_a_word_naming_an_attribute_wins():
    counts = Counter({"sets": 95, "mens": 40, "mar": 5, "male": 3})
    s = Speller(counts, preferred={"mens", "male"})
    assert s.correct("sens") == "mens"  # one edit from "sets" (95) and from "mens" (40): the attribute word
    assert s.correct("malr") == "male"  # one edit from "mar" and "male"
    assert s.correct("sats") == "sets"  # only "sets" is one edit away: the preference never reaches further
    plain = Speller(counts)
    assert plain.correct("sens") == "sets" and plain.correct("malr") == "mar"  # the commoner word without it
    # the word the catalogue writes beside the next one still comes first
    beside = Speller(counts, pairs=frozenset({("sets", "gift")}), preferred={"mens"})
    assert beside.correct("sens", after="gift") == "sets"


def test_a_plural_with_nothing_near_is_corrected_by_its_singular():
    s = Speller(Counter({"hoody": 8, "body": 600}))
    assert s.candidates("hoidies") == []  # two edits from "hoody" + "ies": nothing within reach as typed
    assert s.correct("hoidies") == "hoody"  # its singular "hoidy" is one edit from "hoody"
    assert s.correct("bodies") == "body"  # not a catalogue word: its singular is


def test_catalogue_words_too_few_products_use_are_not_offered_unless_they_name_an_attribute():
    s = Speller(Counter({"roggers": 2, "trousers": 50}), protected={"tote"}, preferred={"tote"})
    assert s.correct("joggers") == "roggers"  # seen twice: a spelling by default
    assert s.correct("joggers", min_count=3) is None  # a shopper's own word, read by meaning instead
    assert s.correct("totte", min_count=3) == "tote"  # a word naming an attribute is always offered
    assert s.correct("trousres", min_count=3) == "trousers"


def test_the_fewest_uses_a_correction_needs_grows_with_the_catalogue():
    small = ["Roggers Blue Tshirt. Tshirts", "Roggers Red Tshirt. Tshirts"] + ["Levis Blue Jeans. Jeans"] * 40
    large = small + [f"Brand{i} Blue Jeans. Jeans" for i in range(30_000)]
    for texts, corrected in ((small, [("joggers", "roggers")]), (large, [])):
        lex = Lexicon(texts, {"type": np.array([t.split(". ")[1] for t in texts])})
        assert QueryUnderstanding(lex, min_count=3).understand("joggers").corrections == corrected
    # in the large shop a word two products use is still offered when the setting says so
    assert QueryUnderstanding(lex, min_count=2).understand("joggers").corrections == [("joggers", "roggers")]


# ---- types by votes ---------------------------------------------------------------------------------------
def _planted_shop():
    """Two products of type A exactly along the word's direction, three of type B a little off it."""
    texts = ["alpha one", "alpha two", "beta one", "beta two", "beta three"]
    types = np.array(["A", "A", "B", "B", "B"])
    vectors = np.array([[1.0, 0.0]] * 2 + [[0.9, 0.43589]] * 3, np.float32)

    def encode(words):
        return np.array([[1.0, 0.0] for _ in words], np.float32)

    return Lexicon(texts, {"type": types}, vectors=vectors), encode


def test_the_type_nearest_by_its_products_mean_vector_adds_votes():
    lex, encode = _planted_shop()
    settings = dict(neighbours=5, type_share=0.5, min_similarity=0.0)
    # five neighbours: A 2 votes, B 3; B alone holds half
    assert QueryUnderstanding(lex, prototype_votes=0.0, **settings).understand("zzq", encode).filters["type"] == {"B"}
    # A's mean vector is the nearest (cosine 1 against 0.9): 1 x 5 more votes to A, 7 against 3
    assert QueryUnderstanding(lex, prototype_votes=1.0, **settings).understand("zzq", encode).filters["type"] == {"A"}


def test_the_few_products_using_a_word_outweigh_its_many_neighbours():
    lex, _ = _planted_shop()

    def encode(words):  # "alpha", which the two A products use, reads nearest to the three B products
        return np.array([[0.9, 0.43589] for _ in words], np.float32)

    settings = dict(neighbours=3, type_share=0.5, min_similarity=0.0, prototype_votes=0.0, type_ratio=0.0)
    # as counted: A 2 (its products say "alpha"), B 3 (the neighbours)
    assert QueryUnderstanding(lex, use_weight=0.0, **settings).understand("alpha", encode).filters["type"] == {"B"}
    # the two products weigh as 2 x 3 neighbours: A 6 against B 3
    assert QueryUnderstanding(lex, use_weight=2.0, **settings).understand("alpha", encode).filters["type"] == {"A"}


def test_a_second_type_far_behind_the_first_is_dropped():
    lex, encode = _planted_shop()
    settings = dict(neighbours=5, type_share=0.9, min_similarity=0.0, prototype_votes=0.0)
    # A 2, B 3: both needed for 90 % of the votes; 2 / 3 = 0.67 of the first's votes
    assert QueryUnderstanding(lex, type_ratio=0.6, **settings).understand("zzq", encode).filters["type"] == {"A", "B"}
    assert QueryUnderstanding(lex, type_ratio=0.7, **settings).understand("zzq", encode).filters["type"] == {"B"}


# ---- colour by the products that use a word ------------------------------------------------------------------
CRIMSON = [("Lakme Crimson Lipstick", "Lipstick", "Red"), ("Lakme Crimson Nail Polish", "Nail Polish", "Red"),
           ("Biba Crimson Kurta", "Kurtas", "Red"), ("Levis Chinos", "Trousers", "Khaki"),
           ("Levis Slim Chinos", "Trousers", "Khaki"), ("Levis Chinos Beige", "Trousers", "Beige"),
           ("Nike Black Tshirt", "Tshirts", "Black"), ("Puma Blue Tshirt", "Tshirts", "Blue"),
           ("Puma Red Tshirt", "Tshirts", "Red")]


def _crimson(**settings) -> QueryUnderstanding:
    columns = {"type": np.array([p[1] for p in CRIMSON]), "colour": np.array([p[2] for p in CRIMSON])}
    # colour names by their look off: it would read "crimson" first (tests/content/test_query_words.py)
    return QueryUnderstanding(Lexicon([p[0] for p in CRIMSON], columns), **{"colour_look": False, **settings})


def test_a_word_whose_products_share_a_colour_more_than_a_type_names_that_colour():
    qu = _crimson(colour_share=0.6)
    u = qu.understand("crimson tshirt")  # three products say "crimson": all red, of three types
    assert u.filters == {"type": {"Tshirts"}, "colour": {"Red"}} and ("crimson", "colour", "Red") in u.learnt
    assert "colour" not in _crimson().understand("crimson tshirt").filters  # off by default
    assert "colour" not in _crimson(colour_share=0.6, use_min=4).understand("crimson tshirt").filters  # too few
    # the chinos are mostly khaki, but all trousers: a type's word, not a colour's
    assert "colour" not in qu.understand("chinos").filters
    # a colour the query names is kept
    assert qu.understand("black crimson tshirt").filters["colour"] == {"Black"}


# ---- two slips, and which slip ------------------------------------------------------------------------------------
def test_a_word_nothing_reaches_within_one_edit_is_read_as_an_attribute_word_within_two():
    texts = ["Baggit Brown Handbag. Handbags", "Lavie Black Handbag. Handbags", "Fossil Black Wallet. Wallets",
             "Fossil Brown Wallet. Wallets"]
    lex = Lexicon(texts, {"type": np.array([t.split(". ")[1] for t in texts])})
    u = QueryUnderstanding(lex).understand("hnadags")  # two letters swapped and one dropped: two edits
    assert u.corrections == [("hnadags", "handbags")] and u.filters["type"] == {"Handbags"}
    assert QueryUnderstanding(lex, far=None).understand("hnadags").corrections == []  # the feature off
    assert lex.speller.far("hnadgs") is None  # three edits: out of reach
    assert lex.speller.far("blakc") == "black"  # a colour read from the products' words
    # only words naming an attribute are reached ("fossil", the brand, is not), and not from short words
    assert lex.speller.far("fosisl") is None and lex.speller.far("wlalt") is None
    # an English word is its own correction and never gets this far; without English spelling it would
    assert QueryUnderstanding(lex).understand("walkers").corrections == []
    assert QueryUnderstanding(lex, english=False).understand("walkers").corrections == [("walkers", "wallets")]


def test_among_equally_near_corrections_a_slip_of_the_fingers_wins():
    from deepshelf.content.query.speller import slip

    assert slip("thirt", "tshirt") and not slip("thirt", "shirt")  # a dropped s; a t for an s, keys apart
    assert slip("paont", "paint") and slip("jakcet", "jacket") and slip("shrit", "shirt")  # o touches i; swaps
    assert not slip("rainers", "raiser") and not slip("sens", "mens")  # two changes; s and m are keys apart
    s = Speller(Counter({"shirt": 50, "tshirt": 20}))
    assert s.correct("thirt") == "tshirt"  # one edit from each: the commoner loses to the slip
    assert Speller(Counter({"shirt": 50, "tshirt": 20}), slips=False).correct("thirt") == "shirt"
    assert s.correct("shirg") == "shirt"  # g touches t
