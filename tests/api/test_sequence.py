"""The sequential model (SASRec) behind the service: its index form matches its own scores, and the served answer
re-scores a shopper's updated history at once (reason `sequence`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.api.conftest import auth, group_of, make_settings, train


@pytest.fixture(scope="module")
def sasrec_run(shop, tmp_path_factory):
    events, catalog = shop
    return train(events, catalog, tmp_path_factory.mktemp("seq") / "sasrec", "sasrec", epochs=15, dim=16,
                 max_len=20, batch_size=64, warmup=0, lr=0.01, progress=False, threads=1, device="cpu")


def test_sasrec_query_vectors_match_score(sasrec_run):
    from deepshelf.data.interactions import Histories
    from deepshelf.models.base import VectorScorer
    from deepshelf.runs.artifacts import load_run

    model = load_run(sasrec_run).model
    assert isinstance(model, VectorScorer)
    hist = Histories.from_lists([[0, 3, 7], [12], [40, 41, 42, 43]])
    assert np.allclose(model.query_vectors(hist) @ model.item_vectors().T, model.score(hist), atol=1e-4)


@pytest.mark.parametrize("ann", [False, True])
def test_served_sequence_recommendations_follow_events(sasrec_run, tmp_path, ann):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    extra = {"ann_threshold": 10} if ann else {}
    with TestClient(create_app(make_settings(sasrec_run, f"sqlite:///{tmp_path / 's.db'}", **extra)),
                    headers=auth()) as c:
        assert (c.app.state.service.state.index is not None) == ann
        c.post("/v1/events", json={"events": [{"user_id": "q", "item_id": f"i{j}"} for j in (76, 77, 78)]},
               headers=auth())
        answer = c.get("/v1/users/q/recommendations", params={"k": 5}).json()
        assert answer["source"] == "model"
        model_items = [i for i in answer["items"] if i["reason"] == "sequence"]
        assert len(model_items) >= 4 and sum(group_of(i["item_id"]) == 3 for i in model_items) >= 3
