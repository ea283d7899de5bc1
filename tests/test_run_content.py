"""Issue 19: a run trained the README's way (`deepshelf train --database URL --model ease`) carries content indexes
(RUN/content), so a server loading it answers semantic search and similar-by-text; `--no-content` skips them and
`deepshelf attach-content` gives them to a run afterwards (a server following the run picks them up)."""

from __future__ import annotations

import json
import time
from contextlib import closing

import pytest

GROUP_TEXT = ["red ceramic kitchen mug for coffee", "blue wooden garden chair", "warm wool winter scarf",
              "brass desk lamp with shade"]
SETS = ["--set", "test_days=10", "--set", "valid_days=10"]


def shop_store(url: str) -> None:
    """The retraining tests' planted shop (groups of 25 products i0..i99) with a catalogue: one theme per group."""
    from deepshelf.storage import Item, open_store
    from tests.test_retrain import planted_store

    planted_store(url)
    with closing(open_store(url)) as store:
        store.upsert_items([Item(f"i{i}", title=f"{GROUP_TEXT[i // 25]} model {i}", category=f"cat{i // 25}")
                            for i in range(100)])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.db'}"
    shop_store(url)
    return url


def deepshelf(*args):
    from typer.testing import CliRunner

    from deepshelf.cli import main as cli

    cli._register_command_groups()
    res = CliRunner().invoke(cli.app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def runs(store, tmp_path_factory):
    """An EASE run trained from the store with its content indexes (the default) and one with --no-content."""
    folder = tmp_path_factory.mktemp("runs")
    deepshelf("train", "--database", store, "--model", "ease", "--out", folder / "ease", *SETS)
    deepshelf("train", "--database", store, "--model", "ease", "--out", folder / "bare", "--no-content", *SETS)
    return folder


def group(item_id: str) -> int:
    return int(item_id[1:]) // 25


def wait_for(client, path: str, params: dict, found, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(path, params=params)
        if found(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_a_run_trained_from_the_store_answers_search_and_similar_by_text(store, runs):
    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from tests.api.conftest import auth, make_settings

    run = runs / "ease"
    assert (run / "content" / "similar.npz").exists() and (run / "content" / "search.npz").exists()
    built = json.loads((run / "metrics.json").read_text())["content_indexes"]
    assert built["items"] == 100 and {"text", "behavior", "hybrid"} <= set(built["modes"])
    assert built["built_from"].startswith("sqlite:///")
    with TestClient(create_app(make_settings(run, store)), headers=auth()) as c:  # loaded back from disk
        found = c.get("/v1/search", params={"q": "something warm for my neck in winter", "k": 5,
                                            "in_stock": False}).json()
        assert found["source"] == "content" and [group(i["item_id"]) for i in found["items"]] == [2] * 5
        similar = c.get("/v1/items/i30/similar", params={"mode": "text", "k": 5, "in_stock": False}).json()
        assert similar["items"][0]["reason"] == "text"
        assert [group(i["item_id"]) for i in similar["items"]] == [1] * 5  # garden chairs


def test_no_content_skips_and_attach_content_adds_them_to_a_served_run(store, runs, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from deepshelf.api.app import create_app
    from tests.api.conftest import auth, make_settings

    run = tmp_path / "bare"
    shutil.copytree(runs / "bare", run)
    assert not (run / "content").exists() and "content_indexes" not in json.loads((run / "metrics.json").read_text())
    params = {"mode": "text", "k": 5, "in_stock": False}
    with TestClient(create_app(make_settings(run, store)), headers=auth()) as c:
        assert c.get("/v1/items/i30/similar", params=params).status_code == 409
        assert c.get("/v1/search", params={"q": "garden chair"}).json()["source"] == "keyword"
        deepshelf("attach-content", "--run", run, "--from", runs / "ease")
        answer = wait_for(c, "/v1/items/i30/similar", params, lambda r: r.status_code == 200)  # the watcher
        assert answer.status_code == 200 and [group(i["item_id"]) for i in answer.json()["items"]] == [1] * 5
        assert c.get("/v1/search", params={"q": "garden chair"}).json()["source"] == "content"
    # built afresh (no --from): from the catalogue of the run's data as it is now
    res = deepshelf("attach-content", "--run", run)
    assert "100 products" in res.output
    info = json.loads((run / "content" / "content.json").read_text())
    assert info["built_from"].startswith("sqlite:///") and "behavior" in info["modes"]


def test_content_settings_are_validated_before_any_data_is_read():
    from deepshelf.errors import DeepshelfError
    from deepshelf.runs.config import build_train_config

    cfg = build_train_config("sqlite:///nowhere.db", "ease", None, ["content.images=false", "content=false"])
    assert cfg.content_params == {"images": False} and cfg.content is False
    with pytest.raises(DeepshelfError, match="content: unknown parameter 'imges'"):
        build_train_config("sqlite:///nowhere.db", "ease", None, ["content.imges=false"])


def test_a_run_trained_from_a_store_keeps_no_database_password(fresh_postgres, tmp_path):
    """`train --database postgresql://user:PASSWORD@host/db`: no file of the run holds the password (the test
    server trusts loopback, so the password is accepted and ignored), and the run still names its store."""
    scheme, rest = fresh_postgres.split("://", 1)
    user, host = rest.split("@", 1)
    url = f"{scheme}://{user}:s3cret-Pa55@{host}"
    shop_store(url)
    out = tmp_path / "run"
    deepshelf("train", "--database", url, "--model", "popularity", "--out", out, "--no-content", *SETS)
    leaks = [p for p in out.rglob("*") if p.is_file() and b"s3cret-Pa55" in p.read_bytes()]
    assert not leaks
    assert json.loads((out / "config.json").read_text())["dataset"] == fresh_postgres
    assert json.loads((out / "metrics.json").read_text())["dataset"] == fresh_postgres
