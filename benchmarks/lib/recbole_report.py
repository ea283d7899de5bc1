"""The subsection `recbole_compare.py` writes into docs/benchmarks.md's `## SASRec` section: the setup, the batch /
learning-rate choice, the seeds' times and ratios, the training step's cost and the differences between the two
libraries. Each paragraph states what the script did; the measuring stays there (`tune`, `seed_row`, `step_costs`).
`train_speed.py` keeps these subsections as they are when it rewrites the rest of the section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.lib.mdsection import machine, read_subsection, write_subsection
from benchmarks.lib.noise import probe_text
from benchmarks.lib.traininglog import best_validated
from deepshelf.models.sasrec import SASRec

# one subsection per (precision, deepshelf's recipe): "own" = its config's, "equal" = RecBole's
TITLES = {("fp32", "own"): "### deepshelf vs RecBole 1.2.1", ("bf16", "own"): "### deepshelf vs RecBole 1.2.1, bf16",
          ("fp32", "equal"): "### deepshelf vs RecBole 1.2.1, equal recipes",
          ("bf16", "equal"): "### deepshelf vs RecBole 1.2.1, bf16, equal recipes"}
LEVELS = (0.90, 0.95, 1.00)  # shares of the weaker library's best validation NDCG@10 timed in the comparison


def previous_compare() -> list[str]:
    """The comparison subsections as docs/benchmarks.md has them now, for `train_speed.py --runs` to keep (each
    takes an hour or more and does not depend on the committed runs)."""
    return [line for title in TITLES.values() for line in read_subsection(title)]


def write_compare(lines: list[str], precision: str, recipe: str = "own") -> None:
    """Replace this precision and recipe's subsection alone; a new one goes after the fp32 own-recipe one."""
    first = TITLES[("fp32", "own")]
    write_subsection(TITLES[(precision, recipe)], lines, after=None if TITLES[(precision, recipe)] == first else first)


def logs_dir(args: argparse.Namespace) -> Path:
    """This precision's run logs: fp32 in --out itself (where the earlier runs' logs are), others in a subfolder."""
    return Path(args.out) if args.precision == "fp32" else Path(args.out) / args.precision


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
    warmup = f"a {config.warmup}-step warm-up" if config.warmup else "no warm-up"
    decay = (f", cosine learning-rate decay over {config.epochs} epochs" if config.lr_schedule == "cosine"
             else ", a constant learning rate")
    return ("An epoch is not the same work in the two libraries: RecBole trains one (prefix -> next item) sample per "
            f"event, each padded to max_len, deepshelf {history}. Differences in the model: RecBole's SASRec is "
            "post-LayerNorm with N(0, 0.02) initialisation, positions counted from the oldest item, and no warm-up "
            f"or clipping; deepshelf's here is {config.norm}-LayerNorm with {init} initialisation, positions counted "
            f"from the {config.positions} item, {warmup}{decay} and {clip}; its batches run "
            f"through the network in {config.length_groups} groups of similar length (less padding, same loss). "
            "Details: benchmarks/recbole_sasrec.py.")


RECENT = 3  # validations: a library whose best is among its last RECENT was still improving when its cap ended it


def improving(run: dict) -> bool:
    scores = [e["valid_ndcg@10"] for e in run["epochs"] if "valid_ndcg@10" in e]
    return bool(scores) and max(scores[-RECENT:]) >= max(scores)


def best_ndcg(run: dict) -> float:
    return (best_validated(run["epochs"]) or {}).get("valid_ndcg@10", 0.0)


def fmt_s(t: float | None) -> str:
    return "-" if t is None else f"{t:,.0f}"


def choice_lines(args: argparse.Namespace, tuned: list[tuple], pick: dict) -> list[str]:
    """The batch / learning-rate paragraph: the tuning table, or where `--skip-tune`'s settings came from."""
    if not tuned:
        (ob, olr), (tb, tlr) = pick["deepshelf"], pick["recbole"]
        return [f"**Batch size and learning rate** not chosen again here (`--skip-tune`): deepshelf batch {ob}, "
                f"lr {olr:g}; RecBole batch {tb}, lr {tlr:g}: the choice of the fp32 tuning run on validation "
                f"(subsection \"{TITLES[('fp32', 'own')].lstrip('# ')}\", logs in `{Path(args.out) / 'tune'}`)."]
    reused = " (logs reused from an earlier run of the same settings where present)" if args.reuse_tune else ""
    lines = [f"**Batch size and learning rate**, chosen per library on validation: each candidate trained for "
             f"{args.ours_tune_minutes:g} (deepshelf) or {args.tune_minutes:g} (RecBole) min of wall time "
             f"(validations included; seed {args.tune_seed}); the best validation NDCG@10 after the training time of "
             f"the library's shortest candidate wins, interpolated between validations{reused}. RecBole's epochs "
             "are long, so its candidates saw one or two epochs: a brief choice, not a search.", "",
             "| library | batch | lr | epochs in the cap | training s compared | best valid NDCG@10 by then | "
             "chosen |", "|---|---:|---:|---:|---:|---:|---|"]
    for lib, b, lr, n, budget, best in tuned:
        lines.append(f"| {lib} | {b} | {lr:g} | {n} | {budget:.0f} | {best:.4f} | "
                     f"{'yes' if pick[lib] == (b, lr) else ''} |")
    return lines


def cores_cell(row: dict) -> str:
    """"deepshelf's core / RecBole's core" of a seed, from the logs (RecBole's logs from before the field: core 1,
    where every run then pinned it), a reused log marked."""
    cores = [",".join(map(str, run.get("cores", [fallback])))
             for run, fallback in ((row["ours"], 0), (row["theirs"], 1))]
    reused = [lib for lib, run in (("deepshelf", row["ours"]), ("RecBole", row["theirs"])) if run.get("reused")]
    return " / ".join(cores) + (f" ({' and '.join(reused)} log reused)" if reused else "")


def terms_line(args, rows: list[dict]) -> str:
    """What is and is not alike between the libraries in this run: recipe, tuning budget, cores."""
    if args.recipe == "equal":
        recipe = ("the same recipe: deepshelf without warm-up, at a constant learning rate and without gradient "
                  "clipping, as RecBole trains (Adam; weight decay 0 in both, so deepshelf's AdamW is Adam)")
    else:
        recipe = ("the recipes differ (deepshelf with warm-up, cosine decay and clipping, RecBole at a constant rate "
                  "without clipping: the defaults of each)")
    if args.skip_tune:
        tuning = "batch size and learning rate taken from the fp32 tuning run (`--skip-tune`), whose budgets differ"
    elif args.equal_tuning:
        tuning = "equal tuning budgets (the same candidates, the same minutes per candidate)"
    else:
        tuning = "the tuning budgets differ (the candidates above)"
    swapped = len({cores_cell(r).split(" (")[0] for r in rows}) > 1
    cores = ("the cores traded between seeds (column \"cores\")" if swapped else
             "each library kept its core in every seed (column \"cores\")")
    return (f"- Terms: {recipe}; {tuning}; {cores}. The per-epoch curves of the two nearly coincide, so the ratio "
            "is the price of an epoch.")


def validation_line(args, rows: list[dict]) -> str:
    """The validation schedule (checked by `seed_row`) and what a validation cost each library in the seeds."""
    cost = {lib: np.median([e["valid_seconds"] for r in rows for e in r[key]["epochs"] if "valid_ndcg@10" in e])
            for lib, key in (("deepshelf", "ours"), ("RecBole", "theirs"))}
    cpu = [e["cpu_valid_seconds"] for r in rows for e in r["ours"]["epochs"] if "cpu_valid_seconds" in e]
    every = "every epoch" if args.eval_every == 1 else f"every {args.eval_every} epochs"
    return (f"- Validation: both libraries validated after {every} (each log checked), with one evaluator; "
            f"a validation took {cost['deepshelf']:.1f} s in deepshelf"
            + (f" ({np.median(cpu):.1f} CPU s)" if cpu else "") + f" and {cost['RecBole']:.1f} s in RecBole "
            "(median over the seeds' logs; wall clock). An epoch of deepshelf being shorter, it validates more "
            "often per minute, and the wall-clock ratio counts every one of those validations.")


def cpu_line(rows: list[dict]) -> str:
    """deepshelf's CPU seconds to 95% against RecBole's wall clock: the reading that holds up where deepshelf ran on
    a machine busy with other jobs (its wall clock then counts the scheduler) and RecBole's log is reused from a
    quiet run (one thread, so its wall clock is about its CPU time)."""
    ratios = [r[("theirs", 0.95)][1] / r[("ours_cpu", 0.95)] for r in rows
              if r[("ours_cpu", 0.95)] and r[("theirs", 0.95)][1]]
    cells = ", ".join(f"seed {r['seed']} {fmt_s(r[('ours_cpu', 0.95)])} s" for r in rows)
    text = (f"- deepshelf's CPU time to 95% (its process's CPU seconds, validations included): {cells}; RecBole's "
            "wall clock to the same level over that: ")
    if not ratios:
        return text + "no seed reached the level."
    return text + (f"{np.median(ratios):.1f}x (median of {len(ratios)} seed(s); range {min(ratios):.1f}x - "
                   f"{max(ratios):.1f}x). Where RecBole's logs are reused from a quiet run, this is the fairer "
                   "reading of a run on a busy machine; CPU time still grows under load (shared caches).")


def compare_lines(args, params, check, tuned, pick, rows, steps, probes) -> list[str]:
    """The subsection: setup, the batch / lr choice, the seeds' times and ratios, the training step's cost.
    `params`: deepshelf's SASRec parameters as it trained (the config with the recipe's overrides)."""
    dataset, precision = args.dataset, args.precision
    if precision == "fp32":
        amp = "fp32 in both (no autocast)"
    else:
        amp = ("bf16 in both: training steps under CPU autocast to bfloat16 (deepshelf's `precision = \"bf16\"`, "
               "RecBole's `enable_amp`), validation in fp32")
    median = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    load = os.getloadavg()
    lines = [TITLES[(precision, args.recipe)], "",
             f"Command: `python -m benchmarks.recbole_compare {' '.join(sys.argv[1:])}`  ",
             f"Machine: {machine()}, torch {torch.__version__}; measured "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before the seeds "
             f"{' / '.join(f'{x:.1f}' for x in probes['load_before'])}, at the end {load[0]:.1f} / "
             f"{load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores shared with other jobs.  ",
             f"Noise probe (`jitter_probe`: a fixed piece of Python + numpy work, 150 times a second for "
             f"{args.probe_seconds:g} s on each core, nothing of ours running), before the seeds"
             f"{' (with --reuse-seeds: when the tables were written, not when the seeds ran)' if args.reuse_seeds else ''}"
             f": core 0 {probe_text(probes['before'][0])}; core 1 {probe_text(probes['before'][1])}; after: core 0 "
             f"{probe_text(probes['after'][0])}; core 1 {probe_text(probes['after'][1])}. A training epoch can be no "
             "steadier than the work under it.", "",
             f"`{dataset}` in full ({rows[0]['ours']['users']:,} users, {rows[0]['ours']['items']:,} items, "
             f"{rows[0]['ours']['events']:,} events: the same in both libraries, or the run fails), leave-one-out. "
             f"Same architecture in both: max_len {params['max_len']}, width {params['dim']}, {params['layers']} "
             f"blocks, {params['heads']} head, feed-forward width x{params.get('ffn_mult', 1)}, post-LayerNorm, "
             f"dropout {params['dropout']}, attention dropout {params.get('attn_dropout', 0.0)} (deepshelf's value, "
             f"given to RecBole's `attn_dropout_prob`), full-softmax cross-entropy, {amp}, "
             "1 torch thread each. Each run: each library pinned to one core of its own (`taskset`; which one in "
             "the column \"cores\"), started together, so both meet the same background load; a log reused "
             "from an earlier run (`--reuse-seeds`, marked) met that run's load instead.", "",
             "One evaluator: every epoch, validation NDCG@10 over all items with the user's seen items excluded "
             "(deepshelf's `evaluate`; for RecBole, the scores of its `full_sort_predict` ranked the same way by "
             "`rank_metrics` in benchmarks/recbole_sasrec.py, since RecBole's own full-sort evaluation of a "
             f"sequential model excludes nothing); {check}", "",
             *choice_lines(args, tuned, pick)]
    lines += ["", f"**Seeds** ({len(rows)}): RecBole capped at {args.recbole_minutes:g} min of wall time per run "
              "(no epoch starts that would end past the cap), deepshelf at "
              f"{args.ours_minutes:g} min. Still improving at the cap (a new best in the last {RECENT} validations): "
              f"RecBole in {sum(improving(r['theirs']) for r in rows)} of {len(rows)} seed(s), deepshelf in "
              f"{sum(improving(r['ours']) for r in rows)}; where a library was, \"best\" below is its best "
              "validation NDCG@10 *within the cap*, not at convergence. The level every time is measured to is "
              "a share of the weaker library's best of the same seed. Times are training seconds (validations "
              "left out: they run different code in the two libraries); the wall clock with validations is in "
              "brackets.", "",
              "| seed | cores (deepshelf / RecBole) | deepshelf epochs / s per epoch / best | RecBole epochs / s per epoch / best | weaker best | "
              + " | ".join(f"{int(s * 100)}%: deepshelf s | {int(s * 100)}%: RecBole s | {int(s * 100)}%: ratio"
                           for s in LEVELS) + " |",
              "|---:|---|---|---|---:|" + "---:|---:|---:|" * len(LEVELS)]
    ratios = {s: [] for s in LEVELS}
    walls = {s: [] for s in LEVELS}  # validations included: the headline
    for r in rows:
        cells = [str(r["seed"]), cores_cell(r)]
        for run in (r["ours"], r["theirs"]):
            per = np.median([e["train_seconds"] for e in run["epochs"]])
            cells.append(f"{len(run['epochs'])} / {per:.1f} / {best_ndcg(run):.4f}")
        cells.append(f"{r['weaker']:.4f} ({r['weaker_lib']})")
        for s in LEVELS:
            (ot, ow), (tt, tw) = r[("ours", s)], r[("theirs", s)]
            cells += [f"{fmt_s(ot)} ({fmt_s(ow)})", f"{fmt_s(tt)} ({fmt_s(tw)})"]
            if ot and tt:
                ratios[s].append(tt / ot)
                walls[s].append(tw / ow)
                cells.append(f"{tt / ot:.1f}x ({tw / ow:.1f}x)")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""]
    for s in LEVELS:
        rs, ws = ratios[s], walls[s]
        if rs:
            lines.append(f"- {int(s * 100)}% of the weaker best: deepshelf {median(ws):.1f}x faster in wall clock, "
                         f"validations included (median of {len(ws)} seed(s); range {min(ws):.1f}x - "
                         f"{max(ws):.1f}x); {median(rs):.1f}x in training time alone.")
    if ratios[0.95]:
        # the headline is the lower of the two readings: a validation counts, whichever library it slows
        head = min(median(walls[0.95]), median(ratios[0.95]))
        if precision == "fp32":
            verdict = "met" if head >= 10 else "NOT met"
            lines.append(f"- Goal: >= 10x at 95%, fp32 both, validations included: {verdict} (measured {head:.1f}x).")
        else:
            lines.append(f"- The >= 10x goal is set for fp32 both (its subsection); in {precision} both: "
                         f"{head:.1f}x at 95%, validations included.")
    lines += [terms_line(args, rows), validation_line(args, rows)]
    if all(("ours_cpu", 0.95) in r for r in rows):
        lines.append(cpu_line(rows))
    lines += ["", f"Where deepshelf's training step went (`{dataset}`, {precision}, batch {pick['deepshelf'][0]}, "
              "1 thread; `step_costs` and `validation_costs` in benchmarks/lib/sasrec_costs.py, on core 0, in the run "
              "that wrote this subsection):", "", *steps]
    quality = sorted((logs_dir(args) / "quality").glob("*-length_groups1.json")) if args.recipe == "own" else []
    for old in quality:  # the same run before the change (own recipe, as the tuning logs it is set against)
        new = logs_dir(args) / "tune" / old.name.replace("-length_groups1", "")
        if new.exists():
            a, b = (json.loads(f.read_text())["epochs"] for f in (old, new))
            n = min(len(a), len(b))
            fmt = lambda log: ", ".join(f"{e['valid_ndcg@10']:.4f}" for e in log[:n])  # noqa: E731
            lines += ["", f"Quality kept: validation NDCG@10 after epochs 1-{n} of the same run (`{new.stem}`), "
                      f"one padded block per batch (`length_groups = 1`, as before): {fmt(a)}; in 4 length groups: "
                      f"{fmt(b)} (`{old}` and the tuning log; how the loss is chunked changes no number beyond "
                      "rounding, only when it is computed)."]
    lines += ["", epoch_and_model_differences(params), ""]
    print("\n".join(lines), flush=True)
    return lines
