"""Query understanding: a shopper's words -> corrected words, attribute filters, price bounds and the text to
search by, before any retrieval; and relaxation when the filters leave nothing.

    qu = QueryUnderstanding(lexicon)
    understood = qu.understand("blak kicks for him under 40", encode=encoder.encode)
    understood.text        # "black casual shoes sports shoes men" (what the text match searches for)
    understood.filters     # {"type": {"Casual Shoes", "Sports Shoes"}, "colour": {"Black"}, "gender": {...}}
    keep, relaxed = qu.mask(understood)   # bool [n] products passing the filters, what was dropped to get any

Steps, in order: price bounds ("under 40") come off the words; each word the catalogue does not have is
corrected to its nearest catalogue word (`Speller`, never a word the catalogue or the table has); the longest
phrases (up to the lexicon's longest) that name an attribute value become filters; a remaining word the
catalogue does not know at all is mapped to the colour or gender whose name, or the type whose products' mean
text vector, is nearest by meaning, when near enough (the thresholds are chosen on the evaluation's development
queries only, benchmarks/search_understanding.py); words naming several types keep the one the phrase means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepshelf.content.query.lexicon import Lexicon
from deepshelf.content.query.text import price_bounds, tokens


@dataclass
class Understood:
    query: str  # as the shopper typed it
    text: str  # what the text match searches for: corrected words, attribute values in the catalogue's words
    corrections: list[tuple[str, str]] = field(default_factory=list)  # (typed, corrected)
    filters: dict[str, set[str]] = field(default_factory=dict)  # attribute -> catalogue values
    phrases: dict[str, list[str]] = field(default_factory=dict)  # attribute -> the words that named it
    learnt: list[tuple[str, str, str]] = field(default_factory=list)  # (word, attribute, value) from meaning
    price_min: float | None = None
    price_max: float | None = None
    relaxed: list[str] = field(default_factory=list)  # what was dropped so that something matches

    @property
    def changed(self) -> bool:
        """Whether the search is for anything but the words as typed."""
        return bool(self.corrections or self.filters or self.price_min is not None or self.price_max is not None
                    or self.relaxed)

    def as_dict(self) -> dict:
        """The answer's `understood` field (JSON-ready)."""
        out: dict = {"text": self.text}
        if self.corrections:
            out["corrected"] = [{"from": a, "to": b} for a, b in self.corrections]
        if self.filters:
            out["filters"] = [{"attribute": a, "values": sorted(v), "words": ", ".join(self.phrases.get(a, []))}
                              for a, v in self.filters.items()]
        if self.price_min is not None or self.price_max is not None:
            out["price"] = {k: v for k, v in (("min", self.price_min), ("max", self.price_max)) if v is not None}
        if self.relaxed:
            out["relaxed"] = list(self.relaxed)
        return out


class QueryUnderstanding:
    # The by-meaning thresholds chosen on the evaluation's development queries (benchmarks/search_understanding.py,
    # docs/benchmarks.md): types at 0.35; colour and gender by meaning did not help there, so they are off (> 1).
    def __init__(self, lexicon: Lexicon, type_threshold: float = 0.35, colour_threshold: float = 2.0,
                 gender_threshold: float = 2.0):
        self.lexicon = lexicon
        self.type_threshold = type_threshold
        self.colour_threshold = colour_threshold
        self.gender_threshold = gender_threshold

    def understand(self, query: str, encode=None) -> Understood:
        """The understood query. `encode` (texts -> unit vectors, the search's text encoder) lets a word the
        catalogue does not have be mapped to a type by meaning; without it such words are searched as typed."""
        lex = self.lexicon
        bounds = price_bounds(query)
        out = Understood(query, "", price_min=bounds.low, price_max=bounds.high)
        words = tokens(bounds.rest)
        fixed = []
        foreign = set()  # words as the shopper typed them that the catalogue does not have (after correction)
        for w in words:
            if w in lex.stop or lex.speller.is_known(w) or lex.lookup([w]):
                fixed.append(w)
                continue
            c = lex.speller.correct(w)
            if c is not None and c != w:
                out.corrections.append((w, c))
            fixed.append(c or w)
            foreign.add(c or w)
        # longest phrase first, left to right
        named: list[tuple[list[str], object]] = []
        free: list[str] = []
        i = 0
        while i < len(fixed):
            for n in range(min(lex.longest, len(fixed) - i), 0, -1):
                found = lex.lookup(fixed[i:i + n])
                if found:
                    named.append((fixed[i:i + n], found))
                    i += n
                    break
            else:
                free.append(fixed[i])
                i += 1
        # a type the catalogue's or the table's words name outranks one learnt from co-occurrence ("sports bra":
        # the bra, not the sports shoes most products saying "sports" are)
        named_type = any(e.attribute == "type" and e.source != "learnt" for _, es in named for e in es)
        named, also_type = self._one_type(named, named_type, encode)
        for phrase, entries in named:
            for e in entries:
                if not e.values or (e.source == "learnt" and named_type):
                    continue
                out.filters.setdefault(e.attribute, set()).update(e.values)
                said = out.phrases.setdefault(e.attribute, [])
                if " ".join(phrase) not in said:
                    said.append(" ".join(phrase))
        if also_type:
            out.phrases.setdefault("type", []).extend(also_type)
        content = [w for w in free if w not in lex.stop]
        # a word the catalogue never uses may still mean a colour or a type nobody named (a shopper's name for it)
        # (only words the catalogue lacks as typed: a brand or a catalogue word alone never becomes a filter)
        unknown = [w for w in content if w in foreign and not lex.lookup([w])]
        wanted = [(a, t) for a, t in (("colour", self.colour_threshold), ("gender", self.gender_threshold),
                                      ("type", self.type_threshold))
                  if a not in out.filters and a in lex.attributes and t <= 1.0]  # above 1: off
        if unknown and wanted and encode is not None:
            vectors = np.asarray(encode(unknown), np.float32)
            used: set[str] = set()
            for attribute, threshold in wanted:
                for w, hit in zip(unknown, lex.nearest(attribute, vectors, threshold, encode)):
                    if hit is not None and w not in used:
                        used.add(w)
                        out.filters.setdefault(attribute, set()).add(hit[0])
                        out.phrases.setdefault(attribute, []).append(w)
                        out.learnt.append((w, attribute, hit[0]))
        named_words = [self._commonest(a, out.filters[a]) for a in ("gender", "colour") if out.filters.get(a)]
        types = sorted(out.filters.get("type", ()))
        out.text = " ".join(named_words + content + types) or bounds.rest or query
        return out

    def _one_type(self, named: list, named_type: bool, encode) -> tuple[list, list[str]]:
        """When the words name several types ("dress shirt", "denim pants"), the one the phrase means: the named
        type whose products' mean vector is nearest to the phrase's. Returns `named` with the other phrases'
        type entries dropped, and those phrases (their words are said to name the kept type, so a chip removes
        them all)."""
        lex = self.lexicon
        typed = [(n, [e for e in es if e.attribute == "type" and e.values
                      and (e.source != "learnt" or not named_type)]) for n, (_, es) in enumerate(named)]
        typed = [(n, es) for n, es in typed if es]
        if len({frozenset().union(*(e.values for e in es)) for _, es in typed}) < 2 or encode is None \
                or lex.prototypes is None:
            return named, []
        sims = np.asarray(encode([" ".join(w for n, _ in typed for w in named[n][0])]), np.float32)[0] \
            @ lex.prototypes.T
        pos = {v: i for i, v in enumerate(lex.attributes["type"].values)}
        best = max(typed, key=lambda t: max(sims[pos[v]] for e in t[1] for v in e.values))[0]
        losers = {n for n, _ in typed if n != best}
        kept = [(words, [e for e in es if e.attribute != "type"] if n in losers else es)
                for n, (words, es) in enumerate(named)]
        return kept, [" ".join(named[n][0]) for n in sorted(losers)]

    def _commonest(self, attribute: str, values: set[str]) -> str:
        """The value of `values` most products have: the word the text match searches for ("Men", not "Unisex")."""
        attr = self.lexicon.attributes[attribute]
        return max(sorted(values), key=lambda v: attr.counts[attr.values.index(v)] if v in attr.values else -1)

    def mask(self, understood: Understood) -> tuple[np.ndarray | None, list[str]]:
        """bool [n]: the products every filter passes (None when there are no filters), relaxed until some pass:
        the filter keeping the most products (the least informative) is dropped first. Also returns what was
        dropped, in words ("colour purple"); every filter dropped leaves None (the text match alone)."""
        attrs = self.lexicon.attributes
        active = [(a, frozenset(v)) for a, v in understood.filters.items() if a in attrs]
        if not active:
            return None, []
        masks = {a: attrs[a].mask_table(v)[attrs[a].codes] for a, v in active}
        order = sorted(active, key=lambda av: -attrs[av[0]].share(av[1]))  # least informative first
        dropped: list[str] = []
        while order:
            keep = np.logical_and.reduce([masks[a] for a, _ in order])
            if keep.any():
                return keep, dropped
            a, v = order.pop(0)
            dropped.append(f"{a} {'/'.join(sorted(v))}")
        return None, dropped
