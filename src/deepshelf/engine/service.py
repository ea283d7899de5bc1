"""The operations the HTTP routes call, free of HTTP: histories from the store -> the loaded run -> ranking ->
an answer in external ids.

The loaded run and its reloads live in `state.py`, trending in `trending.py`, the ranking steps in `ranking.py`;
this facade takes one run and one catalogue snapshot per request and hands them to those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepshelf.content.query.text import price_bounds
from deepshelf.data.schema import EventType
from deepshelf.errors import DeepshelfError
from deepshelf.engine import ranking
from deepshelf.engine.cards import NeedsStore
from deepshelf.engine.catalog_view import Snapshot
from deepshelf.engine.content import unavailable as content_unavailable
from deepshelf.engine.experiments import ExperimentRegistry
from deepshelf.engine.explain import because
from deepshelf.engine.impressions import ImpressionWriter
from deepshelf.engine.ranking import Candidates, Shopper
from deepshelf.engine.rules import Rules, allowed, rerank
from deepshelf.engine.settings import Settings
from deepshelf.engine.holder import RunHolder
from deepshelf.engine.loaded import LoadedRun
from deepshelf.engine.periodic import Periodic
from deepshelf.engine.shoppers import ShopperCache
from deepshelf.engine.trending import fallback
from deepshelf.engine.visit import VisitStage
from deepshelf.storage import Event, Ingested, Item, Store

TYPE_CODE = {t.name.lower(): int(t) for t in EventType}
# The best text matches a keyword search re-ranks by live popularity (and the shopper): enough for any k and rules
# (k <= max_k), few enough that reading them costs little next to the match itself (search_scale.py).
SEARCH_POOL = 500


class NotFound(DeepshelfError):
    """An id the request names does not exist (HTTP 404)."""


class NotAvailable(DeepshelfError):
    """A feature the loaded run does not provide, e.g. text similarity without content vectors (HTTP 409)."""


class NotReady(DeepshelfError):
    """No run is loaded yet (the service is starting): HTTP 503 with Retry-After, like an unavailable store."""


@dataclass
class Answer:
    item_ids: list[str]
    scores: list[float]
    reasons: list[str]
    model_version: str | None
    source: str  # what produced the list: model, fallback (unknown shopper), ...
    # per item, the id of the shopper's recent item it relates to most (None: the reason is not their history)
    because: list[str | None] | None = None
    placement: str = "home"  # where the list is shown (the request's `placement=`)
    experiment: str | None = None  # the experiment and variant that served it, when one runs on the placement
    variant: str | None = None
    fallback_reason: str | None = None  # a shopper's or session's fallback list: why (`fallback_reason`)
    new: list[bool] | None = None  # per item, a new product for the run that served it (ranking.is_new)
    understood: dict | None = None  # a search: the query as understood (content.query.Understood.as_dict)


@dataclass(frozen=True)
class Where:
    """Where a list is shown and to whom: the placement, the shopper or session id an experiment assigns by, and
    (filled by the service) the experiment and variant serving it."""

    placement: str = "home"
    unit_id: str | None = None
    experiment: str | None = None
    variant: str | None = None


def fallback_reason(items: np.ndarray, empty: str) -> str:
    """Why a shopper's or a session's list fell back to trending, from its items (catalogue indices, -1 for ids
    the catalogue lacks): `empty` when there are none, `unknown_items` when none is in the catalogue or the run,
    else `not_in_model` (none is known to the served run, e.g. products added since training)."""
    if not len(items):
        return empty
    return "unknown_items" if bool((items < 0).all()) else "not_in_model"


class Service:
    def __init__(self, settings: Settings, store: Store, metrics=None):
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.runs = RunHolder(settings, store, metrics)
        # the lists shown, stored in the background (to_list in routes/recommendations.py records them)
        self.impressions = ImpressionWriter(store, settings.impression_flush_s, settings.impression_batch,
                                            settings.impression_queue, metrics) if settings.record_impressions else None
        self.experiments = ExperimentRegistry(settings, store)  # variants' runs, chosen per request
        # what a known shopper's list adds to the model's answer (a session request is a visit already)
        self.user_stages = (VisitStage(settings.visit_gap_s, settings.visit_share,
                                       settings.visit_events),) if settings.visit_share else ()
        # shoppers' histories held in memory: a list for a shopper seen before needs no store read
        self.shoppers = ShopperCache(store, settings.shopper_cache_size, settings.shopper_cache_max_age_s)
        self.runs.on_swap.append(self.shoppers.clear)
        self._poller = Periodic("deepshelf-shoppers", [(lambda: settings.shopper_cache_poll_s, self.shoppers.poll)],
                                tick_s=min(0.2, settings.shopper_cache_poll_s / 2))

    # ---- lifecycle: the loaded run ------------------------------------------------------------------------
    @property
    def state(self) -> LoadedRun | None:
        return self.runs.state

    @property
    def last_reload_error(self) -> str | None:
        return self.runs.last_reload_error

    def start(self) -> None:
        self.runs.start()
        if self.impressions is not None:
            self.impressions.start()
        self.experiments.start()
        self.shoppers.poll()  # where the event log stands now: later events drop their shoppers
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()
        self.experiments.stop()
        self.runs.stop()
        if self.impressions is not None:
            self.impressions.stop()  # what is still queued is stored before the store closes
        self.store.close()

    def reload(self, path: str | Path | None = None, initial: bool = False) -> LoadedRun:
        return self.runs.reload(path, initial)

    def _request(self, where: Where | None = None, cached_only: bool = False) -> tuple[LoadedRun, Snapshot, Where]:
        """The run (the variant's, inside an experiment on the request's placement) and the catalogue snapshot
        one request uses from start to end, and where its answer is shown. `cached_only`: NeedsStore instead of
        reading the store when the catalogue refresh is due."""
        where = Where() if where is None else where
        picked = self.experiments.pick(where.placement, where.unit_id)
        if picked is not None:
            where = Where(where.placement, where.unit_id, picked.experiment, picked.variant)
            state = picked.state
        else:
            state = self.runs.state
        if state is None:
            raise NotReady("the service is starting; no run loaded yet")
        if cached_only and state.view.due(self.settings.catalog_refresh_s):
            raise NeedsStore("catalogue refresh")
        state.view.refresh(max_age_s=self.settings.catalog_refresh_s)
        return state, state.view.snapshot, where

    @staticmethod
    def _answer(state: LoadedRun, catalog: Snapshot, top: Candidates, source: str, where: Where,
                shopper: Shopper | None = None) -> Answer:
        ids = catalog.cols.ids
        answer = Answer([str(ids[i]) for i in top.idx.tolist()], [float(s) for s in top.scores], list(top.reasons),
                        state.version, source, placement=where.placement, experiment=where.experiment,
                        variant=where.variant, new=ranking.is_new(state, catalog, top.idx).tolist())
        if shopper is not None:
            answer.because = [str(ids[i]) if i >= 0 else None for i in because(state, catalog, shopper, top).tolist()]
        return answer

    def _shopper(self, catalog: Snapshot, user_id: str, view=None, cached_only: bool = False) -> Shopper:
        """The shopper's history as stored: from the cache of histories when `view` (the catalogue view the
        indices are for) is given and it holds them; else read (NeedsStore instead when `cached_only`)."""
        if view is None:
            return self._read_shopper(catalog, user_id)
        held = self.shoppers.get(user_id, view, catalog)
        if held is not None:
            return held
        if cached_only:
            raise NeedsStore("shopper history", keyed=True)
        if self.shoppers.sync():  # events were stored on this host since the last poll: theirs dropped, then ask again
            held = self.shoppers.get(user_id, view, catalog)
            if held is not None:
                return held
        generation, at = self.shoppers.generation, time.monotonic()
        shopper = self._read_shopper(catalog, user_id)
        self.shoppers.put(user_id, view, catalog, shopper, generation, at)
        return shopper

    def _read_shopper(self, catalog: Snapshot, user_id: str) -> Shopper:
        events = self.store.recent_events(user_id, self.settings.max_history)
        # oldest first, as models expect; one pass apart into the three columns
        item_ids, kinds, ts = zip(*reversed(events)) if events else ((), (), ())
        items = catalog.lookup(item_ids)
        types = np.array([TYPE_CODE.get(kind, 0) for kind in kinds], np.int8)
        times = np.array(ts, np.float64).astype(np.int64)
        purchased = items[np.array([kind == "purchase" for kind in kinds], bool)]
        return Shopper(items, types, purchased, times)

    # ---- events -------------------------------------------------------------------------------------------
    def ingest(self, events: list[Event]) -> Ingested:
        """Store a batch (committed, durable, before returning): how many were accepted, and the events an
        `event_id` kept out (storage/event_ids.py)."""
        done = self.store.ingest_events(events)
        self.shoppers.drop({e.user_id for e in events})  # their next list reads the new history
        if self.metrics is not None:
            self.metrics.events_ingested(done.accepted)
        return done

    def history(self, user_id: str, limit: int) -> list[Event]:
        return self.store.history(user_id, limit)

    def erase_user(self, user_id: str) -> int:
        """Delete the shopper's events and impressions; what this server derived from them (live trending) is
        recomputed before returning, their history held in memory dropped (other processes drop every history at
        their next poll: the erasure marker). Returns the number of events erased."""
        if self.impressions is not None:
            self.impressions.flush()  # their queued impressions reach the store, so the erasure takes them too
        n = self.store.erase_user(user_id)
        self.shoppers.drop([user_id])
        self.runs.refresh_trending()
        return n

    # ---- list answers -------------------------------------------------------------------------------------
    def recommend_user(self, user_id: str, k: int, rules: Rules, placement: str = "home",
                       cached_only: bool = False) -> Answer:
        """`cached_only`: answer from memory alone (the event loop's first try), else raise NeedsStore."""
        state, catalog, where = self._request(Where(placement, user_id), cached_only)
        shopper = self._shopper(catalog, user_id, state.view, cached_only)
        top, source = ranking.recommend(state, catalog, shopper, k, rules, self.user_stages)
        answer = self._answer(state, catalog, top, source, where, shopper)
        if source == "fallback":
            answer.fallback_reason = fallback_reason(shopper.items, "no_history")
        return answer

    def recommend_session(self, item_ids: list[str], k: int, rules: Rules, where: Where | None = None,
                          cached_only: bool = False) -> Answer:
        state, catalog, where = self._request(where, cached_only)
        items = catalog.lookup(item_ids)
        # this visit's items, all seen just now (their order is the history's order)
        shopper = Shopper(items, np.zeros(len(items), np.int8), np.zeros(0, np.int64),
                          np.full(len(items), int(time.time()), np.int64))
        top, source = ranking.recommend(state, catalog, shopper, k, rules)
        answer = self._answer(state, catalog, top, source, where, shopper)
        if source == "fallback":
            answer.fallback_reason = fallback_reason(items, "empty_session")
        return answer

    def popular(self, k: int, rules: Rules, where: Where | None = None, cached_only: bool = False) -> Answer:
        state, catalog, where = self._request(where, cached_only)
        excluded = ranking.excluded_items(catalog, rules)
        pool = ranking.top_up(state, catalog, Candidates.of([], [], []), ranking.pool_size(k), rules, excluded)
        top = Candidates.of(*rerank(catalog, pool.idx, pool.scores, pool.reasons, rules, k))
        return self._answer(state, catalog, top, "fallback", where)

    def similar(self, item_id: str, k: int, mode: str, rules: Rules, where: Where | None = None,
                cached_only: bool = False) -> Answer:
        state, catalog, where = self._request(where, cached_only)
        i = catalog.position(item_id)
        if i < 0:
            raise NotFound(f"item {item_id!r} is not in the catalogue or the run")
        excluded = ranking.excluded_items(catalog, rules, [i])
        m = ranking.pool_size(k)
        # "behavior" always comes from the served model (fresher than a content run's own behaviour vectors)
        if mode != "behavior":
            if state.content is None or mode not in state.content.modes:
                raise NotAvailable(content_unavailable(state.content, mode))
            ids, scores, reason = state.content.similar(item_id, m, mode)
            idx = catalog.lookup(ids)
            ok = allowed(catalog, idx, rules, excluded)
            found, source = Candidates.of(idx[ok], np.asarray(scores, np.float32)[ok], reason), "content"
        elif i < state.n_model and state.model is not None:
            found, source = ranking.behavior_neighbours(state, catalog, i, m, rules, excluded), "model"
        else:  # a product the model has never seen: same category, by trending
            code = int(catalog.cols.category[i])
            same = rules.model_copy(update={"categories": [catalog.category_name(code)]}) if code >= 0 else rules
            fi, fs, _ = fallback(catalog, state.trending, m, same, excluded, set())
            found = Candidates.of(fi, np.asarray(fs, np.float32),
                                  "same_category" if code >= 0 else state.trending.reason)
            source = "fallback"
        found = ranking.top_up(state, catalog, found, k, rules, excluded)  # an answer is never needlessly short
        top = Candidates.of(*rerank(catalog, found.idx, found.scores, found.reasons, rules, k))
        return self._answer(state, catalog, top, source, where)

    def search(self, query: str, k: int, user_id: str | None, rules: Rules, where: Where | None = None) -> Answer:
        state, catalog, where = self._request(where)
        m = ranking.pool_size(k)
        excluded = ranking.excluded_items(catalog, rules)
        understood = None
        # a price the query states ("under 30") is a window over the matches, below; its words are not searched
        bounds = price_bounds(query)
        priced = bounds.low is not None or bounds.high is not None
        if state.content is not None and state.content.can_search:
            # the query understood (spelling, type / colour / gender filters) before the match; a price bound is
            # applied here, on a deeper pool, since prices live in the catalogue snapshot
            pool = min(10 * m, SEARCH_POOL * 4) if priced else m
            ids, scores, understood = state.content.find(query, pool)
            idx = catalog.lookup(ids)
            scores = np.asarray(scores, np.float32)
            reason, source = "text", "content"
        else:
            # No semantic index in this run: the store's full-text match (search_titles), ranked by live popularity
            # (or by the shopper's own model scores when a user is given); price bounds come off the words.
            words = bounds.rest or query
            idx = catalog.lookup(self.store.search_item_ids(words, SEARCH_POOL))
            scores = state.trending.scores_of(idx) if state.trending else np.zeros(len(idx), np.float32)
            reason, source = "text_match", "keyword"
        ok = allowed(catalog, idx, rules, excluded)
        idx, scores = idx[ok], scores[ok]
        relaxed = []
        if priced:  # the rules' own price check, with the query's bounds alone
            within = allowed(catalog, idx, Rules.model_construct(min_price=bounds.low, max_price=bounds.high,
                                                                 in_stock=False))
            if within.any():
                idx, scores = idx[within], scores[within]
            else:  # nothing at that price: the list as if no price was named, and the answer says so
                relaxed.append("price")
        read, understood = understood, None  # the content search's reading; the answer's field, below
        if read is not None:
            read.relaxed += relaxed
        elif priced:
            understood = {"text": words, "price": {k_: v for k_, v in (("min", bounds.low), ("max", bounds.high))
                                                   if v is not None}, **({"relaxed": relaxed} if relaxed else {})}
        if user_id and len(idx) and state.model is not None:
            histories = self._shopper(catalog, user_id).for_model(state.n_model)
            personal = ranking.personal_scores(state, histories, idx) if len(histories.items) else None
            if personal is not None:
                # rank by the query match first, then by what this shopper is likely to want
                scores = scores + 0.1 * personal
                reason = f"{reason}+personal"
        order = np.argsort(-scores, kind="stable")[:m]
        top = Candidates.of(*rerank(catalog, idx[order], scores[order], [reason] * len(order), rules, k))
        if read is not None:
            # a short page filled with the nearest colours says so only when the page shown holds such a product
            # (the pool searched is deeper than the page)
            filled = catalog.lookup(ids[read.filled_from:]) if read.filled_from is not None else np.zeros(0, int)
            if not np.isin(top.idx, filled).any():
                read.widened = []
            understood = read.as_dict() if read.changed else None
        answer = self._answer(state, catalog, top, source, where)
        answer.understood = understood
        return answer

    # ---- catalogue ----------------------------------------------------------------------------------------
    def item_cards(self, item_ids, cached_only: bool = False) -> dict:
        """What list answers show of these products (`Store.item_cards`), from the served catalogue's cache
        (`cards.py`); NeedsStore when `cached_only` and one is not held."""
        state = self.runs.state
        if state is None:
            if cached_only:
                raise NeedsStore("product cards", keyed=True)
            return self.store.item_cards(list(item_ids))
        return state.view.cards.get(item_ids, cached_only)

    def upsert_items(self, items: list[Item]) -> int:
        n = self.store.upsert_items(items)
        state = self.runs.state
        if state is not None:
            state.view.refresh()  # this server sees its own upsert at once; others within catalog_refresh_s
            if state.content is not None:
                state.content.add_items(items)
        return n
