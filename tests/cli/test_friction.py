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
    text = out.getvalue()
    assert text.count("temporal split") == 1 and text.count("loading online-retail") == 1
    assert "trained als" in text and "demo.py" not in text
