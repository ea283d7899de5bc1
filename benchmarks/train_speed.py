"""SASRec speed and quality: scoring latency for one shopper, per-epoch training time, and the trained runs'
metrics recomputed independently from their `deepshelf recommend` export. Writes the `## SASRec` section of
docs/benchmarks.md.

    python benchmarks/train_speed.py --runs pretrained/sasrec-ml-1m pretrained/sasrec-beauty
    python benchmarks/train_speed.py --compare beauty --seeds 1 2 3 --recbole-minutes 20

`--compare DATASET` trains deepshelf's SASRec and RecBole 1.2.1's (`benchmarks/recbole_sasrec.py`, in its own
virtual environment) side by side, each pinned to its own core with one torch thread, with the architecture of
configs/sasrec-DATASET.toml in fp32, the same leave-one-out data and one evaluator; first a brief batch-size /
learning-rate choice per library on validation, then one run per seed; it reports the training time each library
needs to reach 90%, 95% and 100% of the weaker one's best validation NDCG@10, and rewrites only the comparison
subsection of docs/benchmarks.md.

Over 400 lines because it holds both halves of the `## SASRec` section (the committed runs' report and the
RecBole comparison, which share its helpers); splitting the comparison into its own script is the next step.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from mdsection import machine, write_section  # noqa: E402
from recompute_metrics import load_targets, recompute  # noqa: E402
from traininglog import best_validated, time_to, with_totals  # noqa: E402

from deepshelf.data.interactions import Histories  # noqa: E402
from deepshelf.models.sasrec import SASRec, SASRecNetwork  # noqa: E402
from deepshelf.runs.artifacts import load_run  # noqa: E402

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


COMPARE_TITLE = "### deepshelf vs RecBole 1.2.1"
LEVELS = (0.90, 0.95, 1.00)  # shares of the weaker library's best validation NDCG@10 timed in the comparison


def previous_compare() -> list[str]:
    """The comparison subsection as docs/benchmarks.md has it now: a run without --compare keeps it (it takes
    an hour or more and does not depend on the committed runs)."""
    from mdsection import DOC

    text = DOC.read_text() if DOC.exists() else ""
    match = re.search(rf"^{re.escape(COMPARE_TITLE)}\n.*?(?=^### |^## |\Z)", text, re.S | re.M)
    return match.group(0).rstrip().splitlines() + [""] if match else []


def write_compare(lines: list[str]) -> None:
    """Replace the comparison subsection alone, re-reading the file right before (others edit other sections)."""
    from mdsection import DOC

    text = DOC.read_text()
    pattern = re.compile(rf"^{re.escape(COMPARE_TITLE)}\n.*?(?=^### |^## |\Z)", re.S | re.M)
    if not pattern.search(text):
        sys.exit(f"{DOC} has no '{COMPARE_TITLE}' subsection to replace; run with --runs to write the section")
    DOC.write_text(pattern.sub(lambda _: "\n".join(lines).rstrip() + "\n\n\n", text, count=1))


def epoch_and_model_differences(params: dict) -> str:
    """What an epoch and the model are in deepshelf vs RecBole, from the config file's values over SASRec's
    defaults (as training sees them)."""
    config = SASRec.Config(**params)
    if config.windows == "all":
        history = ("each history once (cut into windows of max_len + 1 events where longer) with a loss at every "
                   "position; both see every training target once per epoch")
    else:
        history = "the newest max_len + 1 events of each history with a loss at every position"
    init = f"N(0, {config.init_std:g})" if config.init_std else "N(0, 1/width)"
    clip = f"gradient clipping at norm {config.clip:g}" if config.clip else "no gradient clipping"
    decay = f", cosine learning-rate decay over {config.epochs} epochs" if config.lr_schedule == "cosine" else ""
    return ("An epoch is not the same work in the two libraries: RecBole trains one (prefix -> next item) sample per "
            f"event, each padded to max_len, deepshelf {history}. Differences in the model: RecBole's SASRec is "
            "post-LayerNorm with N(0, 0.02) initialisation, positions counted from the oldest item, and no warm-up "
            f"or clipping; deepshelf's here is {config.norm}-LayerNorm with {init} initialisation, positions counted "
            f"from the {config.positions} item, a {config.warmup}-step warm-up{decay} and {clip}; its batches run "
            f"through the network in {config.length_groups} groups of similar length (less padding, same loss). "
            "Details: benchmarks/recbole_sasrec.py.")


def evaluator_check(split) -> str:
    """deepshelf's `evaluate` and the RecBole runner's `rank_metrics` on one score matrix (coarse, so with ties):
    per-user NDCG@10 and HR@10 must agree, or no number of the comparison is trusted."""
    from recbole_sasrec import rank_metrics

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


def step_costs(split, params: dict, batch_size: int, steps: int = 30) -> list[str]:
    """CPU milliseconds per deepshelf training step (forward, loss, backward, AdamW) on this data in fp32, with
    and without the two changes that cut it: rows in groups of similar length, and the softmax kept from the
    forward pass. Thread CPU time, so time the scheduler gives to other jobs is not counted; median over
    `steps` steps of the same batches for every variant."""
    from unittest import mock

    from deepshelf.models import losses
    from deepshelf.models.sasrec import estimator

    caught = {}

    def grab(module, loss_of, batches, settings, device, validate):
        caught.update(net=module, loss_of=loss_of, batches=batches)
        return []

    rows = ["| length groups | softmax for the backward pass | CPU ms / step (median) |", "|---:|---|---:|"]
    keep_default = losses.KEEP_SOFTMAX_ELEMENTS
    for groups, keep in ((1, False), (1, True), (4, False), (4, True)):
        with mock.patch.object(estimator, "train_loop", grab), \
                mock.patch.object(losses, "KEEP_SOFTMAX_ELEMENTS", keep_default if keep else 0):
            SASRec(**{**params, "precision": "fp32", "threads": 1, "progress": False, "batch_size": batch_size,
                      "length_groups": groups, "seed": 0}).fit(split.train)
            net, loss_of = caught["net"].train(), caught["loss_of"]
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
            times = []
            for i, batch in zip(range(steps + 3), caught["batches"](1)):
                start = time.thread_time()
                loss = loss_of(net, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if i >= 3:  # the first steps warm allocator and caches
                    times.append((time.thread_time() - start) * 1000)
        rows.append(f"| {groups} | {'kept' if keep else 'recomputed'} | {np.median(times):.0f} |")
        print(rows[-1], flush=True)
    return rows


def ours_worker(settings: dict, out: Path) -> None:
    """Trains deepshelf's SASRec as `settings` say and writes its log in the RecBole runner's format."""
    from deepshelf import __version__
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import make_split
    from deepshelf.evaluation.evaluate import validation

    inter = load_dataset(settings.pop("dataset")).interactions
    split = make_split(inter, "leave-one-out")
    model = SASRec(**settings).fit(split.train, None, validation(split.valid))
    epochs, previous = [], 0.0
    for e in model.training_log:
        epochs.append({"epoch": e["epoch"], "train_seconds": e["seconds"],
                       "valid_seconds": round(e["elapsed"] - previous - e["seconds"], 3), "loss": e["loss"],
                       "valid_ndcg@10": e["valid_ndcg@10"], "elapsed_seconds": e["elapsed"]})
        previous = e["elapsed"]
    out.write_text(json.dumps({"library": f"deepshelf {__version__}", "torch": torch.__version__,
                               "config": settings, "epochs": epochs, "users": inter.n_users,
                               "items": inter.n_items, "events": len(inter), "valid_users": len(split.valid),
                               "capped": bool(settings["time_limit"]) and len(epochs) < settings["epochs"]},
                              indent=2) + "\n")


def side_by_side(dataset: str, params: dict, ours: tuple[int, float], theirs: tuple[int, float], seed: int,
                 ours_min: float, theirs_min: float, out: Path, reuse: bool = False,
                 libraries: tuple[str, ...] = ("recbole", "deepshelf")) -> tuple[dict | None, dict | None]:
    """deepshelf pinned to core 0 and RecBole to core 1, one torch thread each, started together, so both meet
    the same background load; each capped by wall time. Returns both logs (RecBole's runner format). `reuse`
    takes a library's log from `out` where an earlier run of the same settings left one; a library not in
    `libraries` is not run (its log is None)."""
    out.mkdir(parents=True, exist_ok=True)
    ours_file, theirs_file = out / f"deepshelf-b{ours[0]}-lr{ours[1]:g}-s{seed}.json", \
        out / f"recbole-b{theirs[0]}-lr{theirs[1]:g}-s{seed}.json"
    settings = {**params, "dataset": dataset, "batch_size": ours[0], "lr": ours[1], "seed": seed,
                "precision": "fp32", "eval_every": 1, "patience": 10_000, "threads": 1, "progress": False,
                "time_limit": ours_min, "stop_at_ndcg": 0.0}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rb = ["taskset", "-c", "1", sys.executable, str(ROOT / "benchmarks" / "recbole_sasrec.py"), "--dataset", dataset,
          "--epochs", "10000", "--max-len", str(params["max_len"]), "--dim", str(params["dim"]),
          "--layers", str(params["layers"]), "--heads", str(params["heads"]), "--dropout", str(params["dropout"]),
          "--attn-dropout", str(params.get("attn_dropout", 0.0)), "--batch-size", str(theirs[0]),
          "--lr", str(theirs[1]), "--time-limit-min", str(theirs_min), "--threads", "1", "--precision", "fp32",
          "--seed", str(seed), "--json", str(theirs_file)]
    ds = ["taskset", "-c", "0", sys.executable, __file__, "--worker", json.dumps(settings), str(ours_file)]
    procs = []
    for name, cmd, file in (("recbole", rb, theirs_file), ("deepshelf", ds, ours_file)):
        if (reuse and file.exists()) or name not in libraries:
            procs.append(None)
            continue
        with open(file.with_suffix(".log"), "w") as log:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    codes = [p.wait() if p else 0 for p in procs]
    if any(codes):
        sys.exit(f"a library's run failed (RecBole exit {codes[0]}, deepshelf exit {codes[1]}); logs in {out}")
    a, b = (json.loads(f.read_text()) if f.exists() else None for f in (ours_file, theirs_file))
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


def best_ndcg(run: dict) -> float:
    return (best_validated(run["epochs"]) or {}).get("valid_ndcg@10", 0.0)


def fmt_s(t: float | None) -> str:
    return "-" if t is None else f"{t:,.0f}"


def compare(args: argparse.Namespace) -> list[str]:
    """deepshelf vs RecBole 1.2.1's SASRec, same data, architecture, precision, evaluator and threads: a brief
    batch / learning-rate choice on validation per library, then seeds side by side; time to shares of the weaker
    library's best validation NDCG@10."""
    from deepshelf.data.datasets import load_dataset
    from deepshelf.data.splits import make_split

    dataset, out = args.compare, Path(args.out)
    params = tomllib.loads((ROOT / "configs" / f"sasrec-{dataset}.toml").read_text())["params"]
    split = make_split(load_dataset(dataset).interactions, "leave-one-out")
    check = evaluator_check(split)
    print(check, flush=True)
    pairs = lambda text: [(int(b), float(lr)) for b, lr in (c.split(":") for c in text.split(","))]  # noqa: E731
    ours_c, theirs_c = pairs(args.ours_candidates), pairs(args.recbole_candidates)
    tuned = []  # (library, batch, lr, epochs, best NDCG@10 within the tuning cap)
    libraries = ("recbole", "deepshelf") if args.tune_only in (None, "both") else (args.tune_only,)
    for i in range(max(len(ours_c), len(theirs_c))):
        o, t = ours_c[min(i, len(ours_c) - 1)], theirs_c[min(i, len(theirs_c) - 1)]
        a, b = side_by_side(dataset, params, o, t, args.tune_seed, args.ours_tune_minutes, args.tune_minutes,
                            out / "tune", reuse=True, libraries=libraries)
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
    if args.tune_only:
        sys.exit(0)
    pick = {lib: max((r for r in tuned if r[0] == lib), key=lambda r: r[5])[1:3] for lib in ("deepshelf", "recbole")}
    print(f"chosen on validation: {pick}", flush=True)
    os.sched_setaffinity(0, {0})  # this process measures on core 0 now; its children pin themselves
    steps = step_costs(split, params, pick["deepshelf"][0])

    rows = []
    for seed in args.seeds:
        a, b = side_by_side(dataset, params, pick["deepshelf"], pick["recbole"], seed, args.ours_minutes,
                            args.recbole_minutes, out / "seeds")
        ea, eb = with_totals(a["epochs"]), with_totals(b["epochs"])
        weaker = min(best_ndcg(a), best_ndcg(b))
        row = {"seed": seed, "ours": a, "theirs": b, "weaker": weaker, "weaker_lib": "deepshelf"
               if best_ndcg(a) < best_ndcg(b) else "RecBole"}
        for share in LEVELS:
            for name, log in (("ours", ea), ("theirs", eb)):
                row[(name, share)] = (time_to(log, share * weaker, "train_total"),
                                      time_to(log, share * weaker, "elapsed_seconds"))
        rows.append(row)
        print({k: v for k, v in row.items() if k not in ("ours", "theirs")}, flush=True)
    return compare_lines(args, params, check, tuned, pick, rows, steps)


def compare_lines(args, params, check, tuned, pick, rows, steps) -> list[str]:
    dataset = args.compare
    median = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    load = os.getloadavg()
    lines = [COMPARE_TITLE, "",
             f"Command: `python benchmarks/train_speed.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {machine()}, torch {torch.__version__}; measured "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average at the end {load[0]:.1f} / "
             f"{load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores shared with other jobs.", "",
             f"`{dataset}` in full ({rows[0]['ours']['users']:,} users, {rows[0]['ours']['items']:,} items, "
             f"{rows[0]['ours']['events']:,} events: the same in both libraries, or the run fails), leave-one-out. "
             f"Same architecture in both: max_len {params['max_len']}, width {params['dim']}, {params['layers']} "
             f"blocks, {params['heads']} head, feed-forward width x{params.get('ffn_mult', 1)}, post-LayerNorm, "
             f"dropout {params['dropout']}, attention dropout {params.get('attn_dropout', 0.0)} (deepshelf's value, "
             "given to RecBole's `attn_dropout_prob`), full-softmax cross-entropy, fp32 in both (no autocast), "
             "1 torch thread each. Each run: deepshelf pinned to core 0 and RecBole to core 1 (`taskset`), started "
             "together, so both meet the same background load.", "",
             "One evaluator: every epoch, validation NDCG@10 over all items with the user's seen items excluded "
             "(deepshelf's `evaluate`; for RecBole, the scores of its `full_sort_predict` ranked the same way by "
             "`rank_metrics` in benchmarks/recbole_sasrec.py, since RecBole's own full-sort evaluation of a "
             f"sequential model excludes nothing); {check}", "",
             f"**Batch size and learning rate**, chosen per library on validation: each candidate trained for "
             f"{args.ours_tune_minutes:g} (deepshelf) or {args.tune_minutes:g} (RecBole) min of wall time "
             f"(validations included; seed {args.tune_seed}); the best validation NDCG@10 after the training time of "
             "the library's shortest candidate wins, interpolated between validations (logs reused from an earlier run of the same settings where "
             "present). RecBole's epochs are long, so its candidates saw one or two "
             "epochs: a brief choice, not a search.", "",
             "| library | batch | lr | epochs in the cap | training s compared | best valid NDCG@10 by then | "
             "chosen |", "|---|---:|---:|---:|---:|---:|---|"]
    for lib, b, lr, n, budget, best in tuned:
        lines.append(f"| {lib} | {b} | {lr:g} | {n} | {budget:.0f} | {best:.4f} | "
                     f"{'yes' if pick[lib] == (b, lr) else ''} |")
    lines += ["", f"**Seeds** ({len(rows)}): RecBole capped at {args.recbole_minutes:g} min of wall time per run "
              "(no epoch starts that would end past the cap), deepshelf at "
              f"{args.ours_minutes:g} min. Neither library converged within its cap, so \"best\" below is the best "
              "validation NDCG@10 *within the cap*, not at convergence; the level every time is measured to is "
              "a share of the weaker library's best of the same seed. Times are training seconds (validations "
              "left out: they run different code in the two libraries); the wall clock with validations is in "
              "brackets.", "",
              "| seed | deepshelf epochs / s per epoch / best | RecBole epochs / s per epoch / best | weaker best | "
              + " | ".join(f"{int(s * 100)}%: deepshelf s | {int(s * 100)}%: RecBole s | {int(s * 100)}%: ratio"
                           for s in LEVELS) + " |",
              "|---:|---|---|---:|" + "---:|---:|---:|" * len(LEVELS)]
    ratios = {s: [] for s in LEVELS}
    for r in rows:
        cells = [str(r["seed"])]
        for run in (r["ours"], r["theirs"]):
            per = np.median([e["train_seconds"] for e in run["epochs"]])
            cells.append(f"{len(run['epochs'])} / {per:.1f} / {best_ndcg(run):.4f}")
        cells.append(f"{r['weaker']:.4f} ({r['weaker_lib']})")
        for s in LEVELS:
            (ot, ow), (tt, tw) = r[("ours", s)], r[("theirs", s)]
            cells += [f"{fmt_s(ot)} ({fmt_s(ow)})", f"{fmt_s(tt)} ({fmt_s(tw)})"]
            if ot and tt:
                ratios[s].append(tt / ot)
                cells.append(f"{tt / ot:.1f}x ({tw / ow:.1f}x)")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""]
    for s in LEVELS:
        rs = ratios[s]
        if rs:
            lines.append(f"- {int(s * 100)}% of the weaker best: deepshelf {median(rs):.1f}x faster in training time "
                         f"(median of {len(rs)} seed(s); range {min(rs):.1f}x - {max(rs):.1f}x).")
    goal = ratios[0.95]
    if goal:
        verdict = "met" if median(goal) >= 10 else "NOT met"
        lines.append(f"- Goal: >= 10x at 95%, fp32 both: {verdict} (measured {median(goal):.1f}x).")
    lines += ["", f"Where deepshelf's training step went (Beauty, fp32, batch {pick['deepshelf'][0]}, 1 thread; "
              "`step_costs` in this script, run before the seeds on core 0):", "", *steps]
    for old in sorted((Path(args.out) / "quality").glob("*-length_groups1.json")):  # the same run before the change
        new = Path(args.out) / "tune" / old.name.replace("-length_groups1", "")
        if new.exists():
            a, b = (json.loads(f.read_text())["epochs"] for f in (old, new))
            n = min(len(a), len(b))
            fmt = lambda log: ", ".join(f"{e['valid_ndcg@10']:.4f}" for e in log[:n])  # noqa: E731
            lines += ["", f"Quality kept: validation NDCG@10 after epochs 1-{n} of the same run (`{new.stem}`), "
                      f"one padded block per batch (`length_groups = 1`, as before): {fmt(a)}; in 4 length groups: "
                      f"{fmt(b)} (`{old}` and the tuning log; the kept softmax changes no number, "
                      "only when it is computed)."]
    lines += ["", epoch_and_model_differences(params), ""]
    print("\n".join(lines), flush=True)
    return lines


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[], help="trained SASRec run folders to report")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compare", help="dataset to time deepshelf vs RecBole 1.2.1 on (e.g. beauty); writes only "
                        "the comparison subsection")
    parser.add_argument("--ours-candidates", default="128:0.001,256:0.002,512:0.004",
                        help="--compare: deepshelf's batch:lr candidates, chosen on validation")
    parser.add_argument("--recbole-candidates", default="128:0.001,256:0.002,2048:0.001",
                        help="--compare: RecBole's batch:lr candidates (2048:0.001 is RecBole's default)")
    parser.add_argument("--tune-minutes", type=float, default=8.0, help="--compare: RecBole's wall minutes per candidate")
    parser.add_argument("--ours-tune-minutes", type=float, default=5.0,
                        help="--compare: deepshelf's wall minutes per candidate")
    parser.add_argument("--tune-only", choices=["deepshelf", "recbole", "both"],
                        help="--compare: run only these candidates (reusing logs already there) and stop")
    parser.add_argument("--tune-seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--recbole-minutes", type=float, default=20.0, help="--compare: RecBole's cap per seed")
    parser.add_argument("--ours-minutes", type=float, default=10.0, help="--compare: deepshelf's cap per seed")
    parser.add_argument("--out", default="benchmarks/results/recbole-compare", help="--compare: run logs go here")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # SETTINGS_JSON OUT: one deepshelf run
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(1)
        return ours_worker(json.loads(args.worker[0]), Path(args.worker[1]))
    if args.compare:
        lines = compare(args)
        if not args.no_write:
            write_compare(lines)
        return
    torch.set_num_threads(args.threads)

    command = " ".join(["python benchmarks/train_speed.py", *sys.argv[1:]])
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
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("SASRec", body)


if __name__ == "__main__":
    main()
