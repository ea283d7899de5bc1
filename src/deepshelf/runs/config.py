"""The train config: which data, which model with which parameters, which protocol (`deepshelf train`'s input)."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deepshelf.data.schema import EVENT_TYPE_NAMES
from deepshelf.errors import DeepshelfError
from deepshelf.models.base import build_config
from deepshelf.models.registry import model_class


MAX_GRID = 64  # combinations a search may fit: each is a full training run


class TrainConfig(BaseModel):
    """What `deepshelf train` does: which data, which model with which parameters, which protocol."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)  # the model's own config values
    catalog: str | None = None  # catalogue file for a dataset given by path
    protocol: Literal["auto", "leave-one-out", "temporal"] = "auto"
    test_days: float = Field(default=30.0, gt=0)  # temporal protocol: length of the test period
    valid_days: float = Field(default=30.0, gt=0)
    ks: tuple[int, ...] = (10, 20)
    # Strength of each event type (view/cart/purchase/...) over schema.DEFAULT_EVENT_WEIGHTS; a type
    # weighted 0 (impressions and searches by default) carries no preference and is left out of training.
    event_weights: dict[str, float] = Field(default_factory=dict)
    # Model parameter -> values to try (`--set search.l2=[100,300,1000]`): each combination is fit on the training
    # events and measured on validation (NDCG@10, discovery view); the best one is tested, saved (and refit).
    search: dict[str, list[Any]] = Field(default_factory=dict)
    # After choosing on validation, fit a fresh model on every event before the test period and test, save and
    # serve that one, as a shop retrains up to today. None: on for the temporal protocol, off for leave-one-out.
    refit: bool | None = None
    # Build the content indexes (text / picture similarity, semantic search) into RUN/content from the catalogue
    # of the products the run was trained on, when it has product text or images (`--no-content`: never).
    content: bool = True
    # The content model's settings for them (`--set content.images=false`; models.content.ContentConfig).
    content_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("search")
    @classmethod
    def _small_grid(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in value.items():
            if not values:
                raise ValueError(f"search.{name}: expected at least one value")
        size = 1
        for values in value.values():
            size *= len(values)
        if size > MAX_GRID:
            raise ValueError(f"{size} combinations to fit; at most {MAX_GRID}")
        return value

    @field_validator("event_weights")
    @classmethod
    def _known_event_types(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if name not in EVENT_TYPE_NAMES:
                raise ValueError(f"unknown event type {name!r} (expected one of {', '.join(EVENT_TYPE_NAMES)})")
            if weight < 0:
                raise ValueError(f"weight of {name!r} must be >= 0")
        return value


def search_grid(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Every combination of `cfg.search`'s values, as parameter overrides ([{}] without a search)."""
    names = list(cfg.search)
    return [dict(zip(names, values)) for values in itertools.product(*(cfg.search[n] for n in names))]


def parse_value(text: str) -> Any:
    """A `--set` value: TOML scalar syntax when it parses (1, 0.5, true, "x"), else the raw string."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def build_train_config(dataset: str | None, model: str | None, config_file: Path | None,
                       overrides: list[str]) -> TrainConfig:
    """Merge a TOML config file, command-line dataset/model and `--set key=value` into a validated config.

    A `--set` key is a model parameter, one of TrainConfig's own fields (protocol, test_days, content, ...),
    `search.NAME` (values to try) or `content.NAME` (a setting of the content indexes).
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = tomllib.loads(Path(config_file).read_text())
        except FileNotFoundError:
            raise DeepshelfError(f"{config_file}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise DeepshelfError(f"{config_file}: not valid TOML: {exc}") from None
    if dataset:
        values["dataset"] = dataset
    if model:
        values["model"] = model
    params = dict(values.get("params", {}))
    search = dict(values.get("search", {}))
    content_params = dict(values.get("content_params", {}))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeepshelfError(f"--set {item!r}: expected key=value")
        if key.startswith("search.") and key != "search.":
            search[key.removeprefix("search.")] = parse_value(raw)
        elif key.startswith("content.") and key != "content.":
            content_params[key.removeprefix("content.")] = parse_value(raw)
        elif key in TrainConfig.model_fields and key not in ("params", "dataset", "model"):
            values[key] = parse_value(raw)
        else:
            params[key] = parse_value(raw)
    values["params"] = params
    if search:
        values["search"] = search
    if content_params:
        values["content_params"] = content_params
    for required in ("dataset", "model"):
        if not values.get(required):
            raise DeepshelfError(f"missing --{required} (or '{required} = ...' in the config file)")
    try:
        cfg = TrainConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise DeepshelfError(f"config field {field!r}: {err['msg']}") from None
    # Validate the model parameters now, before any data is loaded, so a typo fails in a second.
    config_cls = model_class(cfg.model).Config
    build_config(config_cls, cfg.params)
    try:
        build_config(model_class("content").Config, cfg.content_params)
    except DeepshelfError as exc:
        raise DeepshelfError(f"content: {exc}") from None
    for point in search_grid(cfg):
        try:
            build_config(config_cls, {**cfg.params, **point})
        except DeepshelfError as exc:
            raise DeepshelfError(f"search: {exc}") from None
    return cfg
