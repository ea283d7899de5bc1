"""Fast retrieval paths against their references: the service's ANN / sparse paths vs the model's own recommend()
(the index itself against exact top-k is tests/index)."""

from __future__ import annotations

import numpy as np
import pytest


def _service_answers(run, tmp_path, name, sessions, **overrides):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from tests.api.conftest import auth, make_settings

    settings = make_settings(run, f"sqlite:///{tmp_path / f'{name}.db'}", new_item_slots=0, **overrides)
    with TestClient(create_app(settings), headers=auth()) as c:
        state = c.app.state.service.state
        out = [[i["item_id"] for i in c.post("/v1/sessions/recommendations",
                                              json={"item_ids": s, "k": 10, "rules": {"in_stock": False}}).json()["items"]]
               for s in sessions]
        return out, state


SESSIONS = [["i1"], ["i30", "i31"], ["i55", "i60", "i2"], ["i80"], ["i5", "i6", "i7", "i8"]]


def test_ann_path_matches_dense_recommend(runs_dir, tmp_path):
    dense, dense_state = _service_answers(runs_dir / "als", tmp_path, "dense", SESSIONS)
    ann, ann_state = _service_answers(runs_dir / "als", tmp_path, "ann", SESSIONS, ann_threshold=10, ann_nprobe=64)
    assert dense_state.index is None and ann_state.index is not None and not ann_state.index.exact
    recall = np.mean([len(set(a) & set(d)) / len(d) for a, d in zip(ann, dense)])
    assert recall >= 0.95, (ann, dense)


def test_sparse_itemknn_path_matches_dense_recommend(runs_dir, tmp_path):
    dense, _ = _service_answers(runs_dir / "knn", tmp_path, "dense", SESSIONS)
    sparse, state = _service_answers(runs_dir / "knn", tmp_path, "sparse", SESSIONS, ann_threshold=10)
    assert state.similarity is not None
    assert sparse == dense


@pytest.mark.parametrize("run", ["knn", "als", "pop"])
def test_served_list_equals_model_recommend(runs_dir, tmp_path, run):
    """What is evaluated is what is served: with no rules in the way the answer is the model's own top-k."""
    from deepshelf.data.interactions import Histories
    from deepshelf.runs.artifacts import load_run

    model = load_run(runs_dir / run).model
    served, _ = _service_answers(runs_dir / run, tmp_path, run, SESSIONS[:3])
    for session, answer in zip(SESSIONS[:3], served):
        hist = Histories.from_lists([model.item_map.lookup(session).tolist()])
        # the service asks for 4k+20 candidates (room for rules); top-k of a longer list is not tie-stable at the
        # cut, so compare against the same request
        idx, scores = model.recommend(hist, k=60)
        expected = [str(x) for x, s in zip(model.item_map.ids[idx[0]], scores[0]) if run != "knn" or s > 0][:10]
        assert answer[: len(expected)] == expected


def test_als_vectors_the_service_uses_match_the_model(runs_dir):
    """The service retrieves ALS items by query_vectors(h) @ item_vectors().T: the same ranking as score(h)."""
    from deepshelf.data.interactions import Histories
    from deepshelf.models.base import VectorScorer
    from deepshelf.runs.artifacts import load_run

    model = load_run(runs_dir / "als").model
    assert isinstance(model, VectorScorer)
    hist = Histories.from_lists([[0, 3, 3, 7], [12], [40, 41, 42, 43, 44, 45]])
    assert np.allclose(model.query_vectors(hist), model.user_factors(hist), atol=1e-4)
    assert np.allclose(model.query_vectors(hist) @ model.item_vectors().T, model.score(hist), atol=1e-3)
