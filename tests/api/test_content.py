"""Content features plugged into the service when the run has content indexes (RUN/content): similar by text /
picture; modes the run lacks stay a clear 409."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.api.conftest import auth, make_settings, run_with_content


@pytest.fixture
def content_run(runs_dir, tmp_path):
    return run_with_content(runs_dir, tmp_path / "knn-content", photos=True)


def test_similar_by_text_and_visual(content_run, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(content_run, f"sqlite:///{tmp_path / 'c.db'}")),
                    headers=auth()) as c:
        text = c.get("/v1/items/i40/similar", params={"mode": "text", "k": 2, "in_stock": False}).json()
        assert {i["item_id"] for i in text["items"]} == {"i39", "i41"} and text["items"][0]["reason"] == "text"
        visual = c.get("/v1/items/i10/similar", params={"mode": "visual", "k": 1, "in_stock": False}).json()
        assert visual["items"][0]["item_id"] == "i60" and visual["items"][0]["reason"] == "visual"
        # rules still apply: i39 is out of stock (every tenth item) and is dropped by default
        assert "i39" not in [i["item_id"] for i in c.get("/v1/items/i40/similar", params={"mode": "text"}).json()["items"]]
        r = c.get("/v1/items/i40/similar", params={"mode": "hybrid"})
        assert r.status_code == 409 and "not available" in r.json()["detail"]
        assert c.get("/v1/items/i40/similar").json()["items"][0]["reason"] == "also_bought"


def test_a_served_run_loads_its_query_encoder_before_the_first_search(text_run, tmp_path, monkeypatch):
    """The search's query encoder and its understanding's English dictionary are loaded with the run, not by the
    first shopper's search (which every search behind it would wait for)."""
    from deepshelf.content.query import english
    from deepshelf.engine.holder import load_state
    from deepshelf.storage.connect import open_store

    monkeypatch.setattr(english, "_SYMSPELL", None)  # as in a fresh server process

    settings = make_settings(text_run, f"sqlite:///{tmp_path / 'w.db'}")
    store = open_store(settings.database)
    try:
        state = load_state(text_run, settings, store)
        index = state.content.search_index
        assert index._encoder is not None and index._encoder._session is not None  # the ONNX query model, loaded
        assert english._SYMSPELL is not None  # the dictionary too
    finally:
        store.close()


GROUP_TEXT = ["red ceramic kitchen mug for coffee", "blue wooden garden chair", "warm wool winter scarf",
              "brass desk lamp with shade"]


@pytest.fixture
def text_run(runs_dir, tmp_path):
    """A run whose content index has real text-encoder vectors for the catalogue (one theme per group)."""
    from deepshelf.content.similar import SimilarIndex
    from deepshelf.encoders.text import TextEncoder

    run = tmp_path / "knn-text"
    shutil.copytree(runs_dir / "knn", run)
    ids = np.array([f"i{i}" for i in range(100)])
    texts = [f"{GROUP_TEXT[i // 25]} model {i}" for i in range(100)]
    vecs = TextEncoder(cache=False).encode(texts)
    SimilarIndex(ids, {"text": vecs}, {"text": np.ones(100, bool)}).save(run / "content")
    from deepshelf.content.search import SearchIndex

    SearchIndex(ids, texts, vecs, np.zeros((100, 1), np.float32), np.zeros(100, bool), None).save(run / "content")
    return run


def test_semantic_search(text_run, tmp_path):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(text_run, f"sqlite:///{tmp_path / 's.db'}")),
                    headers=auth()) as c:
        answer = c.get("/v1/search", params={"q": "something warm for my neck in winter", "k": 5}).json()
        assert answer["source"] == "content" and answer["items"][0]["reason"] == "text"
        assert all(50 <= int(i["item_id"][1:]) < 75 for i in answer["items"])


def test_new_product_recommended_by_its_text_without_retraining(text_run, tmp_path):
    import time

    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(text_run, f"sqlite:///{tmp_path / 't.db'}")),
                    headers=auth()) as c:
        for item_id, title in (("new-scarf", "Cosy wool scarf for winter"), ("new-lamp", "Brass reading lamp")):
            assert c.put(f"/v1/items/{item_id}", json={"title": title}, headers=auth()).status_code == 200
        deadline = time.time() + 60
        while time.time() < deadline:  # text vectors are computed in the background after the upsert
            r = c.get("/v1/items/new-scarf/similar", params={"mode": "text", "k": 3})
            if r.status_code == 200 and r.json()["items"] and r.json()["items"][0]["reason"] == "text":
                break
            time.sleep(0.2)
        similar = r.json()["items"]
        assert all(50 <= int(i["item_id"][1:]) < 75 for i in similar)  # scarves
        c.post("/v1/events", json={"events": [{"user_id": "w", "item_id": f"i{j}"} for j in (50, 51, 52)]},
               headers=auth())
        recs = c.get("/v1/users/w/recommendations", params={"k": 5}).json()["items"]
        assert recs[-1] == {**recs[-1], "item_id": "new-scarf", "reason": "text"}
        c.post("/v1/events", json={"events": [{"user_id": "l", "item_id": f"i{j}"} for j in (80, 81)]},
               headers=auth())
        last = c.get("/v1/users/l/recommendations", params={"k": 5}).json()["items"][-1]
        # a lamp the model has never seen: the new one, or a catalogue lamp missing from the training split
        assert last["reason"] == "text" and (last["item_id"] == "new-lamp" or 75 <= int(last["item_id"][1:]) < 100)


def test_similar_index_add_and_vectors_of():
    """The public write path the service uses for upserted products: a known id is overwritten, a new id gets a
    row (empty in the other modes), and the approximate index is dropped so the new row can be found."""
    from deepshelf.content.similar import SimilarIndex

    angle = np.arange(100) / 100 * 2 * np.pi
    text = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    index = SimilarIndex(np.array([f"i{i}" for i in range(100)]), {"text": text, "visual": text},
                         {"text": np.ones(100, bool), "visual": np.ones(100, bool)})
    index.build_faiss("flat")
    assert index.add(["i5", "new", "new"], np.array([text[50], text[10], text[20]]), "text") == 1
    vecs, ok = index.vectors_of(["i5", "new", "nope"], "text")
    assert ok.tolist() == [True, True, False]
    np.testing.assert_allclose(vecs[:2], [text[50], text[20]])  # the last of a repeated id wins
    assert not index.vectors_of(["new"], "visual")[1].any()
    assert index.faiss == {}
    ids, _ = index.similar("i20", k=2, mode="text")
    assert "new" in ids.tolist()
    # an id longer than every id of the run keeps its whole name (it was cut to the run's widest id)
    assert index.add(["a-much-longer-id"], text[70:71], "text") == 1
    assert index.similar("i70", k=1, mode="text")[0].tolist() == ["a-much-longer-id"]


def _wait_for(c, path: str, params: dict, found) -> dict:
    """The answer once `found(answer)` holds (text vectors are computed in the background after an upsert)."""
    import time

    deadline = time.time() + 60
    while True:
        answer = c.get(path, params=params).json()
        if found(answer) or time.time() > deadline:
            return answer
        time.sleep(0.2)


def test_upserted_product_enters_search_and_neighbour_lists_both_ways(text_run, tmp_path):
    """Issue 19, item 1: a product PUT over HTTP is found by search, and an exact copy of a catalogue product is
    that product's neighbour as much as the product is the copy's."""
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(text_run, f"sqlite:///{tmp_path / 'u.db'}")),
                    headers=auth()) as c:
        assert c.put("/v1/items/NEW-MUG-1", json={"title": "Red Enamel Camping Mug"}).status_code == 200
        # i60's text in the run's index; the copy's text (title alone) is the same string, so the same vector
        assert c.put("/v1/items/COPY-60", json={"title": f"{GROUP_TEXT[2]} model 60"}).status_code == 200
        ids = lambda answer: [i["item_id"] for i in answer["items"]]  # noqa: E731
        found = _wait_for(c, "/v1/search", {"q": "red enamel camping mug", "k": 50, "in_stock": False},
                          lambda a: "NEW-MUG-1" in ids(a))
        assert ids(found)[0] == "NEW-MUG-1", ids(found)
        copy = _wait_for(c, "/v1/items/COPY-60/similar", {"mode": "text", "k": 3, "in_stock": False},
                         lambda a: ids(a)[:1] == ["i60"])
        assert ids(copy)[0] == "i60"
        original = c.get("/v1/items/i60/similar", params={"mode": "text", "k": 3, "in_stock": False}).json()
        assert ids(original)[0] == "COPY-60", ids(original)
        # an upsert of a known product replaces its text in the search index (no second row)
        assert c.put("/v1/items/NEW-MUG-1", json={"title": "Brass Desk Lamp"}).status_code == 200
        moved = _wait_for(c, "/v1/search", {"q": "red enamel camping mug", "k": 50, "in_stock": False},
                          lambda a: "NEW-MUG-1" not in ids(a)[:1])
        assert ids(moved)[:1] != ["NEW-MUG-1"]


def test_search_index_add_appends_and_overwrites():
    """`SearchIndex.add`: a new id gets a row (its text, vector and BM25 entry; no photo), a known id's row is
    replaced; the last of a repeated id wins."""
    from deepshelf.content.search import SearchIndex

    class Encoder:  # one axis per word of a tiny vocabulary: enough to check the plumbing
        vocab = ["mug", "lamp", "scarf", "chair"]

        def encode(self, texts):
            out = np.array([[w in t.lower() for w in self.vocab] for t in texts], np.float32)
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    enc = Encoder()
    texts = ["blue mug", "desk lamp", "wool scarf"]
    index = SearchIndex(np.array(["a", "b", "c"]), texts, enc.encode(texts), np.zeros((3, 2), np.float32),
                        np.zeros(3, bool), None, encoder=enc)
    new = ["garden chair", "red mug", "tall lamp"]
    assert index.add(["new", "b", "new"], new, enc.encode(new)) == 1
    assert index.item_ids.tolist() == ["a", "b", "c", "new"] and index.texts[1] == "red mug"
    assert index.texts[3] == "tall lamp" and index.photo_vectors.shape == (4, 2) and not index.photo_valid[3]
    ids, _ = index.search("chair", k=4, by="text")
    assert "new" not in ids[:1].tolist()  # its text is the lamp now, not the chair
    ids, _ = index.search("tall lamp", k=1, by="text")
    assert ids.tolist() == ["new"]
    ids, _ = index.search("red mug", k=1, by="text")
    assert ids.tolist() == ["b"]


def test_search_answer_carries_the_understood_query(text_run, tmp_path):
    """Issue 29: a misspelt word is corrected against the catalogue's words and a colour word becomes a filter
    (read from the products' texts: this run has no colour column); the answer says so in `understood`, which a
    query in the catalogue's own words does not get."""
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    with TestClient(create_app(make_settings(text_run, f"sqlite:///{tmp_path / 's.db'}")), headers=auth()) as c:
        answer = c.get("/v1/search", params={"q": "wool scraf", "k": 5, "in_stock": False}).json()
        assert answer["understood"]["corrected"] == [{"from": "scraf", "to": "scarf"}]
        assert all(50 <= int(i["item_id"][1:]) < 75 for i in answer["items"])
        answer = c.get("/v1/search", params={"q": "something blue", "k": 30, "in_stock": False}).json()
        assert answer["understood"]["filters"] == [{"attribute": "colour", "values": ["Blue"], "words": "blue"}]
        assert len(answer["items"]) == 25 and all(25 <= int(i["item_id"][1:]) < 50 for i in answer["items"])
        answer = c.get("/v1/search", params={"q": "garden chair", "k": 5}).json()
        assert "understood" not in answer and answer["items"]


def test_the_answer_says_a_page_was_widened_only_when_it_shows_a_widened_product(runs_dir, tmp_path):
    """The server searches a pool deeper than the page: a pool filled with the nearest colours (issue 29's short
    pages) says `widened` only when the page shown holds such a product."""
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from deepshelf.content.search import SearchIndex
    from deepshelf.content.similar import SimilarIndex
    from deepshelf.encoders.text import TextEncoder

    run = tmp_path / "knn-colours"
    shutil.copytree(runs_dir / "knn", run)
    shop = [("Wrogn Cream Sweater", "Sweaters", "Cream"), ("Wrogn Off White Sweater", "Sweaters", "Off White"),
            ("Wrogn White Sweater", "Sweaters", "White"), ("Wrogn Black Sweater", "Sweaters", "Black")]
    texts = [f"{t}. {ty}" for t, ty, _ in shop]
    ids, vecs = np.array([f"i{i}" for i in range(len(shop))]), TextEncoder(cache=False).encode(texts)
    SimilarIndex(ids, {"text": vecs}, {"text": np.ones(len(shop), bool)}).save(run / "content")
    SearchIndex(ids, texts, vecs, np.zeros((len(shop), 1), np.float32), np.zeros(len(shop), bool), None,
                attributes={"type": np.array([p[1] for p in shop]), "colour": np.array([p[2] for p in shop])}
                ).save(run / "content")
    with TestClient(create_app(make_settings(run, f"sqlite:///{tmp_path / 's.db'}")), headers=auth()) as c:
        one = c.get("/v1/search", params={"q": "ivory sweater", "k": 1, "in_stock": False}).json()
        assert [i["item_id"] for i in one["items"]] == ["i0"] and "widened" not in one["understood"]
        three = c.get("/v1/search", params={"q": "ivory sweater", "k": 3, "in_stock": False}).json()
        assert [i["item_id"] for i in three["items"]][0] == "i0"
        assert three["understood"]["widened"] == ["colour Off White/White"]
