"""deepshelf's SASRec vs RecBole 1.2.1's, like for like: training time to shares of the weaker library's best
validation NDCG@10. Writes only its subsection of docs/benchmarks.md's `## SASRec` section (`### deepshelf vs
RecBole 1.2.1`, or `### deepshelf vs RecBole 1.2.1, bf16` with `--precision bf16`).

    python -m benchmarks.recbole_compare beauty --seeds 1 2 3 --recbole-minutes 20
    python -m benchmarks.recbole_compare beauty --precision bf16 --skip-tune 128:0.004,128:0.002

Trains deepshelf's SASRec and RecBole 1.2.1's (`benchmarks/recbole_sasrec.py`, in its own virtual environment)
side by side, each pinned to its own core with one torch thread, with the architecture of
configs/sasrec-DATASET.toml in one precision for both (fp32, or bf16 autocast in training), the same leave-one-out
data and one evaluator; first a brief batch-size / learning-rate choice per library on validation (or the one
`--skip-tune` names), then one run per seed. Run logs go to `--out`/{tune,seeds} (fp32) or `--out`/bf16/{tune,seeds}.
`python -m benchmarks.train_speed --runs` writes the rest of the section and keeps these subsections as they are.

This file runs the comparison's protocol (evaluator check, tuning, seeds, step costs); the subsection's text, each
paragraph stating what a step here did, is written by `lib/recbole_report.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from benchmarks.lib import ROOT
from benchmarks.lib.cli import docs_option, parser, writes_docs
from benchmarks.lib.noise import jitter_probe_on
from benchmarks.lib.recbole_report import LEVELS, best_ndcg, compare_lines, logs_dir, write_compare
from benchmarks.lib.sasrec_costs import step_costs, validation_costs
from benchmarks.lib.traininglog import time_to, with_totals

# deepshelf trained as RecBole trains (`--recipe equal`): Adam(W) at a constant rate from the first step, no gradient
# clipping; weight decay is 0 in both, so AdamW is Adam. "own": the config file's recipe (warm-up, cosine, clipping).
RECIPES = {"own": {}, "equal": {"warmup": 0, "lr_schedule": "constant", "clip": 0.0}}


def cores_for(position: int, swap: bool) -> tuple[int, int]:
    """(deepshelf's core, RecBole's core) for the `position`-th run of a list: with `swap`, every second run
    trades them, so neither library keeps the faster core throughout."""
    ours = position % 2 if swap else 0
    return ours, 1 - ours


def evaluator_check(split) -> str:
    """deepshelf's `evaluate` and the RecBole runner's `rank_metrics` on one score matrix (coarse, so with ties):
    per-user NDCG@10 and HR@10 must agree, or no number of the comparison is trusted."""
    from benchmarks.recbole_sasrec import rank_metrics
    from deepshelf.evaluation.evaluate import evaluate
    from deepshelf.models.base import Recommender

    cases = split.valid.select(np.arange(min(3000, len(split.valid))))
    n_items = split.train.n_items
    rng = np.random.default_rng(0)
    scores = np.round(rng.standard_normal((len(cases), n_items)), 1).astype(np.float32)
    seen_rows = np.repeat(np.arange(len(cases)), cases.inputs.lengths)
    scores[seen_rows, cases.inputs.items] += 4.0  # seen items on top unless both exclude them
    scores[np.arange(len(cases)), cases.targets.items] += rng.choice([0.0, 2.0, 2.5, 3.0], len(cases))  # some ranks

    class Fixed(Recommender):  # scores rows in the order evaluate() asks for them
        name = "fixed"

        def _fit(self, *a): ...
        def _save_weights(self, path): ...
        def _load_weights(self, path): ...

        def score(self, histories):
            self.at = getattr(self, "at", 0) + len(histories)
            return scores[self.at - len(histories) : self.at]

    stub = Fixed()
    stub.item_map, stub.item_popularity = split.train.item_map, np.ones(n_items, np.float32)
    ours = evaluate(stub, cases, (10,)).per_user
    ndcg, hit = rank_metrics(scores, seen_rows, cases.inputs.items, cases.targets.items, 10)
    if not (np.allclose(ours["ndcg@10"], ndcg) and np.array_equal(ours["hr@10"], hit)) or not 0 < hit.mean() < 1:
        sys.exit("the RecBole runner's evaluator disagrees with deepshelf's evaluate on the same scores")
    return (f"checked first: on one score matrix ({len(cases):,} validation users x {n_items:,} items, rounded to "
            f"0.1 so that ties occur, seen items and targets raised) both give the same per-user NDCG@10 and HR@10 (mean NDCG@10 "
            f"{ndcg.mean():.4f}, HR@10 {hit.mean():.4f}).")


def ours_worker(settings: dict, out: Path) -> None:
    """Trains deepshelf's SASRec as `settings` say and writes its log in the RecBole runner's format, with this
    process's CPU seconds beside the wall clock: on a machine busy with other jobs the wall clock measures the
    scheduler as much as the library, and the CPU time less so."""
    from deepshelf import __version__
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import make_split
    from deepshelf.evaluation.evaluate import validation
    from deepshelf.models.base import Validation
    from deepshelf.models.sasrec import SASRec

    inter = load_dataset(settings.pop("dataset")).interactions
    split = make_split(inter, "leave-one-out")
    plain, marks = validation(split.valid), []  # marks: (CPU s before, after) each validation

    def measure(model, cases):
        before = time.process_time()
        metric = plain.measure(model, cases)
        marks.append((before, time.process_time()))
        return metric

    cpu_start = time.process_time()
    model = SASRec(**settings).fit(split.train, None, Validation(plain.evalset, measure))
    epochs, previous, cpu_previous, validated = [], 0.0, cpu_start, iter(marks)
    for e in model.training_log:
        entry = {"epoch": e["epoch"], "train_seconds": e["seconds"],
                 "valid_seconds": round(e["elapsed"] - previous - e["seconds"], 3), "loss": e["loss"]}
        if "valid_ndcg@10" in e:
            before, after = next(validated)  # CPU time is read at validations: an unvalidated epoch has none
            entry.update({"valid_ndcg@10": e["valid_ndcg@10"], "cpu_train_seconds": round(before - cpu_previous, 3),
                          "cpu_valid_seconds": round(after - before, 3),
                          "cpu_elapsed_seconds": round(after - cpu_start, 3)})
            cpu_previous = after
        epochs.append({**entry, "elapsed_seconds": e["elapsed"]})
        previous = e["elapsed"]
    out.write_text(json.dumps({"library": f"deepshelf {__version__}", "torch": torch.__version__,
                               "config": settings, "cores": sorted(os.sched_getaffinity(0)), "epochs": epochs,
                               "users": inter.n_users, "items": inter.n_items, "events": len(inter),
                               "valid_users": len(split.valid),
                               "capped": bool(settings["time_limit"]) and len(epochs) < settings["epochs"]},
                              indent=2) + "\n")


def side_by_side(dataset: str, params: dict, ours: tuple[int, float], theirs: tuple[int, float], seed: int,
                 ours_min: float, theirs_min: float, out: Path, precision: str, reuse: bool = False,
                 libraries: tuple[str, ...] = ("recbole", "deepshelf"), recipe: str = "own", eval_every: int = 1,
                 cores: tuple[int, int] = (0, 1)) -> tuple[dict | None, dict | None]:
    """deepshelf pinned to core `cores[0]` and RecBole to `cores[1]`, one torch thread each, started together, so
    both meet the same background load; each capped by wall time and validated after every `eval_every` epochs.
    deepshelf trains with `recipe`'s overrides of the config (`RECIPES`). Returns both logs (RecBole's runner
    format), each marked `reused` or not. `reuse` takes a library's log from `out` where an earlier run of the
    same settings left one; a library not in `libraries` is not run (its log is None)."""
    out.mkdir(parents=True, exist_ok=True)
    every = f"-e{eval_every}" if eval_every != 1 else ""
    ours_file = out / f"deepshelf-b{ours[0]}-lr{ours[1]:g}-s{seed}{'' if recipe == 'own' else '-' + recipe}{every}.json"
    theirs_file = out / f"recbole-b{theirs[0]}-lr{theirs[1]:g}-s{seed}{every}.json"
    settings = {**params, **RECIPES[recipe], "dataset": dataset, "batch_size": ours[0], "lr": ours[1],
                "seed": seed, "precision": precision, "eval_every": eval_every, "patience": 10_000, "threads": 1,
                "progress": False, "time_limit": ours_min, "stop_at_ndcg": 0.0}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rb = ["taskset", "-c", str(cores[1]), sys.executable, "-m", "benchmarks.recbole_sasrec", "--dataset", dataset,
          "--epochs", "10000", "--max-len", str(params["max_len"]), "--dim", str(params["dim"]),
          "--layers", str(params["layers"]), "--heads", str(params["heads"]), "--dropout", str(params["dropout"]),
          "--attn-dropout", str(params.get("attn_dropout", 0.0)), "--batch-size", str(theirs[0]),
          "--lr", str(theirs[1]), "--time-limit-min", str(theirs_min), "--threads", "1", "--precision", precision,
          "--eval-every", str(eval_every), "--seed", str(seed), "--json", str(theirs_file)]
    ds = ["taskset", "-c", str(cores[0]), sys.executable, "-m", "benchmarks.recbole_compare", "--worker",
          json.dumps(settings), str(ours_file)]
    procs = []
    for name, cmd, file in (("recbole", rb, theirs_file), ("deepshelf", ds, ours_file)):
        if (reuse and file.exists()) or name not in libraries:
            procs.append(None)
            continue
        with open(file.with_suffix(".log"), "w") as log:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    codes = [p.wait() if p else 0 for p in procs]
    ran = {name: p is not None for name, p in zip(("recbole", "deepshelf"), procs)}
    if any(codes):
        sys.exit(f"a library's run failed (RecBole exit {codes[0]}, deepshelf exit {codes[1]}); logs in {out}")
    a, b = ({**json.loads(f.read_text()), "reused": not ran[name], "file": str(f)} if f.exists() else None
            for name, f in (("deepshelf", ours_file), ("recbole", theirs_file)))
    for key in ("users", "items", "events", "valid_users"):  # like for like, or no comparison at all
        if a and b and a[key] != b[key]:
            sys.exit(f"data differ: deepshelf has {a[key]:,} {key}, RecBole {b[key]:,}")
    return a, b


def best_at(log: list[dict], seconds: float) -> float:
    """Best validation NDCG@10 so far after `seconds` of training, interpolated between validations (from 0 at
    the start): candidates whose epochs end at different times are compared at the same training time."""
    totals = [0.0] + [e["train_total"] for e in log]
    best = np.maximum.accumulate([0.0] + [e["valid_ndcg@10"] for e in log])
    return float(np.interp(seconds, totals, best))


def pairs(text: str) -> list[tuple[int, float]]:
    """`B:LR,B:LR,...` -> [(batch, lr), ...]."""
    try:
        return [(int(b), float(lr)) for b, lr in (c.split(":") for c in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BATCH:LR[,BATCH:LR...], got {text!r}") from None


def tune(args: argparse.Namespace, params: dict) -> list[tuple]:
    """Each library's candidates side by side under the tuning caps: (library, batch, lr, epochs, training s
    compared, best NDCG@10 by then)."""
    ours_c, theirs_c = args.ours_candidates, args.recbole_candidates
    tuned = []
    libraries = ("recbole", "deepshelf") if args.tune_only in (None, "both") else (args.tune_only,)
    for i in range(max(len(ours_c), len(theirs_c))):
        o, t = ours_c[min(i, len(ours_c) - 1)], theirs_c[min(i, len(theirs_c) - 1)]
        # the shorter list's last candidate ran already: it is not trained again next to the longer list's
        running = tuple(lib for lib, c in (("recbole", theirs_c), ("deepshelf", ours_c))
                        if i < len(c) and lib in libraries)
        a, b = side_by_side(args.dataset, params, o, t, args.tune_seed, args.ours_tune_minutes, args.tune_minutes,
                            logs_dir(args) / "tune", args.precision, reuse=args.reuse_tune, libraries=running,
                            recipe=args.recipe, eval_every=args.eval_every, cores=cores_for(i, args.swap_cores))
        if i < len(ours_c) and a:
            tuned.append(("deepshelf", *o, with_totals(a["epochs"])))
        if i < len(theirs_c) and b:
            tuned.append(("recbole", *t, with_totals(b["epochs"])))
    # Compared at the same training time: the shortest candidate's total, so neither a candidate's validation
    # speed nor the background load during its cap decides how much it trained.
    budget = {lib: min(log[-1]["train_total"] for name, _, _, log in tuned if name == lib) for lib, *_ in tuned}
    tuned = [(lib, b, lr, len(log), budget[lib], best_at(log, budget[lib])) for lib, b, lr, log in tuned]
    for row in tuned:
        print(row, flush=True)
    return tuned


def validated_every(run: dict, every: int) -> bool:
    """Whether a log was validated after exactly the epochs that are multiples of `every` (its last may be
    unvalidated where the time cap ended it)."""
    return [e["epoch"] for e in run["epochs"] if "valid_ndcg@10" in e] == \
        [e["epoch"] for e in run["epochs"] if e["epoch"] % every == 0]


def seed_row(seed: int, a: dict, b: dict, every: int = 1) -> dict:
    """One seed's two logs with the times each library took to reach each share of the weaker one's best; both
    must have been validated on the same schedule (every `every` epochs), or the times are not comparable."""
    for name, run in (("deepshelf", a), ("RecBole", b)):
        if not validated_every(run, every):
            sys.exit(f"{name}'s log of seed {seed} ({run.get('file')}) was not validated every {every} epoch(s)")
    ea, eb = with_totals(a["epochs"]), with_totals(b["epochs"])
    weaker = min(best_ndcg(a), best_ndcg(b))
    row = {"seed": seed, "ours": a, "theirs": b, "weaker": weaker,
           "weaker_lib": "deepshelf" if best_ndcg(a) < best_ndcg(b) else "RecBole"}
    for share in LEVELS:
        for name, log in (("ours", ea), ("theirs", eb)):
            row[(name, share)] = (time_to(log, share * weaker, "train_total"),
                                  time_to(log, share * weaker, "elapsed_seconds"))
        if any("cpu_elapsed_seconds" in e for e in ea):  # deepshelf's CPU seconds, validations included
            row[("ours_cpu", share)] = time_to(ea, share * weaker, "cpu_elapsed_seconds")
    return row


def compare(args: argparse.Namespace) -> list[str]:
    """deepshelf vs RecBole 1.2.1's SASRec, same data, architecture, precision, evaluator and threads: a brief
    batch / learning-rate choice on validation per library (or `--skip-tune`'s), then seeds side by side; time to
    shares of the weaker library's best validation NDCG@10."""
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import make_split

    params = tomllib.loads((ROOT / "configs" / f"sasrec-{args.dataset}.toml").read_text())["params"]
    split = make_split(load_dataset(args.dataset).interactions, "leave-one-out")
    check = evaluator_check(split)
    print(check, flush=True)
    if args.skip_tune:
        tuned, pick = [], dict(zip(("deepshelf", "recbole"), args.skip_tune))
    else:
        tuned = tune(args, params)
        if args.tune_only:
            sys.exit(0)
        pick = {lib: max((r for r in tuned if r[0] == lib), key=lambda r: r[5])[1:3]
                for lib in ("deepshelf", "recbole")}
    print(f"batch and lr: {pick}", flush=True)
    os.sched_setaffinity(0, {0})  # this process measures on core 0 now; its children pin themselves
    ours_params = {**params, **RECIPES[args.recipe]}
    steps = step_costs(split, ours_params, pick["deepshelf"][0], args.precision)
    valid_costs = validation_costs(split, ours_params, args.precision)
    probes = {"before": core_probes(args.probe_seconds), "load_before": os.getloadavg()}
    rows = []
    for i, seed in enumerate(args.seeds):
        logs = side_by_side(args.dataset, params, pick["deepshelf"], pick["recbole"], seed, args.ours_minutes,
                            args.recbole_minutes, logs_dir(args) / "seeds", args.precision, reuse=args.reuse_seeds,
                            recipe=args.recipe, eval_every=args.eval_every, cores=cores_for(i, args.swap_cores))
        rows.append(seed_row(seed, *logs, args.eval_every))
        print({k: v for k, v in rows[-1].items() if k not in ("ours", "theirs")}, flush=True)
    probes["after"] = core_probes(args.probe_seconds)
    return compare_lines(args, ours_params, check, tuned, pick, rows, steps + [""] + valid_costs, probes)


def core_probes(seconds: float) -> dict[int, dict]:
    """The noise probe (`noise.jitter_probe`) on each of the two cores the libraries are pinned to, one after
    the other, nothing of ours running."""
    return {core: jitter_probe_on({core}, seconds) for core in (0, 1)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument("dataset_pos", nargs="?", metavar="DATASET", help="the same as --dataset")
    ap.add_argument("--dataset", help="dataset to compare on (e.g. beauty; configs/sasrec-DATASET.toml)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="both libraries' training precision (bf16: CPU autocast); logs of bf16 go to OUT/bf16")
    ap.add_argument("--ours-candidates", type=pairs, default="128:0.001,256:0.002,512:0.004",
                    help="deepshelf's batch:lr candidates, chosen on validation")
    ap.add_argument("--recbole-candidates", type=pairs, default="128:0.001,256:0.002,2048:0.001",
                    help="RecBole's batch:lr candidates (2048:0.001 is RecBole's default)")
    ap.add_argument("--tune-minutes", type=float, default=8.0, help="RecBole's wall minutes per candidate")
    ap.add_argument("--ours-tune-minutes", type=float, default=5.0, help="deepshelf's wall minutes per candidate")
    ap.add_argument("--reuse-tune", action=argparse.BooleanOptionalAction, default=True,
                    help="take a candidate's log from OUT/tune where an earlier run of the same settings left one")
    ap.add_argument("--skip-tune", type=pairs, metavar="B:LR,B:LR",
                    help="no tuning: deepshelf's and RecBole's batch:lr, as the fp32 tuning run chose them")
    ap.add_argument("--tune-only", choices=["deepshelf", "recbole", "both"],
                    help="run only these candidates (reusing logs already there) and stop")
    ap.add_argument("--reuse-seeds", action="store_true",
                    help="take a seed's logs from OUT/seeds where a run of the same settings left them: the "
                         "tables again from the logs (the step-cost table is measured again)")
    ap.add_argument("--probe-seconds", type=float, default=10.0,
                    help="noise probe per core, before and after the seeds")
    ap.add_argument("--tune-seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--recbole-minutes", type=float, default=20.0, help="RecBole's cap per seed")
    ap.add_argument("--ours-minutes", type=float, default=10.0, help="deepshelf's cap per seed")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="own",
                    help="deepshelf's training recipe: its config's (own: warm-up, cosine decay, clipping) or "
                         "RecBole's (equal: constant rate from the first step, no clipping); a subsection each")
    ap.add_argument("--equal-tuning", action="store_true",
                    help="deepshelf tunes on RecBole's candidates with RecBole's minutes per candidate")
    ap.add_argument("--swap-cores", action=argparse.BooleanOptionalAction, default=True,
                    help="every second seed (and tuning candidate) trades the two libraries' cores")
    ap.add_argument("--eval-every", type=int, default=1,
                    help="both libraries validate after every N epochs (checked in each log)")
    ap.add_argument("--out", default="benchmarks/results/recbole-compare",
                    help="run logs go to OUT/{tune,seeds} (fp32) or OUT/PRECISION/{tune,seeds}")
    docs_option(ap, help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # SETTINGS_JSON OUT: one deepshelf run
    args = ap.parse_args(argv)
    if args.worker:
        return args
    if args.dataset and args.dataset_pos and args.dataset != args.dataset_pos:
        ap.error(f"two datasets given: {args.dataset_pos!r} and --dataset {args.dataset!r}")
    args.dataset = args.dataset or args.dataset_pos
    if not args.dataset:
        ap.error("a dataset is required (DATASET or --dataset)")
    if args.skip_tune and len(args.skip_tune) != 2:
        ap.error("--skip-tune takes two batch:lr pairs: deepshelf's, then RecBole's")
    if args.skip_tune and args.tune_only:
        ap.error("--skip-tune and --tune-only exclude each other")
    if args.eval_every < 1:
        ap.error("--eval-every must be at least 1")
    if args.equal_tuning:  # one budget for both: the same grid, the same wall minutes per candidate
        args.ours_candidates, args.ours_tune_minutes = args.recbole_candidates, args.tune_minutes
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        torch.set_num_threads(1)
        return ours_worker(json.loads(args.worker[0]), Path(args.worker[1]))
    lines = compare(args)
    if writes_docs(args):
        write_compare(lines, args.precision, args.recipe)


if __name__ == "__main__":
    main()
