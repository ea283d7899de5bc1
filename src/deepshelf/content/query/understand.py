"""Query understanding: a shopper's words -> corrected words, attribute filters, price bounds and the text to
search by, before any retrieval; and relaxation when the filters leave nothing.

    qu = QueryUnderstanding(lexicon)
    understood = qu.understand("blak kicks for him under 40", encode=encoder.encode)
    understood.text        # "black casual shoes sports shoes men" (what the text match searches for)
    understood.filters     # {"type": {"Casual Shoes", "Sports Shoes"}, "colour": {"Black"}, "gender": {...}}
    keep, relaxed = qu.mask(understood)   # bool [n] products passing the filters, what was dropped to get any

Steps, in order: price bounds ("under 40") come off the words; each word the catalogue does not have is corrected
to its nearest catalogue word (`Speller`: never a word the catalogue or the table has, nor to a word fewer than
`min_count` products use unless it names an attribute; among equally near candidates, the one the catalogue writes
beside a neighbouring word, else one that names an attribute); a word with no catalogue word near and no English
word either is corrected toward English (`english.py`: "nwcktie" -> "necktie"), kept only when the text encoder
reads the correction at least as well as the typo; a word neither reaches within one edit, toward the commonest
word naming an attribute within two (`Speller.far`: "hnadags" -> "handbags"); the longest phrases (up to the lexicon's longest) that name an
attribute value, by its catalogue name or the table, become filters (so does a compound the catalogue lacks whose
last part names a type, its first part a catalogue word: "necktie" -> Ties), and so do colour names of matplotlib's
tables the labels lack, read by their look (`colours.py`: "crimson" -> Maroon; "sky blue" -> Blue, by its
catalogue word), except in a product's name; words naming several types keep the one the phrase means. When no phrase named a type, the catalogue votes on the remaining words: the type labels
of the products that use all of them (weighing at least `use_weight` times the neighbours however few they are), of
the products nearest to them by meaning (the text encoder), and the type whose products' mean vector is nearest, so
a shopper's word no product uses is read from the products that mean the same ("kicks" -> Casual / Sports Shoes);
the fewest types holding most of the votes become the filter, less any with far fewer votes than the first. A word
that names nothing but whose products share one colour more than one type may name that colour (`colour_share`, off
by default). The settings (the shares of votes, colour and gender by name or use, the literal boost, ...) are
chosen on the evaluation's development queries only (benchmarks/search_understanding.py). A literal query, all of
whose words the catalogue's products use as typed and that says more than attribute names (a product's name), is
searched as typed, its attributes a boost rather than filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from deepshelf.content.query import english
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
    widened: list[str] = field(default_factory=list)  # what filled a short page ("colour Off White/White")
    filled_from: int | None = None  # where the fill begins in `find`'s answer (a caller showing fewer trims `widened`)
    literal: bool = False  # every word is one the catalogue's products use, as typed: attributes boost, not filter

    @property
    def changed(self) -> bool:
        """Whether the search is for anything but the words as typed (a literal query's boosts only reorder)."""
        return bool(self.corrections or (self.filters and not self.literal) or self.price_min is not None
                    or self.price_max is not None or self.relaxed or self.widened)

    def as_dict(self) -> dict:
        """The answer's `understood` field (JSON-ready)."""
        out: dict = {"text": self.text}
        if self.corrections:
            out["corrected"] = [{"from": a, "to": b} for a, b in self.corrections]
        if self.filters and not self.literal:  # a literal query's attributes only boost: no chip to remove
            out["filters"] = [{"attribute": a, "values": sorted(v), "words": ", ".join(self.phrases.get(a, []))}
                              for a, v in self.filters.items()]
        if self.price_min is not None or self.price_max is not None:
            out["price"] = {k: v for k, v in (("min", self.price_min), ("max", self.price_max)) if v is not None}
        if self.relaxed:
            out["relaxed"] = list(self.relaxed)
        if self.widened:
            out["widened"] = list(self.widened)
        return out


class QueryUnderstanding:
    # The settings chosen on the evaluation's development queries (benchmarks/search_understanding.py,
    # docs/benchmarks.md): the share of the catalogue's votes a phrase's types must reach and the share of the top
    # type's votes that keeps another, how much the products using the words weigh, how near the product
    # neighbours must be to vote and what the type nearest by its products' mean vector adds, how many products must use a catalogue word offered as a correction, and
    # how much a literal query's attributes weigh; colour and gender by name, and colour by use, did not help on
    # both seeds' development queries, so they are off (> 1).
    def __init__(self, lexicon: Lexicon, type_share: float = 0.8, neighbours: int = 15, min_similarity: float = 0.4,
                 max_types: int = 3, colour_threshold: float = 2.0, gender_threshold: float = 2.0,
                 literal_boost: float | None = 4.0, type_ratio: float = 0.7, min_count: int = 3,
                 colour_share: float = 2.0, use_min: int = 3, prototype_votes: float = 0.3,
                 use_weight: float = 4.0, colour_look: bool = True, look_lightness: float = 1.0,
                 look_margin: float = 3.0, look_min_products: int = 20, english: bool = True,
                 english_guard: int | None = None, english_check: bool = True, compound_part: int | None = 3,
                 far: int | None = 5, fill_colour: float | None = 30.0):
        self.lexicon = lexicon
        # each phrase's vote, kept (up to 10,000): the neighbours cost a pass over every product's vector
        self._votes: dict[tuple, set[str] | None] = {}
        self.type_share = type_share
        self.neighbours = neighbours
        self.min_similarity = min_similarity  # the neighbours' mean cosine below which they do not vote
        self.max_types = max_types
        self.colour_threshold = colour_threshold
        self.gender_threshold = gender_threshold
        self.literal_boost = literal_boost
        self.type_ratio = type_ratio  # a picked type with fewer votes than this share of the top type's is dropped
        self.min_count = min_count  # the fewest products a catalogue word offered as a correction is used by
        self.colour_share, self.use_min = colour_share, use_min  # colour by the products using a word
        # the type whose products' mean vector is nearest to the words adds this many times `neighbours` votes
        self.prototype_votes = prototype_votes
        # the products using all the words weigh at least this many times `neighbours` votes, however few they are
        self.use_weight = use_weight
        # colour names the catalogue's labels lack read by their look (CIEDE2000 to each label's table colour; see
        # colours.ColourLook for the lightness divisor, the margin and the fewest products a label read needs)
        self.colour_look, self.look_lightness = colour_look, look_lightness
        self.look_margin, self.look_min_products = look_margin, look_min_products
        # a word with no catalogue word near corrected toward English (english.py); `english_guard`: an English
        # word at least this common is never corrected, not even toward the catalogue (None: only the catalogue's
        # and the table's words are protected)
        self.english, self.english_guard, self.english_check = english, english_guard, english_check
        # a word the catalogue lacks that ends with a type's word names that type ("necktie": `_head`)
        self.compound_part = compound_part
        # a word of at least `far` letters that neither the catalogue nor English has within one edit is
        # corrected toward a word naming an attribute within two (`Speller.far`; None: off)
        self.far = far
        # a page the filters leave short is filled with the products of the colour labels within this CIEDE2000
        # difference of a named one (`widen`; None: off)
        self.fill_colour = fill_colour

    def warm(self) -> None:
        """Load now what the first search that needs it would otherwise load, with every search behind it
        waiting: the English dictionary (1.7-5.9 s, english.py) and the colour tables with the labels' places
        (matplotlib's and scikit-image's code; a served search at 1,000,000 products had a p99 of 464 ms without
        this, docs/benchmarks.md, "Served search, understood")."""
        if self.english or self.english_guard is not None:
            english.load()
        if self.colour_look and self.lexicon.look is not None:
            self.lexicon.look.nearest(["black"])

    def understand(self, query: str, encode=None) -> Understood:
        """The understood query. `encode` (texts -> unit vectors, the search's text encoder) lets words no
        product uses be read by the products nearest to them by meaning; without it only the catalogue's words
        and the table are read."""
        lex = self.lexicon
        bounds = price_bounds(query)
        out = Understood(query, "", price_min=bounds.low, price_max=bounds.high)
        words = tokens(bounds.rest)
        fixed = []
        # a word two products use is a spelling in a shop of a few thousand, often a one-off (a brand, a typo) in
        # one of tens of thousands: `min_count` applies in full from 10,000 products per count up
        rare = min(self.min_count, max(2, lex.n // 10_000))
        foreign = set()  # words as the shopper typed them that the catalogue does not have (after correction)
        for i, w in enumerate(words):
            if w in lex.stop or lex.speller.is_known(w) or lex.lookup([w]):
                fixed.append(w)
                continue
            if self._is_english(w):  # a word of its own, not a misspelling of the catalogue's ("lads", not "lady")
                fixed.append(w)
                foreign.add(w)
                continue
            c = lex.speller.correct(w, fixed[-1] if fixed else None, words[i + 1] if i + 1 < len(words) else None,
                                    rare)
            if c is None and self.english:  # nothing in the catalogue near: the English word ("nwcktie")
                c = self._english(w, encode)
            if c is None and self.far:  # nothing within one edit: a word naming an attribute within two
                c = lex.speller.far(w, self.far)  # (an English word never gets here: it is its own correction)
            if c is not None and c != w:
                out.corrections.append((w, c))
            fixed.append(c or w)
            foreign.add(c or w)
        named, free = self._parse(fixed, look=False)
        # a query of the catalogue's own words, as typed, that says more than attributes by their catalogue names
        # (a product's name: "Catwalk Women Blue Flats") is what the text match already matches: its attributes
        # weigh as boosts, not filters, since labels and names disagree in places (that product is labelled Heels)
        out.literal = not out.corrections and all(w in lex.counts or w.isdigit() for w in words) \
            and all(any(e.source == "catalogue" for e in es) for _, es in named) \
            and any(w not in lex.stop for w in free) and self._named_together(words)
        if self.colour_look:  # colour names by their look ("crimson"), but not in a product's name
            looked, left = self._parse(fixed, look=True)
            # a literal query is a name only when it says more than attribute names, its colour names read
            if not out.literal or not any(w not in lex.stop for w in left):
                named, free, out.literal = looked, left, False
        named, also_type = self._one_type(named, encode)
        for phrase, entries in named:
            for e in entries:
                if not e.values:
                    continue
                out.filters.setdefault(e.attribute, set()).update(e.values)
                said = out.phrases.setdefault(e.attribute, [])
                if " ".join(phrase) not in said:
                    said.append(" ".join(phrase))
        if also_type:
            out.phrases.setdefault("type", []).extend(also_type)
        content = [w for w in free if w not in lex.stop]
        # (only words the catalogue lacks as typed: a brand or a catalogue word alone never becomes a colour)
        used = self._by_name(out, [w for w in content if w in foreign and not lex.lookup([w])], encode)
        used |= self._colour_by_use(out, [w for w in content if w not in used and not lex.lookup([w])])
        rest = [w for w in content if w not in used]
        if "type" not in out.filters and "type" in lex.attributes and rest:
            self._type_by_votes(out, rest, encode)
        named_words = [self._commonest(a, out.filters[a]) for a in ("gender", "colour") if out.filters.get(a)]
        types = sorted(out.filters.get("type", ()))
        out.text = bounds.rest if out.literal and bounds.rest else \
            " ".join(named_words + content + types) or bounds.rest or query
        return out

    def _named_together(self, words: list[str]) -> bool:
        """Whether some product's text uses all of `words` (stop words and numbers aside): a product's name has
        its words together in that product, while a shopper's words that the catalogue merely has, each somewhere
        ("crimson" in a lipstick's name, "pumps" in a shoe's), name no product and are read as attributes."""
        lex = self.lexicon
        rows = lex.rows_with([w for w in words if w not in lex.stop and w in lex.rows])
        return rows is not None and len(rows) > 0

    def _english(self, w: str, encode) -> str | None:
        """`w`'s English correction (english.py), kept only when the catalogue reads it at least as well as `w`
        by meaning (`english_check`): its product neighbours are on average as near. A shopper's word the
        dictionary lacks but the text encoder reads ("chappals", near the sandals) is not turned into a
        dictionary word it means nothing like ("chapels")."""
        c = english.correct(w, prefer=self.lexicon.speller.known)
        if c is None or c == w or not self.english_check or encode is None or self.lexicon.vectors is None:
            return c
        vectors = np.asarray(encode([w, c]), np.float32)
        near = [self.lexicon.neighbours(v, max(self.neighbours, 1))[1] for v in vectors]
        return c if len(near[1]) and near[1].mean() >= near[0].mean() else None

    def _is_english(self, w: str) -> bool:
        """Whether `w` is an English word common enough (`english_guard` occurrences) to be left as typed rather
        than corrected toward the catalogue (None: none is)."""
        return self.english_guard is not None and english.count(w) >= self.english_guard

    def _parse(self, fixed: list[str], look: bool) -> tuple[list, list[str]]:
        """The longest phrases, left to right, that name an attribute value (by the catalogue or the table; with
        `look`, colour names by what they look like: `Lexicon.by_look`), and the words left free."""
        lex = self.lexicon
        longest = max(lex.longest, 3) if look else lex.longest  # the tables' colour names run to three words and more
        few = min(self.look_min_products, max(1, lex.n // 2000))  # in a small shop every label counts
        named: list[tuple[list[str], object]] = []
        free: list[str] = []
        i = 0
        while i < len(fixed):
            for n in range(min(longest, len(fixed) - i), 0, -1):
                found = lex.lookup(fixed[i:i + n]) or (look and lex.by_look(
                    fixed[i:i + n], self.look_lightness, self.look_margin, few))
                if found:
                    named.append((fixed[i:i + n], found))
                    i += n
                    break
            else:
                head = self._head(fixed[i])
                if head:
                    named.append(([fixed[i]], head))
                else:
                    free.append(fixed[i])
                i += 1
        return named, free

    def _head(self, word: str) -> list:
        """The type entries of the word a closed compound ends with, when `word` is no catalogue word: English
        compounds name a kind of their last word ("necktie" a tie), so the type that word names, by the catalogue
        or the table, is read rather than left to the text encoder, which reads such a word by its first part
        ("necktie" nearest to V-neck T-shirts). Both parts at least `compound_part` letters, the first a word
        the catalogue uses ("neck"; not "nigh", so "nightie" stays whole); empty otherwise (None: off)."""
        lex, part = self.lexicon, self.compound_part
        if part is None or word in lex.counts or not word.isalpha() or len(word) < 2 * part:
            return []
        for cut in range(part, len(word) - part + 1):  # the longest head first
            entries = [e for e in lex.lookup([word[cut:]]) if e.attribute == "type" and e.values]
            if entries and word[:cut] in lex.counts:
                return entries
        return []

    def _by_name(self, out: Understood, unknown: list[str], encode) -> set[str]:
        """A word the catalogue never uses may name a colour or gender nobody named, by its nearness to the
        value's name (off unless the threshold is at most 1). Returns the words so read."""
        lex = self.lexicon
        wanted = [(a, t) for a, t in (("colour", self.colour_threshold), ("gender", self.gender_threshold))
                  if a not in out.filters and a in lex.attributes and t <= 1.0]
        used: set[str] = set()
        if unknown and wanted and encode is not None:
            vectors = np.asarray(encode(unknown), np.float32)
            for attribute, threshold in wanted:
                for w, hit in zip(unknown, lex.nearest(attribute, vectors, threshold, encode)):
                    if hit is not None and w not in used:
                        used.add(w)
                        out.filters.setdefault(attribute, set()).add(hit[0])
                        out.phrases.setdefault(attribute, []).append(w)
                        out.learnt.append((w, attribute, hit[0]))
        return used

    def _colour_by_use(self, out: Understood, words: list[str]) -> set[str]:
        """A word that names no attribute but whose products mostly share one colour, more than they share one
        type, names that colour when the query named none ("crimson", the name of its red lipsticks and nail
        polishes; not "chinos", whose products share a type first). At least `use_min` products must use it, and
        the colour must hold `colour_share` of their colours (off above 1). Returns the words so read."""
        lex = self.lexicon
        if "colour" in out.filters or "colour" not in lex.attributes or self.colour_share > 1.0:
            return set()
        for w in words:
            rows = lex.rows.get(w)
            if rows is None or len(rows) < self.use_min:
                continue
            colours = lex.votes("colour", rows)
            top = int(colours.argmax())
            share = colours[top] / max(colours.sum(), 1.0)
            types = lex.votes("type", rows) if "type" in lex.attributes else np.zeros(1)
            if share >= self.colour_share and share > types.max() / max(types.sum(), 1.0):
                value = lex.attributes["colour"].values[top]
                out.filters["colour"] = {value}
                out.phrases.setdefault("colour", []).append(w)
                out.learnt.append((w, "colour", value))
                return {w}
        return set()

    def _vote(self, words: list[str], encode) -> set[str] | None:
        """The types the catalogue says `words` mean: the labels of the products that use all the words, and of
        the `neighbours` products nearest to the words by meaning, vote; the fewest types (at most `max_types`)
        holding `type_share` of the votes ("office shoes" -> Formal Shoes, "kicks" -> Casual / Sports Shoes).
        None when the votes are spread wider (a brand whose products are of many types names none)."""
        memo_key = (tuple(words), encode is not None, self.type_share, self.neighbours, self.min_similarity,
                    self.max_types, self.type_ratio, self.prototype_votes, self.use_weight)
        if memo_key in self._votes:
            return self._votes[memo_key]
        if len(self._votes) > 10_000:  # a race only votes a phrase twice
            self._votes = {}
        self._votes[memo_key] = picked = self._count_votes(words, encode)
        return picked

    def _count_votes(self, words: list[str], encode) -> set[str] | None:
        lex = self.lexicon
        values = lex.attributes["type"].values
        votes = np.zeros(len(values))
        rows = lex.rows_with(words)
        if rows is not None and len(rows):
            used = lex.votes("type", rows)
            votes += used * max(1.0, self.use_weight * self.neighbours / max(used.sum(), 1.0))
        if encode is not None and lex.vectors is not None and self.neighbours > 0:
            vector = np.asarray(encode([" ".join(words)]), np.float32)[0]
            near, sims = lex.neighbours(vector, self.neighbours)
            if len(sims) and sims.mean() >= self.min_similarity:  # nothing near means the encoder cannot read it
                votes += lex.votes("type", near)
                if self.prototype_votes > 0 and lex.prototypes is not None:
                    votes[int((lex.prototypes @ vector).argmax())] += self.prototype_votes * self.neighbours
        total = votes.sum()
        if total <= 0:
            return None
        order = np.argsort(-votes, kind="stable")
        held = np.cumsum(votes[order]) / total
        n = int(np.searchsorted(held, self.type_share - 1e-9)) + 1
        if n > self.max_types:
            return None
        return {values[j] for j in order[:n] if votes[j] >= self.type_ratio * votes[order[0]]}

    def _type_by_votes(self, out: Understood, words: list[str], encode) -> None:
        """When no phrase named a type: the types the catalogue's votes give the remaining words, as the filter.
        (Letting a named type's words vote again with the words beside them, "dress shoes", lost more than it won
        on the development queries: an unread colour word beside a type then outvotes it.)"""
        picked = self._vote(words, encode)
        if picked:
            out.filters["type"] = set(picked)
            out.phrases.setdefault("type", []).append(" ".join(words))
            out.learnt += [(" ".join(words), "type", v) for v in sorted(picked)]

    def _one_type(self, named: list, encode) -> tuple[list, list[str]]:
        """When the words name several types ("dress shirt", "denim pants"), the one the phrase means: the named
        type whose products' mean vector is nearest to the phrase's. Returns `named` with the other phrases'
        type entries dropped, and those phrases (their words are said to name the kept type, so a chip removes
        them all)."""
        lex = self.lexicon
        typed = [(n, [e for e in es if e.attribute == "type" and e.values]) for n, (_, es) in enumerate(named)]
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

    def widen(self, understood: Understood) -> Understood | None:
        """`understood` with its colour filter widened to the labels that look within `fill_colour` of one it
        names (`ColourLook.near`), for the search to fill a page that its own filters leave short ("ivory
        jumper": one Cream sweater, then Off White and White ones, rather than a page of one). None when it names
        no colour, its filters were relaxed or are a literal query's boosts, or no other label is that near."""
        named, look = understood.filters.get("colour"), self.lexicon.look
        if self.fill_colour is None or not named or understood.literal or understood.relaxed or look is None:
            return None
        near = look.near(named, self.fill_colour) - set(named)
        return replace(understood, filters={**understood.filters, "colour": set(named) | near}) if near else None

    def mask(self, understood: Understood) -> tuple[np.ndarray | None, list[str]]:
        """bool [n]: the products every filter passes (None when there are no filters), relaxed until some pass:
        the filter keeping the most products (the least informative) is dropped first. Also returns what was
        dropped, in words ("colour purple"); every filter dropped leaves None (the text match alone)."""
        if understood.literal and self.literal_boost is not None:
            return None, []  # a literal query's attributes weigh through `boosts`
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

    def matching(self, understood: Understood) -> np.ndarray | None:
        """bool [n]: the products with every attribute the query names (None when it names none), not relaxed: what
        a literal query's boost puts first, for the search's candidate stage to look among."""
        attrs = self.lexicon.attributes
        active = [(a, frozenset(v)) for a, v in understood.filters.items() if a in attrs]
        if not active:
            return None
        return np.logical_and.reduce([attrs[a].mask_table(v)[attrs[a].codes] for a, v in active])

    def boosts(self, understood: Understood, at: np.ndarray | None = None) -> np.ndarray | None:
        """float32 [n] to add to a literal query's scores (or [len(at)], for rows `at` only): `literal_boost` times
        the share of its attributes each product has (None when the query is not literal, or names no attribute). The words as typed already
        match the products that use them; the boost orders the rest without losing a product whose label and
        name disagree ("Blue Flats" labelled Heels)."""
        attrs = self.lexicon.attributes
        active = [(a, frozenset(v)) for a, v in understood.filters.items() if a in attrs]
        if not understood.literal or self.literal_boost is None or not active:
            return None
        codes = {a: attrs[a].codes if at is None else attrs[a].codes[at] for a, _ in active}
        share = np.zeros(len(codes[active[0][0]]), np.float32)
        for a, v in active:
            share += attrs[a].mask_table(v)[codes[a]]
        return self.literal_boost * share / len(active)
