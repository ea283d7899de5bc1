"""Run folders: load one back, write one atomically. The only part of `runs` that serving imports.

Layout: `config.json` (the TrainConfig), `model/` (the saved model: the one tested and served), `metrics.json`,
`report.md`, `plots/`; a run refit before its test period also keeps `valid_model/`, the first fit (on the training
events only) that its validation numbers and validation exports come from; a run with content indexes keeps them
in `content/` (runs.content).
A run is written to a temporary sibling folder and swapped into place (`deepshelf.files.replace_dir`), so readers
never see half a run, nor, when a run is replaced, a moment without one.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from deepshelf.data.idmap import IdMap
from deepshelf.errors import DeepshelfError
from deepshelf.files import replace_dir
from deepshelf.models.base import Recommender
from deepshelf.runs.config import TrainConfig
from deepshelf.storage.urls import redact_url


VALID_MODEL = "valid_model"


@dataclass
class Run:
    """A trained run loaded back: its config, model and recorded metrics."""

    path: Path
    config: TrainConfig
    model: Recommender
    metrics: dict

    @property
    def version(self) -> str:
        return self.metrics.get("version", self.path.name)


def load_config(path: str | Path) -> TrainConfig:
    """The run's TrainConfig alone (what it was trained on, and how), without loading its model."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise DeepshelfError(f"{path}: not a deepshelf run (no config.json)")
    try:
        return TrainConfig(**json.loads((path / "config.json").read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise DeepshelfError(f"{path}: corrupt run files ({str(exc).splitlines()[0]})") from None


def load_run(path: str | Path) -> Run:
    path = Path(path)
    cfg = load_config(path)
    try:
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    except json.JSONDecodeError as exc:
        raise DeepshelfError(f"{path}: corrupt run files ({str(exc).splitlines()[0]})") from None
    return Run(path, cfg, Recommender.load(path / "model"), metrics)


def load_valid_model(path: str | Path) -> Recommender | None:
    """The first fit of a run refit before its test period (`valid_model/`), or None for a run without a refit."""
    folder = Path(path) / VALID_MODEL
    return Recommender.load(folder) if folder.is_dir() else None


def content_dir(run_path: str | Path) -> Path | None:
    """The run's content indexes (similar by text / picture, semantic search), if it has any.

    Any run keeps them in `content/` (built by `deepshelf train` or `deepshelf attach-content`); a content
    model's run also has its own in `model/content`. `content/` wins: it is the one attached last.
    """
    run_path = Path(run_path)
    for folder in (run_path / "content", run_path / "model" / "content"):
        if folder.is_dir():
            return folder
    return None


def model_item_ids(path: str | Path) -> np.ndarray:
    """The original item ids of a run's saved model (str [n]), without loading the model."""
    try:
        return IdMap.load(Path(path) / "model" / "item_ids.npy").ids.astype(str)
    except (OSError, ValueError) as exc:
        raise DeepshelfError(f"{path}: the run has no readable model item ids ({exc})") from None


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


def write_run(out: Path, cfg: TrainConfig, model: Recommender, metrics: dict,
              report: Callable[[Path], None] | None = None, valid_model: Recommender | None = None,
              content: Callable[[Path], None] | None = None) -> None:
    """Write config, model (and `valid_model`, if given), metrics, report (`report(folder)` writes it) and content
    indexes (`content(folder)` writes them into RUN/content) into a temporary sibling folder, then put it at `out`
    in one step: a reader of `out` sees the old run or the new one, never none or half of one."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # never a database password on disk: the store is reached again with the password from the environment
        # (PGPASSWORD / .pgpass), as libpq does for any URL without one
        safe = cfg.model_copy(update={"dataset": redact_url(cfg.dataset)})
        (tmp / "config.json").write_text(safe.model_dump_json(indent=2))
        model.save(tmp / "model")
        if valid_model is not None:
            valid_model.save(tmp / VALID_MODEL)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if report is not None:
            report(tmp)
        if content is not None:
            (tmp / "content").mkdir()
            content(tmp / "content")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
