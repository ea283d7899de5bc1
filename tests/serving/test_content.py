"""Content features plugged into the service when the run has content indexes (RUN/content): similar by text /
picture; modes the run lacks stay a clear 409."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.serving.conftest import make_settings

pytest.importorskip("deepshelf.content.similar")


@pytest.fixture
def content_run(runs_dir, tmp_path):
    from deepshelf.content.similar import SimilarIndex

    run = tmp_path / "knn-content"
    shutil.copytree(runs_dir / "knn", run)
    ids = np.array([f"i{i}" for i in range(100)])
    # "text" vectors: item i is most like i+1 and i-1 (a chain); "visual": like the item 50 away
    angle = np.arange(100) / 100 * 2 * np.pi
    text = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    visual = np.stack([np.cos(2 * angle), np.sin(2 * angle)], 1).astype(np.float32)
    SimilarIndex(ids, {"text": text, "visual": visual},
                 {"text": np.ones(100, bool), "visual": np.ones(100, bool)}).save(run / "content")
    return run


def test_similar_by_text_and_visual(content_run, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.serving.app import create_app

    with TestClient(create_app(make_settings(content_run, f"sqlite:///{tmp_path / 'c.db'}"))) as c:
        text = c.get("/v1/items/i40/similar", params={"mode": "text", "k": 2, "in_stock": False}).json()
        assert {i["item_id"] for i in text["items"]} == {"i39", "i41"} and text["items"][0]["reason"] == "text"
        visual = c.get("/v1/items/i10/similar", params={"mode": "visual", "k": 1, "in_stock": False}).json()
        assert visual["items"][0]["item_id"] == "i60" and visual["items"][0]["reason"] == "visual"
        # rules still apply: i39 is out of stock (every tenth item) and is dropped by default
        assert "i39" not in [i["item_id"] for i in c.get("/v1/items/i40/similar", params={"mode": "text"}).json()["items"]]
        r = c.get("/v1/items/i40/similar", params={"mode": "hybrid"})
        assert r.status_code == 409 and "not available" in r.json()["detail"]
        assert c.get("/v1/items/i40/similar").json()["items"][0]["reason"] == "also_bought"
