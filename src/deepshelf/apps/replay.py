"""Replay evaluation, as served (design §3, "Replay"): the test period replayed day by day through the serving
engine, so the numbers are the ones a shop running `deepshelf serve` (and, with a refit cadence, `deepshelf
retrain --every`) would have seen.

    days        the test period (from the temporal cut to the newest event) cut at UTC midnights: day 0 runs from
                the cut to the next midnight, then whole calendar days, the last one up to the newest event
    store       a temporary SQLite event store holding every event before the cut and the catalogue; after day d
                is scored, day d's events are stored (`Store.add_events`), as the service would have stored them
    each day d  every shopper with a target on d asks the engine for their list at the start of d
                (`Service.recommend_user`, the call behind GET /v1/users/{id}/recommendations, with the server's
                default rules): their history is what the store holds then (every event before d, the newest
                `max_history`), live trending is the engine's (`compute_trending` over the store's last
                `trending_days`, the clock at the start of d), the catalogue the store's; a ranker follows the
                sales stored since its fit, up to the start of d (`engine/live_sales.py`)
    refit       optional: every `refit_days` days the run's model is fit again on every event before the day with
                the run's chosen parameters (no new validation search), written as a run and swapped in
                (`Service.reload`), as `retrain --every` and the run watcher would; days without new events since
                the last fit keep the model. Default: no refit (the model frozen at the cut, histories and
                counts live)
    frozen      `frozen=True` replays the same days and targets with the store frozen at the cut (histories,
                trending and the model as the temporal protocol has them): the frozen protocol in replay's units
    targets     per (shopper, day): the items the shopper has an event on during d (every event type with a
                positive weight, as the temporal protocol's targets: purchases, on Online Retail) and had no
                event on before d (discovery: seen items are excluded from the list by the engine's rules);
                target slices `new_items`: products with no event by anyone before the cut (as the frozen
                protocol's slice), `new_today`: products with no event by anyone before d (only the catalogue
                or exploration can reach these)
    metrics     HR, recall, NDCG, MRR, precision at each k per (shopper, day) pair, averaged over pairs (a shopper
                buying on three days counts three times, as three lists were shown); `per_shopper`: each
                shopper's pairs averaged first; slices over the pairs with such a target, counting only those
                targets; weeks: days 0-6, 7-13, ... of the replay

Every contender replays over the same store in one pass: a run (its model through the engine, optionally refit)
or no run at all (`run=None`: what the engine serves without a model, live trending, refreshed each day).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.schema import EventType
from deepshelf.engine.rules import RulesIn
from deepshelf.engine.service import Service
from deepshelf.engine.settings import Settings
from deepshelf.engine.trending import compute_trending
from deepshelf.errors import DeepshelfError
from deepshelf.evaluation.metrics import per_user_metrics
from deepshelf.models.registry import model_class
from deepshelf.runs.artifacts import Run, load_config, write_run
from deepshelf.runs.pipeline import split_dataset
from deepshelf.runs.sources import load_source
from deepshelf.storage import Event, Item, items_from_table, open_store

log = logging.getLogger(__name__)

DAY = 86400
WEEK_DAYS = 7
ENGINE_TRENDING = "trending (engine, live)"  # the contender without a run


@dataclass
class ReplayData:
    """The events a run was trained and tested on (its config's event weights applied), its catalogue, and the
    temporal cut (the start of the test period)."""

    inter: Interactions
    catalog: Catalog | None
    cut: int
    dataset: str


def replay_data(run_path: str | Path) -> ReplayData:
    """The run's dataset, filtered as its training was, and its test cut (the run must use the temporal protocol)."""
    cfg = load_config(run_path)
    ds = load_source(cfg.dataset, cfg.catalog)
    split = split_dataset(ds, cfg)
    if split.protocol != "temporal":
        raise DeepshelfError(f"{run_path}: replay needs timestamped data under the temporal protocol "
                             f"(this run used {split.protocol})")
    inter = ds.interactions.with_type_weights(cfg.event_weights)
    inter = inter.subset(inter.weight > 0)
    cut = int(inter.timestamp.max()) - int(cfg.test_days * DAY)  # as data.splits.temporal cuts
    return ReplayData(inter, ds.catalog, cut, cfg.dataset)


def day_bounds(cut: float, end: float) -> np.ndarray:
    """float64 [D + 1]: the replayed days' starts, then one past the newest event (`end`): the cut, then every UTC
    midnight after it up to `end`."""
    first_midnight = (int(cut) // DAY + 1) * DAY
    midnights = np.arange(first_midnight, int(end) + 1, DAY, dtype=np.float64)
    return np.concatenate([[float(cut)], midnights, [float(end) + 1.0]])


@dataclass
class DayTargets:
    """The (shopper, day) pairs to score, day by day, and each pair's targets (item indices)."""

    bounds: np.ndarray  # float64 [D + 1] day starts, then one past the newest event
    users: np.ndarray  # int64 [P] user index of each pair
    days: np.ndarray  # int64 [P] day index of each pair; pairs sorted by day, then user
    targets: Histories  # P rows of item indices
    target_slices: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool [n targets]

    def __len__(self) -> int:
        return len(self.users)

    def week(self) -> np.ndarray:
        """int64 [P]: 0 for days 0-6 of the replay, 1 for days 7-13, ..."""
        return self.days // WEEK_DAYS


def day_targets(inter: Interactions, cut: float) -> DayTargets:
    """Per day of the test period (`day_bounds`), each shopper's discovery targets: the items they have an event
    on during the day and none before it. Vectorised: a (shopper, item) pair's first event decides the day it is
    a target on, so an item bought on two days is a target on the first only."""
    end = int(inter.timestamp.max())
    bounds = day_bounds(cut, end)
    n_items = inter.n_items
    code = inter.user.astype(np.int64) * n_items + inter.item
    first_code = _first_time(code, inter.timestamp)
    first_item = np.full(n_items, np.iinfo(np.int64).max)
    np.minimum.at(first_item, inter.item, inter.timestamp)
    test = inter.timestamp >= cut
    day = np.searchsorted(bounds, inter.timestamp, side="right") - 1
    is_target = test & (first_code >= bounds[np.clip(day, 0, len(bounds) - 1)])
    users, items, days = inter.user[is_target].astype(np.int64), inter.item[is_target].astype(np.int64), day[is_target]
    triples = np.unique(np.stack([days, users, items], axis=1), axis=0)  # each target once, by day, user, item
    days, users, items = triples[:, 0], triples[:, 1], triples[:, 2]
    pair_start = np.flatnonzero(np.r_[True, (days[1:] != days[:-1]) | (users[1:] != users[:-1])])
    indptr = np.r_[pair_start, len(items)].astype(np.int64)
    return DayTargets(bounds, users[pair_start], days[pair_start], Histories(indptr, items.astype(np.int32)),
                      {"new_items": first_item[items] >= cut, "new_today": first_item[items] >= bounds[days]})


def _first_time(code: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """int64 [n]: per event, the earliest timestamp among the events with the same code."""
    uniq, inverse = np.unique(code, return_inverse=True)
    first = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, timestamp)
    return first[inverse]


@dataclass
class Contender:
    """One list source replayed: a run served by the engine (refit every `refit_days` days, None: never), or no
    run (`run=None`): the engine's live trending alone."""

    name: str
    run: Path | None = None
    refit_days: int | None = None
    settings: dict = field(default_factory=dict)  # its own engine settings over the replay's (e.g. follow_sales)


@dataclass
class ReplayConfig:
    ks: tuple[int, ...] = (10, 20)
    frozen: bool = False  # True: the store, and so histories and trending, stay at the cut
    # engine settings for the replay (Settings field -> value) over the environment's DEEPSHELF_* and the defaults
    settings: dict = field(default_factory=dict)


@dataclass
class Served:
    """One contender's replay: the lists it served, how long it took, and the refits it made."""

    contender: Contender
    ranked: np.ndarray  # int64 [P, max k] item indices (-1: none)
    request_s: float = 0.0  # total time in the engine's recommend_user calls
    refits: int = 0
    refit_s: float = 0.0


def replay(data: ReplayData, contenders: list[Contender], cfg: ReplayConfig, workdir: Path,
           progress: Callable[[str], None] | None = None) -> tuple[DayTargets, dict[str, Served]]:
    """Replay the test period of `data` through one engine `Service` per contender over one shared store (see the
    module's docstring); returns the pairs with their targets and each contender's lists."""
    say = progress or log.info
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise DeepshelfError(f"replay: contender names must differ ({names})")
    if cfg.frozen and any(c.refit_days for c in contenders):
        raise DeepshelfError("replay: a frozen replay cannot refit (the store stays at the cut)")
    inter = data.inter
    targets = day_targets(inter, data.cut)
    kmax = max(cfg.ks)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{workdir / 'replay.db'}", sqlite_synchronous="NORMAL")
    services: dict[str, Service] = {}
    try:
        store.upsert_items(_listed_items(data))
        order = np.argsort(inter.timestamp, kind="stable")  # time, then file order (a shopper's order as theirs)
        times = inter.timestamp[order]
        feed = _EventFeed(inter, order)
        store.add_events(feed.events(0, int(np.searchsorted(times, data.cut, side="left"))))
        say(f"replay: {store.count_events():,} events before the cut stored; {len(targets):,} (shopper, day) pairs "
            f"over {len(targets.bounds) - 1} days")
        served = {c.name: Served(c, np.full((len(targets), kmax), -1, np.int64)) for c in contenders}
        for c in contenders:
            services[c.name] = _service(c, store, cfg, workdir)
        recipes = {c.name: _Recipe.of(services[c.name].state.run) for c in contenders if c.refit_days}
        rules = None
        item_index = {str(x): i for i, x in enumerate(inter.item_map.ids)}
        user_ids = inter.user_map.ids.astype(str)
        fitted_until = {c.name: int(np.searchsorted(times, data.cut, side="left")) for c in contenders}
        for d in range(len(targets.bounds) - 1):
            start = float(targets.bounds[d])
            stored = int(np.searchsorted(times, start, side="left"))  # events before the day: in the store
            now = float(data.cut) if cfg.frozen else start
            rows = np.flatnonzero(targets.days == d)
            for c in contenders:
                service = services[c.name]
                if c.refit_days and d % c.refit_days == 0 and stored > fitted_until[c.name]:
                    began = time.perf_counter()
                    _refit(service, c, recipes[c.name], data, start, d, workdir)
                    served[c.name].refits += 1
                    served[c.name].refit_s += time.perf_counter() - began
                    fitted_until[c.name] = stored
                state = service.state
                if state.sales is not None:  # a ranker follows the sales since its fit, up to the day's start
                    state.sales.refresh(store, now=now)
                state.trending = compute_trending(state.view, store, service.settings.trending_days,
                                                  getattr(state.model, "item_popularity", None), now=now)
                if rules is None:  # the server's default rules, as a request without any would get
                    s = service.settings
                    rules = RulesIn().resolve(s.default_in_stock, s.default_exclude_purchased,
                                              s.default_max_per_category)
                began = time.perf_counter()
                ranked = served[c.name].ranked
                for row in rows.tolist():
                    answer = service.recommend_user(user_ids[targets.users[row]], kmax, rules)
                    ids = [item_index.get(i, -1) for i in answer.item_ids[:kmax]]
                    ranked[row, : len(ids)] = ids
                served[c.name].request_s += time.perf_counter() - began
            if not cfg.frozen:
                upto = int(np.searchsorted(times, float(targets.bounds[d + 1]), side="left"))
                store.add_events(feed.events(stored, upto))
            if rows.size:
                say(f"replay: day {d} ({_date(start)}): {rows.size} shoppers")
        return targets, served
    finally:
        for service in services.values():
            service.runs.stop()
        store.close()


def _listed_items(data: ReplayData) -> list[Item]:
    """The catalogue as listed at the cut (a shop lists products before they sell): the dataset's catalogue rows,
    and a bare row (id only) for each product with events that the catalogue lacks, so the engine knows every
    product, as it would know the shop's, whether or not a run does."""
    catalog = None if data.catalog is None else data.catalog.as_of(data.cut)  # prices and titles as of the cut
    items = [] if catalog is None else items_from_table(catalog.table, catalog.attributes)
    listed = {item.item_id for item in items}
    return items + [Item(str(i)) for i in data.inter.item_map.ids.astype(str).tolist() if str(i) not in listed]


class _EventFeed:
    """The dataset's events as store `Event`s, in time order, a slice at a time."""

    def __init__(self, inter: Interactions, order: np.ndarray):
        type_names = np.array([t.name.lower() for t in sorted(EventType)], dtype=object)
        self.users = inter.user_map.ids[inter.user[order]].astype(str)
        self.items = inter.item_map.ids[inter.item[order]].astype(str)
        self.types = type_names[inter.type[order]]
        self.ts = inter.timestamp[order].astype(np.float64)

    def events(self, lo: int, hi: int) -> list[Event]:
        return [Event(u, i, t, s) for u, i, t, s in zip(self.users[lo:hi].tolist(), self.items[lo:hi].tolist(),
                                                      self.types[lo:hi].tolist(), self.ts[lo:hi].tolist())]


def _service(c: Contender, store, cfg: ReplayConfig, workdir: Path) -> Service:
    """An engine `Service` over the replay's store serving `c`'s run (no background threads: the replay refreshes
    trending itself, with its own clock)."""
    settings = Settings(**{"run": c.run, "database": f"sqlite:///{workdir / 'replay.db'}", "watch_run": False,
                           "record_impressions": False, **cfg.settings, **c.settings})
    service = Service(settings, store)
    service.reload(c.run, initial=True)
    return service


@dataclass
class _Recipe:
    """How a contender's run is refit: its config, its chosen parameters (with what the chosen fit asked to keep,
    as `runs.protocol.refit`), its version and its content indexes (carried over to each refit run)."""

    config: object  # runs.config.TrainConfig
    params: dict
    version: str
    content: Path | None

    @classmethod
    def of(cls, run: Run) -> "_Recipe":
        record = run.metrics.get("refit")
        params = record["params"] if record else {**run.config.params, **run.model.refit_overrides()}
        content = run.path / "content"
        return cls(run.config, params, run.version, content if content.is_dir() else None)


def _refit(service: Service, c: Contender, recipe: _Recipe, data: ReplayData, start: float, d: int,
           workdir: Path) -> None:
    """Fit `c`'s model again on every event before `start` with the run's chosen parameters, write it as a run
    and swap it in, as `retrain` + the run watcher would; the previous refit's folder is removed."""
    events = data.inter.subset(data.inter.timestamp < start)
    catalog = None if data.catalog is None else data.catalog.as_of(start)  # as of the refit's day (Catalog.as_of)
    model = model_class(recipe.config.model)(**recipe.params).fit(events, catalog)
    out = workdir / "refits" / f"{_slug(c.name)}-day{d:03d}"
    content = recipe.content
    write_run(out, recipe.config, model, {"version": f"{recipe.version}+replay-day{d}", "train_events": len(events)},
              content=None if content is None else (lambda dst: shutil.copytree(content, dst, dirs_exist_ok=True)))
    previous = service.state.path if service.state is not None else None
    service.reload(out)
    if previous is not None and previous.parent == out.parent:
        shutil.rmtree(previous, ignore_errors=True)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-") or "run"


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


# ---- metrics -----------------------------------------------------------------------------------------------
def summarise(targets: DayTargets, ranked: np.ndarray, ks: tuple[int, ...], n_items: int) -> dict:
    """The replay's numbers for one contender's lists: per pair (`metrics`), per shopper, per target slice, per
    week (see the module's docstring). JSON-ready."""
    per_pair = per_user_metrics(ranked, targets.targets, ks)
    out: dict = {"pairs": len(targets), "shoppers": int(len(np.unique(targets.users))),
                 "targets": int(len(targets.targets.items)), "metrics": _means(per_pair)}
    for k in ks:
        top = ranked[:, :k]
        out["metrics"][f"coverage@{k}"] = float(len(np.unique(top[top >= 0])) / max(n_items, 1))
    shopper = np.unique(targets.users, return_inverse=True)[1]  # 0..S-1 per pair
    counts = np.bincount(shopper)
    out["per_shopper"] = {m: float((np.bincount(shopper, weights=v) / counts).mean()) if len(v) else 0.0
                          for m, v in per_pair.items()}
    out["slices"] = {}
    sliced_rows = {}
    for name, keep in targets.target_slices.items():
        rows, restricted = _restrict(targets.targets, keep)
        sliced_rows[name] = (rows, per_user_metrics(ranked[rows], restricted, ks) if len(rows) else {})
        out["slices"][name] = {**_means(sliced_rows[name][1]), "pairs": int(len(rows)), "targets": int(keep.sum())}
    weeks = targets.week()
    out["weeks"] = []
    for w in np.unique(weeks).tolist():
        in_week = weeks == w
        days = targets.days[in_week]
        entry = {"week": w + 1, "from": _date(targets.bounds[days.min()]),
                 "to": _date(targets.bounds[days.max() + 1] - 1), "pairs": int(in_week.sum()),
                 **_means({m: v[in_week] for m, v in per_pair.items()})}
        for name, (rows, metrics) in sliced_rows.items():
            mine = in_week[rows] if len(rows) else np.zeros(0, bool)
            entry[name] = {**_means({m: v[mine] for m, v in metrics.items()}), "pairs": int(mine.sum())}
        out["weeks"].append(entry)
    return out


def _means(per_row: dict[str, np.ndarray]) -> dict[str, float]:
    return {m: float(v.mean()) if len(v) else 0.0 for m, v in per_row.items()}


def _restrict(targets: Histories, keep: np.ndarray) -> tuple[np.ndarray, Histories]:
    """The rows with at least one kept target, and their kept targets alone (as `EvalSet.restrict_targets`)."""
    row_of = np.repeat(np.arange(len(targets)), targets.lengths)
    counts = np.bincount(row_of[keep], minlength=len(targets))
    rows = np.flatnonzero(counts)
    indptr = np.concatenate([[0], np.cumsum(counts[rows])]).astype(np.int64)
    return rows, Histories(indptr, targets.items[keep])


# ---- one call: a run, the engine's trending beside it, the frozen numbers ---------------------------------------
def replay_run(run_path: str | Path, workdir: Path, refit_days: int | None = None, frozen: bool = False,
               baselines: list[Path] = (), ks: tuple[int, ...] = (10, 20), settings: dict | None = None,
               progress: Callable[[str], None] | None = None, as_fit: bool = False) -> dict:
    """Replay `run_path` (refit every `refit_days` days, or never) with the engine's live trending and each run of
    `baselines` beside it (at the same cadence), on the run's own test period; JSON-ready results per contender,
    each with the run's frozen temporal-protocol test numbers (`frozen_protocol`) where it has them. `as_fit`:
    the same run beside it, named "RUN (as fit)", scoring as fit between refits (`follow_sales` off)."""
    run_path = Path(run_path)
    data = replay_data(run_path)
    contenders = [Contender(run_path.name, run_path, refit_days)]
    if as_fit:
        contenders.append(Contender(f"{run_path.name} (as fit)", run_path, refit_days, {"follow_sales": False}))
    for b in baselines:
        if load_config(b).dataset != load_config(run_path).dataset:
            raise DeepshelfError(f"baseline {b} was trained on other data than {run_path}")
        contenders.append(Contender(Path(b).name, Path(b), refit_days))
    contenders.append(Contender(ENGINE_TRENDING, None, None))
    cfg = ReplayConfig(tuple(ks), frozen, dict(settings or {}))
    began = time.perf_counter()
    targets, served = replay(data, contenders, cfg, Path(workdir), progress)
    results = {"dataset": data.dataset, "cut": _date(data.cut), "end": _date(targets.bounds[-1] - 1),
               "days": len(targets.bounds) - 1, "frozen": frozen, "refit_days": refit_days,
               "seconds": round(time.perf_counter() - began, 1), "contenders": {}}
    for name, s in served.items():
        entry = summarise(targets, s.ranked, cfg.ks, data.inter.n_items)
        entry |= {"run": None if s.contender.run is None else str(s.contender.run),
                  "refit_days": s.contender.refit_days, "refits": s.refits, "refit_seconds": round(s.refit_s, 1),
                  "request_ms": round(1000 * s.request_s / max(len(targets), 1), 2)}
        if s.contender.run is not None:
            recorded = Path(s.contender.run) / "metrics.json"
            entry["frozen_protocol"] = frozen_protocol(json.loads(recorded.read_text()) if recorded.exists() else {})
        results["contenders"][name] = entry
    return results


def frozen_protocol(metrics: dict) -> dict:
    """A run's recorded test numbers (temporal protocol, discovery view: model and counts frozen at the cut,
    per shopper over the whole test period), for beside the replay."""
    test = metrics.get("test") or {}
    out = {m: v for m, v in (test.get("metrics") or {}).items()
           if m.split("@")[0] in ("hr", "ndcg", "recall", "users")}
    new = (test.get("slices") or {}).get("new_items")
    if new:
        out |= {f"new_items/{m}": v for m, v in new.items() if m.split("@")[0] in ("hr", "recall", "users")}
    return out


def table(results: dict, k: int = 10) -> str:
    """Markdown: one row per contender (overall, per shopper, new-product slice, frozen protocol), then weeks."""
    rows = [f"| list source | refit | pairs | NDCG@{k} | HR@{k} | recall@{k} | per shopper NDCG@{k} | "
            f"new products HR@{k} (pairs) | new today HR@{k} (pairs) | frozen protocol NDCG@{k} / HR@{k} / new "
            f"products HR@{k} | ms per list |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    refit = "frozen at the cut (store too)" if results["frozen"] else (
        "none" if not results["refit_days"] else f"every {results['refit_days']} d")
    for name, r in results["contenders"].items():
        m, new, today = r["metrics"], r["slices"].get("new_items", {}), r["slices"].get("new_today", {})
        fp = r.get("frozen_protocol") or {}
        frozen_text = (f"{fp.get(f'ndcg@{k}', float('nan')):.4f} / {fp.get(f'hr@{k}', float('nan')):.4f} / "
                       f"{fp.get(f'new_items/hr@{k}', float('nan')):.4f}") if fp else "-"
        source = refit if r["run"] or results["frozen"] else "live store"
        rows.append(f"| {name} | {source} | {r['pairs']:,} | {m[f'ndcg@{k}']:.4f} | "
                    f"{m[f'hr@{k}']:.4f} | {m[f'recall@{k}']:.4f} | {r['per_shopper'][f'ndcg@{k}']:.4f} | "
                    f"{new.get(f'hr@{k}', 0.0):.4f} ({new.get('pairs', 0)}) | "
                    f"{today.get(f'hr@{k}', 0.0):.4f} ({today.get('pairs', 0)}) | {frozen_text} | {r['request_ms']} |")
    rows += ["", f"| list source | week | days | pairs | NDCG@{k} | HR@{k} | new products HR@{k} (pairs) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for name, r in results["contenders"].items():
        for w in r["weeks"]:
            new = w.get("new_items", {})
            rows.append(f"| {name} | {w['week']} | {w['from']} – {w['to']} | {w['pairs']:,} | {w[f'ndcg@{k}']:.4f} | "
                        f"{w[f'hr@{k}']:.4f} | {new.get(f'hr@{k}', 0.0):.4f} ({new.get('pairs', 0)}) |")
    return "\n".join(rows)
