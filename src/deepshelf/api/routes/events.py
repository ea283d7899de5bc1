"""Shopper events: ingest a batch (durably, before answering), read a shopper's history, erase a shopper."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Query

from deepshelf.api.deps import PrivateAuth, PublicAuth, ServiceDep, SettingsDep, invalid, unknown_items
from deepshelf.api.schemas import DuplicateEvent, Erased, EventBatchIn, EventsAccepted, EventOut, UserEvents, UsersOut, UserSummary
from deepshelf.data.fields import Id
from deepshelf.storage import Event

router = APIRouter(prefix="/v1", tags=["events"])

UserId = Annotated[Id, Path()]


@router.post("/events", response_model=EventsAccepted, response_model_exclude_none=True, dependencies=[PublicAuth])
def post_events(batch: EventBatchIn, service: ServiceDep, settings: SettingsDep) -> EventsAccepted:
    """Store a batch of events; answers only after they are committed, so a 200 means they are kept (give each
    event an `event_id`: a retry is then safe; `duplicates` names any event an id kept out). An event
    for an item in neither the catalogue nor the served run is kept too (a shop's catalogue may lag its events);
    the answer's `unknown_items` names those items."""
    if len(batch.events) > settings.max_batch:
        raise invalid("body", "events", f"at most {settings.max_batch} events per request", len(batch.events))
    now = time.time()
    rows = [Event(e.user_id, e.item_id, e.type, e.timestamp.timestamp() if e.timestamp else now, e.session_id,
                  e.value, e.event_id, e.recommendation_id) for e in batch.events]
    done = service.ingest(rows)
    unknown = unknown_items(service, settings, (e.item_id for e in rows))
    duplicates = [DuplicateEvent(index=d.index, event_id=d.event_id, reason=d.reason) for d in done.duplicates]
    return EventsAccepted(accepted=done.accepted, duplicates=duplicates or None, unknown_items=unknown or None)


@router.get("/users/{user_id}/events", response_model=UserEvents, dependencies=[PrivateAuth])
def user_events(user_id: UserId, service: ServiceDep,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> UserEvents:
    """The shopper's events, newest first ("recently viewed")."""
    events = service.history(user_id, limit)
    return UserEvents(user_id=user_id, events=[
        EventOut(item_id=e.item_id, type=e.type, timestamp=datetime.fromtimestamp(e.ts, timezone.utc),
                 session_id=e.session_id, value=e.value) for e in events])


@router.get("/users", response_model=UsersOut, dependencies=[PrivateAuth])
def recent_users(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> UsersOut:
    """The most recently active shoppers, with their event counts (private: shoppers' data)."""
    return UsersOut(users=[UserSummary(user_id=u, events=n, last_seen=datetime.fromtimestamp(ts, timezone.utc))
                           for u, n, ts in service.store.recent_users(limit)])


@router.delete("/users/{user_id}", response_model=Erased, dependencies=[PrivateAuth])
def erase_user(user_id: UserId, service: ServiceDep) -> Erased:
    """Erase the shopper: their events are deleted (committed before the answer), and what the service derived
    from them is recomputed, so no answer, statistic or later training run sees them. Erasing a shopper with no
    events answers 0."""
    return Erased(user_id=user_id, erased_events=service.erase_user(user_id))
