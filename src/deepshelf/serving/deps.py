"""Request dependencies shared by the routers: the service, API-key checks, k and business rules from the query.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool, and those
hops (several per request) cost more than the checks themselves."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepshelf.serving.rules import Rules
from deepshelf.serving.schemas import RulesIn
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


async def k_param(request: Request, k: Annotated[int, Query(ge=1, le=10_000, description="number of items")] = 10) -> int:
    return check_k(request.app.state.settings, k)


def to_rules(settings: Settings, given: RulesIn | None) -> Rules:
    """Request rules over the server's defaults."""
    given = given or RulesIn()
    if given.min_price is not None and given.max_price is not None and given.min_price > given.max_price:
        raise invalid("query", "min_price", "min_price is above max_price", given.min_price)
    return Rules(
        categories=given.categories or None,
        min_price=given.min_price, max_price=given.max_price,
        in_stock=settings.default_in_stock if given.in_stock is None else given.in_stock,
        exclude=list(given.exclude),
        exclude_purchased=(settings.default_exclude_purchased if given.exclude_purchased is None
                           else given.exclude_purchased),
        exclude_seen=True if given.exclude_seen is None else given.exclude_seen,
        max_per_category=given.max_per_category or settings.default_max_per_category,
        boost_categories=dict(given.boost_categories), boost_items=dict(given.boost_items),
    )


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


class ListQuery(BaseModel):
    """Query parameters shared by every list answer: k, details, and the business rules."""

    model_config = ConfigDict(extra="ignore")

    k: int = Field(default=10, ge=1, le=10_000, description="number of items")
    details: bool = Field(default=False, description="add title, category, price and image of each item")
    category: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, max_length=100, description="allowed categories (repeat, or comma-separated)")
    min_price: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    max_price: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    in_stock: bool | None = Field(default=None, description="only in-stock items (server default: true)")
    exclude: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, max_length=1000, description="item ids to leave out (repeat, or comma-separated)")
    exclude_purchased: bool | None = Field(default=None, description="leave out items the shopper bought")
    exclude_seen: bool | None = Field(default=None, description="leave out items in the shopper's history")
    max_per_category: int | None = Field(default=None, ge=1, le=1000, description="diversity: at most N per category")
    boost: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list, max_length=100,
                                                               description="CATEGORY:FACTOR (repeat)")
    boost_item: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list, max_length=1000,
                                                                    description="ITEM:FACTOR (repeat)")


_LIST_FIELDS = {name for name, f in ListQuery.model_fields.items() if f.default_factory is list}


def _openapi_parameters() -> list[dict]:
    props = ListQuery.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema,
             "description": schema.pop("description", ""), **({"style": "form", "explode": True}
                                                              if name in _LIST_FIELDS else {})}
            for name, schema in props.items()]


# The parameters are parsed by hand in `list_query` (one pydantic validation) rather than declared one by one:
# FastAPI's per-parameter machinery cost ~1 ms per request on the hot endpoints, more than the recommendation
# itself. This keeps them in the OpenAPI document (and so in the docs and the fuzz test) all the same.
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
    rules = RulesIn(categories=q.category or None, min_price=q.min_price, max_price=q.max_price, in_stock=q.in_stock,
                    exclude=q.exclude, exclude_purchased=q.exclude_purchased, exclude_seen=q.exclude_seen,
                    max_per_category=q.max_per_category, boost_categories=_parse_boosts(q.boost, "boost"),
                    boost_items=_parse_boosts(q.boost_item, "boost_item"))
    return ListParams(q.k, q.details, to_rules(settings, rules))


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ListDep = Annotated[ListParams, Depends(list_query)]
KDep = Annotated[int, Depends(k_param)]
WriteAuth = Depends(require_key)
ReadAuth = Depends(read_access)
