"""Online experiments: which variant (and so which run) serves a list request, kept in step with the store.

An experiment names a placement (`home`, `product_page`, ...: list requests say theirs with `placement=`) and its
variants, each a run folder and a share of traffic. A shopper (or an anonymous session) is assigned by a pure
function of its id and the experiment's name: the first 8 bytes of SHA-256(name NUL id) as a number in [0, 1),
placed on the variants' cumulative shares. Every server computes the same variant for the same shopper, whatever
process or restart, without asking the store. Requests with neither a shopper nor a session id are served by the
served run, outside the experiment.

Experiments live in the store (any server may define or stop one); each server re-reads them every
`experiment_refresh_s` and loads the variants' runs it does not hold yet (`state.VariantRuns`). With `thompson`
allocation the shares are recomputed at each refresh from the counts in the store (`verdict.traffic_shares`), so
traffic moves towards the better variant as evidence grows; servers agree to within one refresh.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepshelf.errors import DeepshelfError
from deepshelf.engine import verdict as stats
from deepshelf.engine.periodic import Periodic
from deepshelf.engine.settings import Settings
from deepshelf.engine.holder import VariantRuns
from deepshelf.engine.loaded import LoadedRun
from deepshelf.storage import Store

log = logging.getLogger(__name__)


class RunRefused(DeepshelfError):
    """A variant's run cannot be served; `index` is the variant's position in the request."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def position(unit_id: str, experiment: str) -> float:
    """Where a shopper or session falls in [0, 1) for an experiment: stable across processes and servers."""
    digest = hashlib.sha256(f"{experiment}\0{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose(pos: float, shares) -> int:
    """The variant whose slice of the cumulative shares holds `pos`."""
    edges = np.cumsum(np.asarray(shares, np.float64))
    return int(min(np.searchsorted(edges / edges[-1], pos, side="right"), len(edges) - 1))


@dataclass
class Experiment:
    name: str
    placement: str
    allocation: str  # fixed | thompson
    variants: list[dict]  # {"name", "run", "share"} as defined
    states: list[LoadedRun]  # each variant's loaded run
    shares: np.ndarray  # the traffic each variant gets now

    def assign(self, unit_id: str) -> int:
        return choose(position(unit_id, self.name), self.shares)


@dataclass
class Assignment:
    experiment: str
    variant: str
    state: LoadedRun


class ExperimentRegistry:
    """This server's view of the active experiments (by placement), refreshed from the store."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.runs = VariantRuns(settings, store)
        self._by_placement: dict[str, Experiment] = {}
        self._refused: dict[str, float] = {}  # experiment -> updated_at of a definition this server cannot serve
        self._lock = threading.Lock()
        self._background = Periodic("deepshelf-experiments", [
            (lambda: settings.experiment_refresh_s, self.refresh),
            (lambda: settings.trending_refresh_s, self.runs.refresh_trending)])

    # ---- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self.refresh()
        self._background.start()

    def stop(self) -> None:
        self._background.stop()
        self.runs.close()

    # ---- the store -> this server ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the active experiments, load runs newly named, recompute Thompson shares, publish."""
        with self._lock:
            rows = self.store.experiments(active_only=True)
            published: dict[str, Experiment] = {}
            for row in rows:
                if self._refused.get(row["name"]) == row["updated_at"]:
                    continue
                try:
                    published[row["placement"]] = self._build(row)
                except DeepshelfError as exc:
                    self._refused[row["name"]] = row["updated_at"]
                    log.error("experiment %s cannot be served by this server (its placement is served by the "
                              "served run here): %s", row["name"], exc)
            self._by_placement = published  # one assignment: requests see the old or the new set
            self.runs.keep_only([v["run"] for e in published.values() for v in e.variants])

    def _build(self, row: dict) -> Experiment:
        spec = row["spec"]
        variants = spec["variants"]
        states = [self.runs.get(v["run"]) for v in variants]
        configured = [v["share"] for v in variants]
        if spec["allocation"] == "thompson":
            impressions, clicks = self._counts(row["name"], [v["name"] for v in variants])[:2]
            shares = stats.traffic_shares("thompson", configured, impressions, clicks)
        else:
            shares = stats.traffic_shares("fixed", configured, [], [])
        return Experiment(row["name"], row["placement"], spec["allocation"], variants, states, shares)

    def _counts(self, name: str, variants: list[str]) -> tuple[list, list, list, list]:
        """(impressions, clicks, conversions, revenue) per variant, in `variants` order, from the store."""
        rows = {r["variant"]: r for r in self.store.variant_summary(name)}
        cols = ("impressions", "clicks", "conversions", "revenue")
        return tuple([float(rows.get(v, {}).get(c) or 0) for v in variants] for c in cols)

    # ---- the API's operations ------------------------------------------------------------------------------
    def define(self, name: str, placement: str, allocation: str, variants: list[dict]) -> Experiment:
        """Check every variant's run loads here (RunRefused naming the variant otherwise) and the bound on held
        runs, store the definition (ExperimentConflict when the placement is taken), and serve it at once."""
        for i, v in enumerate(variants):
            if not (Path(v["run"]) / "config.json").is_file():
                raise RunRefused(i, "not a deepshelf run folder on this server")
        others = [v["run"] for e in self._by_placement.values() if e.name != name for v in e.variants]
        needed = self.runs.count_with(others + [v["run"] for v in variants])
        if needed > self.settings.max_variant_runs:
            raise RunRefused(-1, f"this server holds at most {self.settings.max_variant_runs} variant runs "
                                 f"(max_variant_runs); {needed} would be needed")
        for i, v in enumerate(variants):
            try:
                self.runs.get(v["run"])
            except DeepshelfError as exc:
                log.warning("experiment %s: variant %s's run refused: %s", name, v["name"], exc)
                raise RunRefused(i, "the run could not be loaded (the server log says why)") from None
        self.store.put_experiment(name, placement, {"allocation": allocation, "variants": variants})
        self._refused.pop(name, None)
        self.refresh()
        return next(e for e in self._by_placement.values() if e.name == name)

    def stop_experiment(self, name: str) -> bool:
        stopped = self.store.stop_experiment(name)
        self.refresh()
        return stopped

    def pick(self, placement: str, unit_id: str | None) -> Assignment | None:
        """The variant serving this request, or None (no experiment on the placement, or no id to assign by)."""
        experiment = self._by_placement.get(placement)
        if experiment is None or not unit_id:
            return None
        i = experiment.assign(unit_id)
        return Assignment(experiment.name, experiment.variants[i]["name"], experiment.states[i])

    def results(self, name: str) -> dict | None:
        """The experiment's definition, per-variant counts with CTR intervals, and the verdict (None: unknown)."""
        row = self.store.get_experiment(name)
        if row is None:
            return None
        spec = row["spec"]
        variants, allocation = spec["variants"], spec["allocation"]
        names = [v["name"] for v in variants]
        impressions, clicks, conversions, revenue = self._counts(name, names)
        live = next((e for e in self._by_placement.values() if e.name == name), None) if row["active"] else None
        out = []
        for i, v in enumerate(variants):
            low, high = stats.wilson(clicks[i], impressions[i])
            out.append({"name": v["name"], "run": Path(v["run"]).name, "share": v["share"],
                        "traffic_share": float(live.shares[i]) if live is not None else 0.0,
                        "model_version": live.states[i].version if live is not None else None,
                        "impressions": int(impressions[i]), "clicks": int(clicks[i]),
                        "ctr": clicks[i] / impressions[i] if impressions[i] else 0.0, "ctr_low": low,
                        "ctr_high": high, "conversions": int(conversions[i]), "revenue": revenue[i]})
        s = self.settings
        return {"name": name, "placement": row["placement"], "allocation": allocation, "active": row["active"],
                "served_here": live is not None, "variants": out,
                "verdict": stats.verdict(allocation, names, impressions, clicks, s.experiment_alpha,
                                         s.experiment_min_impressions)}
