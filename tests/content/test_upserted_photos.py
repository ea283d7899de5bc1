"""Issue 19: a product upserted over HTTP with a photo (a file path or an uploaded image) gets the run's visual,
search-photo and hybrid vectors, so it and the catalogue's look-alikes are each other's visual neighbours; a
missing photo is logged and the product keeps its text vector; the embedder survives save/load."""

from __future__ import annotations

import base64
import time
from contextlib import closing

import numpy as np
import pytest

from tests.content.conftest import COLOURS, draw_product
from tests.api.conftest import auth, make_settings


@pytest.fixture(scope="module")
def served(content_model, planted, tmp_path_factory):
    """The planted catalogue's content run, and a store holding its products (ids 1..40)."""
    from deepshelf.runs.artifacts import write_run
    from deepshelf.runs.config import TrainConfig
    from deepshelf.storage import items_from_table, open_store

    folder = tmp_path_factory.mktemp("served")
    run = folder / "run"
    write_run(run, TrainConfig(dataset="planted", model="content"), content_model, {}, lambda tmp: None)
    database = f"sqlite:///{folder / 'shop.db'}"
    with closing(open_store(database)) as store:
        store.upsert_items(items_from_table(planted[0].table))
    return run, database, folder


def _ids(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def _neighbours(c, item_id: str, k: int, mode: str) -> dict:
    """`mode` neighbours of `item_id` once it has them (upserted products are embedded in the background, one
    after the other: a later product's vectors may follow an earlier one's by seconds on a busy machine, the
    first photo also waits for the image encoder to load)."""
    deadline = time.monotonic() + 180
    while True:
        answer = c.get(f"/v1/items/{item_id}/similar", params={"mode": mode, "k": k, "in_stock": False}).json()
        if (answer["items"] and answer["items"][0]["reason"] == mode) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def _visual(c, item_id: str, k: int) -> dict:
    return _neighbours(c, item_id, k, "visual")


def test_upserted_photo_gets_visual_neighbours_both_ways(served):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app

    run, database, folder = served
    red_shirt, blue_watch = folder / "red-shirt.jpg", folder / "blue-watch.jpg"
    draw_product(red_shirt, "square", COLOURS["Red"], 3)  # between catalogue products 1 and 2 (jitter 0, 6)
    draw_product(blue_watch, "circle", COLOURS["Blue"], 3)  # like 15 and 16
    outside = folder.parent / f"{folder.name}-elsewhere"
    outside.mkdir(exist_ok=True)
    draw_product(outside / "red-shirt.jpg", "square", COLOURS["Red"], 3)
    with TestClient(create_app(make_settings(run, database, image_dir=folder)), headers=auth()) as c:
        # a path the server can read, and an uploaded image, each with a title that says nothing about it
        assert c.put("/v1/items/NEW-SHIRT", json={"title": "Summer special", "image_url": str(red_shirt)}
                     ).status_code == 200
        upload = base64.b64encode(blue_watch.read_bytes()).decode()
        assert c.put("/v1/items/NEW-WATCH", json={"title": "Gift idea", "image_base64": upload}).status_code == 200
        # a photo that cannot be read: logged, the product still gets its text vector
        assert c.put("/v1/items/NO-PHOTO", json={"title": "Red Tshirt model 99",
                                                 "image_url": str(folder / "missing.jpg")}).status_code == 200
        # the same photo outside the image folder (directly, and through `..`) is never read
        for n, path in enumerate((outside / "red-shirt.jpg", folder / ".." / outside.name / "red-shirt.jpg")):
            assert c.put(f"/v1/items/OUTSIDE-{n}", json={"title": "Summer special", "image_url": str(path)}
                         ).status_code == 200
        shirt = _visual(c, "NEW-SHIRT", 2)
        assert set(_ids(shirt)) == {"1", "2"} and shirt["items"][0]["reason"] == "visual"
        assert set(_ids(_visual(c, "NEW-WATCH", 2))) == {"15", "16"}
        # the other way: the catalogue's look-alikes have the new products among their nearest neighbours
        assert "NEW-SHIRT" in _ids(_visual(c, "1", 2)) and "NEW-SHIRT" in _ids(_visual(c, "2", 2))
        assert "NEW-WATCH" in _ids(_visual(c, "15", 2))
        # hybrid (text + picture) too: the photo carries the new shirt to the red shirts despite its title
        hybrid = c.get("/v1/items/NEW-SHIRT/similar", params={"mode": "hybrid", "k": 2, "in_stock": False}).json()
        assert set(_ids(hybrid)) == {"1", "2"}
        text = _neighbours(c, "NO-PHOTO", 3, "text")
        assert text["items"][0]["reason"] == "text" and set(_ids(text)) <= {str(i) for i in range(1, 11)}  # shirts
        neighbours = _ids(c.get("/v1/items/1/similar", params={"mode": "visual", "k": 40, "in_stock": False}).json())
        assert not {"NO-PHOTO", "OUTSIDE-0", "OUTSIDE-1"} & set(neighbours)


def test_embedder_round_trip_matches_the_indexes(content_model, planted, tmp_path):
    """The saved embedder remakes the catalogue products' visual, search-photo and hybrid vectors from their
    photos (and the other blocks), as the server does for an upserted product."""
    from deepshelf.content.embed import ContentEmbedder
    from deepshelf.encoders.image import ImageEncoder

    content_model.save_indexes(tmp_path)
    embedder = ContentEmbedder.load(tmp_path)
    index = content_model.similar_index
    assert list(planted[0].item_map.ids) == list(index.item_ids)
    raw = ImageEncoder(cache_dir=content_model.config.cache_dir).encode(planted[0].table["image"].to_list())
    visual, image_input = embedder.visual(raw.combined())
    np.testing.assert_allclose(visual, index.vectors["visual"], atol=1e-5)
    np.testing.assert_allclose(embedder.photo(image_input), content_model.search_index.photo_vectors, atol=1e-5)
    blocks = {m: index.vectors[m] for m, _ in embedder.hybrid}
    np.testing.assert_allclose(embedder.hybrid_vectors(blocks), index.vectors["hybrid"], atol=1e-5)
