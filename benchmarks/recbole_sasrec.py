"""RecBole 1.2.1's SASRec on the same data and architecture as deepshelf's, timed epoch by epoch and scored by
deepshelf's evaluator: the side-by-side reference for `benchmarks/recbole_compare.py`.

    python -m benchmarks.recbole_sasrec --dataset beauty --max-len 50 --dropout 0.5 --time-limit-min 20 --json rb.json

RecBole pins an old scientific stack (numpy < 2 above all), so it lives in its own virtual environment,
`.bench-venv/recbole`, made on first use and reused afterwards; the project's own environment is left alone.
This script runs under any Python: it writes RecBole's atomic `.inter` file from the shared sequences file, then
runs itself again inside that environment (`--inner`) for the training, started by its file path from a scratch
folder: it imports nothing of the `benchmarks` package, so it needs none of it on that environment's path.

Both libraries see the same events: ml-1m keeps the items with >= 5 events (as `deepshelf.data.datasets`
does), Beauty is taken as is, and RecBole is told not to filter further; the run fails (exit 3) if RecBole counts
other users, items or events than the prepared file, or other validation targets than the leave-one-out split's.
The split is leave-one-out in both: last item = test, second-to-last = validation.

One evaluator for both libraries: RecBole's own full-sort evaluation of a sequential model masks only the padding
item (its `FullSortEvalDataLoader` returns no history for sequential models), while deepshelf excludes every item
the user has seen. So this runner does not use RecBole's evaluator: it takes the scores of RecBole's
`full_sort_predict` for each validation user and ranks them with `rank_metrics` below, which does what deepshelf's
`evaluate` does (the user's whole history before the target set to -inf, top 10, NDCG@10 = 1 / log2(rank + 2) of
the single target, HR@10). `benchmarks/recbole_compare.py` checks on one score matrix that `rank_metrics`
and deepshelf's `evaluate` agree before it trusts any number.

What differs, by design of the two libraries (so compare time to a validation NDCG@10, not time per epoch):
- RecBole trains SASRec on one (prefix -> next item) sample per training event, each padded to `max_len`;
  deepshelf trains each user's sequence once per epoch with a loss at every position. A RecBole epoch therefore
  sees the same targets but runs the transformer over ~events/users times as many sequences (ml-1m: 981,491
  samples, 7,668 batches of 128 per epoch).
- RecBole's SASRec is post-LayerNorm with GELU and N(0, 0.02) initialisation, no learning-rate warm-up and no
  gradient clipping; its cross-entropy also scores the padding item.
- Times include RecBole's Python-side batching (`worker = 0`, its default), as deepshelf's include its own, and
  each validation (full ranking of every validation user).
- `--time-limit-min` caps the training: no epoch starts that the previous epoch's length says would end past the
  cap. A capped run's best is the best *within the cap*, not RecBole's converged quality.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench-venv"
VENV = BENCH_DIR / "recbole"
DATA_CACHE = BENCH_DIR / "data"

# RecBole 1.2.1 on Python 3.11 needs:
# - numpy 1.26: its Config re-creates `np.float`, `np.bool`, ... from `np.float_`, `np.unicode_`, ..., which
#   numpy 2 removed (and its metrics still use `np.float`, which numpy >= 1.24 dropped without that shim);
# - scipy / pandas / scikit-learn releases that still support numpy 1.26 (and pandas 2, not 3, whose new string
#   dtype and copy-on-write default came after RecBole 1.2.1 and were never tested with it);
# - colorlog / colorama at the exact versions RecBole's metadata pins.
# torch is pinned on the same line so pip takes the local CPU wheel instead of a multi-GB CUDA build.
BASE_REQUIREMENTS = [
    "torch==2.13.0", "numpy==1.26.4", "scipy==1.13.1", "pandas==2.2.3", "scikit-learn==1.5.2",
    "colorlog==4.7.2", "colorama==0.4.4", "pyyaml==6.0.4", "tqdm==4.70.1", "tensorboard==2.21.0",
    "texttable==1.7.2", "tabulate==0.10.0", "psutil==7.2.2", "thop==0.1.1.post2209072238",
]
# RecBole's metadata also requires ray <= 2.6.3, used only by `recbole.quick_start` (hyper-parameter search),
# which this runner never imports; `--no-deps` skips it and leaves the versions above as they are.
RECBOLE_REQUIREMENTS = ["torch==2.13.0", "recbole==1.2.1"]

# Relative to DEEPSHELF_DATA_DIR: the sequences file and the minimum events per item that deepshelf keeps.
SOURCES = {
    "ml-1m": ("movielens-1m/ml-1m_user_sequences.txt.gz", 5),
    "beauty": ("amazon-s3rec-5core/Beauty.txt.gz", 0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SOURCES), default="ml-1m")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.2, help="hidden (residual and embedding) dropout")
    parser.add_argument("--attn-dropout", type=float, default=0.0,
                        help="dropout on the attention weights (RecBole's attn_dropout_prob)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--target-ndcg", type=float, default=0.0,
                        help="stop once validation NDCG@10 reaches this (0 = never)")
    parser.add_argument("--time-limit-min", type=float, default=0.0,
                        help="minutes of training (validations included) no epoch may be expected to end past "
                             "(0 = none)")
    parser.add_argument("--eval-every", type=int, default=1,
                        help="validate after every N epochs (as deepshelf's eval_every)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: RecBole's enable_amp, i.e. CPU autocast to bfloat16 during training")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--probe-steps", type=int, default=0,
                        help="time this many training steps (after 2 to warm up), print seconds per step and the "
                             "epoch they add up to, and stop: for a dataset whose epochs are too long to run")
    parser.add_argument("--json", type=Path, help="write the per-epoch log here")
    # Set by the outer run for the inner one: all settings, the data location and the prepared counts, as JSON.
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------
# Outer part: any Python, standard library only.


def ensure_venv() -> Path:
    """The RecBole environment's interpreter, installing it when missing or when the pins above changed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed-requirements"
    wanted = " ".join(BASE_REQUIREMENTS) + "\n--no-deps " + " ".join(RECBOLE_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing RecBole 1.2.1 into {VENV} (once)", flush=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + BASE_REQUIREMENTS, check=True)
    subprocess.run(pip + ["--no-deps"] + RECBOLE_REQUIREMENTS, check=True)
    stamp.write_text(wanted)
    return python


def shared_data_dir() -> Path:
    return Path(os.environ.get("DEEPSHELF_DATA_DIR", "/work/shared/data"))


def read_sequences(path: Path, min_item_count: int) -> list[tuple[str, list[str]]]:
    """(user, items oldest first) per line, without the items that have fewer than `min_item_count` events.

    One filtering pass, as deepshelf's `filter_min_item_count`: users are not re-checked afterwards.
    """
    with gzip.open(path, "rt") as f:
        rows = [(parts[0], parts[1:]) for parts in (line.split() for line in f) if len(parts) > 1]
    if min_item_count > 1:
        counts = Counter(item for _, items in rows for item in items)
        rows = [(user, [i for i in items if counts[i] >= min_item_count]) for user, items in rows]
        rows = [(user, items) for user, items in rows if items]
    return rows


def prepare_atomic_files(dataset: str) -> tuple[Path, str, dict[str, int]]:
    """Write (or reuse) `<root>/<name>/<name>.inter` for RecBole; returns root, name and event counts.

    The timestamp is the position in the user's sequence: the files hold order, not times, and RecBole's `TO`
    ordering only needs the order within a user.
    """
    rel, min_count = SOURCES[dataset]
    source = shared_data_dir() / rel
    if not source.exists():
        sys.exit(f"{source} not found; set DEEPSHELF_DATA_DIR to the folder holding the shared datasets")
    name = f"{dataset}-min{min_count}" if min_count > 1 else dataset
    folder = DATA_CACHE / name
    inter, stats_file = folder / f"{name}.inter", folder / "stats.json"
    fresh = inter.exists() and stats_file.exists() and inter.stat().st_mtime >= source.stat().st_mtime
    if not fresh:
        rows = read_sequences(source, min_count)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = inter.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.write("user_id:token\titem_id:token\ttimestamp:float\n")
            for user, items in rows:
                out.writelines(f"{user}\t{item}\t{pos}\n" for pos, item in enumerate(items))
        os.replace(tmp, inter)  # a run killed mid-write never leaves a truncated file to be reused
        stats = {"users": len(rows), "items": len({i for _, items in rows for i in items}),
                 "events": sum(len(items) for _, items in rows)}
        stats_file.write_text(json.dumps(stats))
    return DATA_CACHE, name, json.loads(stats_file.read_text())


def rank_metrics(scores, seen_rows, seen_items, targets, k: int = 10):
    """Per-user NDCG@k and HR@k of one target each, ranking all items with the seen ones excluded.

    scores: float [U, n_items]; (seen_rows, seen_items): int arrays of (row, item) pairs to exclude, set to -inf
    as deepshelf's `Recommender.recommend(exclude_seen=True)` does; targets: int [U]. The target's rank counts the
    items scored above it and those tied with it at a lower index (deepshelf's `topk` breaks ties towards the lower
    index), so no top-k list is built. numpy only, so it runs in both virtual environments.
    """
    import numpy as np

    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[seen_rows, seen_items] = -np.inf
    targets = np.asarray(targets)
    own = scores[np.arange(len(targets)), targets][:, None]  # (U, 1)
    rank = (scores > own).sum(1) + ((scores == own) & (np.arange(scores.shape[1]) < targets[:, None])).sum(1)
    found = (rank < k) & np.isfinite(own[:, 0])  # a seen target is excluded, so never found
    return np.where(found, 1.0 / np.log2(rank + 2.0), 0.0), found.astype(np.float64)


def outer(args: argparse.Namespace) -> None:
    python = ensure_venv()
    root, name, stats = prepare_atomic_files(args.dataset)
    print(f"{args.dataset}: {stats['users']:,} users, {stats['items']:,} items, {stats['events']:,} events "
          f"({root / name})", flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "inner")}
    settings.update(data_root=str(root), dataset_name=name, expected=stats,
                    json=str(args.json.resolve()) if args.json else None)  # the scratch cwd below moves "."
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    # RecBole writes tensorboard logs under the working directory; a scratch one keeps them out of the repo.
    with tempfile.TemporaryDirectory(prefix="recbole-run-", dir=BENCH_DIR) as scratch:
        cmd = [str(python), str(Path(__file__).resolve()), "--inner", json.dumps(settings)]
        returncode = subprocess.run(cmd, check=False, cwd=scratch, env=env).returncode
    sys.exit(returncode)


# ---------------------------------------------------------------------------------------------------------
# Inner part: runs inside .bench-venv/recbole.


def recbole_config(args: argparse.Namespace, scratch: Path) -> dict:
    """RecBole settings equivalent to deepshelf's SASRec config (full-softmax CE, leave-one-out, full ranking)."""
    return {
        "data_path": str(args.data_root), "checkpoint_dir": str(scratch / "saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",  # filtered already
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "hidden_size": args.dim, "inner_size": args.dim,  # feed-forward width 1x, as deepshelf's ffn_mult = 1
        "n_layers": args.layers, "n_heads": args.heads,
        "hidden_dropout_prob": args.dropout, "attn_dropout_prob": args.attn_dropout,
        "loss_type": "CE", "train_neg_sample_args": None,  # CE over all items, no negative sampling
        "train_batch_size": args.batch_size, "learning_rate": args.lr, "epochs": args.epochs,
        "enable_amp": args.precision == "bf16",
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10", "eval_step": 1,
        "eval_batch_size": 512,  # validation users scored at once (deepshelf's evaluate: 512 too)
        "metric_decimal_place": 6,  # RecBole rounds metrics to 4 places by default
        "stopping_step": 10**9,  # this loop decides when to stop
        "use_gpu": False, "gpu_id": "", "seed": args.seed, "reproducibility": True,
        "show_progress": False, "worker": 0, "log_wandb": False,
    }


def validation_cases(args: argparse.Namespace, dataset) -> tuple:
    """Per validation user, in RecBole's ids: the whole history before the validation target (what deepshelf
    excludes as seen) and the target, read from the prepared file itself, not from RecBole's loaders."""
    import numpy as np

    inter = Path(args.data_root) / args.dataset_name / f"{args.dataset_name}.inter"
    sequences: dict[str, list[str]] = {}
    with open(inter) as f:
        next(f)
        for line in f:  # written user by user, oldest first
            user, item, _ = line.rstrip("\n").split("\t")
            sequences.setdefault(user, []).append(item)
    users = [u for u, items in sequences.items() if len(items) >= 3]  # deepshelf: fewer than 3 events only train
    uid = dataset.token2id(dataset.uid_field, users)
    history = [sequences[u][:-2] for u in users]
    lengths = np.array([len(h) for h in history])
    seen = dataset.token2id(dataset.iid_field, [i for h in history for i in h])
    target = dataset.token2id(dataset.iid_field, [sequences[u][-2] for u in users])
    row_of = np.full(dataset.user_num, -1)
    row_of[uid] = np.arange(len(users))
    return row_of, np.repeat(np.arange(len(users)), lengths), seen, target


def evaluate_recbole(model, valid_data, cases, k: int = 10) -> dict:
    """RecBole's scores for every validation user, ranked by `rank_metrics` (seen items excluded)."""
    import numpy as np
    import torch

    row_of, seen_rows, seen_items, target = cases
    model.eval()
    ndcg, hit = np.zeros(len(target)), np.zeros(len(target))
    done = np.zeros(len(target), bool)
    mismatched = 0
    with torch.no_grad():
        for interaction, _, _, positive_i in valid_data:
            scores = model.full_sort_predict(interaction).view(len(interaction), -1).numpy()
            scores[:, 0] = -np.inf  # the padding item
            rows = row_of[interaction[model.USER_ID].numpy()]
            mismatched += int((target[rows] != positive_i.numpy()).sum())
            local = np.full(len(target), -1)
            local[rows] = np.arange(len(rows))
            pick = np.isin(seen_rows, rows)
            n, h = rank_metrics(scores, local[seen_rows[pick]], seen_items[pick], target[rows], k)
            ndcg[rows], hit[rows] = n, h
            done[rows] = True
    model.train()
    return {"ndcg": float(ndcg[done].mean()), "hr": float(hit[done].mean()), "users": int(done.sum()),
            "expected_users": len(target), "target_mismatches": mismatched}


def probe_steps(args: argparse.Namespace, config, model, trainer, train_data, counts: dict) -> None:
    """Seconds per training step as RecBole's trainer takes it (zero_grad, calculate_loss, backward, optimizer
    step; under CPU autocast with `enable_amp`), over `args.probe_steps` batches after 2 warm-up ones, and the
    epoch they add up to (RecBole trains len(train_data) batches per epoch)."""
    import torch

    model.train()
    spent = []
    for i, interaction in enumerate(train_data):
        if i >= args.probe_steps + 2:
            break
        interaction = interaction.to(config["device"])
        start = time.perf_counter()
        trainer.optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = model.calculate_loss(interaction)
        loss.backward()
        trainer.optimizer.step()
        if i >= 2:
            spent.append(time.perf_counter() - start)
    per_step = sorted(spent)[len(spent) // 2]
    steps = len(train_data)
    report = {"library": "recbole", "dataset": args.dataset, "counts": counts, "batch_size": args.batch_size,
              "train_samples_per_epoch": train_data.sample_size, "steps_per_epoch": steps,
              "steps_timed": len(spent), "median_step_seconds": round(per_step, 4),
              "epoch_seconds_projected": round(per_step * steps, 1)}
    print(json.dumps(report), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def inner(args: argparse.Namespace) -> None:
    import logging
    import warnings

    import torch

    torch.set_num_threads(args.threads)
    # RecBole 1.2.1 calls APIs that newer torch / pandas flag as deprecated, once per batch or epoch.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger().setLevel(logging.WARNING)
    sys.argv = sys.argv[:1]  # RecBole's Config also reads `--key=value` from the command line

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    scratch = Path.cwd()
    config = Config(model="SASRec", dataset=args.dataset_name, config_dict=recbole_config(args, scratch))
    start = time.perf_counter()
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    # Counted before the split: building it replaces the events with one (prefix -> next item) sample each.
    counts = {"users": dataset.user_num - 1, "items": dataset.item_num - 1, "events": dataset.inter_num}
    if counts != args.expected:  # RecBole filtered or merged something: the comparison would not be like for like
        print(f"error: RecBole sees {counts}, the prepared file has {args.expected}", flush=True)
        sys.exit(3)
    cases = validation_cases(args, dataset)
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    prepare_seconds = time.perf_counter() - start
    if args.epochs == 0:  # a smoke check of the data and the evaluator: the untrained model's validation
        print(f"untrained: {evaluate_recbole(model, valid_data, cases)}, counts {counts}", flush=True)
        return
    if args.probe_steps:
        probe_steps(args, config, model, trainer, train_data, counts)
        return

    epochs, reached_at, began, capped = [], None, time.perf_counter(), False
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        if epochs and args.time_limit_min and \
                t0 - began + (t0 - began) / len(epochs) > args.time_limit_min * 60:
            capped = True  # the next epoch would end past the cap
            break
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        t1 = time.perf_counter()
        entry = {"epoch": epoch + 1, "train_seconds": round(t1 - t0, 3),
                 "loss": round(float(loss) / len(train_data), 5)}
        if (epoch + 1) % args.eval_every:  # not a validation epoch
            epochs.append({**entry, "valid_seconds": 0.0, "elapsed_seconds": round(t1 - began, 3)})
            print(f"epoch {epoch + 1:3d}  train {t1 - t0:8.1f} s  loss {entry['loss']:.4f}", flush=True)
            continue
        result = evaluate_recbole(model, valid_data, cases)
        t2 = time.perf_counter()
        if result["users"] != result["expected_users"] or result["target_mismatches"]:
            print(f"error: RecBole's validation has {result['users']} users ({result['expected_users']} expected) "
                  f"and {result['target_mismatches']} targets other than the split's", flush=True)
            sys.exit(3)
        entry.update({"valid_seconds": round(t2 - t1, 3), "valid_ndcg@10": round(result["ndcg"], 5),
                      "valid_hr@10": round(result["hr"], 5), "elapsed_seconds": round(t2 - began, 3)})
        epochs.append(entry)
        print(f"epoch {entry['epoch']:3d}  train {entry['train_seconds']:8.1f} s  valid {entry['valid_seconds']:6.1f} s"
              f"  loss {entry['loss']:.4f}  NDCG@10 {entry['valid_ndcg@10']:.4f}  HR@10 {entry['valid_hr@10']:.4f}",
              flush=True)
        if args.target_ndcg and entry["valid_ndcg@10"] >= args.target_ndcg:
            reached_at = entry["elapsed_seconds"]
            break

    report = {
        "library": f"recbole {recbole.__version__}", "torch": torch.__version__, "dataset": args.dataset,
        "config": {"max_len": args.max_len, "dim": args.dim, "inner_size": args.dim, "layers": args.layers,
                   "heads": args.heads, "dropout": args.dropout, "attn_dropout": args.attn_dropout,
                   "batch_size": args.batch_size, "lr": args.lr,
                   "loss": "CE (full softmax)", "precision": args.precision, "threads": args.threads,
                   "seed": args.seed, "epochs_max": args.epochs, "eval_every": args.eval_every,
                   "target_ndcg@10": args.target_ndcg,
                   "time_limit_min": args.time_limit_min, "train_samples_per_epoch": train_data.sample_size},
        "evaluator": "rank_metrics: seen items excluded (deepshelf's protocol), not RecBole's own",
        "prepare_seconds": round(prepare_seconds, 3), "capped": capped, "cores": sorted(os.sched_getaffinity(0)),
        "epochs": epochs, "reached_target_at_seconds": reached_at, **counts, "valid_users": len(cases[3]),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    best = max((e for e in epochs if "valid_ndcg@10" in e), key=lambda e: e["valid_ndcg@10"], default=None)
    median_train = sorted(e["train_seconds"] for e in epochs)[len(epochs) // 2] if epochs else float("nan")
    print(f"{report['library']}, torch {report['torch']}, {args.dataset}: {len(epochs)} epoch(s)"
          + (" (stopped by the time cap)" if capped else "")
          + f", median {median_train:.1f} s training per epoch"
          + (f", best valid NDCG@10 {best['valid_ndcg@10']:.4f} (epoch {best['epoch']})" if best else ""), flush=True)


def main() -> None:
    args = parse_args()
    if args.inner is None:
        outer(args)
    else:
        inner(argparse.Namespace(**json.loads(args.inner)))


if __name__ == "__main__":
    main()
