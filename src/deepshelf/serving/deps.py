"""Request dependencies shared by the routers: the service, API-key checks, k and business rules from the query.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool, a hop per
dependency for checks that take no time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import ConfigDict, Field, ValidationError, create_model

from deepshelf.serving.rules import Rules, RulesIn
from deepshelf.serving.service import Service
from deepshelf.serving.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="one of DEEPSHELF_API_KEYS")


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def _check_key(settings: Settings, key: str | None) -> None:
    keys = settings.keys
    if not keys:
        # Refuse rather than accept anything: a server started without keys must not take writes from anyone.
        raise HTTPException(401, "this server has no API keys configured (set DEEPSHELF_API_KEYS); "
                                 "writes are disabled", headers={"WWW-Authenticate": "X-API-Key"})
    if not key or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
        raise HTTPException(401, "missing or invalid X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})


async def require_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Writes and admin."""
    _check_key(request.app.state.settings, key)


async def read_access(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Reads: open unless `require_key_for_reads` is set."""
    settings = request.app.state.settings
    if settings.require_key_for_reads:
        _check_key(settings, key)


def invalid(location: str, field: str, message: str, value=None) -> RequestValidationError:
    """A 422 in FastAPI's usual shape, naming the field."""
    return RequestValidationError([{"loc": (location, field), "msg": message, "type": "value_error",
                                    "input": value}])


def check_k(settings: Settings, k: int, location: str = "query") -> int:
    if k > settings.max_k:
        raise invalid(location, "k", f"k must be at most {settings.max_k}", k)
    return k


def to_rules(settings: Settings, given: RulesIn | None) -> Rules:
    """Request rules over the server's defaults."""
    given = given or RulesIn()
    if given.min_price is not None and given.max_price is not None and given.min_price > given.max_price:
        raise invalid("query", "min_price", "min_price is above max_price", given.min_price)
    return given.resolve(settings.default_in_stock, settings.default_exclude_purchased,
                         settings.default_max_per_category)


def _parse_boosts(values: list[str], field: str) -> dict[str, float]:
    out = {}
    for raw in values:
        name, sep, factor = raw.rpartition(":")
        try:
            f = float(factor)
        except ValueError:
            f = float("nan")
        if not sep or not name or not (0 < f <= 1000):
            raise invalid("query", field, f"expected NAME:FACTOR with 0 < FACTOR <= 1000, got {raw!r}", raw)
        out[name] = f
    return out


QueryText = Annotated[str, Field(max_length=256)]
# How a rule is spelled in a URL where that differs from `RulesIn` (the JSON body): one repeatable `category`,
# prices bounded, boosts as NAME:FACTOR strings. Every other rule is `RulesIn`'s own field.
_URL_FORM: dict[str, tuple[str, Any, Any]] = {
    "categories": ("category", list[QueryText], Field(
        default_factory=list, max_length=100, description="allowed categories (repeat, or comma-separated)")),
    "min_price": ("min_price", float | None, Field(default=None, ge=0, le=1e12, allow_inf_nan=False)),
    "max_price": ("max_price", float | None, Field(default=None, ge=0, le=1e12, allow_inf_nan=False)),
    "boost_categories": ("boost", list[Annotated[str, Field(max_length=300)]], Field(
        default_factory=list, max_length=100, description="CATEGORY:FACTOR (repeat)")),
    "boost_items": ("boost_item", list[Annotated[str, Field(max_length=300)]], Field(
        default_factory=list, max_length=1000, description="ITEM:FACTOR (repeat)")),
}
_URL_NAME = {rule: _URL_FORM[rule][0] if rule in _URL_FORM else rule for rule in RulesIn.model_fields}

ListQuery = create_model(
    "ListQuery",
    __doc__="Query parameters shared by every list answer: k, details, and the business rules.",
    __config__=ConfigDict(extra="ignore"),
    k=(int, Field(default=10, ge=1, le=10_000, description="number of items")),
    details=(bool, Field(default=False, description="add title, category, price and image of each item")),
    **{_URL_NAME[rule]: _URL_FORM[rule][1:] if rule in _URL_FORM else (info.annotation, info)
       for rule, info in RulesIn.model_fields.items()},
)


def rules_from_query(q) -> RulesIn:
    """The `RulesIn` a validated `ListQuery` spells."""
    values = {rule: getattr(q, url) for rule, url in _URL_NAME.items()}
    values["categories"] = values["categories"] or None
    values["boost_categories"] = _parse_boosts(q.boost, "boost")
    values["boost_items"] = _parse_boosts(q.boost_item, "boost_item")
    return RulesIn.model_construct(**values)


_LIST_FIELDS = {name for name, f in ListQuery.model_fields.items() if f.default_factory is list}


def _openapi_parameters() -> list[dict]:
    props = ListQuery.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema,
             "description": schema.pop("description", ""), **({"style": "form", "explode": True}
                                                              if name in _LIST_FIELDS else {})}
            for name, schema in props.items()]


# The parameters are parsed by hand in `list_query` (one pydantic validation) rather than declared one by one, for
# speed on the hot endpoints (see the `server CPU ms / request` column of docs/benchmarks.md's Service section for
# what a whole request costs). This keeps them in the OpenAPI document (and so in the docs and the fuzz test).
LIST_QUERY_OPENAPI = {"parameters": _openapi_parameters()}


@dataclass
class ListParams:
    k: int
    details: bool
    rules: Rules


async def list_query(request: Request) -> ListParams:
    qp = request.query_params
    raw: dict = {}
    for name in ListQuery.model_fields:
        if name in _LIST_FIELDS:
            values = [v for item in qp.getlist(name) for v in item.split(",") if v]  # ?exclude=a,b works too
            if values:
                raw[name] = values
        elif name in qp:
            raw[name] = qp[name]
    try:
        q = ListQuery.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])}
                                      for e in exc.errors(include_url=False, include_context=False)]) from None
    settings = request.app.state.settings
    check_k(settings, q.k)
    return ListParams(q.k, q.details, to_rules(settings, rules_from_query(q)))


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ListDep = Annotated[ListParams, Depends(list_query)]
WriteAuth = Depends(require_key)
ReadAuth = Depends(read_access)
