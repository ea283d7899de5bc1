"""A tiny planted product catalogue with real (generated) photos: 20 designs (shape x colour), two twins each."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageDraw

from deepshelf.data.catalog import Catalog

SHAPES = {"Tshirts": "square", "Watches": "circle", "Caps": "triangle", "Bags": "bar"}
COLOURS = {"Red": (200, 25, 30), "Green": (30, 160, 50), "Blue": (25, 40, 190), "Yellow": (235, 205, 30),
           "Black": (20, 20, 20)}


def draw_product(path, shape: str, colour, jitter: int) -> None:
    im = Image.new("RGB", (224, 224), (248, 248, 248))
    d = ImageDraw.Draw(im)
    o = jitter
    if shape == "square":
        d.rectangle([50 + o, 50, 174 + o, 174], fill=colour)
    elif shape == "circle":
        d.ellipse([40, 40 + o, 184, 184 + o], fill=colour)
    elif shape == "triangle":
        d.polygon([(112 + o, 30), (30 + o, 190), (194 + o, 190)], fill=colour)
    else:
        d.rectangle([20, 90 + o, 204, 134 + o], fill=colour)
    im.save(path, quality=90)


def planted_catalog(folder) -> tuple[Catalog, dict[str, str]]:
    """40 products, ids 1..40; products 2j+1 and 2j+2 are twins (same design, slightly moved). Returns the
    catalogue and each product's twin id. Ids divisible by 5 are the held-out products."""
    rows, twin = [], {}
    item = 1
    for category, shape in SHAPES.items():
        for colour, rgb in COLOURS.items():
            pair = [str(item), str(item + 1)]
            twin[pair[0]], twin[pair[1]] = pair[1], pair[0]
            for jitter in (0, 6):
                path = folder / f"{item}.jpg"
                draw_product(path, shape, rgb, jitter)
                rows.append({"item": str(item), "title": f"{colour} {category[:-1]} model {item}",
                             "category": category, "baseColour": colour, "image": str(path)})
                item += 1
    return Catalog(pl.DataFrame(rows)), twin


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    return planted_catalog(folder)


@pytest.fixture(scope="session")
def content_model(planted, tmp_path_factory):
    from deepshelf.models.content import ContentModel

    catalog, _ = planted
    cache = tmp_path_factory.mktemp("embcache")
    small = {"epochs": 40, "hidden": 64}
    return ContentModel(cache_dir=str(cache), heads=small, align=small).fit_catalog(catalog)


def random_unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The heads are tiny: one thread avoids thread hand-offs that dominate on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
