"""Recommendation answers: for a known shopper, for an anonymous session, similar products, search, popular."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query

from deepshelf.serving.deps import (
    KDep,
    ReadAuth,
    RulesDep,
    ServiceDep,
    SettingsDep,
    check_k,
    invalid,
    to_rules,
)
from deepshelf.serving.schemas import ItemList, RecommendedItem, SessionIn
from deepshelf.serving.service import Answer, Service

router = APIRouter(prefix="/v1", tags=["recommendations"], dependencies=[ReadAuth])

Details = Annotated[bool, Query(description="add title, category, price and image of each item")]
ItemId = Annotated[str, Path(min_length=1, max_length=256)]


def to_list(answer: Answer, service: Service, details: bool) -> ItemList:
    items = [RecommendedItem(item_id=i, score=s, reason=r)
             for i, s, r in zip(answer.item_ids, answer.scores, answer.reasons)]
    if details and items:
        rows = service.store.get_items([it.item_id for it in items])
        for it in items:
            row = rows.get(it.item_id)
            if row is not None:
                it.title, it.category, it.price = row.title, row.category, row.price
                it.image = f"/v1/items/{quote(row.item_id, safe='')}/image" if row.has_image else (row.image_url or None)
    return ItemList(items=items, model_version=answer.model_version, source=answer.source)


@router.get("/users/{user_id}/recommendations", response_model=ItemList, response_model_exclude_none=True)
def user_recommendations(user_id: Annotated[str, Path(min_length=1, max_length=256)], service: ServiceDep,
                         k: KDep, rules: RulesDep, details: Details = False) -> ItemList:
    """"Recommended for you": the model re-scores the shopper's history as stored right now; a shopper with no
    events gets trending items."""
    return to_list(service.recommend_user(user_id, k, rules), service, details)


@router.post("/sessions/recommendations", response_model=ItemList, response_model_exclude_none=True)
def session_recommendations(body: SessionIn, service: ServiceDep, settings: SettingsDep, k: KDep,
                            details: Details = False) -> ItemList:
    """For an anonymous shopper: recommendations from the items of this visit (oldest first)."""
    if len(body.item_ids) > settings.max_session_items:
        raise invalid("body", "item_ids", f"at most {settings.max_session_items} items", len(body.item_ids))
    if body.k is not None:
        k = check_k(settings, body.k, "body")
    rules = to_rules(settings, body.rules)
    rules.exclude = list(rules.exclude) + list(body.exclude)
    return to_list(service.recommend_session(list(body.item_ids), k, rules), service, details)


@router.get("/items/{item_id}/similar", response_model=ItemList, response_model_exclude_none=True,
            responses={404: {"description": "unknown item"}, 409: {"description": "mode not available for this run"}})
def similar_items(item_id: ItemId, service: ServiceDep, k: KDep, rules: RulesDep,
                  mode: Literal["behavior", "text", "visual", "hybrid"] = "behavior",
                  details: Details = False) -> ItemList:
    """Similar products: by behaviour (bought together), or by text / picture / both when the run has content
    vectors."""
    return to_list(service.similar(item_id, k, mode, rules), service, details)


@router.get("/search", response_model=ItemList, response_model_exclude_none=True)
def search(service: ServiceDep, k: KDep, rules: RulesDep,
           q: Annotated[str, Query(min_length=1, max_length=500, description="the shopper's query")],
           user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
           details: Details = False) -> ItemList:
    """Product search: semantic when the run has a content index, else matching titles; personalised for
    `user_id`."""
    if not q.strip():
        raise invalid("query", "q", "query is blank", q)
    return to_list(service.search(q.strip(), k, user_id, rules), service, details)


@router.get("/popular", response_model=ItemList, response_model_exclude_none=True)
def popular(service: ServiceDep, k: KDep, rules: RulesDep, details: Details = False) -> ItemList:
    """Trending now (weighted events of the last days), else popular of all time."""
    return to_list(service.popular(k, rules), service, details)
