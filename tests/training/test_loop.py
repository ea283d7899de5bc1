"""The epoch loop: best validated weights are restored, early stopping, warm-up, clipping, time limit."""

import numpy as np
import pytest
import torch
from torch import nn

from deepshelf.training.distributed import _strip_nproc
from deepshelf.training.loop import LoopSettings, resolve_device, train_loop


def regression_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    return x, y


def run(settings: LoopSettings, scripted: list[float] | None = None):
    torch.manual_seed(0)
    module = nn.Linear(4, 1)
    x, y = regression_problem()
    snapshots = []

    def loss_of(net, batch):
        xb, yb = batch
        return ((net(xb).squeeze(-1) - yb) ** 2).mean()

    def batches(epoch):
        for s in range(0, 64, 16):
            yield x[s : s + 16], y[s : s + 16]

    def validate():
        snapshots.append({k: v.clone() for k, v in module.state_dict().items()})
        return scripted[len(snapshots) - 1]

    log = train_loop(module, loss_of, batches, settings, torch.device("cpu"), validate if scripted else None)
    return module, log, snapshots


def test_loss_goes_down_and_epochs_are_timed():
    _, log, _ = run(LoopSettings(epochs=30, lr=0.05, progress=False))
    assert log[-1]["loss"] < 0.1 * log[0]["loss"]
    assert all(e["seconds"] >= 0 and e["epoch"] == i + 1 for i, e in enumerate(log))


def test_best_checkpoint_restored_and_early_stop():
    scripted = [0.1, 0.3, 0.2, 0.25, 0.1, 0.9]  # best at epoch 2; patience 3 stops at epoch 5
    module, log, snapshots = run(LoopSettings(epochs=6, lr=0.05, patience=3, progress=False), scripted)
    assert [e["epoch"] for e in log] == [1, 2, 3, 4, 5]
    assert [e.get("valid_ndcg@10") for e in log] == scripted[:5]
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][key], rtol=0, atol=0)


def test_best_checkpoint_written_to_disk(tmp_path):
    path = tmp_path / "best.pt"
    module, _, _ = run(LoopSettings(epochs=4, lr=0.05, progress=False, checkpoint=str(path)), [0.1, 0.5, 0.2, 0.3])
    saved = torch.load(path, weights_only=True)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)


def test_eval_every():
    _, log, snapshots = run(LoopSettings(epochs=5, lr=0.05, eval_every=2, progress=False), [0.1, 0.2, 0.3])
    assert [("valid_ndcg@10" in e) for e in log] == [False, True, False, True, True]  # last epoch always


def test_warmup_and_clipping_keep_a_huge_lr_finite():
    _, log, _ = run(LoopSettings(epochs=3, lr=10.0, warmup_steps=1000, clip=0.1, progress=False))
    assert np.isfinite([e["loss"] for e in log]).all()


def test_cosine_schedule_decays_the_learning_rate_each_epoch(monkeypatch):
    """Every update's lr is warm-up share x the epoch's cosine share (4 updates per epoch, 6 of warm-up); the log
    holds each epoch's last one."""
    import math

    used = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    _, log, _ = run(LoopSettings(epochs=4, lr=0.1, warmup_steps=6, schedule="cosine", progress=False))
    share = [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]  # 1, 0.854, 0.5, 0.146
    expected = [0.1 * min(1.0, (u + 1) / 6) * share[u // 4] for u in range(16)]
    assert used == pytest.approx(expected, rel=1e-9)
    assert [e["lr"] for e in log] == pytest.approx(expected[3::4], rel=1e-3)
    used.clear()
    _, log, _ = run(LoopSettings(epochs=3, lr=0.1, progress=False))
    assert used == pytest.approx([0.1] * 12) and [e["lr"] for e in log] == [0.1, 0.1, 0.1]


def test_unknown_schedule_refused():
    with pytest.raises(ValueError, match="schedule"):
        run(LoopSettings(epochs=1, lr=0.1, schedule="cosnie", progress=False))


def test_a_callers_optimizer_and_scheduler_own_the_updates():
    """The content towers' recipe: their own optimiser, and a scheduler stepped after every update that sets the
    learning rate instead of the loop (the log holds each epoch's last update's lr)."""
    torch.manual_seed(0)
    module = nn.Linear(4, 1)
    x, y = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda update: 0.5 ** update)
    log = train_loop(module, lambda net, b: ((net(b[0]).squeeze(-1) - b[1]) ** 2).mean(),
                     lambda epoch: [(x[s : s + 16], y[s : s + 16]) for s in range(0, 64, 16)],
                     LoopSettings(epochs=2, lr=1.0, clip=0.0, progress=False), torch.device("cpu"),
                     optimizer=optimizer, scheduler=scheduler)
    assert scheduler.last_epoch == 8  # 2 epochs of 4 batches
    assert [e["lr"] for e in log] == pytest.approx([0.05 * 0.5**3, 0.05 * 0.5**7], rel=1e-3)
    with pytest.raises(ValueError, match="scheduler owns"):
        train_loop(module, None, None, LoopSettings(epochs=1, lr=0.1, warmup_steps=5), torch.device("cpu"),
                   optimizer=optimizer, scheduler=scheduler)


def test_without_data_parallelism_a_torchrun_rank_trains_alone(monkeypatch):
    """data_parallel=False (each rank fits its own content towers): no DDP, no broadcast, validation runs here."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    _, log, snapshots = run(LoopSettings(epochs=2, lr=0.05, progress=False, data_parallel=False), [0.1, 0.2])
    assert len(snapshots) == 2 and [e["valid_ndcg@10"] for e in log] == [0.1, 0.2]


def test_divergence_is_reported():
    with pytest.raises(FloatingPointError, match="diverged"):
        run(LoopSettings(epochs=20, lr=1e30, clip=0.0, progress=False))


def test_time_limit_stops_early():
    _, log, _ = run(LoopSettings(epochs=1000, lr=0.01, time_limit=1e-9, progress=False))
    assert len(log) == 1


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_nproc_removed_from_relaunched_command():
    argv = ["train", "--dataset", "ml-1m", "--nproc", "2", "--out", "r", "--nproc=4"]
    assert _strip_nproc(argv) == ["train", "--dataset", "ml-1m", "--out", "r"]


def test_a_log_follows_each_epoch_and_long_epochs_with_time_left(monkeypatch, capsys):
    """Without a terminal: one line per epoch (its number once, the time left), and lines within an epoch once
    `TICK_S` has passed, naming the step out of the previous epoch's count from the second epoch on."""
    import deepshelf.training.loop as loop

    monkeypatch.setattr(loop, "TICK_S", 0.0)
    run(LoopSettings(epochs=2, lr=0.05, progress=True))
    lines = capsys.readouterr().err.splitlines()
    epochs = [line for line in lines if "loss" in line]
    assert len(epochs) == 2 and all(line.count("epoch") == 1 for line in epochs)
    assert "s left at most" in epochs[0]
    ticks = [line for line in lines if " step " in line]
    assert any("epoch 1/2  step 1 " in line for line in ticks)
    assert any("epoch 2/2  step 2/4" in line and "s left in it" in line for line in ticks)


def two_updates(settings: LoopSettings) -> float:
    """A one-weight model w = 1 with loss c * w, one batch per epoch: gradient 100 in the first update, 0.5 in the
    second. Returns w after both."""
    module = nn.Module()
    module.w = nn.Parameter(torch.tensor([1.0]))
    train_loop(module, lambda net, c: c * net.w.sum(), lambda epoch: [100.0 if epoch == 1 else 0.5], settings,
               torch.device("cpu"))
    return float(module.w.detach())


def test_constant_rate_without_clipping_is_plain_adam():
    """RecBole's recipe (benchmarks/recbole_compare.py --recipe equal): every update at the full lr and the raw
    gradient, i.e. Adam's two steps worked by hand (beta 0.9 / 0.999, eps 1e-8, bias-corrected)."""
    # update 1, g = 100: m = 10, v = 10, m^ = 100, v^ = 10,000: w = 1 - 0.1 * 100 / 100 = 0.9
    # update 2, g = 0.5: m = 9.05, v = 9.99025, m^ = 9.05 / 0.19 = 47.632, v^ = 9.99025 / 0.001999 = 4997.6:
    # w = 0.9 - 0.1 * 47.632 / 70.694 = 0.83262
    equal = LoopSettings(epochs=2, lr=0.1, warmup_steps=0, schedule="constant", clip=0.0, progress=False)
    assert two_updates(equal) == pytest.approx(0.8326228, abs=1e-6)
    # each of deepshelf's own recipe's parts moves the second step: clipping shrinks the first gradient to norm 1
    # (m = 0.14, v = 0.001249, m^ = 0.73684, v^ = 0.62481: w = 0.9 - 0.1 * 0.73684 / 0.79045 = 0.80678), the
    # cosine halves epoch 2's lr, warm-up scales the first update by 1/100
    assert two_updates(LoopSettings(**{**vars(equal), "clip": 1.0})) == pytest.approx(0.806782, abs=1e-6)
    assert two_updates(LoopSettings(**{**vars(equal), "schedule": "cosine"})) == pytest.approx(0.9 - 0.05 * 0.673773,
                                                                                               abs=1e-6)
    assert two_updates(LoopSettings(**{**vars(equal), "warmup_steps": 100})) != pytest.approx(0.8326228, abs=1e-4)
