"""A run's content indexes (RUN/content): similar products by text and picture, and semantic search, for a run of
any model (issue 19).

`deepshelf train` builds them into every run whose catalogue has product text or images (`--no-content` skips),
from the catalogue of the data it was trained on: a run trained from the store (and each retraining) indexes
the store's products as they are then. `deepshelf attach-content` gives a run that has none (or stale ones)
new indexes, built from its data's catalogue as it is now or copied from another run.

The folder holds what `ContentModel.save_indexes` writes (similar.npz, search.npz, embed.npz, faiss_*.index)
and `content.json` (what they were built from). Servers find it with `artifacts.content_dir`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from deepshelf.content.similar import SimilarIndex
from deepshelf.data.catalog import Catalog
from deepshelf.data.interactions import Interactions
from deepshelf.errors import DeepshelfError
from deepshelf.files import replace_dir
from deepshelf.models.content import ContentModel
from deepshelf.runs.artifacts import content_dir, load_config, model_item_ids
from deepshelf.runs.sources import load_source

log = logging.getLogger(__name__)

CONTENT = "content"  # RUN/content
INFO = "content.json"


def has_content(catalog: Catalog | None) -> bool:
    """Whether a catalogue has anything to build content indexes from: a product text or an image."""
    if catalog is None or len(catalog) == 0:
        return False
    return any(text.strip() for text in catalog.texts()) or bool((catalog.table["image"] != "").any())


def readable_images(catalog: Catalog) -> Catalog:
    """The catalogue with each `image` the encoder can read from this machine: a file path (`file://` URLs as
    paths); web URLs are left out (deepshelf fetches nothing from the internet), so they count as no photo."""
    image = pl.col("image")
    remote = image.str.contains("^[A-Za-z][A-Za-z0-9+.-]*://") & ~image.str.starts_with("file://")
    table = catalog.table.with_columns(
        pl.when(remote).then(pl.lit("")).otherwise(image.str.strip_prefix("file://")).alias("image"))
    n_remote = int(catalog.table.select(remote.sum()).item())
    if n_remote:
        log.info("content indexes: %d product images are web URLs, not read (upload them or give file paths)",
                 n_remote)
    return Catalog(table)


def build_content(catalog: Catalog | None, events: Interactions | None, params: dict[str, Any],
                  say: Callable[[str], None] | None = None,
                  search_log: pl.DataFrame | None = None) -> ContentModel | None:
    """The content model over every catalogue product (behaviour vectors from `events` where they have any), its
    search tuned by the shop's `search_log` (a store's: `Dataset.search_log`) where there is one, or None when the
    catalogue has no text or image to build from."""
    say = say or log.info
    catalog = None if catalog is None else readable_images(catalog)
    if not has_content(catalog):
        (say if catalog is not None else log.info)("content indexes: skipped (no catalogue with product text or "
                                                    "images)")
        return None
    say(f"content indexes: encoding {len(catalog):,} products")
    start = time.perf_counter()
    model = ContentModel(**params).fit_catalog(catalog, events=events)
    learnt = model.learn_searches(search_log) if search_log is not None else None
    if learnt is not None:
        say(f"search learning: {learnt['choices']:,} products chosen after {learnt['queries']:,} distinct searches")
    model.training_log = {"seconds": round(time.perf_counter() - start, 3), "search_learning": learnt}
    return model


def summary(model: ContentModel, source: str) -> dict:
    """What the indexes hold (metrics.json's `content_indexes`, and content.json)."""
    search = model.search_index
    return {"built_from": source, "items": len(model.item_map), "modes": model.similar_index.modes,
            "photos": int(search.photo_valid.sum()), "words_to_pictures": search.text_tower is not None,
            "seconds": model.training_log.get("seconds"), "metrics": model.content_metrics,
            "search_learning": model.training_log.get("search_learning")}


def writer(model: ContentModel, info: dict) -> Callable[[Path], None]:
    """`write(folder)`: the indexes and content.json into `folder` (for `artifacts.write_run`)."""
    def write(folder: Path) -> None:
        model.save_indexes(folder)
        (folder / INFO).write_text(json.dumps(info, indent=2))

    return write


def attach_content(run_path: str | Path, source: str | Path | None = None,
                   say: Callable[[str], None] | None = None) -> dict:
    """Give the run at `run_path` content indexes (RUN/content), replacing any it has, and return what they hold.

    `source`: a run whose indexes are copied (its RUN/content, or the content model's own), or such a folder;
    it must share products with this run. Without one they are built from the catalogue of the run's data as it
    is now (a store: today's products), with the run's `content_params`. The folder is swapped in whole, so a server
    reading the run sees the old indexes or the new ones; one following the run path reloads it.
    """
    say = say or log.info
    run_path = Path(run_path)
    cfg = load_config(run_path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CONTENT}.", dir=run_path))
    try:
        if source is not None:
            info = _copy_indexes(Path(source), run_path, tmp)
        else:
            ds = load_source(cfg.dataset, cfg.catalog)
            events = None
            if ds.interactions is not None:
                events = ds.interactions.with_type_weights(cfg.event_weights)
                events = events.subset(events.weight > 0)
            model = build_content(ds.catalog, events, cfg.content_params, say, ds.search_log)
            if model is None:
                raise DeepshelfError(f"{ds.name}: no catalogue with product text or images to index")
            info = summary(model, ds.name)
            writer(model, info)(tmp)
        replace_dir(tmp, run_path / CONTENT)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"content indexes for {info['items']:,} products ({', '.join(info['modes'])}) in {run_path / CONTENT}")
    return info


def _copy_indexes(source: Path, run_path: Path, tmp: Path) -> dict:
    folder = source if (source / "similar.npz").exists() else content_dir(source)
    if folder is None or not (folder / "similar.npz").exists():
        raise DeepshelfError(f"{source}: no content indexes to copy (train it with --model content, or without "
                             "--no-content)")
    index = SimilarIndex.load(folder)
    shared = np.isin(index.item_ids, model_item_ids(run_path)).sum()
    if shared == 0:
        raise DeepshelfError(f"{source}: its content indexes share no product with the run {run_path}")
    for path in folder.iterdir():
        if path.is_file():
            shutil.copy2(path, tmp / path.name)
    info = {"built_from": str(source), "items": len(index), "modes": index.modes, "shared_items": int(shared)}
    if (folder / INFO).exists():
        info = {**json.loads((folder / INFO).read_text()), **info}
    (tmp / INFO).write_text(json.dumps(info, indent=2))
    return info
