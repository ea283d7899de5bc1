"""Recommendation answers: for a known shopper, for an anonymous session, similar products, search, popular."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from deepshelf.api.deps import (
    LIST_QUERY_OPENAPI,
    ListDep,
    ListParams,
    SHOPPER_TOKEN_DOC,
    PublicRead,
    check_categories,
    check_shopper,
    check_k,
    invalid,
    to_rules,
    unknown_items,
)
from deepshelf.engine.impressions import new_recommendation_id
from deepshelf.api.schemas import ItemList, SessionIn
from deepshelf.engine.service import Answer, NeedsStore, Where
from deepshelf.data.fields import Id, Line

router = APIRouter(prefix="/v1", tags=["recommendations"], dependencies=[PublicRead])

# An answer may read the store (the shopper's history, the catalogue refresh, product cards for `details`). The hot
# routes are `async def` and first answer from memory alone (`cached_only`: the service raises NeedsStore where it
# would read the store). A networked store's read never runs on the event loop (a slow or stopped database would
# hold /health and every other request): the work goes to the thread pool, where a store call is bounded by
# `store_timeout_s` (then 503). An embedded store's keyed read (SQLite: one shopper's events, some products' cards,
# and before them the ids of events other processes stored since the last poll, by the primary key; `Store.embedded`)
# is a function call of tens of microseconds, made on the loop: the thread-pool hop cost more than the read, about a
# fifth of a first list's CPU (docs/benchmarks.md, "Service", hand note after the wrk table). The catalogue refresh
# (every product change since the last, any number of rows) stays in the thread pool whatever the store.

ItemId = Annotated[Id, Path()]
TOKEN_MAX_CHARS = 2048  # a shopper token's bound (also api/fast_route.py's)
ShopperToken = Annotated[str | None, Header(
    alias="X-Shopper-Token", max_length=TOKEN_MAX_CHARS,
    description="a shopper token for this shopper (HMAC-SHA256 over the shopper id and an expiry with "
                "DEEPSHELF_TOKEN_SECRET, minted by the shop's backend): needed beside a public key; a private "
                "key needs none")]


def shopper_only(request: Request, user_id: str, token: str | None) -> None:
    """The shopper's own data answers a private key, or their token (deps.check_shopper)."""
    check_shopper(request.app.state.settings, request.headers.get("X-API-Key"), token, user_id)


def where(params: ListParams, user_id: str | None = None) -> Where:
    """The request's placement, and the id an experiment on it assigns by: the shopper's, else the session's."""
    return Where(params.placement, user_id or params.session_id)


def card_ids(answer: Answer, details: bool) -> list[str]:
    """The products whose cards the answer shows: the recent items named in `because` (titles whatever
    `details`), and with `details` the listed ones."""
    wanted = {b for b in answer.because or () if b is not None}
    if details:
        wanted.update(answer.item_ids)
    return sorted(wanted)


async def respond(params: ListParams, surface: str, compute: Callable[[bool], Answer],
                  user_id: str | None = None) -> Response:
    """`compute(cached_only)` on the event loop from memory (or with an embedded store's keyed reads), else in the
    thread pool; then the product cards the same way (one store read for those not held), and the JSON answer
    (`to_list`)."""
    service = params.service
    inline = service.store.embedded
    try:
        answer = compute(True)
    except NeedsStore as need:
        if not (inline and need.keyed):
            def whole():  # one hop for both: the answer, then the cards it needs
                found = compute(False)
                wanted = card_ids(found, params.details)
                return found, service.item_cards(wanted) if wanted else {}
            answer, rows = await run_in_threadpool(whole)
            return to_list(answer, params, surface, user_id, rows=rows)
        answer = compute(False)
    wanted = card_ids(answer, params.details)
    try:
        rows = service.item_cards(wanted, cached_only=not inline) if wanted else {}
    except NeedsStore:
        rows = await run_in_threadpool(service.item_cards, wanted)
    return to_list(answer, params, surface, user_id, rows=rows)


def to_list(answer: Answer, params: ListParams, surface: str, user_id: str | None = None,
            extra: dict | None = None, rows: dict | None = None, query: str | None = None) -> Response:
    """The `ItemList` JSON, built directly: these are the hot endpoints, and validating our own output through
    the response model costs more than computing it. (`ItemList` still documents the shape in OpenAPI.)
    The answer gets a fresh `recommendation_id` and is queued as an impression of `surface` (recommendations,
    sessions, similar, search, popular), with which of its items the engine found new products, for the background
    writer: an append, no store call. `rows`: the product cards (`card_ids`), read here when not given; `query`:
    a search's words, stored with its impression (the search event)."""
    service, details = params.service, params.details
    items = [{"item_id": i, "score": s if math.isfinite(s) else 0.0, "reason": r}
             for i, s, r in zip(answer.item_ids, answer.scores, answer.reasons)]
    related = answer.because or []
    named = any(b is not None for b in related)
    if rows is None:
        wanted = card_ids(answer, details)
        rows = service.item_cards(wanted) if wanted else {}  # one store read for both (at most)
    if named:
        for it, b in zip(items, related):
            if b is not None:
                row = rows.get(b)
                it["because"] = {"item_id": b, "title": row.title if row is not None and row.title else None}
    if details and items:
        for it in items:
            row = rows.get(it["item_id"])
            if row is not None:
                it.update(title=row.title, category=row.category)
                if row.price is not None:
                    it["price"] = row.price
                    if row.currency:
                        it["currency"] = row.currency
                image = f"/v1/items/{quote(row.item_id, safe='')}/image" if row.has_image else row.image_url
                if image:
                    it["image"] = image
    recommendation_id = new_recommendation_id()
    body = {"items": items, "recommendation_id": recommendation_id, "model_version": answer.model_version,
            "source": answer.source}
    if answer.variant is not None:
        body["variant"] = answer.variant
    if answer.fallback_reason is not None:
        body["fallback_reason"] = answer.fallback_reason
    if extra:
        body.update(extra)
    if service.impressions is not None:
        service.impressions.record(recommendation_id, user_id, params.session_id, answer.placement, surface,
                                   answer.model_version, answer.experiment, answer.variant, answer.item_ids,
                                   answer.new, query)
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/users/{user_id}/recommendations", response_model=ItemList, openapi_extra=LIST_QUERY_OPENAPI,
            responses=SHOPPER_TOKEN_DOC)
async def user_recommendations(request: Request, user_id: Annotated[Id, Path()], params: ListDep,
                               shopper_token: ShopperToken = None) -> Response:
    """"Recommended for you": the model re-scores the shopper's history as stored right now; a shopper with no
    events the model can use gets trending items, and the answer says why (`fallback_reason`). Drawn from the
    shopper's history (`because`, `bought_before`), so a public key needs that shopper's token
    (`X-Shopper-Token`); without one the answer is 403, and a page shows the visit's list
    (`/v1/sessions/recommendations`) or `/v1/popular` instead."""
    shopper_only(request, user_id, shopper_token)
    service = params.service
    return await respond(params, "recommendations", lambda cached: service.recommend_user(
        user_id, params.k, params.rules, params.placement, cached_only=cached), user_id)


@router.post("/sessions/recommendations", response_model=ItemList, openapi_extra=LIST_QUERY_OPENAPI)
def session_recommendations(body: SessionIn, params: ListDep) -> Response:
    """For an anonymous shopper: recommendations from the items of this visit (oldest first). Rules come from
    the query, or from the body's `rules` when given; `k` in the body overrides the query's. The answer names
    the session's items in neither the catalogue nor the run (`unknown_items`, ignored), and when it is a
    fallback (trending) list, why (`fallback_reason`)."""
    service, settings = params.service, params.settings
    if len(body.item_ids) > settings.max_session_items:
        raise invalid("body", "item_ids", f"at most {settings.max_session_items} items", len(body.item_ids))
    k = check_k(settings, body.k, "body") if body.k is not None else params.k
    if body.rules is not None:
        check_categories(service, settings, body.rules.categories, ("body", "rules", "categories"))
        rules = to_rules(settings, body.rules, params.placement)
    else:
        rules = params.rules
    if body.exclude:  # a copy: the query's rules are shared between requests (deps.list_query)
        rules = rules.model_copy(update={"exclude": list(rules.exclude) + list(body.exclude)})
    answer = service.recommend_session(list(body.item_ids), k, rules, where(params))
    extra = {"unknown_items": unknown_items(service, settings, body.item_ids)}
    return to_list(answer, params, "sessions", extra=extra)


@router.get("/items/{item_id}/similar", response_model=ItemList, openapi_extra=LIST_QUERY_OPENAPI,
            responses={404: {"description": "unknown item"}, 409: {"description": "mode not available for this run"}})
async def similar_items(item_id: ItemId, params: ListDep,
                        mode: Literal["behavior", "text", "visual", "hybrid"] = "behavior") -> Response:
    """Similar products: by behaviour (bought together), or by text / picture / both when the run has content
    vectors."""
    return await respond(params, "similar", lambda cached: params.service.similar(
        item_id, params.k, mode, params.rules, where(params), cached_only=cached))


@router.get("/search", response_model=ItemList, openapi_extra=LIST_QUERY_OPENAPI, responses=SHOPPER_TOKEN_DOC)
def search(request: Request, params: ListDep,
           q: Annotated[Line(500, min_length=1), Query(description="the shopper's query")],
           user_id: Annotated[Id | None, Query()] = None, shopper_token: ShopperToken = None) -> Response:
    """Product search: semantic when the run has a content index, else matching titles; personalised for
    `user_id` (ranked by their history: with a public key, only with that shopper's `X-Shopper-Token`). The query
    is understood first: misspelt words are corrected against the catalogue's words, type / colour / gender /
    price words become filters (relaxed when nothing matches them all); `understood` says what was searched."""
    if not q.strip():
        raise invalid("query", "q", "query is blank", q)
    if user_id:
        shopper_only(request, user_id, shopper_token)
    answer = params.service.search(q.strip(), params.k, user_id, params.rules, where(params, user_id))
    return to_list(answer, params, "search", user_id,
                   extra={"understood": answer.understood} if answer.understood else None, query=q)


@router.get("/popular", response_model=ItemList, openapi_extra=LIST_QUERY_OPENAPI)
async def popular(params: ListDep) -> Response:
    """Trending now (weighted events of the last days), else popular of all time."""
    return await respond(params, "popular", lambda cached: params.service.popular(
        params.k, params.rules, where(params), cached_only=cached))
