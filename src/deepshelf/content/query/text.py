"""The word-level pieces of query understanding: tokens, match keys and price bounds, all pure functions.

A match key is how two spellings of one phrase meet: lower case, spaces and hyphens dropped, one plural ending
removed, so "T-Shirts", "t shirt" and "tshirt" share the key "tshirt" and "Flip Flops" / "flipflops" share
"flipflop".
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

_WORD = re.compile(r"[a-z0-9]+")
_APOSTROPHE = re.compile(r"['’`´]")
_NUMBER = r"(?:[£$€₹]|rs\.?|inr|usd|eur|gbp)?\s*(\d+(?:[.,]\d+)?)\s*(?:[£$€₹]|rs|inr|usd|eur|gbp|pounds?|dollars?|euros?)?"
# "under 30", "below £20", "less than $15", "up to 40", "max 25" / "over 50", "above 10", "from 20" / "20-40"
_MAX = re.compile(r"\b(?:under|below|less than|cheaper than|up to|upto|max(?:imum)?|at most|<=?)\s*" + _NUMBER)
_MIN = re.compile(r"\b(?:over|above|more than|from|min(?:imum)?|at least|>=?)\s*" + _NUMBER)
_RANGE = re.compile(r"\b(?:between\s*)?" + _NUMBER + r"\s*(?:-|to|and)\s*" + _NUMBER)


def tokens(text: str) -> list[str]:
    """Lower-case words and numbers of `text` ("Men's T-Shirt" -> ["mens", "t", "shirt"])."""
    return _WORD.findall(_APOSTROPHE.sub("", text.lower()))


@functools.lru_cache(maxsize=1 << 16)  # a catalogue's words repeat: each distinct one stemmed once
def stem(word: str) -> str:
    """One plural ending off a lower-case word: dresses -> dress, watches -> watch, tops -> top, dress -> dress."""
    if len(word) <= 3:
        return word
    if word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def key(words: list[str] | str) -> str:
    """The match key of a phrase: its tokens joined without spaces, the last one stemmed."""
    parts = tokens(words) if isinstance(words, str) else list(words)
    if not parts:
        return ""
    return "".join(parts[:-1]) + stem(parts[-1])


class PriceBounds(NamedTuple):
    low: float | None
    high: float | None
    rest: str  # the query without the words that stated the bounds


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def price_bounds(query: str) -> PriceBounds:
    """Price bounds a query states ("under 30", "below £20", "over 50", "20-40", "between 20 and 40") and the
    query without them. Bounds it does not state are None."""
    text = _APOSTROPHE.sub("", query.lower())
    low = high = None
    m = _RANGE.search(text)
    if m and (m.group(0).strip().startswith("between") or "-" in m.group(0) or " to " in m.group(0)):
        a, b = sorted((_number(m.group(1)), _number(m.group(2))))
        low, high = a, b
        text = text[:m.start()] + " " + text[m.end():]
    m = _MAX.search(text)
    if m:
        high = _number(m.group(1))
        text = text[:m.start()] + " " + text[m.end():]
    m = _MIN.search(text)
    if m:
        low = _number(m.group(1))
        text = text[:m.start()] + " " + text[m.end():]
    return PriceBounds(low, high, " ".join(text.split()))
