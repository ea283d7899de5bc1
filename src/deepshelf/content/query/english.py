"""Spelling toward English when the catalogue has nothing near: a shopper's misspelling of a word no product uses
("nwcktie", "kcks", "ruclsack") becomes the English word ("necktie", "kicks", "rucksack"), which the meaning stage
(the text encoder, the catalogue's type vote) can then read; the misspelling itself it cannot.

The words and their frequencies are symspellpy's English frequency dictionary (82,765 words, from Google Books
n-gram counts checked against the SCOWL word lists), looked up with symspellpy's symmetric-delete index. Loaded
once per process: 1.7 s on an idle 2-core machine (5.9 s under load) and about 135 MB resident; a served run loads
it with the run (`load`), so no shopper's search waits for it."""

from __future__ import annotations

import threading
from importlib import resources

_LOCK = threading.Lock()
_SYMSPELL = None


def _dictionary():
    global _SYMSPELL
    with _LOCK:
        if _SYMSPELL is None:
            from symspellpy import SymSpell

            sym = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
            path = resources.files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt")
            if not sym.load_dictionary(str(path), term_index=0, count_index=1, encoding="utf-8"):
                raise RuntimeError(f"{path}: symspellpy's English dictionary could not be read")
            _SYMSPELL = sym
    return _SYMSPELL


def load() -> None:
    """Load the dictionary now (a served run does at load time: `QueryUnderstanding.warm`)."""
    _dictionary()


def count(word: str) -> int:
    """How often `word` (lower case) occurs in the dictionary's English text; 0 for a word it lacks."""
    return int(_dictionary().words.get(word, 0))


def correct(word: str, long_word: int = 8, min_length: int = 4, prefer=frozenset()) -> str | None:
    """The commonest English word nearest to `word` (lower case) within one edit, two from `long_word` letters
    (a swap of two neighbouring letters counts one), one of `prefer` (the shop's own words: "bouse" -> "blouse",
    not the commoner "mouse") first among equally near words; `word` itself when it is English; None when nothing
    is near, or the word is shorter than `min_length` or holds a digit (too little to judge)."""
    from symspellpy import Verbosity

    if len(word) < min_length or any(c.isdigit() for c in word):
        return None
    found = _dictionary().lookup(word, Verbosity.CLOSEST, max_edit_distance=2 if len(word) >= long_word else 1)
    return next((f.term for f in found if f.term in prefer), found[0].term if found else None)
