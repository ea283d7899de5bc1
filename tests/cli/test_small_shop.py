"""A small shop's first day (issue 28): 9 products in 3 categories, as a Merchant Center feed and as a CSV
catalogue, and 300 events whose timestamps end in `Z` (as the API writes them), trained by path with `--catalog`
for every registered model: each trains (exit 0) or stops with exit 2 and one line saying why; never a traceback.

The models run in this process through the command's own entry point (`deepshelf.cli.main.main`, which turns a
`DeepshelfError` into `error: …` and exit 2); anything else escaping it is the traceback a shop would have seen.
One run goes through a real `python -m deepshelf` process as well."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pytest

from deepshelf.cli import main as cli
from deepshelf.models.registry import MODELS

CATEGORIES = ("Mugs", "Pans", "Knives")
N_PRODUCTS = 9
T0 = dt.datetime(2025, 4, 1, tzinfo=dt.timezone.utc)
DAYS = 90  # the temporal protocol's default 30 test + 30 validation days, and 30 before them

TINY_SEQUENCE = ["epochs=1", "dim=8", "max_len=8", "batch_size=32", "threads=1", "progress=false"]
# Small settings per model (as tests/models/test_contract.py SMALL); a newly registered model needs an entry.
SMALL: dict[str, list[str]] = {
    "popularity": [],
    "trending": [],
    "itemknn": ["neighbors=5"],
    "ease": ["l2=10"],
    "als": ["factors=4", "iterations=3", "threads=1"],
    "sasrec": TINY_SEQUENCE,
    "sasrec-content": [*TINY_SEQUENCE, "similarity_dim=8"],
    "content": ["images=false", "heads={epochs=1, hidden=8}", "align={epochs=1, hidden=8}"],
    "buyagain": [],
    "newitems": [],
    # labels from the last week before each cut, a few generators, few trees
    "ranker": ["label_days=7", "label_windows=1", "lgbm_trees=10", "lgbm_min_leaf=2", "learner=lightgbm",
               "threads=1", 'generators=[{model="trending", top_n=9}, {model="itemknn", top_n=9}, '
               '{model="buyagain", top_n=9}, {model="newitems", top_n=9}]'],
}


def products(n: int = N_PRODUCTS) -> list[tuple[str, str, str, str, float]]:
    """(id, title, description, category, price): product i is in category i % 3."""
    out = []
    for i in range(n):
        category = CATEGORIES[i % 3]
        out.append((f"SKU-{i}", f"{category[:-1]} no. {i}", f"A sturdy {category[:-1].lower()} for the kitchen",
                    category, 5.0 + 3 * i))
    return out


def write_shop(folder, n: int = N_PRODUCTS):
    """The shop's files in `folder`: events.csv (300 events, `Z` timestamps over 90 days; each shopper keeps
    mostly to one category), products.xml (the feed) and products.csv (the same catalogue as a table)."""
    rng = np.random.default_rng(28)
    items = products(n)
    rows = ["user_id,item_id,type,timestamp"]
    for _ in range(300):
        user = int(rng.integers(30))
        own = [item for item in items if CATEGORIES.index(item[3]) == user % 3] or items
        item = own[int(rng.integers(len(own)))] if rng.random() < 0.8 else items[int(rng.integers(n))]
        when = T0 + dt.timedelta(seconds=float(rng.uniform(0, DAYS * 86400)))
        kind = rng.choice(["view", "view", "cart", "purchase"])
        rows.append(f"u{user},{item[0]},{kind},{when.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    (folder / "events.csv").write_text("\n".join(rows) + "\n")
    feed = [f"<item><g:id>{sku}</g:id><title>{title}</title><description>{text}</description>"
            f"<link>https://shop.example/{sku}</link><g:price>{price:.2f} GBP</g:price>"
            f"<g:availability>in_stock</g:availability>"
            f"<g:product_type>Home &gt; Kitchen &gt; {category}</g:product_type></item>"
            for sku, title, text, category, price in items]
    (folder / "products.xml").write_text('<?xml version="1.0"?>\n<rss version="2.0" '
                                         'xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>\n'
                                         + "\n".join(feed) + "\n</channel></rss>\n")
    (folder / "products.csv").write_text("item_id,title,description,category,price\n"
                                         + "".join(f"{s},{t},{d},{c},{p}\n" for s, t, d, c, p in items))
    return folder


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return write_shop(tmp_path_factory.mktemp("small-shop"))


def deepshelf(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """Run the `deepshelf` entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["deepshelf", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:  # an exception other than SystemExit fails the test: a traceback
        cli.main()
    out, err = capsys.readouterr()
    return exited.value.code or 0, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def train_args(shop, model: str, catalog: str, out) -> list[str]:
    sets = [arg for value in SMALL[model] for arg in ("--set", value)]
    return ["train", "--dataset", shop / "events.csv", "--catalog", shop / catalog, "--model", model,
            "--out", out, *sets]


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_trains_the_small_shop_or_says_why(model, shop, tmp_path, capsys, monkeypatch):
    if model not in SMALL:
        pytest.fail(f"add small settings for {model} to SMALL in {__file__}")
    catalog = "products.csv" if model in ("popularity", "als", "buyagain") else "products.xml"
    code, out, err = deepshelf(capsys, monkeypatch, *train_args(shop, model, catalog, tmp_path / "run"))
    assert "Traceback" not in err + out
    if code == 0:
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["protocol"] == "temporal" and metrics["items"] == N_PRODUCTS  # every listed product
        assert "test" in metrics and "valid" in metrics
        # similar by text / behaviour and search over the 9 products (the content model is such an index itself)
        assert (tmp_path / "run" / "content").is_dir() or model == "content"
    else:  # a setting that does not fit so small a shop may stop it, in one line; the shop's files are fine
        assert code == 2 and len(error_lines(err)) == 1, err
        assert not any(name in error_lines(err)[0] for name in ("events.csv", "products.")), err


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_smaller_catalogues_train_too(n, tmp_path, capsys, monkeypatch):
    """Down to one product (k = 10 and 20 over fewer products; a one-product catalogue has no co-occurrence to
    factorise), with the content indexes built."""
    write_shop(tmp_path, n)
    code, _, err = deepshelf(capsys, monkeypatch, *train_args(tmp_path, "ease", "products.xml", tmp_path / "run"))
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["items"] == n
    assert (tmp_path / "run" / "content").is_dir()


def test_a_setting_that_does_not_fit_the_shop_is_one_line(shop, tmp_path, capsys, monkeypatch):
    """The ranker's default 30 label days leave nothing to learn from in 30 days of training data: exit 2, one
    line naming the parameter."""
    code, _, err = deepshelf(capsys, monkeypatch, "train", "--dataset", shop / "events.csv", "--catalog",
                             shop / "products.xml", "--model", "ranker", "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert error_lines(err) == [line for line in err.splitlines() if "label_days" in line]
    assert len(error_lines(err)) == 1


def test_the_issue_command_in_a_process(shop, tmp_path):
    """`deepshelf train --dataset events.csv --catalog products.xml --model ease`, as the issue typed it (k=10 and
    20 over 9 products crashed the content indexes' quality check)."""
    res = subprocess.run([sys.executable, "-m", "deepshelf", "train", "--dataset", "events.csv", "--catalog",
                          "products.xml", "--model", "ease", "--out", tmp_path / "run"],
                         capture_output=True, text=True, cwd=shop, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert (tmp_path / "run" / "content").is_dir()  # the content indexes were built over the 9 products
