"""What the query understanding knows about one catalogue, built once per catalogue (not per query).

- the catalogue's words and how often each occurs (spelling: `speller.Speller`);
- per product, a code for each attribute: type (its category), colour, gender / age group, taken from the
  catalogue's columns where it has them, else read from the product's text (colour and gender words);
- phrases -> attribute values: each attribute value's own name ("Navy Blue", "Casual Shoes"), the hand-kept table
  `words.toml`, and words learnt from the catalogue: a word nine in ten of whose products share one category
  names that category (e.g. a kind of shoe named in titles but not a category of its own);
- per type, a prototype text vector (the mean of its products' vectors), and per colour its name's vector, so a
  shopper's word the catalogue never uses can be mapped to its nearest type or colour by meaning (`nearest`).
"""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from deepshelf.content.query.speller import Speller
from deepshelf.content.query.text import key, tokens

ATTRIBUTES = ("type", "colour", "gender")


def table() -> dict:
    """The hand-kept synonym table (`words.toml` in this package)."""
    return tomllib.loads(resources.files("deepshelf.content.query").joinpath("words.toml").read_text("utf-8"))


@dataclass(frozen=True)
class Entry:
    attribute: str  # type, colour or gender
    values: frozenset[str]  # catalogue values the phrase means (empty: a word to ignore, e.g. "colour")
    source: str  # catalogue, table or learnt


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
        for n in range(longest, 0, -1):
            for j in range(len(words) - n + 1):
                found = by_key.get(key(words[j:j + n]), "")
                if found:
                    break
            if found:
                break
        out[i] = found
    return out


class Lexicon:
    """Everything `understand.QueryUnderstanding` reads about a catalogue; see the module docstring."""

    def __init__(self, texts: list[str], columns: dict[str, np.ndarray] | None = None,
                 vectors: np.ndarray | None = None, learn_share: float = 0.9, learn_min_count: int = 10):
        columns = dict(columns or {})
        hand = table()
        self.stop = frozenset(hand.get("stop", {}).get("words", []))
        words = [tokens(t) for t in texts]
        self.counts = Counter(w for ws in words for w in ws)
        self.n = len(texts)
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
        if "type" in self.attributes:
            self._learn_type_words(words, learn_share, learn_min_count)
        self.prototypes = self._prototypes(vectors) if vectors is not None and "type" in self.attributes else None
        self._name_vectors: dict[str, np.ndarray] = {}
        self.longest = max((len(tokens(p)) for p in self._phrase_words), default=1)
        protected = {w for p in self._phrase_words for w in tokens(p)} | set(self.stop)
        self.speller = Speller(self.counts, protected)

    def _add(self, phrase: str, entry: Entry) -> None:
        k = key(phrase)
        if not k or any(e.attribute == entry.attribute and e.values == entry.values for e in self.entries[k]):
            return
        self.entries[k].append(entry)
        self._phrase_words.add(phrase.lower())

    def _learn_type_words(self, words: list[list[str]], share: float, min_count: int) -> None:
        """A catalogue word (not already a phrase) whose products are `share` of one category names it."""
        types = self.attributes["type"]
        per_word: dict[str, Counter] = defaultdict(Counter)
        for ws, code in zip(words, types.codes.tolist()):
            if code >= 0:
                for w in set(ws):
                    per_word[w][code] += 1
        for w, c in per_word.items():
            total = sum(c.values())
            if total < min_count or len(w) < 3 or w.isdigit() or w in self.stop or key(w) in self.entries:
                continue
            code, top = c.most_common(1)[0]
            if top / total >= share:
                self._add(w, Entry("type", frozenset([types.values[code]]), "learnt"))

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
