"""What the command line prints (issue 28, item 7): user text printed as it is (no emoji codes, no markup), the
train summary readable at 80 columns (no raw reprs, no source paths, the buy-again rows explained, one warning about
few shoppers), and the training bar: it moves within an epoch, fits 80 columns and shares its console with the
lines printed while it is live."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_runs import shop_events  # noqa: E402


def deepshelf(*args, columns: int = 80):
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "deepshelf", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def test_feed_errors_print_g_id_as_it_is(tmp_path):
    """rich turned `g:id:` into an emoji (`field g🆔 missing`); `[brackets]` in user text are kept too."""
    feed = tmp_path / "feed.tsv"
    feed.write_text("id\ttitle\tprice\tavailability\n"
                    "\tMug [red]\t4.00 GBP\tin_stock\n"
                    "M-2\tMug :id: [bold]\t4.00 GBP\tin_stock\n"
                    "M-3\tBlue Mug\tcheap\tin_stock\n")
    res = deepshelf("import-feed", feed, "--database", f"sqlite:///{tmp_path / 's.db'}")
    assert res.returncode == 0, res.stderr
    assert "\N{SQUARED ID}" not in res.stderr + res.stdout
    skipped = [line for line in res.stderr.splitlines() if line.startswith("skipped")]
    assert any("g:id" in line for line in skipped), res.stderr
    assert "main.py" not in res.stderr


def test_train_summary_at_80_columns(tmp_path):
    events, catalog = shop_events(tmp_path)
    res = deepshelf("train", "--dataset", events, "--catalog", catalog, "--model", "ease", "--set", "l2=50",
                    "--set", "test_days=10", "--set", "valid_days=10", "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    assert "Interactions(" not in text and "{'" not in text, text  # no raw reprs
    assert "main.py" not in text and "pipeline.py" not in text, text  # no source path on each line
    assert "training events from" in text  # the split in words
    warnings = [line for line in text.splitlines() if "evaluated shoppers" in line]
    assert len(warnings) == 1 and "valid_again" in warnings[0] and "test " in warnings[0], warnings
    assert "valid_again / test_again: buy again" in " ".join(res.stdout.split()), res.stdout  # the rows explained
    assert max(len(line) for line in res.stdout.splitlines()) <= 80


@pytest.fixture
def recorded(monkeypatch):
    """The shared terminal as an 80-column terminal writing into a buffer."""
    from rich.console import Console

    from deepshelf.encoders import progress

    out = StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None, emoji=False, log_path=False)
    monkeypatch.setattr(progress, "_console", console)
    return console, out


def test_epoch_bar_moves_within_an_epoch_and_fits_80_columns(recorded):
    from deepshelf.encoders.progress import terminal
    from deepshelf.training.loop import _Progress

    console, out = recorded
    bar = _Progress(True, 20)
    try:
        assert bar.bar is not None and bar.bar.console is terminal() is console  # one console for all lines
        bar.last_draw = 0.0
        bar.tick(1, 50, 3.0, 100)  # half way through the first epoch
        assert bar.bar.tasks[0].completed == pytest.approx(0.5)
        bar.update({"epoch": 1, "loss": 0.412345, "seconds": 93.55501, "lr": 0.001, "elapsed": 93.55501})
        bar.last_draw = 0.0
        bar.tick(2, 25, 1.0, 100)
        assert bar.bar.tasks[0].completed == pytest.approx(1.25)
        from rich.console import Console

        still = Console(file=StringIO(), width=80, color_system=None)  # the bar's line as an 80-column screen shows it
        still.print(bar.bar.make_tasks_table(bar.bar.tasks))
        line = still.file.getvalue().rstrip("\n")
        assert "…" not in line and len(line) <= 80, line
        assert "epoch 2/20" in line and "loss 0.4123" in line and "step 25/100" in line, line
        assert "elapsed" not in line and "93.55" not in line, line
        assert line.index("0:00:00") - len("epoch 2/20 ") >= 10, line  # the bar keeps a width
        console.log("still working, 12 s in this step")  # a heartbeat line while the bar is live: above it
    finally:
        bar.close()
    assert "still working, 12 s in this step" in out.getvalue()


def test_first_epoch_length_comes_from_the_batches(recorded):
    """A list (or DataLoader) of batches says the first epoch's length, so the bar moves from the start."""
    import torch

    from deepshelf.training import loop

    seen = []
    original = loop._Progress.tick

    def spy(self, epoch, steps, seconds, expected):
        seen.append((epoch, steps, expected))
        return original(self, epoch, steps, seconds, expected)

    net = torch.nn.Linear(2, 1)
    batches = [torch.ones(4, 2)] * 6
    settings = loop.LoopSettings(epochs=1, lr=0.01)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop._Progress, "tick", spy)
        loop.train_loop(net, lambda m, b: m(b).pow(2).mean(), lambda epoch: batches, settings, torch.device("cpu"))
    assert seen[0] == (1, 1, 6) and seen[-1] == (1, 6, 6)


def test_a_warning_during_a_spinner_prints_above_it(recorded, monkeypatch):
    """Warnings went to stderr by themselves and landed inside the spinner's line; now they go through the console
    the spinner draws on, as a line of their own without a source path."""
    import logging

    from deepshelf.cli import main

    console, out = recorded
    monkeypatch.setattr(main, "console", console)
    handler = main.log_handler()
    assert handler.console is console
    log = logging.getLogger("deepshelf.test_output")
    log.addHandler(handler)
    log.propagate = False
    try:
        with console.status("training"):
            log.warning("fewer than 100 shoppers")
    finally:
        log.removeHandler(handler)
    lines = [line.strip() for line in out.getvalue().replace("\r", "\n").splitlines()]
    assert any(line.endswith("deepshelf.test_output: fewer than 100 shoppers") and "training" not in line
               for line in lines), lines
    assert "main.py" not in out.getvalue() and "test_output.py" not in out.getvalue()


def test_the_demos_console_takes_the_log_handler_along(monkeypatch):
    """`deepshelf demo` prints to stdout: use_terminal moves the log handler there too, above its bars."""
    import logging

    from rich.console import Console

    from deepshelf.cli import main
    from deepshelf.encoders import progress

    monkeypatch.setattr(progress, "_console", None)
    handler = main.log_handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        demo_console = Console(file=StringIO())
        progress.use_terminal(demo_console)
        assert progress.terminal() is demo_console and handler.console is demo_console
    finally:
        root.removeHandler(handler)


def test_epoch_lines_round_their_seconds(monkeypatch, capsys):
    """Where stderr is not a terminal: one line per epoch, its seconds rounded (not `elapsed 93.5550`)."""
    from deepshelf.training.loop import _Progress

    lines = _Progress(True, 3)
    assert lines.bar is None  # pytest's captured stderr is no terminal
    lines.update({"epoch": 1, "loss": 0.41234, "seconds": 93.55501, "lr": 0.001, "elapsed": 93.55501})
    err = capsys.readouterr().err
    assert "elapsed 94 s" in err and "seconds 94 s" in err and "93.55" not in err, err
