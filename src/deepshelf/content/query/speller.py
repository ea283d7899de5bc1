"""Spelling correction against the catalogue's own words: a misspelt query word becomes the most frequent
catalogue word within one edit (two for long words); a word the catalogue has is never changed. Among candidates
equally near, one that the catalogue writes next to a neighbouring query word ("tot bag" -> "tote", as in "Tote
Bag", not the commoner "top"; "swaet shirt" -> "sweat", as in "Sweatshirt") comes first, then one that names
an attribute ("sens" -> "mens", not "sets"). A plural with nothing near is corrected by its singular ("hoidies"
-> "hoodie").

Candidates come from a symmetric-delete index (Garbe's SymSpell idea, distance 1): every vocabulary word is
filed under itself and each of its one-letter deletions, so a dropped, doubled, swapped or neighbouring letter
finds its word with a few dict lookups, whatever the vocabulary's size. rapidfuzz's optimal-string-alignment
distance then checks each candidate (a swap of two neighbouring letters counts one edit) and, for long words
with two edits, searches the vocabulary of words of about the same length. The index is built once per
catalogue; a query word costs microseconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rapidfuzz.distance import OSA
from rapidfuzz import process

from deepshelf.content.query.text import stem


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


class Speller:
    """`correct(word)`: the word itself when known, else its best catalogue spelling, else None."""

    def __init__(self, counts: Counter | dict[str, int], protected: set[str] = frozenset(), min_count: int = 2,
                 min_length: int = 3, long_word: int = 8, pairs: set[tuple[str, str]] | frozenset = frozenset(),
                 preferred: set[str] | frozenset = frozenset()):
        # every word the catalogue (or the query lexicon) has is known and never corrected; only words seen at
        # least `min_count` times are offered as corrections (a typo in one title is not a spelling)
        self.known = set(counts) | set(protected)
        self.counts = {w: int(c) for w, c in counts.items() if c >= min_count and not w.isdigit()}
        for w in protected:
            self.counts.setdefault(w, min_count)
        self.min_length, self.long_word = min_length, long_word
        self.pairs = pairs  # (word, next word) the catalogue writes, and ("", "ab") for a word "ab" it writes whole
        # words that name an attribute (a type, colour or gender, by the catalogue or the table): among equally near
        # candidates that the neighbouring words do not decide, one of these comes before a merely commoner word
        # ("sens" -> "mens", not "sets"; "malr" -> "male", not "mar"): a shop's queries name what they want
        self.preferred = frozenset(preferred)
        index: dict[str, list[str]] = defaultdict(list)
        for w in self.counts:
            if len(w) >= min_length:
                index[w].append(w)
                for d in _deletes(w):
                    index[d].append(w)
        self._index = dict(index)
        by_length: dict[int, list[str]] = defaultdict(list)
        for w in self.counts:
            if len(w) >= long_word - 1:
                by_length[len(w)].append(w)
        self._by_length = dict(by_length)

    def is_known(self, word: str) -> bool:
        return word in self.known

    def candidates(self, word: str) -> list[tuple[str, int]]:
        """(catalogue word, edits) within reach of `word`, fewest edits first, then most frequent."""
        found = {w for probe in {word} | _deletes(word) for w in self._index.get(probe, ())}
        out = [(w, OSA.distance(word, w)) for w in found]
        out = [(w, d) for w, d in out if d <= 1]
        if not out and len(word) >= self.long_word:
            pool = [w for n in range(len(word) - 2, len(word) + 3) for w in self._by_length.get(n, ())]
            out = [(w, int(d)) for w, d, _ in process.extract(word, pool, scorer=OSA.distance, score_cutoff=2,
                                                               limit=20)]
        return sorted(out, key=lambda wd: (wd[1], -self.counts.get(wd[0], 0), wd[0]))

    def _offered(self, found: list[tuple[str, int]], min_count: int) -> list[tuple[str, int]]:
        return [(w, d) for w, d in found if w in self.preferred or self.counts.get(w, 0) >= min_count]

    def _together(self, candidate: str, before: str | None, after: str | None) -> bool:
        """Whether the catalogue writes `candidate` beside the query's neighbouring word, apart or joined."""
        pairs = [(before, candidate), ("", before + candidate)] if before else []
        pairs += [(candidate, after), ("", candidate + after)] if after else []
        return any(pair in self.pairs for pair in pairs)

    def correct(self, word: str, before: str | None = None, after: str | None = None,
                min_count: int = 0) -> str | None:
        """`word` when the catalogue has it (or it is a number or too short to judge), its correction when one is
        within reach, else None (an unknown word with nothing near it). `before` / `after`: the query's words
        beside it, which break ties between equally near candidates. `min_count`: catalogue words used fewer times
        are not offered (words that name an attribute always are): a shopper's word the catalogue lacks is more
        often a word of its own ("joggers") than a misspelling of a word a couple of products use ("roggers")."""
        if word in self.known or word.isdigit() or len(word) < self.min_length:
            return word
        found = self._offered(self.candidates(word), min_count)
        if not found and stem(word) != word:  # a plural whose singular is near ("hoidies" -> "hoodie")
            found = self._offered(self.candidates(stem(word)), min_count)
        if not found:
            return None
        nearest = [w for w, d in found if d == found[0][1]]
        if self.pairs and (before or after):
            beside = [w for w in nearest if self._together(w, before, after)]
            if beside:
                return beside[0]
        named = [w for w in nearest if w in self.preferred]
        return named[0] if named else found[0][0]
