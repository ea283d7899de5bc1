"""SASRec speed and quality: scoring latency for one shopper, per-epoch training time, and the trained runs'
metrics recomputed independently from their `deepshelf recommend` export. Writes the `## SASRec` section of
docs/benchmarks.md, keeping its RecBole comparison subsections as they are.

    python -m benchmarks.train_speed --runs pretrained/sasrec-ml-1m pretrained/sasrec-beauty

The comparison with RecBole 1.2.1 (`### deepshelf vs RecBole 1.2.1`, and its bf16 counterpart) is
`benchmarks/recbole_compare.py`'s: it takes an hour or more and does not depend on the committed runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from benchmarks.lib import ROOT
from benchmarks.lib.cli import docs_option, parser, publish
from benchmarks.lib.mdsection import machine
from benchmarks.lib.recbole_report import previous_compare
from benchmarks.lib.traininglog import best_validated
from benchmarks.recompute_metrics import load_targets, recompute
from deepshelf.data.interactions import Histories
from deepshelf.models.sasrec import SASRec, SASRecNetwork
from deepshelf.runs.artifacts import load_run

SEQUENCE_FILES = {"ml-1m": ("movielens-1m/ml-1m_user_sequences.txt.gz", 5),
                  "beauty": ("amazon-s3rec-5core/Beauty.txt.gz", 0)}


def scoring_latency(model: SASRec, length: int = 200, repeats: int = 200) -> dict[str, float]:
    """Milliseconds to score one history of `length` items against the whole catalogue (median, p95)."""
    rng = np.random.default_rng(0)
    history = Histories.from_lists([rng.integers(model.n_items, size=length).tolist()])
    for _ in range(10):
        model.score(history)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.score(history)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


def untrained(n_items: int, max_len: int) -> SASRec:
    """An ml-1m-sized model with random weights: latency does not depend on what the weights are."""
    from deepshelf.data.idmap import IdMap

    model = SASRec(max_len=max_len)
    model.item_map, _ = IdMap.from_values(np.arange(n_items).astype(str))
    model.network = SASRecNetwork(n_items, max_len, 64, 2, 1, 0.0).eval()
    return model


def export_check(run_path: Path, dataset: str) -> dict[str, float]:
    """HR@10 / NDCG@10 recomputed from the CSV that `deepshelf recommend` writes (independent code)."""
    rel, min_count = SEQUENCE_FILES[dataset]
    data_dir = Path(os.environ.get("DEEPSHELF_DATA_DIR", ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        recs = Path(tmp) / "recs.csv"
        cmd = [sys.executable, "-m", "deepshelf", "recommend", "--run", str(run_path), "--users", "test",
               "--k", "10", "--output", str(recs)]
        subprocess.run(cmd, check=True, capture_output=True)
        return recompute(str(recs), load_targets(str(data_dir / rel), min_count, "test"), 10)


def sweep_origin(version: str) -> str:
    """Where a run came from when it was one of the recorded GPU sweeps' runs (same version string)."""
    for path in sorted((ROOT / "benchmarks" / "results").glob("*/*/*/metrics.json")):
        if json.loads(path.read_text()).get("version") == version:
            meta = json.loads((path.parents[1] / "sweep.json").read_text())
            return (f", as run {path.parent.name} of {path.parents[1].relative_to(ROOT)}, one of "
                    f"{meta['concurrent_runs']} runs sharing the GPU (\"SASRec on a GPU\")")
    return ""


def config_differences(params: dict, dataset: str) -> str:
    """How a run's parameters differ from configs/sasrec-DATASET.toml as it is now (the `--set` overrides)."""
    path = ROOT / "configs" / f"sasrec-{dataset}.toml"
    file = tomllib.loads(path.read_text())["params"]
    diffs = [f"{k} = {params.get(k, '(unset)')!r} (file: {file.get(k, '(unset)')!r})"
             for k in sorted(set(params) | set(file)) if params.get(k) != file.get(k)]
    return f"its parameters differ from {path.relative_to(ROOT)} in: " + ", ".join(diffs) if diffs else \
        f"its parameters equal {path.relative_to(ROOT)}'s"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--runs", nargs="*", default=[], help="trained SASRec run folders to report")
    ap.add_argument("--threads", type=int, default=1)
    docs_option(ap, help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    command = " ".join(["python -m benchmarks.train_speed", *sys.argv[1:]])
    lines = [f"Command: `{command}`  ",
             f"Machine: {machine()}, torch {torch.__version__}, {args.threads} torch thread(s); "
             f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.  ",
             "Protocol: leave-one-out, last item = test target, ranking over all items, seen items excluded.", ""]
    lines += ["### Quality of the committed runs", "",
              "deepshelf's own metrics and the same metrics recomputed by `benchmarks/recompute_metrics.py` from "
              "the `deepshelf recommend --users test --k 10` export.", "",
              "Training times are from the machine each run trained on (its note says which).", "",
              "| run | blocks x width | trained on | epochs run (best) | still improving at stop | s / epoch (median) | "
              "train s | HR@10 | NDCG@10 | HR@10 export | NDCG@10 export | published (HR / NDCG) | target met |",
              "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    # ml-1m: SASRec+ (Klenitskiy & Vasilev 2023), 2 blocks x 64; beauty: the best published SASRec on this file
    published = {"ml-1m": "0.3152 / 0.1821", "beauty": "0.0921 / 0.0531"}
    targets = {"ml-1m": (0.315, 0.182), "beauty": (0.092, 0.053)}  # issue 3: HR@10, NDCG@10 to reach
    notes = []
    ml = None  # the ml-1m run's model, for the latency measurement below
    for run_path in map(Path, args.runs):
        run = load_run(run_path)
        if run.config.dataset == "ml-1m" and ml is None:
            ml = run.model
        m = json.loads((run_path / "metrics.json").read_text())
        log = m.get("training", [])
        best = best_validated(log) or {}
        check = export_check(run_path, run.config.dataset)
        test = m["test"]["metrics"]
        goal = targets.get(run.config.dataset)
        met = "-" if goal is None else ("yes" if check["hr@10"] >= goal[0] and check["ndcg@10"] >= goal[1] else "no")
        limit = run.config.params.get("time_limit")
        notes.append(f"`{run_path}` trained on {m['device']}"
                     + (f" under `time_limit = {limit}` minutes" if limit else "") + sweep_origin(m["version"])
                     + "; " + config_differences(run.config.params, run.config.dataset) + ".")
        validated = [e for e in log if "valid_ndcg@10" in e]
        improving = "yes" if validated and validated[-1] is best else "no"
        if improving == "yes" and run.config.params.get("lr_schedule") == "cosine" and \
                len(log) == run.config.params.get("epochs"):
            improving = "best at the end of its lr decay"
        lines.append(f"| `{run_path}` | {run.model.config.layers} x {run.model.config.dim} | {m['device']} | "
                     f"{len(log)} ({best.get('epoch', '-')}) | {improving} | "
                     f"{np.median([e['seconds'] for e in log]):.1f} | {m['train_seconds']:.0f} | "
                     f"{test['hr@10']:.4f} | {test['ndcg@10']:.4f} | {check['hr@10']:.4f} | {check['ndcg@10']:.4f} | "
                     f"{published.get(run.config.dataset, '-')} | {met} |")
        print(lines[-1], flush=True)

    notes.append("The published figures are not the same model size in every row: ml-1m's are SASRec+'s "
                 "(Klenitskiy & Vasilev 2023) for 2 blocks x 64, against a 3 x 128 run here (a 2 x 128 run of "
                 "the same recipe reached test NDCG@10 0.1770, below the published 0.1821); beauty's are for "
                 "2 x 64, as the run.")
    notes.append("The committed runs were trained before batches ran in length groups (`length_groups`, default "
                 "4 since): they trained as `length_groups = 1` (one padded block per batch; the same loss).")
    lines += [""] + [f"- {n}" for n in notes] + [
        f"- Load average while this benchmark ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the machine "
        "was shared with other jobs, so all times here are inflated)."]
    lines += ["", "Each run was made by `deepshelf train --config configs/sasrec-DATASET.toml --out RUN` with "
              "`--set` overrides where its note lists differences from the config file as it is now, and copied "
              "unchanged into pretrained/; the parameters it trained with are in `RUN/config.json`, per-epoch loss, "
              "seconds and validation NDCG@10 in `RUN/metrics.json` under `training`."]
    lines += [""] + previous_compare()
    model = ml if ml is not None else untrained(3416, 200)
    c = model.config
    lines += ["", "### Scoring latency", "",
              "One anonymous history of 200 items scored against the whole ml-1m catalogue (3,416 items), "
              f"`SASRec.score`, {c.layers} blocks of width {c.dim}, on this machine's CPU.", "",
              "| model | median ms | p95 ms |", "|---|---:|---:|"]
    lat = scoring_latency(model)
    lines.append(f"| {'trained ml-1m run' if ml is not None else 'random weights, ml-1m size'} | "
                 f"{lat['median_ms']:.2f} | {lat['p95_ms']:.2f} |")
    print(lines[-1], flush=True)
    lines += ["", "### Not measured here", "",
              "- Data-parallel speed-up (`deepshelf train ... --nproc N`, gloo on CPU, NCCL on GPU): on a 2-core "
              "machine two processes only share the same cores, so no speed-up is claimed; "
              "`tests/training/test_distributed.py` checks that 2 CPU processes end with identical weights and "
              "single-process quality.",
              "- GPU training: see \"SASRec on a GPU\" (`benchmarks/gpu_sweep.py`)."]
    publish("\n".join(lines), args, "SASRec")


if __name__ == "__main__":
    main()
