"""Spelling correction against the catalogue's own words: a misspelt query word becomes the most frequent
catalogue word within one edit (two for long words); a word the catalogue has is never changed. Among candidates
equally near, one that the catalogue writes next to a neighbouring query word ("tot bag" -> "tote", as in "Tote
Bag", not the commoner "top"; "swaet shirt" -> "sweat", as in "Sweatshirt") comes first, then one a single
slip of the fingers away (a letter dropped, added or swapped with its neighbour, or a key touching the right one:
"thirt" -> "tshirt", not "shirt", whose s would have to be a t, keys apart), then one that names an attribute
("sens" -> "mens", not "sets"). `far`: a word naming an attribute within two edits, for a word nothing else
reaches ("hnadags" -> "handbags"). A plural with nothing near is corrected by its singular ("hoidies"
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


def _keyboard() -> dict[str, frozenset[str]]:
    """Each letter's neighbours on a QWERTY keyboard: beside it in its row, and the keys touching it in the
    staggered rows above and below."""
    rows = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
    near: dict[str, set[str]] = {c: set() for r in rows for c in r}
    for r, row in enumerate(rows):
        for i, c in enumerate(row):
            around = [(r, i - 1), (r, i + 1), (r - 1, i), (r - 1, i + 1), (r + 1, i - 1), (r + 1, i)]
            near[c] |= {rows[a][b] for a, b in around if 0 <= a < len(rows) and 0 <= b < len(rows[a])}
    return {c: frozenset(n) for c, n in near.items()}


KEYBOARD = _keyboard()


def slip(typed: str, word: str) -> bool:
    """Whether `typed` is `word` with one slip of the fingers: a letter dropped or added, two neighbouring letters
    swapped, or a letter replaced by a key touching it. Not a letter replaced by a distant key ("thirt" is
    "tshirt" with the s dropped; "shirt" would need a t for the s, keys apart)."""
    if len(typed) != len(word):
        short, long = sorted((typed, word), key=len)
        return len(long) == len(short) + 1 and short in _deletes(long)
    diff = [i for i, (a, b) in enumerate(zip(typed, word)) if a != b]
    if len(diff) == 1:
        return typed[diff[0]] in KEYBOARD.get(word[diff[0]], ())
    return len(diff) == 2 and diff[1] == diff[0] + 1 and typed[diff[0]] == word[diff[1]] \
        and typed[diff[1]] == word[diff[0]]


class Speller:
    """`correct(word)`: the word itself when known, else its best catalogue spelling, else None."""

    def __init__(self, counts: Counter | dict[str, int], protected: set[str] = frozenset(), min_count: int = 2,
                 min_length: int = 3, long_word: int = 8, pairs: set[tuple[str, str]] | frozenset = frozenset(),
                 preferred: set[str] | frozenset = frozenset(), slips: bool = True):
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
        # among equally near candidates, those one slip of the fingers away (`slip`) first
        self.slips = slips
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
        self._far_pool = sorted(w for w in self.preferred if len(w) >= min_length and w.isalpha())

    def far(self, word: str, min_length: int = 5) -> str | None:
        """The word naming an attribute (`preferred`) within two edits of `word`, the commonest of the nearest;
        None when there is none or `word` is shorter than `min_length`. For a word that nothing reaches within
        one edit, neither in the catalogue nor in English: two slips in a word of five to seven letters
        ("hnadags" -> "handbags", "waltes" -> "wallets") lie beyond `correct`'s reach below `long_word`."""
        if len(word) < min_length or not word.isalpha():
            return None
        found = process.extract(word, self._far_pool, scorer=OSA.distance, score_cutoff=2, limit=None)
        if not found:
            return None
        best = min(d for _, d, _ in found)
        return min((w for w, d, _ in found if d == best), key=lambda w: (-self.counts.get(w, 0), w))

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
        found, typed = self._offered(self.candidates(word), min_count), word
        if not found and stem(word) != word:  # a plural whose singular is near ("hoidies" -> "hoodie")
            typed = stem(word)
            found = self._offered(self.candidates(typed), min_count)
        if not found:
            return None
        nearest = [w for w, d in found if d == found[0][1]]
        if self.pairs and (before or after):
            beside = [w for w in nearest if self._together(w, before, after)]
            if beside:
                return beside[0]
        if self.slips:  # a slip of the fingers before a distant key ("yshirt" -> "tshirt", not "shirt")
            nearest = [w for w in nearest if slip(typed, w)] or nearest
        named = [w for w in nearest if w in self.preferred]
        return named[0] if named else nearest[0]
