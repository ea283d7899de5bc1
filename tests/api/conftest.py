"""Serving fixtures: tiny runs trained on synthetic shop events (planted groups), apps on both stores (their
catalogue seeded with the shop's, as `deepshelf serve` does before the service starts; the stores come from
tests/conftest.py), and waiting for a `deepshelf serve` child process to answer."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

KEY = "test-key"  # a private key (DEEPSHELF_API_KEYS)
PUBLIC_KEY = "test-public-key"  # a public one (DEEPSHELF_PUBLIC_KEYS)
N_GROUPS, ITEMS_PER_GROUP = 4, 25


def group_of(item_id: str) -> int:
    return int(item_id[1:]) // ITEMS_PER_GROUP


def write_shop(folder: Path, seed: int = 0, users_per_group: int = 30, events_per_user: int = 8) -> tuple[Path, Path]:
    """Events (users of group g only touch items of group g) and a catalogue (category = group, prices, stock)."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = 1_700_000_000
    for g in range(N_GROUPS):
        p = 1.0 / np.arange(1, ITEMS_PER_GROUP + 1)
        p /= p.sum()
        for u in range(users_per_group):
            for j, i in enumerate(rng.choice(ITEMS_PER_GROUP, size=events_per_user, replace=False, p=p)):
                rows.append((f"u{g}_{u}", f"i{g * ITEMS_PER_GROUP + i}", "purchase" if j % 3 == 0 else "view",
                             t0 + len(rows) * 60))
    events = folder / "events.csv"
    pl.DataFrame(rows, schema=["user", "item", "type", "timestamp"], orient="row").write_csv(events)
    catalog = folder / "catalog.csv"
    shop_catalog().with_columns(pl.when(pl.col("in_stock")).then(pl.lit("yes")).otherwise(pl.lit("no"))
                                .alias("in_stock")).write_csv(catalog)
    return events, catalog


def shop_catalog() -> pl.DataFrame:
    """The shop's catalogue: category = group, prices 10.., every tenth item out of stock."""
    n = N_GROUPS * ITEMS_PER_GROUP
    return pl.DataFrame({"item": [f"i{i}" for i in range(n)],
                         "title": [f"Product {i} of group {i // ITEMS_PER_GROUP}" for i in range(n)],
                         "category": [f"cat{i // ITEMS_PER_GROUP}" for i in range(n)],
                         "price": [float(10 + i) for i in range(n)],
                         "in_stock": [i % 10 != 9 for i in range(n)]})


def seed_store(database: str) -> None:
    """Give an empty store the shop's catalogue (what `deepshelf serve` does from the run's dataset)."""
    from contextlib import closing

    from deepshelf.storage import items_from_table, open_store

    with closing(open_store(database)) as store:
        if store.count_items() == 0:
            store.upsert_items(items_from_table(shop_catalog()))


def train(events: Path, catalog: Path, out: Path, model: str, **params) -> Path:
    from deepshelf.runs.config import TrainConfig
    from deepshelf.runs.pipeline import train_run

    cfg = TrainConfig(dataset=str(events), catalog=str(catalog), model=model, params=params,
                      protocol="leave-one-out", content=False)  # behaviour only: content tests add their own
    return train_run(cfg, out)


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> tuple[Path, Path]:
    return write_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory, shop) -> Path:
    """runs/knn (item-kNN), runs/als (ALS) and runs/pop (popularity), trained once per session."""
    folder = tmp_path_factory.mktemp("runs")
    events, catalog = shop
    train(events, catalog, folder / "knn", "itemknn")
    train(events, catalog, folder / "als", "als", factors=8, iterations=5, threads=1)
    train(events, catalog, folder / "pop", "popularity")
    return folder


@pytest.fixture
def run_link(tmp_path, runs_dir) -> Path:
    """A symlink to the item-kNN run (re-pointing it swaps the model)."""
    link = tmp_path / "current"
    link.symlink_to(runs_dir / "knn")
    return link


def make_settings(run: Path | None, database: str, **overrides):
    """Settings for a test app on `database`, whose catalogue is seeded with the shop's when a run is served."""
    from deepshelf.engine.settings import Settings

    if run is not None:
        seed_store(database)

    values = dict(run=run, database=database, api_keys=f"{KEY},other-key", public_keys=PUBLIC_KEY,
                  watch_interval_s=0.2,
                  trending_refresh_s=0.5, catalog_refresh_s=0.05)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(run_link, database):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    app = create_app(make_settings(run_link, database))
    with TestClient(app, headers=auth()) as c:  # every call as the shop's server (test_auth.py checks scopes)
        yield c


@pytest.fixture
def sqlite_client(run_link, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    app = create_app(make_settings(run_link, f"sqlite:///{tmp_path / 'store.db'}"))
    with TestClient(app, headers=auth()) as c:
        yield c


def auth() -> dict[str, str]:
    return {"X-API-Key": KEY}


def wait_until_serving(proc, url: str, log: Path, timeout_s: float = 120) -> None:
    """Poll `url` until it answers 200 from the child server `proc` (started with its output in `log`); fail with
    the log's tail if the process exits or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def run_with_content(runs_dir, folder, photos: bool):
    """A copy of the item-kNN run with content indexes over its 100 items: "text" vectors where item i is most like
    i+1 and i-1 (a chain), and with `photos` "visual" ones where it is most like the item 50 away."""
    import shutil

    import numpy as np

    from deepshelf.content.similar import SimilarIndex

    shutil.copytree(runs_dir / "knn", folder)
    ids = np.array([f"i{i}" for i in range(100)])
    angle = np.arange(100) / 100 * 2 * np.pi
    vectors = {"text": np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)}
    if photos:
        vectors["visual"] = np.stack([np.cos(2 * angle), np.sin(2 * angle)], 1).astype(np.float32)
    SimilarIndex(ids, vectors, {name: np.ones(100, bool) for name in vectors}).save(folder / "content")
    return folder
