"""What the query understanding knows about one catalogue, built once per catalogue (not per query).

- the catalogue's words, how often each occurs and which words it writes side by side (spelling:
  `speller.Speller`), and which products use each word (`rows`);
- per product, a code for each attribute: type (its category), colour, gender / age group, taken from the
  catalogue's columns where it has them, else read from the product's text (colour and gender words);
- phrases -> attribute values: each attribute value's own name ("Navy Blue", "Casual Shoes") and the hand-kept
  table `words.toml`;
- what the catalogue itself says a phrase means (`votes`): the labels of the products that use all its words, and
  of the products whose text vectors are nearest to the phrase's vector (the search's text encoder), so a word no
  product uses ("kicks") is read by the products that mean the same thing. Per type, a prototype text vector (the
  mean of its products' vectors) and per colour its name's vector serve `nearest`.
"""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from deepshelf.content.query.colours import ColourLook
from deepshelf.content.query.speller import Speller
from deepshelf.content.query.text import key, stem, tokens

ATTRIBUTES = ("type", "colour", "gender")


def table() -> dict:
    """The hand-kept synonym table (`words.toml` in this package)."""
    return tomllib.loads(resources.files("deepshelf.content.query").joinpath("words.toml").read_text("utf-8"))


@dataclass(frozen=True)
class Entry:
    attribute: str  # type, colour or gender
    values: frozenset[str]  # catalogue values the phrase means (empty: a word to ignore, e.g. "colour")
    source: str  # catalogue (an attribute value's own name) or table (words.toml)


@dataclass
class Attribute:
    """One attribute's values and each product's code into them (-1: unknown)."""

    values: list[str]
    codes: np.ndarray  # int32 [n]
    counts: np.ndarray = field(init=False)  # int64 [len(values)]

    def __post_init__(self):
        self.counts = np.bincount(self.codes[self.codes >= 0], minlength=len(self.values))

    def mask_table(self, wanted: frozenset[str]) -> np.ndarray:
        """bool [len(values) + 1]: which codes pass (the last slot, read for code -1, never does)."""
        ok = np.zeros(len(self.values) + 1, bool)
        for i, v in enumerate(self.values):
            ok[i] = v in wanted
        return ok

    def share(self, wanted: frozenset[str]) -> float:
        keep = self.mask_table(wanted)[:-1]
        return float(self.counts[keep].sum() / max(1, len(self.codes)))


def _encode_values(values: np.ndarray) -> Attribute:
    values = np.asarray(values, dtype=object)
    clean = np.array(["" if v is None or (isinstance(v, float) and v != v) else str(v).strip() for v in values],
                     dtype=object)
    names = sorted({v for v in clean if v and v.upper() != "NA"})
    pos = {v: i for i, v in enumerate(names)}
    codes = np.fromiter((pos.get(v, -1) for v in clean), dtype=np.int32, count=len(clean))
    return Attribute(names, codes)


def _from_text(words_per_product: list[list[str]], phrases: dict[str, str]) -> np.ndarray:
    """One value per product read from its words: the value of the longest phrase of `phrases` (by key) in it."""
    out = np.empty(len(words_per_product), dtype=object)
    longest = max((len(p.split()) for p in phrases), default=1)
    by_key = {key(p): vals for p, vals in phrases.items()}
    for i, words in enumerate(words_per_product):
        found = ""
        # key(words[j:j + n]) with each word stemmed once (and a catalogue's repeated words once in all), not once
        # per phrase ending on it: this loop runs over every product's every phrase length and place, most of a
        # catalogue's index build (upsert_burst.py)
        stems = [stem(w) for w in words]
        for n in range(min(longest, len(words)), 0, -1):
            for j in range(len(words) - n + 1):
                found = by_key.get("".join(words[j:j + n - 1]) + stems[j + n - 1], "")
                if found:
                    break
            if found:
                break
        out[i] = found
    return out


class Lexicon:
    """Everything `understand.QueryUnderstanding` reads about a catalogue; see the module docstring."""

    def __init__(self, texts: list[str], columns: dict[str, np.ndarray] | None = None,
                 vectors: np.ndarray | None = None, nearest=None):
        """nearest: (unit vector, k) -> (rows, cosines), the search's candidate stage over `vectors`
        (content/candidates.py) for a catalogue too large to compare a phrase with every product; None: exact."""
        columns = dict(columns or {})
        hand = table()
        self.stop = frozenset(hand.get("stop", {}).get("words", []))
        # colour names of the tables that name a material in a shop's queries ("leather wallet"): never a colour
        self.not_colours = frozenset(hand.get("not_colour", {}).get("words", []))
        self._look: ColourLook | None = None
        words = [tokens(t) for t in texts]
        self.counts = Counter(w for ws in words for w in ws)
        self.n = len(texts)
        rows: dict[str, list[int]] = defaultdict(list)
        for i, ws in enumerate(words):
            for w in dict.fromkeys(ws):
                rows[w].append(i)
        self.rows = {w: np.array(r, np.int32) for w, r in rows.items()}  # word -> products using it, ascending
        self.vectors = None if vectors is None else np.asarray(vectors, np.float32)
        self._nearest = nearest
        # each attribute from the catalogue's column, else read from the products' words with the table's phrases
        self.attributes: dict[str, Attribute] = {}
        for name in ATTRIBUTES:
            if name in columns and columns[name] is not None:
                self.attributes[name] = _encode_values(columns[name])
            elif name in ("colour", "gender"):
                phrases = {p: v[0] for p, v in hand.get(name, {}).items() if v}  # its first value
                phrases.update({v.lower(): v for v in hand.get("palette", {}).get(name, [])})
                self.attributes[name] = _encode_values(_from_text(words, phrases))
        self.entries: dict[str, list[Entry]] = defaultdict(list)
        self._phrase_words: set[str] = set()  # lower-case phrases, whose words the speller must never change
        for name, attr in self.attributes.items():
            for v in attr.values:
                self._add(v, Entry(name, frozenset([v]), "catalogue"))
        for name in ATTRIBUTES:
            known = set(self.attributes[name].values) if name in self.attributes else set()
            for phrase, vals in hand.get(name, {}).items():
                vals = frozenset(v for v in vals if v in known)
                if vals or not hand[name][phrase]:
                    self._add(phrase, Entry(name, vals, "table"))
        self.prototypes = self._prototypes(vectors) if vectors is not None and "type" in self.attributes else None
        self._name_vectors: dict[str, np.ndarray] = {}
        self.longest = max((len(tokens(p)) for p in self._phrase_words), default=1)
        protected = {w for p in self._phrase_words for w in tokens(p)} | set(self.stop)
        pairs = {(a, b) for ws in words for a, b in zip(ws, ws[1:])}
        pairs |= {(a, b) for p in self._phrase_words for a, b in zip(tokens(p), tokens(p)[1:])}
        pairs |= {("", w) for w in self.counts}
        self.speller = Speller(self.counts, protected, pairs=frozenset(pairs), preferred=protected - self.stop)

    def _add(self, phrase: str, entry: Entry) -> None:
        k = key(phrase)
        if not k or any(e.attribute == entry.attribute and e.values == entry.values for e in self.entries[k]):
            return
        self.entries[k].append(entry)
        self._phrase_words.add(phrase.lower())

    def rows_with(self, words: list[str]) -> np.ndarray | None:
        """Products whose text uses every one of `words` (int32, ascending); None when a word is no catalogue
        word (nothing the catalogue says about it)."""
        found = [self.rows.get(w) for w in dict.fromkeys(words)]
        if not found or any(r is None for r in found):
            return None
        out = found[0]
        for r in found[1:]:
            out = np.intersect1d(out, r, assume_unique=True)
        return out

    def neighbours(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` products whose text vectors are nearest to a unit `vector`: (int64 rows, float32 cosines),
        unordered."""
        if self.vectors is None or not len(self.vectors) or k < 1:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self._nearest is not None:
            return self._nearest(np.asarray(vector, np.float32), k)
        sims = self.vectors @ np.asarray(vector, np.float32)
        k = min(k, len(sims))
        rows = np.argpartition(-sims, k - 1)[:k]
        return rows, sims[rows]

    def votes(self, attribute: str, rows: np.ndarray) -> np.ndarray:
        """How many of `rows` have each value of `attribute`: float64 [len(values)] (unknown codes not counted)."""
        attr = self.attributes[attribute]
        codes = attr.codes[np.asarray(rows, np.int64)]
        return np.bincount(codes[codes >= 0], minlength=len(attr.values)).astype(np.float64)

    def _prototypes(self, vectors: np.ndarray) -> np.ndarray:
        """Unit mean text vector of each type's products: float32 [n_types, d]."""
        types = self.attributes["type"]
        vectors = np.asarray(vectors, np.float32)
        ok = types.codes >= 0
        sums = np.zeros((len(types.values), vectors.shape[1]), np.float32)
        np.add.at(sums, types.codes[ok], vectors[ok])
        return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)

    def lookup(self, words: list[str]) -> list[Entry]:
        return self.entries.get(key(words), [])

    @property
    def look(self) -> ColourLook | None:
        """The catalogue's colour labels placed by their look (`colours.ColourLook`), built on first use; None
        without a colour attribute."""
        if self._look is None and "colour" in self.attributes:  # a race only places the labels twice
            colour = self.attributes["colour"]
            self._look = ColourLook(colour.values, colour.counts)
        return self._look

    def by_look(self, words: list[str], lightness: float, margin: float, min_products: int) -> list[Entry]:
        """`words` read as a colour by what they look like, when they are a colour name of the tables that is
        no attribute value's name nor the table's: the catalogue colours its own words name ("sky blue" -> Blue,
        "hot pink" -> Pink: source catalogue), else the labels nearest in CIELAB ("crimson" -> Maroon: source
        look). Empty otherwise, and for a material word of the table's `not_colour` list ("leather")."""
        look = self.look
        if look is None or not look.is_name(words) or (len(words) == 1 and words[0] in self.not_colours):
            return []
        own = frozenset().union(*(e.values for w in words for e in self.lookup([w]) if e.attribute == "colour"))
        if own:
            return [Entry("colour", own, "catalogue")]
        near = look.nearest(words, lightness, margin, min_products)
        return [Entry("colour", frozenset(near), "look")] if near else []

    def nearest(self, attribute: str, word_vectors: np.ndarray, threshold: float,
                encode=None) -> list[tuple[str, float] | None]:
        """Per unit word vector, the `attribute` value nearest by meaning when its cosine reaches `threshold`:
        types by their products' mean vector, colours by their names' vectors (encoded with `encode` once)."""
        if attribute == "type":
            protos = self.prototypes
        elif attribute in self.attributes and self.attributes[attribute].values and encode is not None:
            if attribute not in self._name_vectors:  # a race only encodes the names twice
                self._name_vectors[attribute] = np.asarray(encode(self.attributes[attribute].values), np.float32)
            protos = self._name_vectors[attribute]
        else:
            protos = None
        if protos is None or not len(protos) or not len(word_vectors):
            return [None] * len(word_vectors)
        sims = word_vectors @ protos.T
        best = sims.argmax(1)
        values = self.attributes[attribute].values
        return [(values[b], float(s[b])) if s[b] >= threshold else None for b, s in zip(best, sims)]
