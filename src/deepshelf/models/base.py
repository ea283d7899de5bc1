"""The model contract every deepshelf recommender follows.

`fit(train, catalog, validation) -> self`, `score(histories) -> float32 [B, n_items]`, and `recommend()`
implemented once here from `score()` (mask seen items and filters, then exact top-k). A model that chooses
epochs or a setting on validation quality gets a `Validation` from its caller (the training pipeline builds one
with `deepshelf.evaluation.evaluate.validation`): models never import the evaluation layer. `VectorScorer`,
`ItemSimilarity` and `Explains` are what serving may ask of a model beyond `score()`. `save()` / `load()` write a
folder with `model.json` (name + typed config), `item_ids.npy` (the item id map) and the weights, never pickles.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, ValidationError

from deepshelf.data.catalog import Catalog
from deepshelf.data.idmap import IdMap
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.data.splits import EvalSet
from deepshelf.errors import DeepshelfError
from deepshelf.index.exact import topk_allowed


class ModelConfig(BaseModel):
    """Base of every model's typed config: unknown keys are refused, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = 42


def build_config(config_cls: type[ModelConfig], values: dict) -> ModelConfig:
    """Validate `values` into `config_cls`, turning a validation failure into one line naming the field."""
    try:
        return config_cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            known = ", ".join(config_cls.model_fields)
            raise DeepshelfError(f"unknown parameter {field!r} for {config_cls.__name__} (known: {known})") from None
        raise DeepshelfError(f"parameter {field!r}: {err['msg']} (got {err.get('input')!r})") from None


@dataclass(frozen=True)
class Validation:
    """Held-out cases and how to measure a model on them (higher is better; NDCG@10 from the pipeline)."""

    evalset: EvalSet
    measure: Callable[["Recommender", EvalSet], float]

    def __len__(self) -> int:
        return len(self.evalset)

    def __call__(self, model: "Recommender", evalset: EvalSet | None = None) -> float:
        """The model's quality on the validation cases, or on `evalset` (a subset of them) when given."""
        return float(self.measure(model, self.evalset if evalset is None else evalset))


@runtime_checkable
class VectorScorer(Protocol):
    """A model whose scores are a dot product, so serving can retrieve through an ANN index:
    `score(h) == query_vectors(h) @ item_vectors().T` up to float rounding."""

    def item_vectors(self) -> np.ndarray:
        """float32 [n_items, d]."""

    def query_vectors(self, histories: Histories) -> np.ndarray:
        """float32 [B, d], one per history."""


@runtime_checkable
class ItemSimilarity(Protocol):
    """A model that scores a history by summing its items' rows of a sparse item-item matrix."""

    def item_similarity(self) -> sp.csr_matrix:
        """float32 csr [n_items, n_items]; row i: the items bought with item i (a zero: never together)."""


@runtime_checkable
class Explains(Protocol):
    """A model that names, per recommended item, the signal that put it there (`bought_before`, `sequence`,
    `also_bought`, `trending`, `similar_to_recent`, ...), so serving shows each item's own reason instead of
    the model's one `reason`."""

    def reasons(self, histories: Histories, items: np.ndarray) -> np.ndarray:
        """str [B, k] for item indices `items` [B, k] of the batch `histories` ("" where an index is -1)."""


@runtime_checkable
class NewProducts(Protocol):
    """A model that knows which of its items were new when it was fit (never sold, or first sold recently), so
    serving counts them in the exploration share for new products (`Settings.new_item_slots`)."""

    def new_items(self) -> np.ndarray:
        """bool [n_items]."""


@runtime_checkable
class FollowsSales(Protocol):
    """A model that describes items by their recent sales (the ranker) and, between fits, can score with the
    shop's sales since its fit instead of going stale until the next one (`engine/live_sales.py` feeds it)."""

    @property
    def fit_end(self) -> float:
        """The newest event it was fit on (Unix seconds): the sales it follows are the later ones."""

    def fit_window(self) -> tuple[float, int] | None:
        """(start, n): the fit's own events later than `start` number n (the window it keeps to follow sales), so a
        store can be checked to hold the events the model was fit on; None: it cannot follow (saved without)."""

    def follow_sales(self, items: np.ndarray, ts: np.ndarray, weights: np.ndarray, now: float) -> None:
        """Score as of `now` with every event after `fit_end` (item indices, Unix seconds, type weights)."""


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The `.npz` weights most models keep: `path / "weights.npz"`."""
    np.savez(path / "weights.npz", **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / "weights.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class Recommender(ABC):
    """A recommender estimator. Subclasses set `name`, `Config`, and implement `_fit`, `score` and the
    persistence hook pair `_save_weights` / `_load_weights` (`save_arrays` / `load_arrays` for `.npz` weights)."""

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    # Reason shown to shoppers for an item this model produced (`sequence`, `also_bought`, `trending`, ...).
    reason: ClassVar[str] = "personal"

    def __init__(self, config: ModelConfig | None = None, **overrides):
        base = config.model_dump() if config is not None else {}
        self.config = build_config(self.Config, {**base, **overrides})
        self.item_map: IdMap | None = None
        self.item_popularity: np.ndarray | None = None  # float32 [n_items], max 1

    @property
    def n_items(self) -> int:
        if self.item_map is None:
            raise RuntimeError(f"{self.name}: model is not fitted")
        return len(self.item_map)

    def fit(self, train: Interactions, catalog: Catalog | None = None,
            validation: Validation | None = None) -> Self:
        """Learn from `train`; `validation` is used by models that stop early or tune a setting on it."""
        if len(train) == 0:
            raise DeepshelfError(f"{self.name}: cannot fit on zero interactions")
        self.item_map = train.item_map
        # Kept by every model: the answer for a history with no events (a shopper we know nothing about yet).
        counts = train.item_popularity()
        self.item_popularity = (counts / max(counts.max(), 1.0)).astype(np.float32)
        self._fit(train, catalog, validation if validation is not None and len(validation) else None)
        return self

    @abstractmethod
    def _fit(self, train: Interactions, catalog: Catalog | None, validation: Validation | None) -> None: ...

    def refit_overrides(self) -> dict:
        """Config values a fresh model needs to repeat, without validation, what this fit chose on validation.

        The training pipeline refits on every event before the test period (`fit(..., validation=None)`) with
        the fitted model's config plus these; e.g. `{"epochs": best_epoch}` for a model that stopped early.
        Default: nothing (the config alone reproduces the fit).
        """
        return {}

    @abstractmethod
    def score(self, histories: Histories) -> np.ndarray:
        """Scores of every item for each history: float32 [B, n_items] (higher is better)."""

    def recommend(self, histories: Histories, k: int = 10, exclude_seen: bool = True,
                  filters: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` item indices and scores per history ([B, k] each), best first.

        exclude_seen drops items in the history; `filters` is a bool mask of allowed items, [n_items] or
        [B, n_items]. Slots with no allowed item left have index -1 and score -inf. Histories hold item indices:
        an unknown id (-1 from `item_map.lookup`) is the caller's to drop, and is refused here rather than scored
        as some other item.
        """
        if len(histories.items) and not (0 <= histories.items.min() and histories.items.max() < self.n_items):
            bad = histories.items[(histories.items < 0) | (histories.items >= self.n_items)][0]
            raise DeepshelfError(f"{self.name}: history item index {bad} is not one of the model's "
                                 f"{self.n_items} items (drop ids that item_map.lookup maps to -1)")
        scores = np.array(self.score(histories), dtype=np.float32, copy=True)
        empty = histories.lengths == 0
        if empty.any():
            scores[empty] = self.item_popularity
        if exclude_seen and len(histories.items):
            rows = np.repeat(np.arange(len(histories)), histories.lengths)
            scores[rows, histories.items] = -np.inf
        return topk_allowed(scores, k, filters)

    # ---- persistence: one hook pair, `_save_weights` / `_load_weights`, over the model's folder ---------------
    @abstractmethod
    def _save_weights(self, path: Path) -> None:
        """Write what, with the config and item map, reproduces the model's scores into folder `path`."""

    @abstractmethod
    def _load_weights(self, path: Path) -> None:
        """Read what `_save_weights` wrote (the config and item map are already loaded); never unpickles."""

    def save(self, path: str | Path) -> None:
        """Write the model into folder `path` (created if needed)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.json").write_text(json.dumps({"name": self.name, "config": self.config.model_dump()}, indent=2))
        self.item_map.save(path / "item_ids.npy")
        np.save(path / "item_popularity.npy", self.item_popularity, allow_pickle=False)
        self._save_weights(path)

    @classmethod
    def saved_config(cls, values: dict) -> ModelConfig:
        """The config a saved model was trained with; a model whose defaults changed says what older saves meant."""
        return cls.Config(**values)

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        """Load any saved model (the class comes from `model.json` through the registry)."""
        from deepshelf.models.registry import model_class

        path = Path(path)
        try:
            meta = json.loads((path / "model.json").read_text())
        except FileNotFoundError:
            raise DeepshelfError(f"{path}: not a saved model (no model.json)") from None
        except json.JSONDecodeError as exc:
            raise DeepshelfError(f"{path / 'model.json'}: corrupt ({exc})") from None
        klass = model_class(meta["name"])
        model = klass(klass.saved_config(meta["config"]))
        try:
            model.item_map = IdMap.load(path / "item_ids.npy")
            model.item_popularity = np.load(path / "item_popularity.npy", allow_pickle=False)
            model._load_weights(path)
        except (OSError, ValueError, KeyError) as exc:
            raise DeepshelfError(f"{path}: cannot load {meta['name']} model ({exc})") from None
        if len(model.item_popularity) != len(model.item_map):
            raise DeepshelfError(f"{path}: item map and weights disagree on the number of items")
        return model
