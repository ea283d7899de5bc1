"""What text and numbers a store may hold: the one rule the HTTP edge validates against (serving/validation.py)
and the repair migration cleans stored rows by (migrations.py).

Text is valid Unicode (no lone UTF-16 surrogates, which neither UTF-8 nor PostgreSQL can hold) without NUL or other
control characters (free text such as a description may keep tab, newline and carriage return); numbers are
finite. An id is additionally one URL path segment: no `/`, and not made of dots and spaces only (`.` and `..` are
rewritten by every HTTP client), so whatever can be written can be read back by its path.
"""

from __future__ import annotations

import math
import re
from typing import Any

# C0 controls (NUL included), DEL, C1 controls, lone surrogates.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
_SURROGATE = "\\ud800-\\udfff"
# Free text keeps tab, newline and carriage return.
_TEXT_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"

_BAD_LINE = re.compile(f"[{_CONTROL}{_SURROGATE}]")
_BAD_TEXT = re.compile(f"[{_TEXT_CONTROL}{_SURROGATE}]")
_BAD_ID = re.compile(f"[{_CONTROL}{_SURROGATE}/]")
_ID_BODY = re.compile(r"[^\s.]")  # an id needs one character that is neither a space nor a dot

# The same rules as JSON-schema patterns (ECMA syntax), for the OpenAPI document and the clients it generates.
LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f/]*[^\\s.\\u0000-\\u001f\\u007f-\\u009f/][^\\u0000-\\u001f\\u007f-\\u009f/]*$"


def _char_problem(value: str, bad: re.Pattern) -> str | None:
    found = bad.search(value)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return "is not valid Unicode (a lone UTF-16 surrogate)"
    if char == "/":
        return "must not contain '/' (an id is one URL path segment)"
    if char == "\x00":
        return "must not contain NUL characters"
    return f"must not contain control characters (U+{ord(char):04X})"


def text_problem(value: str, kind: str = "text") -> str | None:
    """Why `value` may not be stored as `kind` ("id", "line": one-line text such as a category, "text": free
    text), or None when it may."""
    if kind == "id":
        problem = _char_problem(value, _BAD_ID)
        if problem is None and not _ID_BODY.search(value):
            problem = "must contain a character other than spaces and dots"
        return problem
    return _char_problem(value, _BAD_LINE if kind == "line" else _BAD_TEXT)


def number_problem(value: float) -> str | None:
    return None if math.isfinite(value) else "must be a finite number"


def json_problem(value: Any, depth: int = 0, max_depth: int = 8) -> str | None:
    """Why a free-form JSON value (an item attribute) may not be stored, or None: its strings follow the text
    rule, its keys the one-line rule, its numbers are finite, and it nests at most `max_depth` deep."""
    if depth > max_depth:
        return f"nests deeper than {max_depth} levels"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float):
        return number_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(str(key), "line") or json_problem(item, depth + 1, max_depth)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth + 1, max_depth)
            if problem:
                return problem
    return None


def clean_text(value: str, kind: str = "text") -> str:
    """`value` made storable: lone surrogates become U+FFFD, control characters are dropped (for repairs of rows
    stored before the rule; the edge refuses such input instead)."""
    value = re.sub(f"[{_SURROGATE}]", "\ufffd", value)
    return (_BAD_TEXT if kind == "text" else _BAD_LINE).sub("", value)


def clean_json(value: Any) -> Any:
    """A free-form JSON value made storable: strings cleaned, non-finite numbers become null."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean_text(str(k), "line"): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value
