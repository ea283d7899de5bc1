"""Request and response bodies of the HTTP API (kept apart: what a client sends is not what it gets back)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from deepshelf.data.schema import EVENT_TYPE_NAMES
from deepshelf.data.fields import Finite, Id, JsonValue, Line, Money, Price, Text, Timestamp, Whole
from deepshelf.engine.rules import RulesIn

EventTypeName = Literal[tuple(EVENT_TYPE_NAMES)]  # type: ignore[valid-type]
# base64 of a file starting with a JPEG, PNG, GIF or WebP signature (the formats /v1/items/{item_id}/image serves)
_B64 = "[A-Za-z0-9+/]"
_B64_REST = f"(?:{_B64}{{4}})*(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
IMAGE_BASE64 = (f"^(?:/9j/|iVBORw0KGgo{_B64}|R0lGOD{_B64}{{2}}|UklGR[g-v]{_B64}{{4}}[BFJNRVZdhlptx159]XRUJQ)"
                f"{_B64_REST}$")


class Strict(BaseModel):
    # strict types too: a JSON string is not taken for a number or a boolean (the OpenAPI document says which)
    model_config = ConfigDict(extra="forbid", strict=True)


# ---- requests: every string and number is one of validation.py's types (the rules live there) -----------------
class EventIn(Strict):
    user_id: Id
    item_id: Id
    type: EventTypeName = "view"
    timestamp: Timestamp | None = Field(
        default=None, strict=False, description="ISO 8601 (no timezone means UTC) or Unix seconds; now when absent; not before "
                                  "1970, not more than the server's max_clock_skew_s (default a day) ahead")
    session_id: Line(256) | None = None
    value: Money | None = Field(default=None, description="the event's amount (a purchase's price x quantity), at "
                                "most 1e9 either way")
    event_id: Line(128, min_length=1) | None = Field(
        default=None, description="the client's id for this event, unique per event (send one: a batch retried "
                                  "after a lost answer or a 503 is then kept once, and answered the same). The same "
                                  "event again (same shopper, item, type, session, value, recommendation_id; the "
                                  "time is not compared) is accepted without being stored twice; an id that names "
                                  "another event is refused for this event and named in `duplicates`")
    recommendation_id: Line(64, min_length=1) | None = Field(
        default=None, description="the `recommendation_id` of the list answer the shopper clicked this item in "
                                  "(a view or cart event): it attributes the click, and a purchase of the item "
                                  "within attribution_window_s after it, to that list")


class EventBatchIn(Strict):
    events: list[EventIn] = Field(min_length=1)


class SessionIn(Strict):
    # the anonymous shopper's items, oldest first (`items` accepted as another name)
    item_ids: list[Id] = Field(max_length=10_000, validation_alias=AliasChoices("item_ids", "items"))
    k: Whole(ge=1) | None = None  # overrides the k query parameter when given
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    rules: RulesIn | None = None


class ItemIn(Strict):
    title: Text(1000) = ""
    description: Text(20_000) = ""
    category: Line(256) = ""
    price: Price | None = None
    in_stock: bool = True
    image_url: Line(2000) = ""
    image_base64: str | None = Field(
        default=None, pattern=IMAGE_BASE64, json_schema_extra={"contentEncoding": "base64"},
        description="a product photo sent inline: standard base64 (RFC 4648, with padding, no line breaks) of a "
                    "JPEG, PNG, GIF or WebP file of at most max_image_bytes (default 500 kB); served back at "
                    "/v1/items/{item_id}/image")
    attributes: dict[Line(100), JsonValue] = Field(
        default_factory=dict, max_length=100,
        description="free-form JSON values (text, finite numbers, booleans, lists, objects up to 8 levels deep)")


class ItemWithIdIn(ItemIn):
    item_id: Id


class ItemBatchIn(Strict):
    items: list[ItemWithIdIn] = Field(min_length=1)


class ReloadIn(Strict):
    run: Line(4096, min_length=1) | None = None  # default: the served path


# ---- responses ------------------------------------------------------------------------------------------------
class RelatedItem(BaseModel):
    item_id: str
    title: str | None = None


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    # the signal that produced it: bought_before, sequence, also_bought, similar_to_recent, personal, trending,
    # popular, new_arrival, ...
    reason: str
    because: RelatedItem | None = Field(
        default=None, description="for a reason drawn from the shopper's history (recommendations for a shopper or "
                                  "a session): the shopper's recent item this one relates to most")
    title: str | None = None
    category: str | None = None
    price: float | None = None
    currency: str | None = Field(default=None, description="the price's currency code, when the catalogue gives "
                                                            "one (a feed's g:price)")
    image: str | None = None


class ItemList(BaseModel):
    items: list[RecommendedItem]
    recommendation_id: str = Field(description="this answer's id: send it with the events of a shopper who clicks "
                                               "one of its items, to attribute clicks and purchases to it")
    model_version: str | None
    source: str  # model | fallback | content | keyword
    fallback_reason: str | None = Field(
        default=None, description="a shopper's or a session's answer whose `source` is `fallback`: why the model "
        "was not asked (`no_history`: the shopper has no stored events; `empty_session`; `unknown_items`: none of "
        "the history's or session's items is in the catalogue or the run; `not_in_model`: none is known to the "
        "served run, e.g. products added since training)")
    unknown_items: list[str] | None = Field(
        default=None, description="a session answer: the session's item ids that are in neither the catalogue "
        "nor the served run (each once); they are ignored")
    variant: str | None = Field(default=None, description="the experiment variant that served it, when an "
                                                          "experiment runs on the request's placement")
    understood: "UnderstoodQuery | None" = Field(
        default=None, description="a search answer: the query as the search understood it, when that differs "
        "from the words as typed (corrected spelling, attribute filters, price bounds, relaxation)")


class Correction(BaseModel):
    from_: str = Field(alias="from", description="the word as typed")
    to: str = Field(description="the catalogue word searched for instead")


class QueryFilter(BaseModel):
    attribute: str = Field(description="type, colour or gender")
    values: list[str] = Field(description="the catalogue values a product must have one of")
    words: str = Field(description="the query's words that named it (remove them from the query to drop it)")


class UnderstoodQuery(BaseModel):
    text: str = Field(description="what the text match searched for: corrected words, attribute values in the "
                                  "catalogue's own words")
    corrected: list[Correction] | None = None
    filters: list[QueryFilter] | None = None
    price: dict[str, float] | None = Field(default=None, description="price bounds the query stated: min, max")
    relaxed: list[str] | None = Field(default=None, description="what was dropped because nothing matched it all "
                                                                "(\"colour Purple\", \"price\")")
    widened: list[str] | None = Field(default=None, description="what filled a page the filters left short, after "
                                                                "the products matching it all: the colours that "
                                                                "look nearest (\"colour Off White/White\")")


ItemList.model_rebuild()


class EventOut(BaseModel):
    item_id: str
    type: str
    timestamp: datetime
    session_id: str | None = None
    value: float | None = None


class UserEvents(BaseModel):
    user_id: str
    events: list[EventOut]  # newest first


class Accepted(BaseModel):
    accepted: int


class DuplicateEvent(BaseModel):
    index: int = Field(description="the event's position in the batch (0-based)")
    event_id: str
    reason: Literal["repeated", "conflict"] = Field(
        description="`repeated`: the same event twice in this batch (kept and counted once); `conflict`: the id "
                    "already names another event (stored before, or earlier in this batch), so this one is not "
                    "stored")


class EventsAccepted(Accepted):
    """POST /v1/events's answer. `accepted` counts the events kept: stored now, or stored already by an identical
    earlier try (a retry answers as the first try did). Every other event of the batch is in `duplicates`."""

    duplicates: list[DuplicateEvent] | None = Field(
        default=None, description="present when the batch has them: each event not counted in `accepted`, because "
        "its event_id repeats within the batch or names another event")

    unknown_items: list[str] | None = Field(
        default=None, description="present when the batch has them: its item ids that are in neither the "
        "catalogue nor the served run (each once, in batch order); their events are kept all the same (a shop's "
        "catalogue may lag its events, and a product upserted later picks them up), but check them for typos")


class ItemOut(BaseModel):
    item_id: str
    title: str
    description: str
    category: str
    price: float | None
    in_stock: bool
    image: str | None  # a URL to show: this server's copy when an image was uploaded, else the shop's image_url
    attributes: dict[str, Any]
    known_to_model: bool  # False for products added since the run was trained
    updated_at: datetime | None


class ItemPage(BaseModel):
    items: list[ItemOut]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: str
    model_version: str | None
    store: str
    items: int
    items_new_since_training: int


class RunInfo(BaseModel):
    path: str | None
    version: str | None
    model: str | None
    dataset: str | None
    loaded_at: datetime | None
    metrics: dict[str, Any]
    plots: list[str]  # URLs of the evaluation report's plots
    report: str | None  # the run's report.md text
    # events since the run's fit that its ranker scores with (README, "Sales since the fit"); null: it follows none
    # (not a ranker, DEEPSHELF_FOLLOW_SALES off, or the store does not hold the events the run was fit on)
    sales_followed: int | None = None


class RunSummary(BaseModel):
    name: str
    path: str
    version: str | None
    model: str | None
    dataset: str | None
    serving: bool
    metrics: dict[str, Any]  # the run's metrics.json
    plots: list[str]  # URLs of its report plots


class RunsOut(BaseModel):
    model_version: str | None
    serving: str | None  # name of the run being served
    current: RunInfo
    runs: list[RunSummary]  # the served run and its sibling run folders
    last_reload_error: str | None
    # `deepshelf retrain` / `rollback` decisions of the served run's folder (DIR/decisions.jsonl), newest last
    decisions: list[dict] = []


class UserSummary(BaseModel):
    user_id: str
    events: int
    last_seen: datetime


class UsersOut(BaseModel):
    users: list[UserSummary]


class Erased(BaseModel):
    user_id: str
    erased_events: int  # 0 for a shopper the store has no events of (erasing twice is harmless)


class ReloadOut(BaseModel):
    model_version: str | None
    previous_version: str | None
    changed: bool  # False when the same run was loaded again
    path: str | None
    items: int


class RouteLatency(BaseModel):
    route: str
    method: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


class LatencyStats(BaseModel):
    window: int  # most recent requests per route the percentiles are computed over
    routes: list[RouteLatency]


# ---- experiments (engine/experiments.py; the statistics in engine/verdict.py) ---------------------------------
class VariantIn(Strict):
    name: Id
    run: Line(4096, min_length=1) = Field(description="the variant's run folder on the server (as for `serve --run`)")
    share: Finite = Field(gt=0, le=1, description="its share of the placement's traffic; the shares sum to 1")


class ExperimentIn(Strict):
    placement: Line(64, min_length=1) = "home"
    variants: list[VariantIn] = Field(min_length=2, max_length=10)
    allocation: Literal["fixed", "thompson"] = Field(
        default="fixed", description="fixed: the shares as given; thompson: each variant's probability of having "
                                     "the best CTR, recomputed as counts grow")


class VariantResult(BaseModel):
    name: str
    run: str  # the run folder's name
    model_version: str | None  # of the run this server serves the variant with (None: not served here)
    share: float  # as defined
    traffic_share: float  # what it gets now (thompson: moves with the evidence)
    impressions: int
    clicks: int
    ctr: float
    ctr_low: float  # 95% Wilson interval
    ctr_high: float
    conversions: int
    revenue: float


class Verdict(BaseModel):
    winner: str | None
    method: str
    alpha: float
    p_value: float | None = None  # fixed allocation
    probability_best: dict[str, float] | None = None  # thompson allocation


class ExperimentOut(BaseModel):
    name: str
    placement: str
    allocation: str
    active: bool  # False once stopped (DELETE); the results stay
    served_here: bool  # False when this server cannot serve it (its log says why) or it is stopped
    variants: list[VariantResult]
    verdict: Verdict


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]  # by name


# ---- analytics (engine/attribution.py: the methods) -----------------------------------------------------------
class NewProductShare(BaseModel):
    """New products in the lists shown: an item is new when the run that served the list counted it so at that
    moment (never sold, or first sold only recently, when the run was trained; or added to the catalogue since),
    whatever its `reason`. Counted over the lists whose new products were recorded; lists stored before the store
    recorded them are counted apart (`unknown_impressions`)."""

    impressions: int = Field(description="lists shown whose new products are known (the shares' lists)")
    unknown_impressions: int = Field(description="lists shown before the store recorded new products: left out "
                                                 "of both shares, not guessed")
    items_shown: int = Field(description="impression slots: the items of those lists")
    new_items_shown: int = Field(description="slots that showed a new product")
    impression_share: float | None = Field(description="new_items_shown / items_shown (null: no slot)")
    items_clicked: int = Field(description="clicked items of those lists (a list's item counts once, however "
                                           "many view or cart events it had)")
    new_items_clicked: int = Field(description="clicked items that were new products when shown")
    click_share: float | None = Field(description="new_items_clicked / items_clicked (null: no click)")


class RecommendationNumbers(BaseModel):
    """Lists shown (impressions) and what followed them; each rate with its 95% interval (null: no impressions)."""

    impressions: int
    clicks: int  # lists with at least one clicked item (a view or cart event carrying their recommendation_id)
    ctr: float
    ctr_low: float | None  # Wilson score interval
    ctr_high: float | None
    carts: int  # lists with at least one item added to the cart from them
    add_to_cart_rate: float
    add_to_cart_low: float | None
    add_to_cart_high: float | None
    conversions: int  # lists with at least one attributed purchase
    conversion_rate: float
    conversion_low: float | None
    conversion_high: float | None
    purchases: int  # attributed purchases
    revenue: float  # their values summed
    revenue_per_1000: float  # per 1,000 impressions
    revenue_per_1000_low: float | None  # normal approximation over impressions (null below 2)
    revenue_per_1000_high: float | None
    new_products: NewProductShare = Field(description="the new-product share of impression slots and of clicks")


class RecommendationGroup(RecommendationNumbers):
    placement: str
    variant: str | None
    model_version: str | None


class RecommendationBucket(RecommendationNumbers):
    start: datetime


class RecommendationAnalytics(BaseModel):
    since: datetime
    until: datetime
    bucket_seconds: int
    attribution_window_s: float
    total: RecommendationNumbers
    groups: list[RecommendationGroup]  # by placement, variant and model version
    series: list[RecommendationBucket]  # buckets with impressions, oldest first
