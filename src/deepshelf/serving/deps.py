"""Request dependencies shared by the routers: the service, API-key checks, k and business rules from the query."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

from deepshelf.serving.rules import Rules
from deepshelf.serving.schemas import RulesIn
from deepshelf.serving.service import Service
from deepshelf.serving.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="one of DEEPSHELF_API_KEYS")


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def _check_key(settings: Settings, key: str | None) -> None:
    keys = settings.keys
    if not keys:
        # Refuse rather than accept anything: a server started without keys must not take writes from anyone.
        raise HTTPException(401, "this server has no API keys configured (set DEEPSHELF_API_KEYS); "
                                 "writes are disabled", headers={"WWW-Authenticate": "X-API-Key"})
    if not key or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
        raise HTTPException(401, "missing or invalid X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})


def require_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Writes and admin."""
    _check_key(get_settings(request), key)


def read_access(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Reads: open unless `require_key_for_reads` is set."""
    settings = get_settings(request)
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


def k_param(request: Request, k: Annotated[int, Query(ge=1, le=10_000, description="number of items")] = 10) -> int:
    return check_k(get_settings(request), k)


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


def query_rules(
    request: Request,
    category: Annotated[list[str] | None, Query(max_length=100, description="allowed categories (repeat)")] = None,
    min_price: Annotated[float | None, Query(ge=0, le=1e12)] = None,
    max_price: Annotated[float | None, Query(ge=0, le=1e12)] = None,
    in_stock: Annotated[bool | None, Query(description="only in-stock items (server default: true)")] = None,
    exclude: Annotated[list[str] | None, Query(max_length=1000, description="item ids to leave out")] = None,
    exclude_purchased: bool | None = None,
    exclude_seen: bool | None = None,
    max_per_category: Annotated[int | None, Query(ge=1, le=1000)] = None,
    boost: Annotated[list[str] | None, Query(max_length=100, description="CATEGORY:FACTOR (repeat)")] = None,
    boost_item: Annotated[list[str] | None, Query(max_length=1000, description="ITEM:FACTOR (repeat)")] = None,
) -> Rules:
    # comma-separated values are accepted too: ?exclude=a,b
    split = lambda values: [v for raw in (values or []) for v in raw.split(",") if v]  # noqa: E731
    rules = RulesIn(categories=split(category) or None, min_price=min_price, max_price=max_price, in_stock=in_stock,
                    exclude=split(exclude), exclude_purchased=exclude_purchased, exclude_seen=exclude_seen,
                    max_per_category=max_per_category,
                    boost_categories=_parse_boosts(boost or [], "boost"),
                    boost_items=_parse_boosts(boost_item or [], "boost_item"))
    return to_rules(get_settings(request), rules)


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RulesDep = Annotated[Rules, Depends(query_rules)]
KDep = Annotated[int, Depends(k_param)]
WriteAuth = Depends(require_key)
ReadAuth = Depends(read_access)
