"""Data-parallel training on 2 CPU processes (gloo): both replicas end with identical weights, quality matches
single-process training within noise, and `deepshelf train --nproc 2` writes one run from rank 0."""

import json
import os

import numpy as np
import torch

from deepshelf.data.interactions import Interactions
from deepshelf.data.splits import leave_one_out
from deepshelf.evaluation.evaluate import evaluate, validation
from deepshelf.models.sasrec import SASRec
from tests.conftest import free_port

N_ITEMS = 30
PARAMS = dict(dim=16, layers=1, heads=1, max_len=16, dropout=0.1, batch_size=32, lr=1e-2, warmup=5, epochs=12,
              eval_every=4, patience=5, progress=False, threads=1)


def successor_data(users: int = 128, length: int = 10) -> Interactions:
    """Item i is always followed by i + 1 (mod N_ITEMS)."""
    starts = np.random.default_rng(1).integers(N_ITEMS, size=users)
    items = (starts[:, None] + np.arange(length)) % N_ITEMS
    return Interactions.from_ids(np.repeat(np.arange(users), length).astype(str), items.ravel().astype(str))


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    split = leave_one_out(successor_data())
    model = SASRec(**PARAMS, device="cpu").fit(split.train, validation=validation(split.valid))
    torch.save(model.network.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    if rank == 0:
        hr = evaluate(model, split.test, ks=(1,)).metrics["hr@1"]
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"hr@1": hr, "log": model.training_log}, f)
    dist.destroy_process_group()


def test_two_processes_identical_replicas_and_single_process_quality(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    ddp = json.loads((tmp_path / "metrics.json").read_text())
    split = leave_one_out(successor_data())
    single = SASRec(**PARAMS, device="cpu").fit(split.train, validation=validation(split.valid))
    hr_single = evaluate(single, split.test, ks=(1,)).metrics["hr@1"]
    # same global batch (each rank takes half), so the two should learn the pattern alike
    assert hr_single >= 0.85 and ddp["hr@1"] >= 0.85
    assert abs(ddp["hr@1"] - hr_single) <= 0.1


def test_cli_nproc_2_writes_one_run(tmp_path):
    from deepshelf.training.distributed import launch

    seqs = tmp_path / "walks.txt"
    starts = np.random.default_rng(2).integers(N_ITEMS, size=64)
    seqs.write_text("".join(f"u{u} " + " ".join(str((s + t) % N_ITEMS) for t in range(8)) + "\n"
                            for u, s in enumerate(starts)))
    out = tmp_path / "run"
    sets = ["dim=8", "layers=1", "max_len=8", "epochs=2", "batch_size=16", "threads=1", "progress=false"]
    argv = ["train", "--dataset", str(seqs), "--model", "sasrec", "--out", str(out), "--nproc", "2"]
    for s in sets:
        argv += ["--set", s]
    env_before = dict(os.environ)
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        assert launch(2, argv) == 0
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "sasrec" and len(metrics["training"]) == 2
    assert not list(tmp_path.glob(".run.*")), "a second rank started writing the run"
