"""Issue 19's newcomer friction, command by command: each test fails if its fix is removed."""

import socket
import subprocess
import sys

import pytest

from deepshelf.errors import DeepshelfError


def deepshelf(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "deepshelf", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def test_train_help_lists_every_registered_model_and_the_protocol_options():
    from deepshelf.models.registry import MODELS

    res = deepshelf("train", "--help", env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    text = " ".join(res.stdout.split())
    for name in MODELS:
        assert name in text
    assert "protocol=" in text and "test_days=" in text and "refit=" in text


def test_counts_print_as_integers_and_rates_with_decimals():
    from deepshelf.cli.main import _few_users_warning, format_metric

    assert format_metric("users", 6040.0) == "6,040"
    assert format_metric("new_items/targets", 12.0) == "12"
    assert format_metric("ndcg@10", 0.5) == "0.5000"
    assert "only 16 evaluated shoppers" in _few_users_warning(16, "test")
    assert _few_users_warning(6040, "test") is None


def test_datasets_prints_the_whole_missing_path(tmp_path):
    deep = tmp_path / ("a-long-folder-name-" * 6) / "data"
    env = {"DEEPSHELF_DATA_DIR": str(deep), "PATH": "/usr/bin:/bin", "COLUMNS": "80"}
    res = deepshelf("datasets", env=env)
    assert res.returncode == 0, res.stderr
    assert str(deep / "movielens-1m" / "ml-1m_user_sequences.txt.gz") in res.stdout.replace("\n", "")


def test_too_little_time_names_the_temporal_split(tmp_path):
    events = tmp_path / "short.csv"
    events.write_text("user,item,timestamp\n" + "".join(f"u{i % 5},i{i % 7},2024-05-{1 + i % 20:02d}\n"
                                                         for i in range(60)))
    res = deepshelf("train", "--dataset", events, "--model", "itemknn", "--out", tmp_path / "r")
    assert res.returncode == 2
    assert "zero interactions" in res.stderr and "test_days=30" in res.stderr and "valid_days" in res.stderr


def test_a_busy_port_is_one_clear_error():
    from deepshelf.cli.demo import check_port_free

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DeepshelfError, match=f"port {port} on 127.0.0.1 is already in use.*--port {port + 1}"):
            check_port_free("127.0.0.1", port)


def test_demo_progress_prints_the_shared_lines_once():
    from io import StringIO

    from rich.console import Console

    from deepshelf.cli.demo import _progress_printer

    out = StringIO()
    progress = _progress_printer(Console(file=out, log_path=False, width=200))
    for n, model in enumerate(("ease", "als"), 1):
        progress(f"{model}: loading online-retail", n, 2)
        progress(f"{model}: temporal split: 100 users ; 10 test users", n, 2)
        progress(f"{model}: trained {model}; evaluating", n, 2)
    progress.close()
    text = out.getvalue()
    assert text.count("temporal split") == 1 and text.count("loading online-retail") == 1
    assert "trained als" in text and "demo.py" not in text


def test_demo_progress_speaks_during_a_silent_step_with_the_time_left_when_known():
    """A model's fit printed nothing for 34 s in `make run`: a step silent for `every` seconds gets a "still
    working" line, with the time left when the step said how long its first fit took (the refit's estimate)."""
    import re
    import time
    from io import StringIO

    from rich.console import Console

    from deepshelf.cli.demo import _progress_printer

    out = StringIO()
    progress = _progress_printer(Console(file=out, log_path=False, width=200), every=0.2)
    try:
        progress("ranker: training ranker", 6, 8)
        deadline = time.monotonic() + 30
        while "still working" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        first = out.getvalue()
        assert "[6/8] ranker: still working" in first and "left" not in first  # no estimate for a first fit
        progress("ranker: trained ranker in 30.0s; refitting on 100 events before the test period", 6, 8)
        mark = len(out.getvalue())
        while "still working" not in out.getvalue()[mark:] and time.monotonic() < deadline:
            time.sleep(0.05)
        later = out.getvalue()[mark:]
        assert re.search(r"\[6/8\] ranker: still working, \d+ s in this step, about (29|30) s left", later)
    finally:
        progress.close()
    silent = len(out.getvalue())
    time.sleep(0.5)
    assert len(out.getvalue()) == silent  # closed: no more lines


def test_exports_write_only_rows_the_model_has_evidence_for(tmp_path):
    """Two groups of 8 products never bought together: item-kNN scores every product of the other group 0 for a
    shopper, so with k=8 the export lists only the 3 unseen products of the shopper's own group (no padding with
    0-score ties from the other group)."""
    import polars as pl

    lines = []
    for u in range(40):
        group = u % 2
        items = [f"g{group}_{(u // 2 + j) % 8}" for j in range(5)]  # 5 neighbours on a ring of the group's 8
        lines.append(" ".join([f"u{u}", *items]))
    data = tmp_path / "groups.txt"
    data.write_text("\n".join(lines) + "\n")
    run = tmp_path / "knn"
    res = deepshelf("train", "--dataset", data, "--model", "itemknn", "--out", run)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "all.csv"
    res = deepshelf("recommend", "--run", run, "--users", "all", "--k", 8, "--output", out)
    assert res.returncode == 0, res.stderr
    recs = pl.read_csv(out, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8})
    assert recs.height > 0 and (recs["score"] > 0).all()
    groups = (recs["user_id"].str.slice(1).cast(pl.Int64) % 2).cast(pl.Utf8)
    assert (recs["item_id"].str.slice(1, 1) == groups).all()  # only the shopper's own group
    # each shopper has 5 of the group's 8 products: the other 3 (all bought near theirs), never 8
    per_user = recs.group_by("user_id").agg(pl.len(), pl.col("rank").max().alias("last"))
    assert per_user.height == 40 and (per_user["len"] == 3).all()
    assert (per_user["len"] == per_user["last"]).all()  # ranks 1..n, no gaps


def test_encoding_progress_writes_lines_with_an_estimate_where_output_is_not_a_terminal(capsys):
    """The fashion demo printed "loading fashion" and blank lines for minutes: the encoders' rich bars draw nothing
    where stderr is not a terminal. There they now write a line at least every 10 s of progress, with the time
    left."""
    from io import StringIO

    from deepshelf.encoders.progress import ProgressLines, progress_bar

    now = [0.0]
    out = StringIO()
    lines = ProgressLines(1000, "encoding images", out, tick_s=10, clock=lambda: now[0])
    for _ in range(10):  # 100 images every 4 s: a line every third batch (12 s), the estimate from the pace
        now[0] += 4
        lines.advance(100)
    lines.finish()
    text = out.getvalue().splitlines()
    assert "encoding images 1,000 to do" in text[0]
    assert "encoding images 300/1,000  12 s, about 28 s left" in text[1]
    assert "600/1,000  24 s, about 16 s left" in text[2] and "900/1,000  36 s, about 4 s left" in text[3]
    assert "1,000/1,000 done in 40 s" in text[-1] and len(text) == 5
    with progress_bar(3, "encoding texts") as advance:  # pytest's stderr is not a terminal
        advance(3)
    err = capsys.readouterr().err
    assert "encoding texts 3 to do" in err and "encoding texts 3/3 done" in err
