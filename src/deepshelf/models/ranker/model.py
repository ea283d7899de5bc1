"""The learned ranker (`--model ranker`): candidates from the configured generators, ranked by a learner.

`fit(train)` is self-contained, so the same call trains for validation and refits before the test period:
labels are the items shoppers bought in the last `label_days` of `train` (and in the `label_windows - 1` windows
before it); each window's features and generators see only the events before its start. The learner is trained
on those labels, then the generators and the shop's statistics are refit on all of `train` for scoring ("now" =
the end of `train`, or a history's newest event when later).

Serving: `score(histories)` ranks every item (candidates above the rest), `reasons(histories, items)` names each
recommended item's strongest signal.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import ModelConfig, Recommender, Validation, load_arrays, save_arrays
from deepshelf.models.baskets import visit_rows
from deepshelf.models.itemknn import ItemKNN
from deepshelf.models.ranker.explore import lift_new
from deepshelf.models.ranker.features import DAY, ITEM_FEATURES, ShopStats, build_features, feature_names
from deepshelf.models.ranker.follow import FollowsShopSales
from deepshelf.models.ranker.generators import Candidates, Generators, GeneratorSpec
from deepshelf.models.ranker.session import SessionConfig, SessionRanker
from deepshelf.models.ranker.learners import (EnsembleLearner, LightGBMLearner, RankData, grouped_ndcg, load_learner,
                                              platt, sample_negatives, train_learner)

log = logging.getLogger(__name__)


def default_generators() -> list[GeneratorSpec]:
    """Top-N lists that sum to 300, so the union stays within the ranker's latency budget (at most 300
    candidates, benchmarks/ranker_latency.py); on Online Retail's validation period they ranked better than
    200/200/200/50 (benchmarks/results/ranker-quality-online-retail.md). The new products' 20 are ranked by the
    learner too (so it learns from the label windows how new products sell), which ranked better on the same
    validation period than with them as an exploration source only (docs/benchmarks.md, "New products")."""
    return [GeneratorSpec(model="trending", top_n=100), GeneratorSpec(model="ease", top_n=100),
            GeneratorSpec(model="itemknn", top_n=70), GeneratorSpec(model="buyagain", top_n=30),
            GeneratorSpec(model="newitems", top_n=20)]


class RankerConfig(ModelConfig):
    generators: list[GeneratorSpec] = Field(default_factory=default_generators, min_length=1)
    label_days: float = Field(default=30.0, gt=0)  # the last days of `train` whose purchases are the labels
    # label periods of `label_days` each, counted back from the end of train (more shoppers to learn from; as many
    # as leave events before their start): 4 scored within one run-to-run difference of 3 on Online Retail's
    # validation period, so 3 (one fit fewer; docs/benchmarks.md, "Deep parts of the ranker")
    label_windows: int = Field(default=3, gt=0)
    # "split" (both widgets from one score): the learner ranks items new to the shopper (the discovery view) and a
    # second, binary LightGBM gives the shopper's own items their probability of being bought again; the
    # learner's scores are mapped to the same probability scale on held-out shoppers (Platt), so seen and new
    # items compare when seen items are allowed (buy again) while the ranking of new items is the learner's.
    # "new": the learner alone, trained on new items (seen items get whatever it says); "all": one learner
    # trained on every purchase, repeat ones included.
    label_items: Literal["split", "new", "all"] = "split"
    # auto: the better of lightgbm and torch on validation when the fit has one, else on the held-out label
    # shoppers; ensemble (only when named): the mean of both's standardised scores, which costs both's time per
    # request and did not fit the 3 ms budget (benchmarks/results/ranker-latency.md)
    learner: Literal["auto", "lightgbm", "torch", "ensemble"] = "auto"
    # members of each learner (seeds seed, seed + 1, ...), their standardised scores averaged (`BaggedLearner`):
    # bag times the learner's training and scoring time (docs/benchmarks.md, "Deep parts of the ranker")
    bag: int = Field(default=1, ge=1, le=20)
    holdout: float = Field(default=0.2, gt=0, lt=1)  # share of label shoppers for early stopping and the choice
    # negatives kept per label shopper for training, drawn at random (None: all): bounds the fit's time
    negatives: int | None = Field(default=100, gt=0)
    copurchase_neighbors: int = Field(default=100, gt=0)  # item-kNN neighbours behind the co-purchase features
    # the text similarity of an item to the shopper's last five items (catalogue texts through the text encoder)
    text: bool = False
    cache_dir: str | None = None  # text encoder's embedding cache (None: its default)
    # day of week and month of "now": the same for every example of a label window, so with a few windows
    # they mostly tell the windows apart (LightGBM split on them); off unless the windows are many
    time_features: bool = False
    batch_size: int = Field(default=256, gt=0)  # histories featurised at once (bounds the dense per-batch arrays)
    threads: int = Field(default=0, ge=0)  # LightGBM training threads; 0: all cores
    lgbm_lr: float = Field(default=0.05, gt=0)
    lgbm_trees: int = Field(default=600, gt=0)
    lgbm_leaves: int = Field(default=7, gt=1)
    lgbm_min_leaf: int = Field(default=300, gt=0)
    patience_trees: int = Field(default=100, gt=0)
    # the buy-again model (label_items = "split"): its log-loss keeps falling slowly to lgbm_trees, so it is bounded
    # by trees at a higher rate, which bounds the time it adds to scoring (benchmarks/ranker_latency.py)
    repeat_trees: int = Field(default=150, gt=0)
    repeat_lr: float = Field(default=0.1, gt=0)
    torch_epochs: int = Field(default=20, gt=0)
    torch_dim: int = Field(default=16, gt=0)
    torch_hidden: int = Field(default=64, gt=0)
    torch_lr: float = Field(default=1e-3, gt=0)
    torch_groups: int = Field(default=32, gt=0)  # shoppers per torch update
    patience_epochs: int = Field(default=3, gt=0)
    # Exploration for new products (no sale before the fit's end, or a first sale at most `new_max_age_days`
    # before it): at least `new_slots` of the first `new_slot_rank` places go to the new candidates whose text
    # matches the shopper best, when the learner did not rank them there itself (0: the learner alone decides).
    # New products reach the candidates through a `newitems` generator. A share of the list, not a quality
    # setting (every slot costs the whole list a little: docs/benchmarks.md, "New products").
    new_slots: int = Field(default=1, ge=0)
    new_slot_rank: int = Field(default=10, ge=1)
    new_max_age_days: float = Field(default=0.0, ge=0)
    # A live visit (an anonymous basket, a new shopper's first clicks: `baskets.visit_rows`) is ranked by a learner
    # of its own, trained on completing the shop's past baskets (`session.py`); None: scored like any history.
    session: SessionConfig | None = Field(default_factory=SessionConfig)


# What a shopper is told when a generator's list put the item there (the generator's own reason otherwise).
REASON_OVERRIDES = {"content": "similar_to_recent"}


class Ranker(FollowsShopSales, Recommender):
    """Two stages: the union of each generator's top N, then a learned ranking over shop features."""

    name = "ranker"
    Config = RankerConfig
    reason = "personal"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.generators = Generators(self.config.generators)
        self.stats: ShopStats | None = None
        # Between fits the served shop's sales since the fit move the item statistics (`follow_sales`): the fit's
        # own events of the longest window (item, Unix seconds) and the statistics as of the latest call
        self.recent: tuple[np.ndarray, np.ndarray] | None = None
        self.live: ShopStats | None = None
        self.copurchase: sp.csr_matrix | None = None
        self.text_vectors: np.ndarray | None = None  # float32 [n_items, d] unit rows (zero: no text)
        self.learner = None
        self.repeat: LightGBMLearner | None = None  # label_items = "split": the seen items' binary model
        self.calibration: list[float] | None = None  # (a, b): the learner's score s -> logit a * s + b
        self.feature_importances: dict[str, float] = {}  # feature -> share of the LightGBM gain
        self.learner_quality: dict[str, float] = {}  # learner -> NDCG@10 it was chosen on
        self.session = SessionRanker(self.config.session, self.config.copurchase_neighbors) \
            if self.config.session is not None else None

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.generators.learned_labels, self.config.time_features)

    # ---- fitting -------------------------------------------------------------------------------------------
    def _fit_state(self, inter: Interactions, catalog: Catalog | None) -> None:
        """Generators, item statistics and co-purchase similarity from `inter` (all that scoring reads)."""
        self.generators.fit(inter, catalog)
        self.stats = ShopStats.build(inter, catalog)
        self.keep_recent(inter)
        self.copurchase = ItemKNN(neighbors=self.config.copurchase_neighbors).fit(inter).item_similarity()

    def label_cuts(self, train: Interactions) -> list[int]:
        """The start of each label window, newest first: the last `label_days` of train, then the ones before
        (as many of `label_windows` as leave events before their start)."""
        cfg = self.config
        end = int(train.timestamp.max())
        cuts = [int(end - (w + 1) * cfg.label_days * DAY) for w in range(cfg.label_windows)]
        cuts = [cut for cut in cuts if (train.timestamp < cut).any()]
        if not cuts:
            raise DeepshelfError(f"ranker: parameter 'label_days' = {cfg.label_days} leaves no events before the "
                                 "label cut (the data spans less time)")
        if len(cuts) < cfg.label_windows:
            log.info("ranker: %d of %d label windows fit in the data", len(cuts), cfg.label_windows)
        return cuts

    def training_examples(self, train: Interactions,
                          catalog: Catalog | None) -> tuple[RankData, np.ndarray, np.ndarray]:
        """Every candidate of every shopper who bought in a label window, features from the events before its start.

        Returns the groups (label 1: bought in the window, repeat purchases included), the user index of each
        group and, per row, whether the shopper had the item before the window (`seen`); `_fit` takes each
        learner's part of them.
        """
        parts = []
        for cut in self.label_cuts(train):
            past = train.subset(train.timestamp < cut)
            future = train.subset((train.timestamp >= cut) & (train.timestamp < cut + self.config.label_days * DAY))
            parts.append(self._window_examples(past, future, catalog))
        data = RankData(*(np.concatenate([getattr(p[0], f) for p in parts]) for f in ("X", "y", "sizes", "items")))
        return data, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])

    def _window_examples(self, past: Interactions, future: Interactions,
                         catalog: Catalog | None) -> tuple[RankData, np.ndarray, np.ndarray]:
        self._fit_state(past, catalog)
        users = np.unique(future.user)
        hist = past.to_sequences(users=users)
        cand, X = self._featurise(hist)
        seen = np.asarray(hist.to_csr(self.n_items)[cand.rows, cand.items]).ravel() > 0
        y = np.asarray(future.to_csr(binary=True)[users[cand.rows], cand.items]).ravel().astype(np.float32)
        sizes = np.bincount(cand.rows, minlength=len(users))
        return RankData(X, y, sizes[sizes > 0], cand.items), users[sizes > 0], seen

    @property
    def _session_text(self) -> bool:
        """Whether the session part reads the text vectors (its own `text`, else the ranker's)."""
        s = self.config.session
        return s is not None and (s.text if s.text is not None else self.config.text)

    def _encode_texts(self, catalog: Catalog | None) -> np.ndarray | None:
        if not (self.config.text or self._session_text) or catalog is None:
            return None
        from deepshelf.encoders.text import item_text_vectors

        return item_text_vectors(catalog.texts_for(self.item_map), self.config.cache_dir)

    def _fit(self, train: Interactions, catalog: Catalog | None, validation: Validation | None) -> None:
        cfg = self.config
        self.text_vectors = self._encode_texts(catalog)
        data, users, seen = self.training_examples(train, catalog)
        # held out by shopper, so one shopper's windows fall on the same side
        held_user = np.random.default_rng(cfg.seed).random(train.n_users) < cfg.holdout
        held_row = np.repeat(held_user[users], data.sizes)
        learned = np.ones(len(seen), bool) if cfg.label_items == "all" else ~seen
        fit_part, _ = _rows(data, users, learned & ~held_row, need_positive=True)
        held_part, _ = _rows(data, users, learned & held_row, need_positive=True)
        if not len(fit_part):
            raise DeepshelfError(f"ranker: no shopper bought a candidate in the last label_days = {cfg.label_days}")
        log.info("ranker: %d label shoppers (%d held out), %d candidates, %d features", len(fit_part) + len(held_part),
                 len(held_part), len(fit_part.y) + len(held_part.y), data.X.shape[1])

        def draw(i: int) -> tuple[RankData, RankData]:  # learner member i's (negatives drawn, held out) shoppers
            return (fit_part if cfg.negatives is None else
                    sample_negatives(fit_part, cfg.negatives, np.random.default_rng(cfg.seed + i))), held_part

        names = ["lightgbm", "torch"] if cfg.learner == "auto" else [cfg.learner]
        learners = {n: train_learner(n, cfg, draw, held_part, self.feature_names, self.n_items, cfg.bag)
                    for n in names}
        self.learner_quality = {n: grouped_ndcg(m.predict(held_part.X, held_part.items), held_part.y,
                                                held_part.sizes) for n, m in learners.items()}
        calibrations = {n: None for n in learners}
        self.repeat = None
        if cfg.label_items == "split":
            self.repeat = self._fit_repeat(data, users, seen, held_row)
            if self.repeat is not None:
                # every held-out active shopper's new candidates: the population the repeat model is fit on
                calib, _ = _rows(data, users, ~seen & held_row, need_positive=False)
                calibrations = {n: platt(m.predict(calib.X, calib.items), calib.y) for n, m in learners.items()}
        self._fit_state(train, catalog)  # scoring reads the state refit on all of train
        if len(learners) > 1 and validation is not None:
            for n, m in learners.items():
                self.learner, self.calibration = m, calibrations[n]
                self.learner_quality[n] = validation(self)
        best = max(self.learner_quality, key=self.learner_quality.get)
        self.learner, self.calibration = learners[best], calibrations[best]
        log.info("ranker: learner %s (NDCG@10 %s), calibration %s", best, self.learner_quality, self.calibration)
        lgbm = learners.get("lightgbm") or learners.get("ensemble", EnsembleLearner(cfg)).members.get("lightgbm")
        self.feature_importances = lgbm.importances() if lgbm is not None else {}
        if self.session is not None:
            self.session.fit(train, catalog, self.text_vectors if self._session_text else None, cfg)

    def _fit_repeat(self, data: RankData, users: np.ndarray, seen: np.ndarray,
                    held_row: np.ndarray) -> LightGBMLearner | None:
        """The binary model of the shopper's own items (None when the label windows hold no repeat purchase)."""
        fit_part, _ = _rows(data, users, seen & ~held_row, need_positive=False)
        held_part, _ = _rows(data, users, seen & held_row, need_positive=False)
        if not 0 < fit_part.y.sum() < len(fit_part.y):
            log.info("ranker: no repeat purchases (or only) among %d seen candidates: no buy-again model",
                     len(fit_part.y))
            return None
        log.info("ranker: buy-again model on %d seen candidates (%.1f%% bought again)", len(fit_part.y),
                 100 * fit_part.y.mean())
        repeat = LightGBMLearner(self.config, "binary", self.config.repeat_trees, self.config.repeat_lr)
        return repeat.fit(fit_part, held_part, self.feature_names, self.n_items)

    def refit_overrides(self) -> dict:
        """The learner this fit chose (on validation when it had one), so the refit repeats the choice."""
        return {"learner": self.learner.name} if self.config.learner == "auto" else {}

    # ---- scoring -------------------------------------------------------------------------------------------
    def _featurise(self, histories: Histories) -> tuple[Candidates, np.ndarray]:
        """Candidates and their features for a batch, `batch_size` histories at a time."""
        parts = []
        for start in range(0, len(histories), self.config.batch_size):
            h = histories.select(np.arange(start, min(start + self.config.batch_size, len(histories))))
            cand = self.generators.candidates(h, self.n_items)
            X = build_features(h, cand, self.item_stats, self.copurchase,
                               self.text_vectors if self.config.text else None, self.config.time_features)
            cand.rows = cand.rows + start
            parts.append((cand, X))
        if not parts:
            return self.generators.candidates(histories, self.n_items), np.zeros((0, len(self.feature_names)))
        cands = [p[0] for p in parts]
        return Candidates(*(np.concatenate([getattr(c, f) for c in cands]) for f in
                            ("rows", "items", "scores", "zscores", "ranks"))), np.concatenate([p[1] for p in parts])

    def candidate_scores(self, cand: Candidates, X: np.ndarray) -> np.ndarray:
        """float64 [C]: the learner's score of each candidate; with the buy-again model, the logit of "bought in
        the next label_days": the shopper's own items from that model, the others the learner's score mapped."""
        s = np.zeros(len(cand))
        if self.repeat is None:
            if len(cand):
                s = self.learner.predict(X, cand.items).astype(np.float64)
            return s
        seen = X[:, self.feature_names.index("times_bought")] > 0
        new = ~seen
        a, b = self.calibration
        if new.any():
            s[new] = a * self.learner.predict(X[new], cand.items[new]) + b
        if seen.any():
            s[seen] = self.repeat.predict(X[seen], cand.items[seen])
        return s

    @classmethod
    def saved_config(cls, values: dict) -> RankerConfig:
        # rankers saved before the session part scored visits like any history
        return super().saved_config({"session": None, **values})

    def _visits(self, histories: Histories) -> np.ndarray:
        """bool [B]: the rows the session part scores (live visits, when it is fitted)."""
        if self.session is None or self.session.learner is None:
            return np.zeros(len(histories), bool)
        return visit_rows(histories, float(self.stats.now[0]), self.session.config.gap_s)

    def score(self, histories: Histories) -> np.ndarray:
        """Live visits (`baskets.visit_rows`) are scored by the session part, every other history by the shopper
        ranker below."""
        visits = self._visits(histories)
        if not visits.any():
            return self._score_histories(histories)
        out = np.empty((len(histories), self.n_items), np.float32)
        rest = np.flatnonzero(~visits)
        if len(rest):
            out[rest] = self._score_histories(histories.select(rest))
        out[visits] = self.session.score(histories.select(np.flatnonzero(visits)),
                                         self.text_vectors if self._session_text else None,
                                         self.item_popularity)
        return out

    def _score_histories(self, histories: Histories) -> np.ndarray:
        """Candidates get the learner's score; every other item a finite score below all of them, by popularity."""
        B = len(histories)
        cand, X = self._featurise(histories)
        s = self.candidate_scores(cand, X)
        low = np.full(B, np.inf)
        np.minimum.at(low, cand.rows, s)
        low = np.where(np.isfinite(low), low, 0.0)
        out = (low[:, None] - 1.0) + 0.5 * self.item_popularity[None, :]
        out[cand.rows, cand.items] = s
        if self.config.new_slots:
            self._explore(histories, cand, out)
        return out.astype(np.float32)

    def new_items(self) -> np.ndarray:
        """bool [n_items]: the products new at the fit (never sold, or first sold recently enough before its end):
        the exploration share's, which the engine counts too (`NewProducts`), so it does not follow sales."""
        age = self.stats.item[:, ITEM_FEATURES.index("age_days")]
        return ~(age > self.config.new_max_age_days)  # NaN (never sold) is new

    def _explore(self, histories: Histories, cand: Candidates, out: np.ndarray) -> None:
        """The exploration share (`explore.lift_new`) over the new candidates: the learned ones (their text match
        from a learned `newitems` generator's column, else 0) and every exploration source's top N (`learned =
        false`: their own score is the match); `out` [B, n_items] float64 is changed in place."""
        new = self.new_items()
        learned_new = new[cand.items]
        text = [c for c, g in enumerate(self.generators.learned) if self.generators.specs[g].model == "newitems"]
        e_rows, e_items, e_match = self.generators.explore_candidates(histories)
        keep = new[e_items] & np.isfinite(e_match)
        rows = np.concatenate([cand.rows[learned_new], e_rows[keep]])
        items = np.concatenate([cand.items[learned_new], e_items[keep]])
        match = np.concatenate([cand.scores[learned_new, text[0]] if text else np.zeros(learned_new.sum()),
                                e_match[keep]])
        lift_new(out, histories, new, rows, items, match, self.config.new_slots, self.config.new_slot_rank)

    def reasons(self, histories: Histories, items: np.ndarray) -> np.ndarray:
        """Each recommended item's strongest signal: str [B, k] for item indices [B, k] (-1 slots get ""); a live
        visit's from the session part's generators."""
        items = np.asarray(items, np.int64)
        visits = self._visits(histories)
        if not visits.any():
            return self._history_reasons(histories, items)
        out = np.empty(items.shape, dtype=object)
        rest, rows = np.flatnonzero(~visits), np.flatnonzero(visits)
        if len(rest):
            out[rest] = self._history_reasons(histories.select(rest), items[rest])
        out[rows] = self.session.reasons(histories.select(rows), items[rows], REASON_OVERRIDES)
        return out.astype(str)

    def _history_reasons(self, histories: Histories, items: np.ndarray) -> np.ndarray:
        """A shopper's history's reasons: str [B, k] for item indices [B, k] (-1 slots get "").

        `bought_before` when the shopper has bought it, else the reason of the generator that ranked it highest
        (`trending`, `also_bought`, `sequence`, `similar_to_recent`, `new`, ...), else `new` for an exploration
        source's new product, else `popular`.
        """
        items = np.asarray(items, np.int64)
        B, n = len(histories), self.n_items
        cand = self.generators.candidates(histories, n)
        learned = [self.generators.specs[g] for g in self.generators.learned]
        sizes = np.array([s.top_n for s in learned], np.float32)
        gen_reasons = [REASON_OVERRIDES.get(s.model, self.generators.reasons[g])
                       for s, g in zip(learned, self.generators.learned)]
        # a buy-again list only speaks for the shopper's own items, which are named below whatever ranked them
        own = np.array([r == "bought_before" for r in gen_reasons])
        # a generator speaks for an item it scores above its own average (an empty history scores nothing)
        relative = np.where(own[None, :] | (cand.zscores <= 0), np.inf, cand.ranks / sizes)
        best = np.argmin(relative, axis=1)
        in_top = relative[np.arange(len(cand)), best] < 1
        names = np.array(gen_reasons + ["new", "popular", "bought_before", ""])
        code = np.full((B, n), len(names) - 3, np.int64)
        e_rows, e_items, _ = self.generators.explore_candidates(histories)
        explored = self.new_items()[e_items]
        code[e_rows[explored], e_items[explored]] = len(names) - 4
        code[cand.rows, cand.items] = np.where(in_top, best, code[cand.rows, cand.items])
        ev_row = np.repeat(np.arange(B), histories.lengths)
        code[ev_row, histories.items] = len(names) - 2
        out = code[np.arange(B)[:, None], np.maximum(items, 0)]
        return names[np.where(items >= 0, out, len(names) - 1)]

    # ---- persistence ---------------------------------------------------------------------------------------
    def _save_weights(self, path: Path) -> None:
        c = self.copurchase
        text = {} if self.text_vectors is None else {"text_vectors": self.text_vectors}
        recent = {} if self.recent is None else {"recent_items": self.recent[0], "recent_ts": self.recent[1]}
        save_arrays(path, {**self.stats.state("stats_"), "co_data": c.data, "co_indices": c.indices,
                           "co_indptr": c.indptr, **recent, **text})
        self.generators.save(path / "generators")
        (path / "learner").mkdir(exist_ok=True)
        self.learner.save(path / "learner")
        if self.repeat is not None:
            (path / "repeat").mkdir(exist_ok=True)
            self.repeat.save(path / "repeat")
        meta = {"learner": self.learner.name, "learner_quality": self.learner_quality,
                "feature_importances": self.feature_importances, "calibration": self.calibration,
                "repeat_feature_importances": self.repeat.importances() if self.repeat is not None else {}}
        (path / "ranker.json").write_text(json.dumps(meta, indent=2))
        if self.session is not None:
            self.session.save(path / "session")

    def _load_weights(self, path: Path) -> None:
        state = load_arrays(path)
        self.stats = ShopStats.from_state(state, "stats_")
        # a ranker saved before it could follow sales has no recent events: it scores with the fit's statistics
        self.recent = (state["recent_items"], state["recent_ts"]) if "recent_items" in state else None
        self.live = None
        n = len(state["co_indptr"]) - 1
        self.copurchase = sp.csr_matrix((state["co_data"], state["co_indices"], state["co_indptr"]), shape=(n, n))
        self.text_vectors = state.get("text_vectors")
        self.generators.load(path / "generators")
        meta = json.loads((path / "ranker.json").read_text())
        self.learner = load_learner(meta["learner"], self.config, path / "learner")
        self.learner_quality, self.feature_importances = meta["learner_quality"], meta["feature_importances"]
        self.calibration = meta.get("calibration")
        self.repeat = None
        if self.calibration is not None:
            self.repeat = LightGBMLearner(self.config, objective="binary").load(path / "repeat")
        if self.session is not None:
            self.session.load(path / "session", self.config)


def _rows(data: RankData, users: np.ndarray, mask: np.ndarray, need_positive: bool) -> tuple[RankData, np.ndarray]:
    """The rows where `mask` holds, and their groups' users; groups left empty (or without a positive when
    `need_positive`) are dropped."""
    group = np.repeat(np.arange(len(data)), data.sizes)[mask]
    sizes = np.bincount(group, minlength=len(data))
    keep = sizes > 0
    if need_positive:
        keep &= np.bincount(group, weights=data.y[mask], minlength=len(data)) > 0
    rows = np.flatnonzero(mask)[keep[group]]
    return RankData(data.X[rows], data.y[rows], sizes[keep], data.items[rows]), users[keep]
