"""Query understanding, shoppers' words the catalogue never writes (deepshelf.content.query): colour names read by
what they look like (colours.py) and misspellings corrected toward English when no catalogue word is near
(english.py). Hand-made shops and toy encoders."""

from __future__ import annotations

import numpy as np

from deepshelf.content.query import Lexicon, QueryUnderstanding
from deepshelf.content.query.colours import ColourLook, delta_e2000, lab
from deepshelf.content.query.text import tokens

# (title, type, colour): a tiny shop whose colour labels are plain ones; one title says crimson
SHOP = [
    ("Roadster Red Tshirt", "Tshirts", "Red"), ("Roadster Red Tshirt Two", "Tshirts", "Red"),
    ("Roadster Purple Tshirt", "Tshirts", "Purple"), ("Roadster Blue Tshirt", "Tshirts", "Blue"),
    ("Roadster White Tshirt", "Tshirts", "White"), ("Roadster Black Tshirt", "Tshirts", "Black"),
    ("Gini Pink Jeans", "Jeans", "Pink"), ("Gini Magenta Jeans", "Jeans", "Magenta"),
    ("Fossil Brown Leather Wallet", "Wallets", "Brown"), ("Fossil Black Leather Wallet", "Wallets", "Black"),
    ("Arrow Blue Tie", "Ties", "Blue"), ("Arrow Red Tie", "Ties", "Red"), ("Arrow Crimson Tie", "Ties", "Red"),
    ("Bata Brown Sandals", "Sandals", "Brown"), ("Bata Black Sandals", "Sandals", "Black"),
]
TEXTS = [f"{t}. {ty}" for t, ty, _ in SHOP]
COLUMNS = {"type": np.array([p[1] for p in SHOP]), "colour": np.array([p[2] for p in SHOP])}


def _shop(**settings) -> QueryUnderstanding:
    return QueryUnderstanding(Lexicon(TEXTS, COLUMNS), **{"look_margin": 0.0, **settings})


# ---- colours by their look ---------------------------------------------------------------------------------
def test_lab_and_ciede2000_match_hand_computed_values():
    assert np.allclose(lab([1.0, 1.0, 1.0]), [100, 0, 0], atol=0.01)  # white is the D65 white point
    assert np.allclose(lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], atol=0.02)  # sRGB red's published Lab
    # Sharma, Wu & Dalal's CIEDE2000 test data, pairs 1 and 17
    assert abs(delta_e2000([50, 2.6772, -79.7751], [50, 0, -82.7485]) - 2.0425) < 1e-3
    assert abs(delta_e2000([50, 2.5, 0], [73, 25, -18]) - 27.1492) < 1e-3


def test_a_colour_the_catalogue_lacks_is_read_as_the_nearest_catalogue_colour():
    u = _shop().understand("scarlet tshirt")
    assert u.filters == {"colour": {"Red"}, "type": {"Tshirts"}}
    assert _shop().understand("violet tshirt").filters["colour"] == {"Purple"}  # plain Lab says Blue
    assert _shop().understand("ivory tshirt").filters["colour"] == {"White"}
    keep, _ = _shop().mask(u)
    assert np.flatnonzero(keep).tolist() == [0, 1]
    # the feature off: the word is just a word, no colour is named
    assert "colour" not in _shop(colour_look=False).understand("scarlet tshirt").filters


def test_a_colour_phrase_with_a_catalogue_colour_word_keeps_that_word():
    u = _shop().understand("hot pink jeans")  # by its look alone "hot pink" is nearer Magenta
    assert u.filters["colour"] == {"Pink"} and u.phrases["colour"] == ["hot pink"]
    assert ColourLook(["Pink", "Magenta"]).nearest(["hot", "pink"]) == {"Magenta"}
    # "sky" is read with "blue", not left to vote for a type or be searched as a word
    sky = _shop().understand("sky blue tie")
    assert sky.filters == {"colour": {"Blue"}, "type": {"Ties"}} and "sky" not in sky.text
    assert "sky" in _shop(colour_look=False).understand("sky blue tie").text


def test_materials_and_catalogue_names_are_not_read_as_colours():
    assert "colour" not in _shop().understand("leather wallet for him").filters  # a table colour, a material
    # a literal product name is searched as typed: its colour words are not re-read by their look
    name = _shop().understand("Arrow Crimson Tie")
    assert name.literal and name.filters == {"type": {"Ties"}}
    assert _shop(look_margin=0.0).understand("crimson tie for him").filters["colour"] == {"Red"}
    # catalogue words only, but nothing besides attribute names once the colour name is read: not a product's name
    words = _shop().understand("crimson tie")
    assert not words.literal and words.filters == {"colour": {"Red"}, "type": {"Ties"}}
    # catalogue words each somewhere, never together in one product ("crimson" in a tie's name, "leather" in a
    # wallet's): no product's name, so the colour name is read and filters; a product's own name stays literal
    apart = _shop().understand("crimson leather wallet")
    assert not apart.literal and apart.filters == {"colour": {"Red"}, "type": {"Wallets"}}
    together = _shop().understand("fossil brown leather wallet")
    assert together.literal and together.filters == {"colour": {"Brown"}, "type": {"Wallets"}}
    # with a margin, the labels nearly as near come too (XKCD's crimson is a dark red, a few units from brown)
    assert _shop(look_margin=3.0).understand("crimson tie for him").filters["colour"] == {"Red", "Brown"}
    # a label the tables have no colour for never matches, and one too few products have is skipped
    assert ColourLook(["Multi", "Skin"]).nearest(["crimson"]) == set()
    assert ColourLook(["Red", "Maroon"], np.array([50, 2])).nearest(["crimson"], min_products=10) == {"Red"}


# ---- spelling toward English -------------------------------------------------------------------------------
def _encoder():
    """A toy text encoder: tie words along one axis, sandal words along another, the shop's other words along a
    third, and a word it cannot read (a misspelling, a word of another trade) along a fourth, far from them all."""
    axes = {"tie": 0, "ties": 0, "necktie": 0, "sandals": 1, "chappals": 1}
    shop = {w for t in TEXTS for w in tokens(t)}

    def encode(texts):
        out = np.zeros((len(texts), 4), np.float32)
        for n, t in enumerate(texts):
            hits = [axes[w] for w in tokens(t) if w in axes] + [2 for w in tokens(t) if w in shop]
            out[n, hits[0] if hits else 3] = 1.0
        return out

    return encode


def test_a_misspelling_no_catalogue_word_is_near_is_corrected_to_english_and_read_by_meaning():
    encode = _encoder()
    lex = Lexicon(TEXTS, COLUMNS, vectors=encode(TEXTS))
    u = QueryUnderstanding(lex, neighbours=2).understand("red nwcktie", encode=encode)
    assert u.corrections == [("nwcktie", "necktie")]  # "showing results for": reported as any correction
    assert u.as_dict()["corrected"] == [{"from": "nwcktie", "to": "necktie"}]
    assert u.filters == {"colour": {"Red"}, "type": {"Ties"}}  # "necktie" read by the products nearest to it
    off = QueryUnderstanding(lex, neighbours=2, english=False).understand("red nwcktie", encode=encode)
    assert off.corrections == [] and "type" not in off.filters


def test_a_word_the_encoder_reads_is_not_turned_into_an_english_word_it_does_not():
    encode = _encoder()
    lex = Lexicon(TEXTS, COLUMNS, vectors=encode(TEXTS))
    u = QueryUnderstanding(lex, neighbours=2).understand("chappals", encode=encode)
    assert u.corrections == [] and u.filters["type"] == {"Sandals"}  # read as typed, by meaning
    unchecked = QueryUnderstanding(lex, neighbours=2, english_check=False).understand("chappals", encode=encode)
    assert unchecked.corrections == [("chappals", "chapels")]  # the dictionary's nearest word, two edits away


def test_catalogue_words_and_english_words_are_never_corrected():
    qu = _shop()
    assert qu.understand("kcks").corrections == [("kcks", "kicks")]  # neither catalogue nor English
    assert qu.understand("kicks").corrections == []  # English, though no product says it
    assert qu.understand("gini roadster").corrections == []  # catalogue words, English or not
    assert qu.understand("arrow tie").corrections == []
    # an English word within an edit of a catalogue word is still corrected toward the catalogue ("tot bag"),
    # unless the guard says English words that common are the shopper's own
    assert qu.understand("bats").corrections == [("bats", "bata")]  # the brand two products carry
    assert _shop(english_guard=1_000_000).understand("bats").corrections == []


# ---- the table's everyday gender words -------------------------------------------------------------------------
def test_everyday_gender_words_name_a_gender_and_short_english_words_stay_as_typed():
    from tests.content.test_query import COLUMNS as GENDERED, TEXTS as SHOP_TEXTS

    qu = QueryUnderstanding(Lexicon(SHOP_TEXTS, GENDERED))
    assert qu.understand("tshirt for guys").filters["gender"] == {"Men"}  # the shop has no Unisex products
    assert qu.understand("guy tshirt").filters["gender"] == {"Men"}
    assert qu.understand("ladies jeans").filters["gender"] == {"Women"}
    for word in ("dad", "been", "went"):  # one edit from "lad", "teen", "gent", which the table therefore lacks
        assert qu.understand(f"tshirt for {word}").corrections == []


def test_attributes_read_from_words_match_the_phrase_keys_reference():
    """`_from_text` (each word stemmed once) against the plain reading of its contract: per product, the value of
    the longest phrase whose key (`text.key`) matches some run of its words, leftmost first."""
    import random

    from deepshelf.content.query.lexicon import _from_text
    from deepshelf.content.query.text import key

    phrases = {"navy blue": "Navy Blue", "blue": "Blue", "off white": "Off White", "white": "White",
               "dresses": "Dress", "t shirt": "Tshirts", "boys": "Boys", "sea green": "Sea Green"}
    vocabulary = ["navy", "blue", "blues", "off", "white", "whites", "dress", "dresses", "t", "shirt", "shirts",
                  "boy", "boys", "sea", "green", "greens", "cotton", "x"]
    rnd = random.Random(5)
    products = [[rnd.choice(vocabulary) for _ in range(rnd.randrange(0, 7))] for _ in range(3000)]

    def reference(words):
        by_key = {key(p): v for p, v in phrases.items()}
        for n in range(2, 0, -1):
            for j in range(len(words) - n + 1):
                if key(words[j:j + n]) in by_key:
                    return by_key[key(words[j:j + n])]
        return ""

    assert list(_from_text(products, phrases)) == [reference(w) for w in products]
    assert list(_from_text([["navy", "blues", "shirts"], ["t", "shirts"], ["greens"]], phrases)) == \
        ["Navy Blue", "Tshirts", ""]


# ---- compounds the catalogue lacks -------------------------------------------------------------------------
NECK = [("Arrow Blue Tie", "Ties"), ("Arrow Red Tie", "Ties"), ("Roadster V Neck Tshirt", "Tshirts"),
        ("Roadster Round Neck Tshirt", "Tshirts"), ("Doone Night Suit", "Night suits")]


def _neck_shop(**settings) -> QueryUnderstanding:
    texts = [t for t, _ in NECK]
    return QueryUnderstanding(Lexicon(texts, {"type": np.array([ty for _, ty in NECK])}), **settings)


def test_a_compound_the_catalogue_lacks_names_the_type_of_its_last_part():
    u = _neck_shop().understand("blue necktie")  # "neck" and "tie" are the shop's words, "necktie" is not
    assert u.filters["type"] == {"Ties"} and u.phrases["type"] == ["necktie"] and "necktie" not in u.text
    keep, _ = _neck_shop().mask(u)
    assert np.flatnonzero(keep).tolist() == [0]  # the blue tie (colour read from the titles)
    # the feature off: nothing reads the word (no encoder here), no type is named
    assert "type" not in _neck_shop(compound_part=None).understand("blue necktie").filters
    # the first part must be a word the catalogue uses: "nigh" is not, so "nightie" is no kind of tie
    assert "type" not in _neck_shop().understand("nightie").filters
    # a word the catalogue has is its own word, never split ("tshirt" is no kind of "shirt" here: no Shirts)
    assert _neck_shop().understand("tshirt").filters.get("type") == {"Tshirts"}


# ---- a short page filled with the nearest colours ------------------------------------------------------------
def test_the_labels_near_a_colour_by_its_look():
    look = ColourLook(["Cream", "Off White", "White", "Black"])
    assert look.near(["Cream"], 0.0) == {"Cream"}
    # CIEDE2000 from the tables' cream: off-white about 9, white about 19, black far
    assert look.near(["Cream"], 10.0) == {"Cream", "Off White"}
    assert look.near(["Cream"], 20.0) == {"Cream", "Off White", "White"}
    assert look.near(["Multi"], 20.0) == set()  # a label the tables cannot place


def test_a_page_its_filters_leave_short_is_filled_with_the_nearest_colours_after_the_named_one():
    from deepshelf.content.search import SearchIndex
    from tests.content.test_query import WordEncoder

    shop = [("Wrogn Cream Sweater", "Sweaters", "Cream"), ("Wrogn Off White Sweater", "Sweaters", "Off White"),
            ("Wrogn White Sweater", "Sweaters", "White"), ("Wrogn Black Sweater", "Sweaters", "Black"),
            ("Wrogn Black Sweater Two", "Sweaters", "Black"), ("Wrogn Cream Tshirt", "Tshirts", "Cream")]
    texts = [f"{t}. {ty}" for t, ty, _ in shop]
    enc = WordEncoder(texts)
    index = SearchIndex(np.array([f"p{i}" for i in range(len(texts))]), texts, enc.encode(texts),
                        np.zeros((len(texts), 1), np.float32), np.zeros(len(texts), bool), None, encoder=enc,
                        attributes={"type": np.array([p[1] for p in shop]), "colour": np.array([p[2] for p in shop])})
    qu = index._rows.understanding

    def find(query, fill):
        qu.fill_colour = fill
        rows, scores, u = index.find(query, k=10, by="text")
        return rows.tolist(), scores, u

    assert find("ivory sweater", None)[0] == [0]  # the one Cream sweater ("ivory" looks nearest to Cream)
    rows, scores, u = find("ivory sweater", 20.0)
    assert rows[0] == 0 and sorted(rows[1:]) == [1, 2]  # then the off-white and white ones, never the black
    assert scores[0] > max(scores[1:]) + 0.99  # below the named colour whatever a history adds later
    assert u.widened == ["colour Off White/White"] and u.as_dict()["widened"] == u.widened
    assert find("ivory sweater", 10.0)[0] == [0, 1]  # white is about 19 from cream
    assert find("cream tshirt", 20.0)[2].widened == []  # a full page for what exists: nothing near is sold
    # the fill scores the query's text once: its second page reuses the first page's encoding
    calls, encode = [], enc.encode
    enc.encode = lambda batch: calls.append(list(batch)) or encode(batch)
    u = find("ivory sweater", 20.0)[2]
    assert u.widened and sum(c == [u.text] for c in calls) == 1
