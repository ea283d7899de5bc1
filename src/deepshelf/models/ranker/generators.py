"""Stage 1: registered models as candidate generators, each one's top N unioned per shopper."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Histories, Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.index.exact import topk
from deepshelf.models.base import Recommender, build_config
from deepshelf.models.popularity import Popularity
from deepshelf.models.registry import MODELS, model_class


class GeneratorSpec(BaseModel):
    """One candidate generator: a registered model with its parameters, proposing its top `top_n` items."""

    model_config = ConfigDict(extra="forbid")

    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    top_n: int = Field(default=200, gt=0)
    # False: an exploration source only (e.g. `newitems`): its top N are offered to the ranker's exploration share
    # (`new_slots`), never ranked by the learner nor described to it as features
    learned: bool = True

    @field_validator("model")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in MODELS or value == "ranker":
            known = ", ".join(m for m in MODELS if m != "ranker")
            raise ValueError(f"unknown generator {value!r} (expected one of {known})")
        return value

    @model_validator(mode="after")
    def _params_valid(self) -> "GeneratorSpec":
        try:
            build_config(model_class(self.model).Config, self.params)
        except DeepshelfError as exc:
            raise ValueError(f"generator {self.model!r}: {exc}") from None
        return self


@dataclass
class Candidates:
    """The union of every generator's top N per history, one entry per (row, item), sorted by row then item."""

    rows: np.ndarray  # int64 [C] history row
    items: np.ndarray  # int64 [C] item index
    scores: np.ndarray  # float32 [C, G] each generator's raw score
    zscores: np.ndarray  # float32 [C, G] the score standardised over all items of the row
    ranks: np.ndarray  # float32 [C, G] 0-based rank in the generator's list; top_n where outside its top N

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, mask: np.ndarray) -> "Candidates":
        return Candidates(self.rows[mask], self.items[mask], self.scores[mask], self.zscores[mask], self.ranks[mask])


class Generators:
    """Fits the configured models on the same events and proposes their candidates for a batch at once."""

    def __init__(self, specs: list[GeneratorSpec]):
        self.specs = list(specs)
        self.models: list[Recommender] = []

    @property
    def labels(self) -> list[str]:
        """A unique name per generator (the model name, numbered when a model appears twice)."""
        seen: dict[str, int] = {}
        out = []
        for spec in self.specs:
            seen[spec.model] = seen.get(spec.model, 0) + 1
            out.append(spec.model if seen[spec.model] == 1 else f"{spec.model}{seen[spec.model]}")
        return out

    @property
    def learned(self) -> list[int]:
        """Positions of the generators whose candidates the learner ranks."""
        return [g for g, spec in enumerate(self.specs) if spec.learned]

    @property
    def learned_labels(self) -> list[str]:
        return [self.labels[g] for g in self.learned]

    @property
    def reasons(self) -> list[str]:
        return [type(m).reason for m in self.models]

    def fit(self, train: Interactions, catalog: Catalog | None) -> "Generators":
        self.models = [model_class(s.model)(**s.params).fit(train, catalog) for s in self.specs]
        return self

    def follow(self, items: np.ndarray, ts: np.ndarray, weights: np.ndarray, now: float) -> None:
        """The generators that can follow the shop's sales since their fit (popularity, trending: `follow`) score
        as of `now` with them (see `Ranker.follow_sales`); the others stay as fit."""
        for model in self.models:
            if isinstance(model, Popularity):
                model.follow(items, ts, weights, now)

    def explore_candidates(self, histories: Histories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exploration sources' top N per history: (rows, items, their score), int64 / int64 / float32 [E]."""
        rows, items, scores = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for spec, model in zip(self.specs, self.models):
            if spec.learned:
                continue
            s = np.asarray(model.score(histories), dtype=np.float32)
            idx, top = topk(s, spec.top_n)
            rows.append(np.repeat(np.arange(len(histories)), idx.shape[1]))
            items.append(idx.ravel().astype(np.int64))
            scores.append(top.ravel())
        return np.concatenate(rows), np.concatenate(items), np.concatenate(scores)

    def candidates(self, histories: Histories, n_items: int) -> Candidates:
        """Every learned generator scores the whole batch once; the union of their top-N lists, with scores and
        ranks (one column per learned generator)."""
        B = len(histories)
        member = np.zeros((B, n_items), bool)
        dense, tops = [], []
        for spec, model in zip(self.specs, self.models):
            if not spec.learned:
                continue
            s = np.asarray(model.score(histories), dtype=np.float32)
            idx, _ = topk(s, spec.top_n)
            member[np.arange(B)[:, None], idx] = True
            dense.append(s)
            tops.append(idx)
        rows, items = np.nonzero(member)
        G = len(dense)
        scores = np.empty((len(rows), G), np.float32)
        zscores = np.empty((len(rows), G), np.float32)
        ranks = np.empty((len(rows), G), np.float32)
        rank_of = np.empty((B, n_items), np.float32)
        for g, (s, idx) in enumerate(zip(dense, tops)):
            scores[:, g] = s[rows, items]
            mean, std = s.mean(axis=1), s.std(axis=1)
            zscores[:, g] = (scores[:, g] - mean[rows]) / np.maximum(std[rows], 1e-9)
            rank_of.fill(idx.shape[1])
            rank_of[np.arange(B)[:, None], idx] = np.arange(idx.shape[1], dtype=np.float32)[None, :]
            ranks[:, g] = rank_of[rows, items]
        return Candidates(rows.astype(np.int64), items.astype(np.int64), scores, zscores, ranks)

    # ---- persistence: each generator in its own sub-folder, written by its own save() ------------------------
    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for label, model in zip(self.labels, self.models):
            model.save(path / label)
        (path / "generators.json").write_text(json.dumps(self.labels))

    def load(self, path: Path) -> "Generators":
        labels = json.loads((path / "generators.json").read_text())
        if labels != self.labels:
            raise DeepshelfError(f"{path}: saved generators {labels} differ from the config's {self.labels}")
        self.models = [Recommender.load(path / label) for label in labels]
        return self
