"""The demo serves first: the models a first `deepshelf demo` must wait for (the classic ones, about 35 s) are
trained before the server starts; the slow ones (the learned ranker, the content model, SASRec) train afterwards in
a background thread, and each is swapped in only where validation says so.

After each slow model the serving choice is made again over every run so far (`choose_serving`: the best
validation NDCG@10 among the history-aware models) and, with the content run's indexes attached
(`serving_folder`), `runs/demo/current` is re-pointed; the service's run watcher reloads it without a restart
(engine/holder.py). `TrainingStatus` is what the storefront's "still training" line reads (`GET /demo/status`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepshelf.apps import demo as lib

log = logging.getLogger(__name__)

# Trained after the server starts, in this order: the learned ranker (best on validation, so it is swapped in
# first), the content model (similar by text, semantic search), then SASRec (below the ranker on validation).
# Measured with the README's "How long" (2-core machine, load 12-18): the classic models before them 176 s, then
# the ranker 10.5 minutes, the content model 19 s, SASRec 66 s; the classic ones took 34 s at load 1-3.
SLOW_MODELS = (*lib.RANKER_MODELS, *lib.CONTENT_MODELS, *lib.SEQUENTIAL_MODELS)


def split_models(dataset: str, runs_dir: Path, models: dict[str, dict[str, Any]]
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(first, later): the models to train before serving, and the slow ones left for the background. A slow
    model whose run is already trained with the same config (a second `make run`) is reused at once, so it
    serves from the first request."""
    first, later = {}, {}
    for name, params in models.items():
        slow = name in SLOW_MODELS and not lib.is_trained(dataset, runs_dir, name, params)
        (later if slow else first)[name] = params
    return first, dict(sorted(later.items(), key=lambda kv: SLOW_MODELS.index(kv[0])))


@dataclass
class TrainingStatus:
    """What the background trainer is doing, read by `GET /demo/status` (thread-safe snapshots)."""

    pending: list[str] = field(default_factory=list)  # not started yet, in training order
    training: str | None = None
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    serving: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            still = ([self.training] if self.training else []) + list(self.pending)
            return {"still_training": still, "done": list(self.done), "failed": dict(self.failed),
                    "serving": self.serving}

    def start(self, name: str) -> None:
        with self._lock:
            if name in self.pending:
                self.pending.remove(name)
            self.training = name

    def finish(self, name: str, serving: str | None, error: str | None = None) -> None:
        with self._lock:
            self.training = None
            if error is None:
                self.done.append(name)
            else:
                self.failed[name] = error
            if serving is not None:
                self.serving = serving


def swap_in_best(runs_dir: Path, runs: list[lib.TrainedRun]) -> lib.TrainedRun:
    """Choose the serving run again over `runs`, give it the content indexes and re-point `current` (the server
    swaps within its watch interval); returns the chosen run."""
    serving = lib.choose_serving(runs)
    lib.link_current(runs_dir, lib.serving_folder(runs_dir, serving, lib.content_folder(runs)))
    return serving


def train_later(dataset: str, runs_dir: Path, runs: list[lib.TrainedRun], later: dict[str, dict[str, Any]],
                status: TrainingStatus, say: Callable[[str], None],
                progress: Callable[[str, int, int], None] | None = None) -> None:
    """Train each of `later` after `runs` (already served), swapping after each; a failure is reported and the
    served run stays. Runs in the background thread `start_later` makes; callable directly (tests)."""
    runs = list(runs)
    for name, params in later.items():
        status.start(name)
        say(f"background: training {name} (the store is already serving {status.serving})")
        try:
            (run,) = lib.train_models(dataset, runs_dir, {name: params}, progress)
            runs.append(run)
            before = status.serving
            serving = swap_in_best(runs_dir, runs)
        except Exception as exc:  # the demo keeps serving what it has; the reason is shown on the page
            log.exception("background training of %s failed", name)
            status.finish(name, None, f"{type(exc).__name__}: {exc}")
            say(f"background: {name} failed ({exc}); still serving {status.serving}")
            continue
        status.finish(name, serving.name)
        valid = run.metrics.get("valid", {}).get("metrics", {}).get("ndcg@10", float("nan"))
        what = (f"now serving {serving.name}" if serving.name != before
                else f"still serving {serving.name} (better on validation)")
        extra = "; similar by text and semantic search are on" if lib.content_folder([run]) else ""
        say(f"background: {name} trained (validation NDCG@10 {valid:.4f}); {what}{extra}")


def start_later(dataset: str, runs_dir: Path, runs: list[lib.TrainedRun], later: dict[str, dict[str, Any]],
                status: TrainingStatus, say: Callable[[str], None],
                progress: Callable[[str, int, int], None] | None = None) -> threading.Thread:
    """`train_later` in a daemon thread (Ctrl+C stops the demo at once; each run is written atomically, so an
    interrupted one is trained again next time)."""
    thread = threading.Thread(target=train_later, args=(dataset, runs_dir, runs, later, status, say, progress),
                              name="deepshelf-demo-training", daemon=True)
    thread.start()
    return thread
