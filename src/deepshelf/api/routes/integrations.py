"""Integrations: a Google Merchant Center feed as catalogue upserts (`POST /v1/items:import`, private key) and GA4
Measurement Protocol bodies as shopper events (`POST /v1/events/ga4`, public key: a site's tag posts them).

The parsing and mapping live in `deepshelf.data.feeds` / `deepshelf.data.ga4` (shared with `deepshelf
import-feed` and training from a GA4 export); these routes only check the body and call the service facade.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from deepshelf.data.feeds import parse_feed
from deepshelf.data.ga4 import map_measurement_protocol
from deepshelf.api.deps import PrivateAuth, PublicAuth, ServiceDep, SettingsDep, invalid
from deepshelf.data.fields import Id, Line, Money, Quantity, Whole
from deepshelf.data.ga4 import MAX_MICROS
from deepshelf.storage import Event

router = APIRouter(prefix="/v1", tags=["integrations"])


class FeedProblem(BaseModel):
    position: int = Field(description="1-based position of the item in the feed")
    item_id: str | None
    field: str
    message: str


class FeedImported(BaseModel):
    accepted: int
    errors: list[FeedProblem]


class GA4Item(BaseModel):
    model_config = ConfigDict(extra="allow")  # GA4 items carry many more fields (item_name, item_brand, ...)
    item_id: Id
    price: Money | None = None
    quantity: Quantity | None = None


class GA4Params(BaseModel):
    model_config = ConfigDict(extra="allow")
    items: list[GA4Item] | None = None
    value: Money | None = None
    search_term: Line(500) | None = None


class GA4Event(BaseModel):
    name: Line(40, min_length=1)
    params: GA4Params = GA4Params()
    timestamp_micros: Whole(ge=0, le=MAX_MICROS) | None = None


class GA4Body(BaseModel):
    """The body of GA4's Measurement Protocol (`/mp/collect`); `user_id` when given, else `client_id`, is the
    shopper."""

    # one of the two is required: stated in the schema too, so a client (or a fuzzer) can know it
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["client_id"], "properties": {"client_id": {"type": "string"}}},
        {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}}]})

    client_id: Id | None = None
    user_id: Id | None = None
    timestamp_micros: Whole(ge=0, le=MAX_MICROS) | None = None
    events: list[GA4Event]


class GA4Accepted(BaseModel):
    accepted: int = Field(description="deepshelf events stored (one per product of each mapped GA4 event)")
    skipped: int = Field(description="GA4 events without products or of a name deepshelf does not map")


@router.post("/items:import", response_model=FeedImported, dependencies=[PrivateAuth],
             responses={400: {"description": "the body is not a readable feed (XML or TSV); the message says why"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/xml": {"schema": {"type": "string"}},
                 "text/tab-separated-values": {"schema": {"type": "string"}}}}})
async def import_feed(request: Request, service: ServiceDep) -> FeedImported:
    """Upsert the products of a Google Merchant Center feed (RSS 2.0 / Atom XML with the `g:` namespace, or its
    tab-separated form) sent as the request body. Malformed items are listed in `errors` (item and field) and
    left out; the others are stored."""
    # parsed in the thread pool: a feed of max_body_bytes takes the event loop (and /health) for a third of a second
    feed = await run_in_threadpool(parse_feed, await request.body(), "body")  # unreadable: a DeepshelfError, 400
    accepted = await run_in_threadpool(service.upsert_items, feed.items) if feed.items else 0
    return FeedImported(accepted=accepted, errors=[FeedProblem(position=e.position, item_id=e.item_id,
                                                               field=e.field, message=e.message)
                                                   for e in feed.errors])


@router.post("/events/ga4", response_model=GA4Accepted, dependencies=[PublicAuth])
def ga4_events(body: GA4Body, service: ServiceDep, settings: SettingsDep) -> GA4Accepted:
    """Store the events of a GA4 Measurement Protocol body: `view_item` -> view, `add_to_cart` -> cart,
    `purchase` -> purchase (value: price x quantity), `search` / `view_search_results` with items -> search; one
    event per item. Answers after they are committed."""
    if body.user_id is None and body.client_id is None:
        raise invalid("body", "client_id", "client_id or user_id is required")
    now = time.time()
    mapped = map_measurement_protocol(body.model_dump(), now)
    if len(mapped.rows) > settings.max_batch:
        raise invalid("body", "events", f"at most {settings.max_batch} products per request", len(mapped.rows))
    if any(ts > now + settings.max_clock_skew_s for _, _, _, ts, _ in mapped.rows):
        raise invalid("body", "timestamp_micros", f"must not be more than {settings.max_clock_skew_s:g} s ahead of "
                      "the server's clock")
    rows = [Event(user, item, kind, ts, None, value) for user, item, kind, ts, value in mapped.rows]
    return GA4Accepted(accepted=service.ingest(rows).accepted if rows else 0, skipped=mapped.skipped)

