"""Request dependencies shared by the routers: the service, API-key checks, k and business rules from the query.

All are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a hop per dependency for checks that
take no time. So none of them may call the store or do slow work on the event loop (tests/api/test_event_loop.py):
the one that can need the store, a category filter the catalogue snapshot does not know, awaits it in the pool."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import ConfigDict, Field, ValidationError, create_model

from deepshelf.tokens import HEADER as SHOPPER_TOKEN_HEADER
from deepshelf.tokens import TokenError
from deepshelf.tokens import verify as verify_token
from deepshelf.engine.catalog_view import Snapshot
from deepshelf.engine.rules import Rules, RulesIn
from deepshelf.engine.service import Service
from deepshelf.engine.settings import Settings
from deepshelf.data.fields import BOOST_ITEM_PATTERN, BOOST_PATTERN, Boosts, Id, Line

PRIVATE, PUBLIC = "private", "public"
READ_SCHEME = "PublicKeyRead"

# Two names for the one `X-API-Key` header, so the OpenAPI document can say which scope each operation needs
# (`openapi_doc.py` sets every operation's security requirement from the dependency it has).
private_key_header = APIKeyHeader(name="X-API-Key", scheme_name="PrivateKey", auto_error=False,
                                  description="a private key (one of DEEPSHELF_API_KEYS): server-side only")
public_key_header = APIKeyHeader(name="X-API-Key", scheme_name="PublicKey", auto_error=False,
                                 description="a public key (one of DEEPSHELF_PUBLIC_KEYS), safe in a web page")
# The reads a public key may make; a name of its own only so `openapi_doc.py` can tell them from the writes (it
# documents them under PublicKey, or as open when `require_key_for_reads` is off).
public_read_header = APIKeyHeader(name="X-API-Key", scheme_name=READ_SCHEME, auto_error=False)


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "X-API-Key"})


def _listed(key: str, keys: frozenset[str]) -> bool:
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


def check_key(settings: Settings, key: str | None, scope: str) -> None:
    """401 without a valid key, 403 for a public key where a private one is needed."""
    private, public = settings.keys, settings.public_key_set
    if not private and not (scope == PUBLIC and public):
        # Refuse rather than accept anything: a server started without keys serves no one.
        raise _unauthorized("this server has no API keys for this call (set DEEPSHELF_API_KEYS, and "
                            "DEEPSHELF_PUBLIC_KEYS for a web page)")
    if key and _listed(key, private):
        return
    if key and _listed(key, public):
        if scope == PUBLIC:
            return
        raise HTTPException(403, "this call needs a private key (DEEPSHELF_API_KEYS); a public key may only post "
                                 "events and read recommendations, similar items, search, popular and products")
    raise _unauthorized("missing or invalid X-API-Key header")


async def require_private(request: Request,
                          key: Annotated[str | None, Security(private_key_header)] = None) -> None:
    """Shoppers' data, erasure, catalogue writes and listing, runs, stats, metrics, reload."""
    check_key(request.app.state.settings, key, PRIVATE)


async def require_public(request: Request, key: Annotated[str | None, Security(public_key_header)] = None) -> None:
    """Posting events: a public or a private key."""
    check_key(request.app.state.settings, key, PUBLIC)


async def public_read(request: Request,
                      key: Annotated[str | None, Security(public_read_header)] = None) -> None:
    """Recommendations, similar, search, popular, a product: a public or a private key, unless
    `require_key_for_reads` is off."""
    check_read(request.app.state.settings, key)


def check_read(settings: Settings, key: str | None) -> None:
    """What `public_read` checks, for a route that reads its key header itself (api/fast_route.py)."""
    if settings.require_key_for_reads:
        check_key(settings, key, PUBLIC)


def check_shopper(settings: Settings, key: str | None, token: str | None, user_id: str) -> None:
    """A shopper's own data (their personal list, a search personalised for them) answers a private key, or a
    valid shopper token for that very shopper (`deepshelf.tokens`) beside a public key (or none, where reads are
    open). Anything else is refused naming why: 403 without a token or with another shopper's, 401 for a token
    malformed, tampered or expired. So the public key alone reveals nothing of anyone's history."""
    if key and _listed(key, settings.keys):
        return
    secret = settings.token_secret.get_secret_value()
    if not secret:
        raise HTTPException(403, "shopper tokens are off on this server (no DEEPSHELF_TOKEN_SECRET): a shopper's "
                                 "personal list or personalised search needs a private key; a page can use "
                                 "/v1/sessions/recommendations (its visit's items) or /v1/popular")
    if not token:
        raise HTTPException(403, f"a shopper's personal list or personalised search needs a shopper token "
                                 f"({SHOPPER_TOKEN_HEADER}, minted by the shop's backend) beside a public key, or a "
                                 "private key")
    key = (secret, token, user_id)
    expiry = _VERIFIED.get(key)
    if expiry is not None and time.time() < expiry:
        return  # verified before, not expired yet: no HMAC again for each of the shopper's page views
    try:
        expiry = verify_token(secret, token, user_id)
    except TokenError as exc:
        headers = {"WWW-Authenticate": SHOPPER_TOKEN_HEADER} if exc.status == 401 else None
        raise HTTPException(exc.status, str(exc), headers=headers) from None
    if len(_VERIFIED) >= _VERIFIED_LIMIT:
        _VERIFIED.clear()
    _VERIFIED[key] = expiry


# (secret, token, shopper) -> expiry of tokens verified in this process; a token is valid before its expiry
# whoever asks, so only the expiry is checked again. Bounded: emptied when full.
_VERIFIED: dict[tuple[str, str, str], int] = {}
_VERIFIED_LIMIT = 65_536


SHOPPER_TOKEN_DOC = {403: {"description": "a shopper's data without a private key or that shopper's token "
                                          "(X-Shopper-Token): none, another shopper's, or tokens off on this server"},
                     401: {"description": "missing or invalid X-API-Key, or a shopper token malformed, tampered "
                                          "or expired (`detail` says which)"}}


def invalid(location: str, field: str, message: str, value=None) -> RequestValidationError:
    """A 422 in FastAPI's usual shape, naming the field."""
    return RequestValidationError([{"loc": (location, field), "msg": message, "type": "value_error",
                                    "input": value}])


def check_k(settings: Settings, k: int, location: str = "query") -> int:
    """The one upper bound of `k`, the server's `max_k` (the OpenAPI document states the same, `validation.install`)."""
    if k > settings.max_k:
        raise invalid(location, "k", f"k must be at most {settings.max_k}", k)
    return k


def _catalogue(service: Service, settings: Settings) -> Snapshot | None:
    """The served catalogue (the run's items and the store's, as fresh as a list answer reads it); None while no
    run is loaded."""
    state = service.state
    if state is None:
        return None
    state.view.refresh(max_age_s=settings.catalog_refresh_s)
    return state.view.snapshot


def unknown_items(service: Service, settings: Settings, item_ids) -> list[str]:
    """The ids among `item_ids` in neither the catalogue nor the served run, each once in order (none while no
    run is loaded: nothing to tell them by)."""
    catalog = _catalogue(service, settings)
    if catalog is None:
        return []
    ids = list(dict.fromkeys(item_ids))
    return [i for i, pos in zip(ids, catalog.lookup(ids).tolist()) if pos < 0]


_NAMED_CATEGORIES = 50  # a 422 for an unknown category names at most this many of the catalogue's own


def check_categories(service: Service, settings: Settings, categories: list[str] | None,
                     loc: tuple[str, ...] = ("query", "category")) -> None:
    """A category filter naming a category the catalogue does not have would answer an empty list with no word
    why: a 422 at `loc` naming the catalogue's categories instead. Not checked while no run is loaded (the
    request is answered 503 then). Reads the store (a catalogue refresh): in the thread pool only; on the event
    loop, `check_query_categories`."""
    catalog = _catalogue(service, settings) if categories else None
    if catalog is not None:
        _refuse_unknown(catalog, categories, loc)


async def check_query_categories(service: Service, settings: Settings, categories: list[str] | None) -> None:
    """`check_categories` for the event loop: the catalogue snapshot in memory answers the categories it knows
    (a view never forgets a category, so a refresh would not change that answer); only a category it does not
    know waits for the refresh from the store (another server may have just added it), in the thread pool."""
    state = service.state
    if not categories or state is None:
        return
    catalog = state.view.snapshot
    if all(catalog.code(c) is not None for c in categories):
        return
    await run_in_threadpool(check_categories, service, settings, categories)


def _refuse_unknown(catalog: Snapshot, categories: list[str], loc: tuple[str, ...]) -> None:
    unknown = [c for c in categories if catalog.code(c) is None]
    if not unknown:
        return
    known = catalog.categories[:catalog.n_categories]
    if not known:
        hint = "this catalogue has no categories"
    else:
        shown = sorted(known)[:_NAMED_CATEGORIES]
        more = f" (and {len(known) - len(shown)} more)" if len(known) > len(shown) else ""
        hint = "the catalogue's categories: " + ", ".join(shown) + more
    raise RequestValidationError([{"loc": loc, "msg": f"unknown category {', '.join(map(repr, unknown))}; {hint}",
                                   "type": "value_error", "input": unknown}])


def to_rules(settings: Settings, given: RulesIn | None, placement: str = "home") -> Rules:
    """Request rules over the server's defaults (the exploration share: the placement's, else the server's)."""
    given = given or RulesIn()
    if given.min_price is not None and given.max_price is not None and given.min_price > given.max_price:
        raise invalid("query", "min_price", "min_price is above max_price", given.min_price)
    return given.resolve(settings.default_in_stock, settings.default_exclude_purchased,
                         settings.default_max_per_category,
                         settings.new_item_slots_by_placement.get(placement, settings.new_item_slots))


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


QueryText = Line(256)
# How a rule is spelled in a URL where that differs from `RulesIn` (the JSON body): one repeatable `category`,
# prices bounded, boosts as NAME:FACTOR strings. Every other rule is `RulesIn`'s own field.
_URL_FORM: dict[str, tuple[str, Any, Any]] = {
    "categories": ("category", list[QueryText], Field(
        default_factory=list, max_length=100, description="allowed categories (repeat, or comma-separated)")),
    "min_price": ("min_price", float | None, Field(default=None, ge=0, le=1e12, allow_inf_nan=False)),
    "max_price": ("max_price", float | None, Field(default=None, ge=0, le=1e12, allow_inf_nan=False)),
    "boost_categories": ("boost", Boosts("CATEGORY", BOOST_PATTERN), Field(
        default_factory=list, max_length=100, description="CATEGORY:FACTOR (repeat): multiply the scores of "
        "a category's items by FACTOR, a decimal number with 0 < FACTOR <= 1000, e.g. toys:1.5")),
    "boost_items": ("boost_item", Boosts("ITEM", BOOST_ITEM_PATTERN), Field(
        default_factory=list, max_length=1000, description="ITEM:FACTOR (repeat): multiply an item's score "
        "by FACTOR, a decimal number with 0 < FACTOR <= 1000, e.g. i42:2")),
}
_URL_NAME = {rule: _URL_FORM[rule][0] if rule in _URL_FORM else rule for rule in RulesIn.model_fields}

ListQuery = create_model(
    "ListQuery",
    __doc__="Query parameters shared by every list answer: k, details, placement, session and the business rules.",
    __config__=ConfigDict(extra="ignore"),
    # no static upper bound: the server's `max_k` is the one limit (`check_k`; stated in the OpenAPI document)
    k=(int, Field(default=10, ge=1, description="number of items, at most the server's max_k (default 100)")),
    details=(bool, Field(default=False, description="add title, category, price and image of each item")),
    placement=(Line(64, min_length=1), Field(default="home", description="where the list is shown (home, "
                                             "product_page, ...): an experiment on it chooses the run")),
    session_id=(Id | None, Field(default=None, description="an anonymous shopper's session: the id an experiment "
                                 "assigns by when the request names no shopper")),
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
    """A list request's query, and the service and settings that answer it (one dependency for the list routes
    instead of three: FastAPI solves each dependency of a request on its own)."""

    k: int
    details: bool
    rules: Rules
    placement: str = "home"
    session_id: str | None = None
    service: Service | None = None
    settings: Settings | None = None


_QUERY_FIELDS = frozenset(ListQuery.model_fields)


# A storefront asks the same few queries again and again (`k=10&details=true`): each distinct query string is
# validated and turned into `Rules` once per process, and the answer shared (so `Rules` are never changed in place:
# a route that adds to them makes a copy). Bounded: emptied when full.
_PARSED_LIMIT = 4096


async def list_query(request: Request) -> ListParams:
    state = request.app.state
    settings, service = state.settings, state.service
    memo = state.__dict__.setdefault("_parsed_list_queries", {})
    query = request.scope.get("query_string", b"")
    parsed = memo.get(query)
    if parsed is None:
        q = _parse_list_query(request)
        check_k(settings, q.k)
        parsed = (q, to_rules(settings, rules_from_query(q), q.placement))
        if len(memo) >= _PARSED_LIMIT:
            memo.clear()
        memo[query] = parsed
    q, rules = parsed
    if q.category:  # no thread hop for the usual request without a category filter
        await check_query_categories(service, settings, q.category)
    return ListParams(q.k, q.details, rules, q.placement, q.session_id, service, settings)


def _parse_list_query(request: Request):
    qp = request.query_params
    raw: dict = {}
    for name in _QUERY_FIELDS.intersection(qp.keys()):  # the parameters given (pydantic checks in field order)
        if name in _LIST_FIELDS:
            values = [v for item in qp.getlist(name) for v in item.split(",") if v]  # ?exclude=a,b works too
            if values:
                raw[name] = values
        else:
            raw[name] = qp[name]
    try:
        return ListQuery.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])}
                                      for e in exc.errors(include_url=False, include_context=False)]) from None


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ListDep = Annotated[ListParams, Depends(list_query)]
PrivateAuth = Depends(require_private)
PublicAuth = Depends(require_public)
PublicRead = Depends(public_read)
