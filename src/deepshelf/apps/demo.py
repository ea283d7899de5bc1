"""The one-command demo store: train the models on a bundled shop, seed the service's store, serve the storefront.

`deepshelf demo` (and `make run`) calls, in order:

1. `train_models()`  - one run per model under `runs/demo/<model>/`; a run whose config is unchanged is reused.
   With the server, only the quick models train first; the slow ones train after it starts
   (`demo_training.py`), and 2. and 3. are done again after each;
2. `choose_serving()` - the best validation NDCG@10 among the models that react to a shopper's history, linked
   (with 3.) as `runs/demo/current` (the service watches that link, so re-pointing it swaps the model);
3. `serving_folder()` - the chosen run, given the content run's indexes (text-encoder vectors, similar by
   text / picture, semantic search) as RUN/content when the content model was trained;
4. `seed_store()`   - the shop's purchases and catalogue written once into `runs/demo/store.db`;
5. `serve()`        - the HTTP service with the storefront at `/` and the dashboard at `/admin`.

Everything is a plain function so tests build a small demo from the same code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepshelf.errors import DeepshelfError
from deepshelf.files import atomic_path

log = logging.getLogger(__name__)

# The private key (server-side: the dashboard asks for it) and the public one the storefront page is given.
DEMO_API_KEY = "demo-key"
DEMO_PUBLIC_KEY = "demo-public-key"

# Models of the demo, in training order, with parameters chosen so the whole set trains in a few minutes on a
# 2-core laptop. SASRec is short (few epochs, short window): the demo shows it working, benchmarks/ tunes it.
CLASSIC_MODELS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "trending": {},
    "itemknn": {},
    "ease": {},
    "als": {},
}
SEQUENTIAL_MODELS: dict[str, dict[str, Any]] = {
    # A demo setting, not a tuned one (validation NDCG@10 still rises after 2 epochs): the run is fit twice (on
    # the training period, then refit up to the test cut) and `make run` must build within 8 minutes on 2 cores.
    "sasrec": {"epochs": 2, "max_len": 30, "dim": 48, "layers": 1, "dropout": 0.2, "lr": 0.002, "patience": 3,
               "batch_size": 128},
}
# The learned ranker over the classic models' candidates (issue 15): LightGBM only (the PyTorch learner's
# comparison is a benchmarks/ job) with its text feature, whose title vectors the content model's encoder cache
# shares.
RANKER_MODELS: dict[str, dict[str, Any]] = {"ranker": {"learner": "lightgbm", "text": True}}
# The content model (text encoder vectors, similar-by-text/picture and semantic search indexes).
CONTENT_MODELS: dict[str, dict[str, Any]] = {"content": {}}
# Models never picked to serve "recommended for you": their answer ignores the shopper's history (popularity,
# trending) or they supply the content indexes beside the served model (content).
NOT_SERVED = ("popularity", "trending", "content")


def demo_models(include_sequential: bool = True, include_content: bool = True) -> dict[str, dict[str, Any]]:
    """The models `deepshelf demo` trains: the classic ones and the ranker, plus SASRec and the content model
    unless left out."""
    models = {**CLASSIC_MODELS, **RANKER_MODELS}
    if include_sequential:
        models.update(SEQUENTIAL_MODELS)
    if include_content:
        models.update(CONTENT_MODELS)
    return models


@dataclass
class TrainedRun:
    name: str
    path: Path
    metrics: dict
    reused: bool


def _same_config(path: Path, wanted: dict) -> bool:
    try:
        have = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    keys = ("dataset", "model", "params", "protocol")
    return (path / "metrics.json").exists() and all(have.get(k) == wanted.get(k) for k in keys)


def is_trained(dataset: str, runs_dir: Path, name: str, params: dict[str, Any]) -> bool:
    """Whether `runs_dir/<name>` holds a finished run of this model with these parameters (reused, not retrained)."""
    from deepshelf.runs.config import TrainConfig

    cfg = TrainConfig(dataset=dataset, model=name, params=params, content=False)
    return _same_config(runs_dir / name, cfg.model_dump(mode="json"))


def train_models(dataset: str, runs_dir: Path, models: dict[str, dict[str, Any]],
                 progress: Callable[[str, int, int], None] | None = None) -> list[TrainedRun]:
    """Train (or reuse) one run per model under `runs_dir/<model>`; returns them in `models` order.

    `progress(message, number, total)` is called as work proceeds (`number`: 1-based index of the model).
    """
    from deepshelf.models.base import build_config
    from deepshelf.models.registry import model_class
    from deepshelf.runs.config import TrainConfig
    from deepshelf.runs.pipeline import train_run

    runs_dir.mkdir(parents=True, exist_ok=True)
    out: list[TrainedRun] = []
    say = progress or (lambda msg, done, total: log.info(msg))
    for number, (name, params) in enumerate(models.items(), 1):
        path = runs_dir / name
        build_config(model_class(name).Config, params)  # a bad parameter fails before any data is loaded
        # content=False: the content model's run holds the indexes, and the served run gets a copy (serving_folder)
        cfg = TrainConfig(dataset=dataset, model=name, params=params, content=False)
        reused = is_trained(dataset, runs_dir, name, params)
        if reused:
            say(f"{name}: reusing {path} (same config)", number, len(models))
        else:
            train_run(cfg, path, overwrite=True, progress=lambda m, n=name, i=number: say(f"{n}: {m}", i, len(models)))
        out.append(TrainedRun(name, path, json.loads((path / "metrics.json").read_text()), reused))
    return out


def choose_serving(runs: Sequence[TrainedRun], metric: str = "ndcg@10") -> TrainedRun:
    """The run to serve: best *validation* `metric` among models that use the shopper's history.

    Chosen on validation, not test, so the test numbers printed beside it stay an honest estimate.
    """
    personal = [r for r in runs if r.metrics.get("model", r.name) not in NOT_SERVED] or list(runs)
    if not personal:
        raise DeepshelfError("no trained runs to serve")
    return max(personal, key=lambda r: r.metrics.get("valid", {}).get("metrics", {}).get(metric, float("-inf")))


def content_folder(runs: Sequence[TrainedRun]) -> Path | None:
    """The content indexes (similar-by-text/picture, semantic search) of the demo's content run, if any."""
    for r in runs:
        folder = r.path / "model" / "content"
        if r.metrics.get("model") == "content" and (folder / "similar.npz").exists():
            return folder
    return None


def serving_folder(runs_dir: Path, run: TrainedRun, content: Path | None) -> Path:
    """The folder the service loads: `run` itself, given the content run's indexes (`content`) as RUN/content,
    as `deepshelf attach-content --from` does; kept when it already holds a copy of them."""
    from deepshelf.runs.content import attach_content

    if content is None or content.resolve().is_relative_to(run.path.resolve()):  # none, or the run's own
        return run.path
    have, want = run.path / "content" / "similar.npz", content / "similar.npz"
    if have.exists() and (have.stat().st_size, have.stat().st_mtime_ns) == (want.stat().st_size,
                                                                             want.stat().st_mtime_ns):
        return run.path  # copies keep the time stamp: the same content run's indexes are already here
    attach_content(run.path, content)
    return run.path


def link_current(runs_dir: Path, folder: Path) -> Path:
    """Point `runs_dir/current` at `folder` atomically (a relative symlink renamed over the old one); a running
    service notices the new target and swaps models without a restart. The hidden `.serve-*` folders of older
    demo builds (a run and a content run paired by links) are removed once `current` no longer points there."""
    link = runs_dir / "current"
    with atomic_path(link) as tmp:
        os.symlink(folder.name, tmp)
    for old in runs_dir.glob(".serve-*"):
        shutil.rmtree(old, ignore_errors=True)
    return link


def evaluation_rows(runs: Sequence[TrainedRun], serving: TrainedRun | None = None,
                    columns: Sequence[str] = ("hr@10", "ndcg@10", "mrr@10", "coverage@10")) -> list[list[str]]:
    """Rows of the evaluation table: model, validation NDCG@10, test `columns`, training seconds, serving marker."""
    rows = []
    for r in runs:
        valid = r.metrics.get("valid", {}).get("metrics", {})
        test = r.metrics.get("test", {}).get("metrics", {})
        rows.append([r.name, f"{valid.get('ndcg@10', float('nan')):.4f}",
                     *(f"{test.get(c, float('nan')):.4f}" for c in columns),
                     f"{r.metrics.get('train_seconds', float('nan')):.1f}",
                     "serving" if serving is not None and r.name == serving.name else ""])
    return rows


# ---- the catalogue and the store ----------------------------------------------------------------------------
def demo_dataset(name: str):
    from deepshelf.data.datasets import load_dataset

    return load_dataset(name)


def seed_store(database: str, dataset, progress: Callable[[str], None] | None = None,
               images: bool = True, replay_to_now: bool = True) -> dict:
    """Write the dataset's events and catalogue into the service's store once (a store with events is kept).

    `replay_to_now` shifts every timestamp by one constant so the shop's last event happened now: the service's
    "trending" (events of the last days) then means the shop's last week, not only the clicks of this demo.
    Order and gaps are kept; the trained runs are untouched (they use the dataset's own times).
    Returns counts. Images are stored as bytes so the service can serve them at its image URL.
    """
    from deepshelf.data.schema import EventType
    from deepshelf.storage import Event, items_from_table, open_store

    say = progress or log.info
    store = open_store(database, sqlite_synchronous="NORMAL")
    try:
        n_items = store.count_items()
        if dataset.catalog is not None and n_items == 0:
            items = items_from_table(dataset.catalog.table, dataset.catalog.attributes)
            store.upsert_items(items)
            say(f"catalogue: {len(items):,} products stored")
            if images and "image" in dataset.catalog.table.columns:
                _store_images(store, dataset.catalog, say)
        n_events = store.count_events()
        inter = dataset.interactions
        if inter is not None and n_events == 0:
            users = inter.user_map.ids[inter.user].astype(str)
            items_ = inter.item_map.ids[inter.item].astype(str)
            types = [EventType(t).name.lower() for t in range(len(EventType))]
            type_names = np.asarray(types)[inter.type] if inter.type is not None else np.full(len(inter), "purchase")
            ts = inter.timestamp.astype(np.float64) if inter.timestamp is not None else np.arange(len(inter), dtype=float)
            if replay_to_now and len(ts):
                ts = ts + (time.time() - 60.0 - float(ts.max()))  # the last event a minute ago
            say(f"events: storing {len(inter):,}")
            # one transaction: an interrupted first run leaves no half-seeded store behind
            store.add_events([Event(u, i, t, float(s)) for u, i, t, s in zip(users, items_, type_names, ts)])
        return {"items": store.count_items(), "events": store.count_events()}
    finally:
        store.close()


def _store_images(store, catalog, say) -> None:
    paths = [(str(item), str(image)) for item, image in catalog.table.select("item", "image").iter_rows() if image]
    for n, (item, image) in enumerate(paths, 1):
        try:
            store.put_image(item, "image/jpeg", Path(image).read_bytes())
        except OSError:
            continue
        if n % 1000 == 0 or n == len(paths):
            say(f"images: {n:,} / {len(paths):,} stored")


def demo_shoppers(dataset, n: int = 5, min_events: int = 8, max_events: int = 60) -> list[str]:
    """A few real shoppers with a readable history (between `min_events` and `max_events`), most recent first."""
    inter = dataset.interactions
    if inter is None:
        return []
    counts = np.bincount(inter.user, minlength=inter.n_users)
    last = np.zeros(inter.n_users)
    ts = inter.timestamp if inter.timestamp is not None else np.arange(len(inter))
    np.maximum.at(last, inter.user, ts.astype(float))
    ok = np.flatnonzero((counts >= min_events) & (counts <= max_events))
    ok = ok[np.argsort(-last[ok], kind="stable")]
    return [str(x) for x in inter.user_map.ids[ok[:n]]]


# ---- serving ------------------------------------------------------------------------------------------------
@dataclass
class DemoPaths:
    runs_dir: Path
    current: Path = field(init=False)
    database: str = field(init=False)

    def __post_init__(self):
        self.runs_dir = Path(self.runs_dir)
        self.current = self.runs_dir / "current"
        self.database = f"sqlite:///{(self.runs_dir / 'store.db').resolve()}"


def make_app(paths: DemoPaths, api_key: str = DEMO_API_KEY, public_key: str = DEMO_PUBLIC_KEY,
             shoppers: Sequence[str] = (), training=None):
    """The service app over the demo's run and store: `api_key` is the private key (dashboard, reload),
    `public_key` the one the storefront page gets, `shoppers` the demo shoppers its picker offers, `training` the
    background trainer's `TrainingStatus` (apps/demo_training.py), answered at `GET /demo/status`."""
    from deepshelf.api.app import create_app
    from deepshelf.engine.settings import Settings

    # the store holds the dataset's events moved to today (`seed_store`), the runs its own times: a ranker cannot
    # tell the sales since its fit from the moved ones, so it scores as trained (README, "Sales since the fit")
    settings = Settings(run=paths.current, database=paths.database, api_keys=api_key, public_keys=public_key,
                        token_secret=demo_token_secret(paths), follow_sales=False)
    app = create_app(settings)
    app.state.storefront_shoppers = tuple(shoppers)
    app.add_api_route("/demo/shopper", _new_demo_shopper(settings), methods=["POST"], include_in_schema=False)
    app.add_api_route("/demo/status", _training_status(training), methods=["GET"], include_in_schema=False)
    return app


def _training_status(training):
    """`GET /demo/status`: the models still training in the background (the storefront says so), those done or
    failed, and the one serving. No key: it names only the demo's model names."""

    def status() -> dict:
        if training is None:
            return {"still_training": [], "done": [], "failed": {}, "serving": None}
        return training.snapshot()

    return status


DEMO_SHOPPER_TTL_S = 30 * 86_400  # the demo's browser shopper keeps its id (and list) this long


def demo_token_secret(paths: DemoPaths) -> str:
    """The secret the demo signs shopper tokens with: DEEPSHELF_TOKEN_SECRET, else one made once and kept beside
    the demo's runs (so a browser's token outlives a restart). Never sent to a page."""
    given = os.environ.get("DEEPSHELF_TOKEN_SECRET", "")
    if given:
        return given
    import secrets

    path = Path(paths.runs_dir) / "token-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _new_demo_shopper(settings):
    """The demo's stand-in for a shop's sign-in: a new shopper id of the server's choosing (never the caller's:
    a token for a named id would open that shopper's list to anyone) and its token."""
    import secrets

    from deepshelf.tokens import mint

    def new_shopper() -> dict[str, str]:
        user_id = f"web-{secrets.token_hex(6)}"
        return {"user_id": user_id, "token": mint(settings.token_secret.get_secret_value(), user_id,
                                                  DEMO_SHOPPER_TTL_S)}

    return new_shopper


def serve(paths: DemoPaths, host: str, port: int, api_key: str = DEMO_API_KEY,
          public_key: str = DEMO_PUBLIC_KEY, shoppers: Sequence[str] = (), training=None) -> None:
    """Run the service in this process until interrupted."""
    import uvicorn

    os.environ.setdefault("DEEPSHELF_API_KEYS", api_key)
    os.environ.setdefault("DEEPSHELF_PUBLIC_KEYS", public_key)
    uvicorn.run(make_app(paths, api_key, public_key, shoppers, training), host=host, port=port, log_level="warning")


def wait_for(url: str, timeout: float = 60.0) -> None:
    """Block until `url` answers 200 (the server has loaded its run), or raise."""
    import httpx

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise DeepshelfError(f"{url} did not come up in {timeout:.0f}s ({last})")
