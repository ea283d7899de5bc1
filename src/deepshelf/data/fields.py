"""The rules every input is checked by, once, as annotated pydantic types: request schemas, path and query
parameters, and the engine's own inputs (rules, experiments) use the same ones. No web framework here: the HTTP
layer (`deepshelf.api.validation`) turns a broken rule into its 422 answer.

The character rules themselves (which characters text may hold, what an id is) live in `deepshelf.storage.cleaning`,
shared with the migration that repairs rows stored before them:
- `Id` (user, item ids): one URL path segment (no `/`, not only dots), no control characters, valid Unicode; an id
  that could not be read back by its path is refused when written (422), and an encoded `/` (`%2F`) in an id's
  path segment is refused the same way when read;
- `Line(n)` (categories, session ids, attribute keys, queries, run paths, boosts): one line of valid Unicode;
- `Text(n)` (titles, descriptions, attribute values): free text (tab and newlines allowed);
- `Finite`: a number that is not NaN or infinite (JSON's `1e400` parses to infinity); `Money` / `Price` /
  `Quantity`: finite and bounded (`MAX_VALUE`), so sums over them stay finite;
- `Timestamp`: not before 1970, not more than `clock_skew` seconds (the server's `max_clock_skew_s`) ahead of the
  clock;
- `Boosts`: repeated `NAME:FACTOR` query values.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Union

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints
from pydantic.types import AllowInfNan
from typing_extensions import TypeAliasType

from deepshelf.storage.records import MAX_VALUE
from deepshelf.storage.cleaning import ID_PATTERN, LINE_PATTERN, TEXT_PATTERN, json_problem, text_problem

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# How far ahead of this server's clock a timestamp may be: set per request by the HTTP layer from the app's
# settings (several apps with different settings may share a process, as in tests).
clock_skew: ContextVar[float] = ContextVar("deepshelf_clock_skew", default=86_400.0)


@dataclass(frozen=True)
class _Documented:
    """Adds a pattern and a description to a type's JSON schema (what the OpenAPI document shows)."""

    pattern: str | None = None
    description: str | None = None

    def __get_pydantic_json_schema__(self, core_schema, handler):
        schema = handler(core_schema)
        if self.pattern:
            schema["pattern"] = self.pattern
        if self.description and "description" not in schema:
            schema["description"] = self.description
        return schema


def _text_rule(kind: str):
    def check(value: str) -> str:
        problem = text_problem(value, kind)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


_PATTERNS = {"id": ID_PATTERN, "line": LINE_PATTERN, "text": TEXT_PATTERN}


def _as_sent(kind: str, max_length: int):
    """The documented rules (pattern, maxLength) on the value as sent, before whitespace is stripped: stripping
    must not make a value the OpenAPI document refuses (a tab or form feed at an end, too long) acceptable."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > max_length:
                raise ValueError(f"must be at most {max_length} characters")
            problem = text_problem(value, kind)
            if problem:
                raise ValueError(problem)
        return value

    return BeforeValidator(check)


def _string(kind: str, max_length: int, min_length: int = 0, strip: bool = False):
    rules = (_as_sent(kind, max_length),) if strip else ()
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length, strip_whitespace=strip),
                     _text_rule(kind), *rules, _Documented(_PATTERNS[kind])]


def Line(max_length: int, min_length: int = 0):  # noqa: N802 (a type factory, used like a type)
    """One line of valid Unicode, no control characters."""
    return _string("line", max_length, min_length)


def Text(max_length: int):  # noqa: N802
    """Free text: valid Unicode, no control characters but tab, newline and carriage return."""
    return _string("text", max_length)


Id = _string("id", 256, min_length=1, strip=True)
def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON Schema's "integer" includes 10.0
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON integer")
    return value


def Whole(ge: int | None = None, le: int | None = None):  # noqa: N802
    """A body's integer: a JSON integer (10 or 10.0), never a string or a boolean."""
    return Annotated[int, Field(ge=ge, le=le), Strict(), BeforeValidator(_whole)]  # bounds first: the schema keeps them
# Strict: a JSON number, never a string or a boolean the lax mode would convert (the schema says "number").
Finite = Annotated[float, Strict(), AllowInfNan(False)]
# An amount of money (an event's value, a price): finite and at most MAX_VALUE either way, so no sum over events
# (revenue, its square for a variance) can overflow.
Money = Annotated[Finite, Field(ge=-MAX_VALUE, le=MAX_VALUE)]
Price = Annotated[Finite, Field(ge=0, le=MAX_VALUE)]
MAX_QUANTITY = 1e6  # a GA4 item's quantity, either way
Quantity = Annotated[Finite, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]


def _json_value(value: Any) -> Any:
    problem = json_problem(value)  # the depth (the types below check the rest, and document it)
    if problem:
        raise ValueError(problem)
    return value


# A free-form JSON value (an item attribute), recursive so the OpenAPI document describes every nested string too.
# an integer attribute fits a signed 64-bit integer (what the databases' JSON and most readers hold exactly)
_Json = TypeAliasType("AttributeValue", Union[Text(20_000), Annotated[int, Strict(), Field(ge=-2**63, le=2**63 - 1)],  # noqa: UP007
                                              Finite,
                                              Annotated[bool, Strict()], None,
                                              list["_Json"], dict[Line(100), "_Json"]])
JsonValue = Annotated[_Json, AfterValidator(_json_value)]


def _plausible(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    if ts < EPOCH:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    skew = clock_skew.get()
    if ts.timestamp() > time.time() + skew:
        raise ValueError(f"must not be more than {skew:g} s ahead of the server's clock")
    return ts


@dataclass(frozen=True)
class _EitherSpelling:
    """The JSON schema of what a timestamp accepts: an RFC 3339 date-time, or Unix seconds (pydantic's own schema
    says only the first, and a fuzzer would call the second schema-violating). Not before 1970 is said for the
    number; the clock-relative bound (`max_clock_skew_s` ahead), and 1970 for the string, JSON Schema cannot say."""

    def __get_pydantic_json_schema__(self, core_schema, handler):
        return {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0}]}


Timestamp = Annotated[datetime, AfterValidator(_plausible), _EitherSpelling()]


# ---- URL spellings ---------------------------------------------------------------------------------------------
_FACTOR = "(?:1000(?:\\.0+)?|[1-9][0-9]{0,2}(?:\\.[0-9]+)?|0?\\.[0-9]*[1-9][0-9]*)"
BOOST_PATTERN = f"^[^\\u0000-\\u001f\\u007f-\\u009f,]+:{_FACTOR}$"  # no comma: a value splits at commas
BOOST_ITEM_PATTERN = f"^[^\\u0000-\\u001f\\u007f-\\u009f,/]+:{_FACTOR}$"


def Boosts(name: str, pattern: str):  # noqa: N802
    """Repeated `NAME:FACTOR` query values (boosts in a URL): FACTOR a decimal number in (0, 1000], e.g.
    `toys:1.5`. Checked as a whole, so a 422 names the parameter (`boost`), as the rest of the query does."""
    example = "toys" if name == "CATEGORY" else "i42"
    item = Annotated[str, StringConstraints(max_length=300), _Documented(pattern)]
    whole = re.compile(pattern)

    def check(values: list[str]) -> list[str]:
        for raw in values:
            if not whole.match(raw) or text_problem(raw, "line"):
                raise ValueError(f"expected {name}:FACTOR with 0 < FACTOR <= 1000 (e.g. {example}:1.5), got "
                                 f"{raw[:50]!r}")
        return values

    return Annotated[list[item], AfterValidator(check)]
