"""The ranker's session part: a live visit (an anonymous basket, a new shopper's first clicks) ranked by a learner
trained on what completes a basket, not on what a customer buys over the next month.

A shopper's history and a visit of three clicks ask different questions: for the first, what this customer will
buy in the coming weeks; for the second, what else goes into this basket. The session part answers the second with
its own candidates and learner:

- generators fit on baskets (`baskets.basket_view`: each order or visit as its own "user"), so an item-kNN or EASE
  among them learns "bought in the same order"; a sequence model among them (`sasrec`) reads each basket as a
  sequence in the order its items were added;
- labels from the shop's own past: in the last `label_days` of the training events, each basket with two or more
  items shows its first 1..`max_prefix` items (drawn at random) and the rest are the labels; features come from the
  events before the window (the same shop statistics and co-purchase features as the shopper ranker);
- a learner over the union of the generators' top N per visit (LightGBM lambdarank unless `learner` says
  otherwise; `bag` members of it averaged, as the shopper ranker's `bag`).

`visit_rows` (in `deepshelf.models.baskets`) decides which histories of a batch it scores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.models.base import load_arrays, save_arrays
from deepshelf.models.baskets import basket_view
from deepshelf.models.itemknn import ItemKNN
from deepshelf.models.ranker.features import DAY, ShopStats, build_features, feature_names
from deepshelf.models.ranker.generators import Candidates, Generators, GeneratorSpec
from deepshelf.models.ranker.learners import RankData, grouped_ndcg, load_learner, sample_negatives, train_learner

log = logging.getLogger(__name__)


def default_session_generators() -> list[GeneratorSpec]:
    """Fit on baskets: the asymmetric cosine (P(j | i), alpha 0.9) and EASE ranked the rest of an Online Retail
    order best alone; the plain cosine and trending add what they disagree on. 300 candidates at most, the shopper
    ranker's latency budget. A sequence model over baskets (`sasrec`) adds a little more where its training time
    is affordable (configs/ranker-online-retail.toml; docs/benchmarks.md, "Anonymous baskets (Online Retail)")."""
    return [GeneratorSpec(model="itemknn", params={"neighbors": 500, "alpha": 0.9}, top_n=100),
            GeneratorSpec(model="ease", params={"l2": 500.0}, top_n=100),
            GeneratorSpec(model="itemknn", params={"neighbors": 500}, top_n=50),
            GeneratorSpec(model="trending", top_n=50)]


class SessionConfig(BaseModel):
    """The session part of `RankerConfig` (`session`; None: visits are scored like any history)."""

    model_config = ConfigDict(extra="forbid")

    generators: list[GeneratorSpec] = Field(default_factory=default_session_generators, min_length=1)
    # events of one shopper at most this far apart are one basket (training) and one visit (serving)
    gap_s: float = Field(default=1800.0, ge=0)
    label_days: float = Field(default=30.0, gt=0)  # the last days of train whose baskets are the examples
    label_windows: int = Field(default=1, gt=0)  # more windows of label_days before it (more examples, older)
    max_prefix: int = Field(default=5, gt=0)  # a training basket shows its first 1..max_prefix items
    max_baskets: int = Field(default=20_000, gt=0)  # training baskets per window, drawn at random beyond this
    negatives: int | None = Field(default=100, gt=0)  # negatives kept per training basket (None: all)
    lgbm_trees: int = Field(default=600, gt=0)
    lgbm_leaves: int = Field(default=15, gt=1)
    lgbm_min_leaf: int = Field(default=100, gt=0)
    lgbm_lr: float = Field(default=0.05, gt=0)
    # the learner ("torch" and "ensemble" read the ranker's torch_* settings) and its members, each with its own
    # seed and negatives, standardised scores averaged (`learners.BaggedLearner`)
    learner: Literal["lightgbm", "torch", "ensemble"] = "lightgbm"
    bag: int = Field(default=1, ge=1, le=20)
    # the text similarity of a candidate to the visit's last five items (`text_last5`; the catalogue texts through
    # the ranker's text encoder); None: as the ranker's `text`
    text: bool | None = None


def basket_prefixes(window: Interactions, cfg: SessionConfig,
                    rng: np.random.Generator) -> tuple[Histories, Histories]:
    """(inputs, targets): each basket of `window` with two or more items cut after its first p items, p drawn
    uniformly from 1..min(max_prefix, length - 1); at most `max_baskets` baskets, drawn at random."""
    seqs = basket_view(window, cfg.gap_s).to_sequences()
    keep = np.flatnonzero(seqs.lengths >= 2)
    if len(keep) > cfg.max_baskets:
        keep = np.sort(rng.choice(keep, cfg.max_baskets, replace=False))
    seqs = seqs.select(keep)
    shown = rng.integers(1, np.minimum(cfg.max_prefix, seqs.lengths - 1) + 1)
    starts = seqs.indptr[:-1]
    return seqs._slices(starts, shown), seqs._slices(starts + shown, seqs.lengths - shown)


class SessionRanker:
    """Candidates from basket-level generators, ranked by a lambdarank learner trained on basket completion."""

    def __init__(self, config: SessionConfig, copurchase_neighbors: int = 100):
        self.config = config
        self.copurchase_neighbors = copurchase_neighbors
        self.generators = Generators(config.generators)
        self.stats: ShopStats | None = None
        self.live: ShopStats | None = None  # the shopper ranker's statistics as of its latest `follow_sales`
        self.copurchase: sp.csr_matrix | None = None
        self.learner = None  # a `learners` learner; None: not fitted
        self.feature_importances: dict[str, float] = {}
        self.held_ndcg: float | None = None  # NDCG@10 over the held-out baskets' candidates

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.generators.learned_labels, False)

    # ---- fitting -------------------------------------------------------------------------------------------
    def _fit_state(self, inter: Interactions, catalog: Catalog | None) -> None:
        self.generators.fit(basket_view(inter, self.config.gap_s), catalog)
        self.stats = ShopStats.build(inter, catalog)
        self.copurchase = ItemKNN(neighbors=self.copurchase_neighbors).fit(inter).item_similarity()

    def fit(self, train: Interactions, catalog: Catalog | None, text: np.ndarray | None,
            ranker_config) -> "SessionRanker":
        """Learn from the baskets of `train`'s last label windows, then refit the generators and statistics on all of
        `train`. `ranker_config` (the `RankerConfig`) lends the seed, threads and early-stopping patience. Leaves the
        part unfitted (`learner` None) when no window has baskets of two items with events before it."""
        cfg = self.config
        rng = np.random.default_rng(ranker_config.seed)
        end = int(train.timestamp.max())
        parts = []
        for w in range(cfg.label_windows):
            cut = int(end - (w + 1) * cfg.label_days * DAY)
            past = train.subset(train.timestamp < cut)
            window = train.subset((train.timestamp >= cut) & (train.timestamp < cut + cfg.label_days * DAY))
            if not len(past) or not len(window):
                continue
            inputs, targets = basket_prefixes(window, cfg, rng)
            if not len(inputs):
                continue
            self._fit_state(past, catalog)
            cand, X = self.featurise(inputs, text)
            y = np.asarray(targets.to_csr(train.n_items)[cand.rows, cand.items]).ravel() > 0
            sizes = np.bincount(cand.rows, minlength=len(inputs))
            parts.append(RankData(X, y.astype(np.float32), sizes[sizes > 0], cand.items))
        data = RankData(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("X", "y", "sizes", "items"))) \
            if parts else None
        if data is None or not data.y.any():
            log.info("session ranker: no basket of two items in the last %s days with events before: not fitted",
                     cfg.label_days * cfg.label_windows)
            self.learner = None
            return self
        fit_all, held_part = _split(data, ranker_config.holdout, rng)
        first = fit_all if cfg.negatives is None or not len(fit_all) else sample_negatives(fit_all, cfg.negatives, rng)

        def draw(i: int) -> tuple[RankData, RankData]:  # learner member i's (negatives drawn, held out) baskets
            if i == 0 or cfg.negatives is None:
                return first, held_part
            return sample_negatives(fit_all, cfg.negatives, np.random.default_rng(ranker_config.seed + i)), held_part

        learner_cfg = ranker_config.model_copy(update={
            "lgbm_trees": cfg.lgbm_trees, "lgbm_leaves": cfg.lgbm_leaves, "lgbm_min_leaf": cfg.lgbm_min_leaf,
            "lgbm_lr": cfg.lgbm_lr})
        self.learner = train_learner(cfg.learner, learner_cfg, draw, held_part, self.feature_names, train.n_items,
                                     cfg.bag)
        self.held_ndcg = grouped_ndcg(self.learner.predict(held_part.X, held_part.items), held_part.y,
                                      held_part.sizes) if len(held_part) else None
        self.feature_importances = self.learner.importances()
        log.info("session ranker: %d training baskets, %d candidates, held-out NDCG@10 %s", len(data),
                 len(data.y), self.held_ndcg)
        self._fit_state(train, catalog)
        return self

    # ---- scoring -------------------------------------------------------------------------------------------
    def featurise(self, histories: Histories, text: np.ndarray | None,
                  batch_size: int = 256) -> tuple[Candidates, np.ndarray]:
        """The generators' candidates that are not in the visit itself, and their features (float32 [C, F]),
        `batch_size` visits at a time (bounds the generators' dense [batch, n_items] scores)."""
        n = len(self.stats.price)
        cands, features = [], []
        if not len(histories):
            empty = np.zeros((0, len(self.generators.learned)), np.float32)
            return (Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty, empty),
                    np.zeros((0, len(self.feature_names)), np.float32))
        for start in range(0, len(histories), batch_size):
            h = histories.select(np.arange(start, min(start + batch_size, len(histories))))
            cand = self.generators.candidates(h, n)
            cand = cand.select(~(np.asarray(h.to_csr(n)[cand.rows, cand.items]).ravel() > 0))
            live = self.live
            features.append(build_features(h, cand, self.stats if live is None else live, self.copurchase, text,
                                           False))
            cand.rows = cand.rows + start
            cands.append(cand)
        return (Candidates(*(np.concatenate([getattr(c, f) for c in cands]) for f in
                             ("rows", "items", "scores", "zscores", "ranks"))), np.concatenate(features))

    def score(self, histories: Histories, text: np.ndarray | None, popularity: np.ndarray) -> np.ndarray:
        """float64 [B, n_items]: candidates the learner's score, every other item below all of them by
        `popularity` (float [n_items] in [0, 1])."""
        B = len(histories)
        cand, X = self.featurise(histories, text)
        s = self.learner.predict(X, cand.items).astype(np.float64) if len(cand) else np.zeros(0)
        low = np.full(B, np.inf)
        np.minimum.at(low, cand.rows, s)
        low = np.where(np.isfinite(low), low, 0.0)
        out = (low[:, None] - 1.0) + 0.5 * popularity[None, :]
        out[cand.rows, cand.items] = s
        return out

    def reasons(self, histories: Histories, items: np.ndarray, overrides: dict[str, str]) -> np.ndarray:
        """str [B, k]: per recommended item the reason of the generator that ranked it highest relative to its
        list's length (`also_bought` for the basket models, `trending`, `sequence`, ...), else `popular`."""
        n = len(self.stats.price)
        B = len(histories)
        cand = self.generators.candidates(histories, n)
        learned = [self.generators.specs[g] for g in self.generators.learned]
        sizes = np.array([s.top_n for s in learned], np.float32)
        names = [overrides.get(s.model, self.generators.reasons[g]) for s, g in zip(learned, self.generators.learned)]
        relative = np.where(cand.zscores <= 0, np.inf, cand.ranks / sizes)
        best = np.argmin(relative, axis=1)
        in_top = relative[np.arange(len(cand)), best] < 1
        table = np.array(names + ["popular", ""])
        code = np.full((B, n), len(table) - 2, np.int64)
        code[cand.rows, cand.items] = np.where(in_top, best, len(table) - 2)
        out = code[np.arange(B)[:, None], np.maximum(items, 0)]
        return table[np.where(items >= 0, out, len(table) - 1)]

    # ---- persistence: a sub-folder of the ranker's -----------------------------------------------------------
    def follow(self, items: np.ndarray, ts: np.ndarray, weights: np.ndarray, now: float,
               live: ShopStats | None) -> None:
        """The shopper ranker's `follow_sales` for the session part: its popularity generators follow the same
        sales (each event once, as in the shopper's view), and `live` (the same statistics: both are built from the
        same events) describes the items."""
        self.generators.follow(items, ts, weights, now)
        self.live = live

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        meta = {"fitted": self.learner is not None, "held_ndcg": self.held_ndcg,
                "learner": self.learner.name if self.learner is not None else None,
                "feature_importances": self.feature_importances}
        (path / "session.json").write_text(json.dumps(meta, indent=2))
        if self.learner is None:
            return
        c = self.copurchase
        save_arrays(path, {**self.stats.state("stats_"), "co_data": c.data, "co_indices": c.indices,
                           "co_indptr": c.indptr})
        self.generators.save(path / "generators")
        (path / "learner").mkdir(exist_ok=True)
        self.learner.save(path / "learner")

    def load(self, path: Path, ranker_config) -> "SessionRanker":
        meta = json.loads((path / "session.json").read_text())
        self.held_ndcg, self.feature_importances = meta["held_ndcg"], meta["feature_importances"]
        if not meta["fitted"]:
            self.learner = None
            return self
        state = load_arrays(path)
        self.stats = ShopStats.from_state(state, "stats_")
        n = len(state["co_indptr"]) - 1
        self.copurchase = sp.csr_matrix((state["co_data"], state["co_indices"], state["co_indptr"]), shape=(n, n))
        self.generators.load(path / "generators")
        # parts saved before the session learner was a setting are LightGBM
        self.learner = load_learner(meta.get("learner") or "lightgbm", ranker_config, path / "learner")
        return self


def _split(data: RankData, holdout: float, rng: np.random.Generator) -> tuple[RankData, RankData]:
    """(training part, held-out part): baskets with a positive, a `holdout` share of them held out for early
    stopping."""
    group = np.repeat(np.arange(len(data)), data.sizes)
    positive = np.bincount(group, weights=data.y, minlength=len(data)) > 0
    held = rng.random(len(data)) < holdout
    parts = []
    for side in (~held, held):
        keep = (positive & side)[group]
        part = RankData(data.X[keep], data.y[keep], data.sizes[positive & side], data.items[keep])
        parts.append(part)
    return parts[0], parts[1]
