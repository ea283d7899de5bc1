"""Encoders: right shapes, unit vectors, deterministic, cached by content, bad images skipped with a message."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deepshelf.encoders.cache import EmbeddingCache, content_hash
from deepshelf.encoders.image import COLOUR_DIM, IMAGE_DIM, ImageEncoder, colour_descriptor
from deepshelf.encoders.text import TEXT_DIM, TextEncoder


def draw(path, colour, shape="square", size=224):
    im = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(im)
    if shape == "square":
        d.rectangle([50, 50, 174, 174], fill=colour)
    else:
        d.ellipse([40, 40, 184, 184], fill=colour)
    im.save(path, quality=92)
    return str(path)


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    return TextEncoder(cache_dir=tmp_path_factory.mktemp("cache"))


def test_text_shape_norm_determinism(text_encoder):
    texts = ["Men Navy Blue Shirt", "Women Red Dress", "", "x" * 10_000]
    a = text_encoder._forward(texts)
    b = TextEncoder(cache=False).encode(texts)
    assert a.shape == (4, TEXT_DIM) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)  # same input, same vector, whatever the batch
    sims = a[:2] @ a[:2].T
    assert sims[0, 1] < 0.9  # different products are different points


def test_text_meaning(text_encoder):
    v = text_encoder.encode(["blue denim jeans", "navy jeans for men", "red lipstick"])
    assert v[0] @ v[1] > v[0] @ v[2]


def test_text_cache_skips_the_model(text_encoder, monkeypatch):
    texts = ["Leather Wallet", "Sports Shoes"]
    first = text_encoder.encode(texts)
    again = TextEncoder(cache_dir=text_encoder.cache.dir.parent)  # a fresh encoder reads the saved cache
    monkeypatch.setattr(again, "_forward", lambda batch: (_ for _ in ()).throw(AssertionError("not cached")))
    np.testing.assert_array_equal(again.encode(texts), first)


def test_cache_roundtrip(tmp_path):
    cache = EmbeddingCache(tmp_path, "ns")
    keys = [content_hash("a"), content_hash("b"), content_hash("a")]
    cache.put(keys, np.array([[1, 2], [3, 4], [1, 2]], np.float32))
    found, vecs = EmbeddingCache(tmp_path, "ns").get([content_hash("b"), content_hash("zz")])
    assert found.tolist() == [True, False]
    np.testing.assert_array_equal(vecs[0], [3, 4])
    assert len(EmbeddingCache(tmp_path, "ns")) == 2


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    paths = [draw(d / "red.jpg", (200, 20, 20)), draw(d / "red2.jpg", (210, 30, 25), "circle"),
             draw(d / "blue.jpg", (20, 30, 200)), str(d / "missing.jpg")]
    corrupt = d / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 50)
    return paths + [str(corrupt)]


def test_image_encoder_shapes_and_bad_files(images, tmp_path, caplog):
    enc = ImageEncoder(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        out = enc.encode(images, names=["r", "r2", "b", "missing-item", "corrupt-item"])
    assert out.features.shape == (5, IMAGE_DIM) and out.colour.shape == (5, COLOUR_DIM)
    assert out.ok.tolist() == [True, True, True, False, False]
    assert "missing-item" in caplog.text and "corrupt-item" in caplog.text
    assert not out.features[~out.ok].any()
    # Deterministic, and the second pass comes from the cache without running the network.
    enc2 = ImageEncoder(cache_dir=tmp_path)
    enc2.forward = lambda batch: (_ for _ in ()).throw(AssertionError("not cached"))
    again = enc2.encode(images)
    np.testing.assert_array_equal(again.features, out.features)
    np.testing.assert_array_equal(again.ok, out.ok)
    # Colour: the red square is nearer the red circle than the blue square.
    c = out.colour
    assert c[0] @ c[1] > c[0] @ c[2]
    np.testing.assert_allclose(np.linalg.norm(c[out.ok], axis=1), 1.0, atol=1e-5)


def test_onnx_matches_torch_reference(images):
    """The fast ONNX path against the torch model it was exported from."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from deepshelf.encoders.image import _decode, _weights_path

    batch = np.stack([_decode(open(p, "rb").read()) for p in images[:2]])
    fast = ImageEncoder(cache=False, precision="fp32").forward(batch)
    quantised = ImageEncoder(cache=False, precision="int8").forward(batch)
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(_weights_path(), map_location="cpu", weights_only=True))
    net.eval()
    x = torch.from_numpy(batch.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)
    with torch.no_grad():
        ref = net.extract_features(x).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(fast, ref, rtol=1e-3, atol=1e-3)
    # int8 is an approximation of the same features: close in direction, not equal (a different model would
    # be near-orthogonal: pooled ReLU features of two unrelated networks share no axes)
    cosine = (quantised * ref).sum(1) / np.linalg.norm(quantised, axis=1) / np.linalg.norm(ref, axis=1)
    assert (cosine > 0.9).all() and not np.allclose(quantised, ref, atol=1e-3)  # photos: ~0.99 (benchmark)


def test_colour_descriptor_all_background():
    white = np.full((1, 224, 224, 3), 255, np.uint8)
    c = colour_descriptor(white)
    assert np.isfinite(c).all() and abs(np.linalg.norm(c) - 1) < 1e-5


@pytest.mark.parametrize("env, config, expected", [("1", 0, 1), ("", 0, None), ("1", 2, 2), ("x", 0, None)])
def test_text_encoder_threads_follow_the_environment(monkeypatch, env, config, expected):
    """`deepshelf serve` sets OMP_NUM_THREADS=1 per server process: the query encoder keeps to it rather than
    starting a team of threads for one short query; an explicit `threads` wins; no (valid) setting: all cores."""
    import os

    import torch

    from deepshelf.encoders.text import TextEncoderConfig

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    try:
        torch.set_num_threads(3)
        enc = TextEncoder(TextEncoderConfig(threads=config), cache=False)
        enc.encode(["a red shirt"])
        assert torch.get_num_threads() == (expected or os.cpu_count())
    finally:
        torch.set_num_threads(before)
