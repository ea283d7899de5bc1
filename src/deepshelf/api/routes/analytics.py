"""`GET /v1/analytics/recommendations`: what the lists shown earned (private key: it reads every shopper's data)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from deepshelf.engine import attribution
from deepshelf.api.deps import PrivateAuth, ServiceDep, SettingsDep, invalid
from deepshelf.api.schemas import RecommendationAnalytics
from deepshelf.engine.stats import BUCKETS
from deepshelf.data.fields import Id, Line, Timestamp
from deepshelf.storage.attribution import Scope

router = APIRouter(prefix="/v1", tags=["analytics"], dependencies=[PrivateAuth])

DEFAULT_DAYS = 7


@router.get("/analytics/recommendations", response_model=RecommendationAnalytics)
def recommendations(
    service: ServiceDep, settings: SettingsDep,
    since: Annotated[Timestamp | None, Query(alias="from", description="first moment a list was shown (ISO 8601 "
                                             "or Unix seconds); default a week before `to`")] = None,
    until: Annotated[Timestamp | None, Query(alias="to", description="last moment (default now)")] = None,
    placement: Annotated[Line(64, min_length=1) | None, Query()] = None,
    variant: Annotated[Id | None, Query()] = None,
    bucket: Annotated[Literal["hour", "day"], Query(description="the series' time step")] = "day",
) -> RecommendationAnalytics:
    """Impressions (lists shown), clicks, CTR, add-to-cart rate, conversions, revenue and revenue per 1,000
    impressions, each rate with a 95% confidence interval, in total, by placement, variant and model version,
    and over time. Clicks are events carrying a list's `recommendation_id`; a purchase of the clicked item by the
    same shopper within `attribution_window_s` (default 24 h) after the click counts for that list.
    `new_products` gives the share of new products among the items shown and among the items clicked, over the
    lists recorded with their new products (older lists: `unknown_impressions`)."""
    until_ts = until.timestamp() if until is not None else time.time()
    since_ts = since.timestamp() if since is not None else until_ts - DEFAULT_DAYS * 86400
    if since_ts > until_ts:
        raise invalid("query", "from", "`from` is after `to`", since.isoformat() if since else None)
    bucket_s = BUCKETS[bucket]
    if (until_ts - since_ts) / bucket_s + 1 > settings.max_stats_buckets:
        raise invalid("query", "from", f"at most {settings.max_stats_buckets} buckets of a {bucket}: a shorter "
                                       "range or bucket=day", since.isoformat() if since else None)
    scope = Scope(since_ts, until_ts, placement, variant)
    numbers = attribution.report(service.store, scope, bucket_s, settings.attribution_window_s)
    for point in numbers["series"]:
        point["start"] = datetime.fromtimestamp(point["start"], timezone.utc)
    return RecommendationAnalytics(since=datetime.fromtimestamp(since_ts, timezone.utc),
                                   until=datetime.fromtimestamp(until_ts, timezone.utc), bucket_seconds=bucket_s,
                                   attribution_window_s=settings.attribution_window_s, **numbers)
