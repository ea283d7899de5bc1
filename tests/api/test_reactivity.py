"""Issue 15's reactivity number on the API, on the demo's real data path: the bundled Online Retail shop, its
five demo shoppers (`apps.demo.demo_shoppers`, the ones `deepshelf demo` advertises), a learned ranker (small
settings, so the suite stays quick) and a store seeded as the demo seeds it (the shop's events replayed up to
now). Each shopper views three "Christmas lights" products they never touched; their new top 10 must hold at
least three items the old one did not, at least two of them of the same kind (a "christmas" or "light" product:
the viewed products' key title words), and name a viewed product as the reason (`because`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

KEY = "reactivity-key"
KIND = ("christmas", "light")  # the viewed products have both words; a related one has either
RANKER = {"learner": "lightgbm", "threads": 1, "lgbm_trees": 50, "copurchase_neighbors": 50,
          "generators": [{"model": "trending", "top_n": 100}, {"model": "itemknn", "top_n": 100},
                         {"model": "buyagain", "top_n": 20}]}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The demo's dataset, a ranker run trained on all of it, and a store seeded the demo's way."""
    from deepshelf.apps import demo
    from deepshelf.models.ranker.model import Ranker
    from deepshelf.runs.artifacts import write_run
    from deepshelf.runs.config import TrainConfig

    folder = tmp_path_factory.mktemp("reactivity")
    ds = demo.demo_dataset("online-retail")
    model = Ranker(**RANKER).fit(ds.interactions, ds.catalog)
    run = folder / "ranker"
    write_run(run, TrainConfig(dataset="online-retail", model="ranker", params=RANKER), model, {})
    database = f"sqlite:///{folder / 'store.db'}"
    demo.seed_store(database, ds, images=False)
    return ds, run, database


def client(run: Path, database: str, **settings) -> TestClient:
    from deepshelf.api.app import create_app
    from deepshelf.engine.settings import Settings

    return TestClient(create_app(Settings(run=run, database=database, api_keys=KEY, watch_run=False, **settings)),
                      headers={"X-API-Key": KEY})


def top10(c: TestClient, user: str) -> list[dict]:
    response = c.get(f"/v1/users/{user}/recommendations?k=10")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_five_demo_shoppers_follow_three_views_of_one_kind(shop):
    from deepshelf.apps import demo

    ds, run, database = shop
    titles = dict(zip(ds.catalog.table["item"].to_list(), [t.lower() for t in ds.catalog.table["title"].to_list()]))
    inter = ds.interactions
    sales = dict(zip(inter.item_map.ids.astype(str).tolist(), np.bincount(inter.item, minlength=inter.n_items)))
    kind = sorted((i for i, t in titles.items() if all(w in t for w in KIND)), key=lambda i: -sales.get(i, 0))
    shoppers = demo.demo_shoppers(ds)
    assert len(shoppers) == 5 and len(kind) >= 6
    with client(run, database) as c:
        for user in shoppers:
            events = c.get(f"/v1/users/{user}/events?limit=1000", headers={"X-API-Key": KEY}).json()["events"]
            assert len(events) >= 8  # a long history: three clicks are a small part of it
            touched = {e["item_id"] for e in events}
            views = [i for i in kind if i not in touched][:3]
            old = {it["item_id"] for it in top10(c, user)}
            posted = c.post("/v1/events", headers={"X-API-Key": KEY},
                            json={"events": [{"user_id": user, "item_id": i, "type": "view"} for i in views]})
            assert posted.status_code == 200, posted.text
            new = top10(c, user)
            fresh = [it for it in new if it["item_id"] not in old]
            related = [it for it in fresh if any(w in titles.get(it["item_id"], "") for w in KIND)]
            shown = [(it["reason"], titles.get(it["item_id"])) for it in new]
            assert len(fresh) >= 3, (user, shown)
            assert len(related) >= 2, (user, shown)
            assert any(it.get("because", {}).get("item_id") in views for it in related), (user, related)
            assert not set(views) & {it["item_id"] for it in new}  # viewed products are not recommended back


def test_without_the_visit_stage_the_list_stays_put(shop):
    """The same clicks with the visit stage off: the model alone barely moves (what issue 15 reported), so the
    test above measures the stage, not luck."""
    from deepshelf.apps import demo

    ds, run, database = shop
    user = demo.demo_shoppers(ds)[0]
    titles = dict(zip(ds.catalog.table["item"].to_list(), [t.lower() for t in ds.catalog.table["title"].to_list()]))
    with client(run, database, visit_share=0.0) as c:
        touched = {e["item_id"] for e in c.get(f"/v1/users/{user}/events?limit=1000",
                                               headers={"X-API-Key": KEY}).json()["events"]}
        views = [i for i, t in titles.items() if all(w in t for w in KIND) and i not in touched][3:6]
        old = {it["item_id"] for it in top10(c, user)}
        c.post("/v1/events", headers={"X-API-Key": KEY},
               json={"events": [{"user_id": user, "item_id": i, "type": "view"} for i in views]})
        fresh = [it for it in top10(c, user) if it["item_id"] not in old]
        related = [it for it in fresh if any(w in titles.get(it["item_id"], "") for w in KIND)]
        assert len(related) < 2
