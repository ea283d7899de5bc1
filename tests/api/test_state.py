"""Serving state under concurrency: a catalogue refresh never shows a reader an id lookup paired with columns of
another size, and a swapped-out run's content worker thread ends (after the work handed to it)."""

from __future__ import annotations

import shutil
import sys
import threading

import numpy as np
import pytest

from tests.api.conftest import make_settings


class FakeStore:
    """The two calls CatalogView makes, over rows handed in by the test."""

    kind = "sqlite"

    def __init__(self):
        self.rows: list[tuple] = []

    def catalog_columns(self, after_seq: int = -1) -> list[tuple]:
        return [r for r in self.rows if r[4] > after_seq]


def consistent(view) -> None:
    """What a request does: one snapshot, ids looked up in it, its columns read at those indices."""
    snap = view.snapshot
    ids = list(snap.index)  # every id the shared index holds, including ones newer than this snapshot
    idx = snap.lookup(ids)
    known = idx >= 0
    assert (idx[known] < len(snap.cols.ids)).all()
    assert list(snap.cols.ids[idx[known]]) == [i for i, ok in zip(ids, known) if ok]
    assert len(snap.cols.price) == len(snap.cols.in_stock) == len(snap.cols.category) == len(snap.cols.ids)


def test_readers_see_one_consistent_catalogue_while_new_items_are_applied():
    """Deterministic: a reader runs in the middle of `_apply` (the category's hash is taken while new products
    are being added) and must still see matching ids and columns."""
    from deepshelf.data.idmap import IdMap
    from deepshelf.engine.catalog_view import CatalogView

    store = FakeStore()
    view = CatalogView(IdMap(["a", "b"]), store)
    checks = []

    class ReadingCategory(str):
        def __hash__(self):
            consistent(view)
            checks.append(len(view.snapshot))
            return str.__hash__(self)

        def __eq__(self, other):
            return str.__eq__(self, other)

    store.rows = [("c", ReadingCategory("shoes"), 5.0, True, 1, 100.0),
                  ("a", ReadingCategory("hats"), 2.0, False, 2, 100.0)]
    assert view.refresh() == 2
    assert checks and set(checks) == {2}  # mid-apply readers saw the old snapshot, whole
    consistent(view)
    snap = view.snapshot
    assert len(snap) == 3 and snap.n_new == 1 and snap.lookup(["c", "a", "zz"]).tolist() == [2, 0, -1]
    assert snap.cols.price[0] == 2.0 and not snap.cols.in_stock[0]
    assert snap.category_name(snap.cols.category[2]) == "shoes"


def test_readers_under_a_stream_of_refreshes():
    """Many small refreshes adding products while a reader checks every snapshot it takes."""
    from deepshelf.data.idmap import IdMap
    from deepshelf.engine.catalog_view import CatalogView

    store = FakeStore()
    view = CatalogView(IdMap(["a"]), store)
    errors, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                consistent(view)
            except AssertionError as exc:  # pragma: no cover - reported below
                errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for seq in range(300):
            store.rows.append((f"n{seq}", f"cat{seq % 7}", float(seq), seq % 2 == 0, seq, float(seq)))
            view.refresh()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)
    assert not errors, errors[:1]
    assert len(view.snapshot) == 301


class FakeEncoder:
    """Stands in for the text encoder: 2-d vectors, no model to load."""

    def __init__(self, *args, **kwargs):
        pass

    def encode(self, texts):
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))


def content_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("deepshelf-content") and t.is_alive()]


@pytest.fixture
def text_content_run(runs_dir, tmp_path):
    from deepshelf.content.similar import SimilarIndex

    run = tmp_path / "knn-text"
    shutil.copytree(runs_dir / "knn", run)
    angle = np.arange(100) / 100 * 2 * np.pi
    text = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    SimilarIndex(np.array([f"i{i}" for i in range(100)]), {"text": text}, {"text": np.ones(100, bool)}).save(
        run / "content")
    return run


def test_a_swapped_out_runs_content_worker_ends_after_its_work(text_content_run, tmp_path, monkeypatch):
    import deepshelf.encoders.text
    from deepshelf.engine.service import Service
    from deepshelf.storage import Item, open_store

    monkeypatch.setattr(deepshelf.encoders.text, "TextEncoder", FakeEncoder)
    database = f"sqlite:///{tmp_path / 'w.db'}"
    settings = make_settings(text_content_run, database, watch_run=False)
    before = len(content_threads())
    service = Service(settings, open_store(database))
    service.start()
    held = []  # runs still referenced, as a request that began before a swap holds its run to the end
    try:
        for n in range(4):
            state = service.state
            held.append(state)
            work = state.content.add_items([Item(f"new-{n}", title=f"New product {n}")])
            assert work is not None and len(content_threads()) == before + 1
            service.reload(text_content_run)
            assert work.done() and work.exception() is None  # the work handed over before the swap was done
            _, has = state.content.similar_index.vectors_of([f"new-{n}"], "text")
            assert has.all()
            assert state.content.add_items([Item("late", title="Late")]) is None  # closed: takes no more
            assert len(content_threads()) == before  # the old worker ended; the new run's starts on demand
        service.state.content.add_items([Item("last", title="Last")])
        assert len(content_threads()) == before + 1
    finally:
        service.stop()
    assert len(content_threads()) == before


def test_upserts_arriving_while_the_content_worker_is_busy_are_added_in_one_pass(text_content_run, tmp_path,
                                                                               monkeypatch):
    """A burst of upserts costs one more pass (one rebuild of the search's word index over the catalogue), each
    product once with its latest upsert, instead of one pass per upsert."""
    import deepshelf.encoders.text
    from deepshelf.engine.content import ContentFeatures
    from deepshelf.engine.service import Service
    from deepshelf.storage import Item, open_store

    monkeypatch.setattr(deepshelf.encoders.text, "TextEncoder", FakeEncoder)
    passes, busy, release = [], threading.Event(), threading.Event()
    original = ContentFeatures._add_items

    def recorded(self, items):
        passes.append([(it.item_id, it.title) for it in items])
        if len(passes) == 1:
            busy.set()
            assert release.wait(30)
        original(self, items)

    monkeypatch.setattr(ContentFeatures, "_add_items", recorded)
    database = f"sqlite:///{tmp_path / 'w.db'}"
    service = Service(make_settings(text_content_run, database, watch_run=False), open_store(database))
    service.start()
    try:
        content = service.state.content
        first = content.add_items([Item("a", title="A")])
        assert busy.wait(30)  # the first pass is running (its word index being rebuilt, say)
        later = [content.add_items([Item(i, title=t)]) for i, t in (("b", "B"), ("c", "C"), ("b", "B again"))]
        assert later[0] is later[1] is later[2] and later[0] is not first  # one waiting pass takes them all
        release.set()
        later[0].result(30)
        assert passes == [[("a", "A")], [("c", "C"), ("b", "B again")]]
        _, has = content.similar_index.vectors_of(["a", "b", "c"], "text")
        assert has.all()
    finally:
        release.set()
        service.stop()
