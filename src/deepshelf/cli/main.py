"""The `deepshelf` command line: each command turns its arguments into a typed config and calls the library."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deepshelf.encoders.progress import terminal
from deepshelf.errors import DeepshelfError
from deepshelf.models.registry import MODELS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="deepshelf: deep-learning recommendations for online shops.")
console = terminal()  # stderr: progress, warnings, errors (the one console the bars use too)
USERS_HELP = ("test or valid (discovery: items new to the shopper, seen items excluded); test_again or valid_again "
              "(buy again: seen items allowed; timestamped data); recommend also takes all (every shopper, from "
              "their whole history, with the saved model)")
out_console = Console(emoji=False)  # stdout: results; no emoji codes in user text (`g:id:` stays as it is)
# Fewer evaluated shoppers than this and the metrics mostly measure chance: say so beside them.
FEW_USERS = 100
# The train table's rows (metrics.json's views), said under it: "valid_again" alone explained nothing.
VIEWS_CAPTION = ("valid / test: discovery (products new to each shopper; what they bought before is left out); "
                 "valid_again / test_again: buy again (every product bought in the period, repeats included)")


@app.command()
def datasets() -> None:
    """List the built-in datasets with their statistics."""
    from deepshelf.data.datasets import BUILTIN, load_dataset

    table = Table(title="built-in datasets")
    for col in ("name", "users", "items", "events", "catalogue", "description"):
        table.add_column(col, justify="right" if col in ("users", "items", "events", "catalogue") else "left")
    missing = []  # printed whole under the table: a table cell would cut the path short
    for name, (_, description) in BUILTIN.items():
        try:
            ds = load_dataset(name)
        except DeepshelfError as exc:
            table.add_row(name, "-", "-", "-", "-", "unavailable (see below)")
            missing.append(f"{name}: {exc}")
            continue
        inter = ds.interactions
        stats = ("-", "-", "-") if inter is None else (f"{inter.n_users:,}", f"{inter.n_items:,}", f"{len(inter):,}")
        table.add_row(name, *stats, f"{len(ds.catalog):,}" if ds.catalog is not None else "-", description)
    out_console.print(table)
    for line in missing:
        out_console.print(line, highlight=False, soft_wrap=True)


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="run folder to write, e.g. runs/ease-ml-1m")],
    dataset: Annotated[Optional[str], typer.Option(help="built-in dataset name or path to events/sequences")] = None,
    model: Annotated[Optional[str], typer.Option(help=f"model name ({', '.join(MODELS)})")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML config file")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter: key=value (repeatable); besides "
                                            "the model's own: protocol=temporal|leave-one-out|replay, test_days=30, "
                                            "valid_days=30, refit=true|false; protocol=replay trains as temporal, "
                                            "then replays the test period day by day through the serving engine "
                                            "(replay_refit_days=N: refit every N days; see evaluate --protocol "
                                            "replay)")] = [],
    catalog: Annotated[Optional[str], typer.Option(help="catalogue file for a dataset given by path")] = None,
    database: Annotated[Optional[str], typer.Option(help="train from a service's event store (sqlite:///… or "
                                                         "postgresql://…) instead of --dataset")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run folder")] = False,
    nproc: Annotated[int, typer.Option(min=1, help="processes for distributed data-parallel training")] = 1,
    content: Annotated[Optional[bool], typer.Option("--content/--no-content", help="build the content indexes "
                                                    "(similar by text / picture, semantic search) into RUN/content "
                                                    "when the catalogue has product text or images (default: on; "
                                                    "their settings: --set content.NAME=VALUE)")] = None,
) -> None:
    """Train a model, evaluate it (full ranking) and write runs/NAME."""
    from deepshelf.runs.config import build_train_config
    from deepshelf.runs.pipeline import train_run

    if nproc > 1:  # re-launch this same command under torchrun; rank 0 writes the run
        from deepshelf.training.distributed import launch

        raise typer.Exit(launch(nproc, sys.argv[1:]))
    if database and dataset:
        raise DeepshelfError("give either --dataset or --database, not both")
    set_, replay, refit_days = _replay_sets(list(set_))
    cfg = build_train_config(database or dataset, model, config, set_)
    if catalog:
        cfg.catalog = catalog
    if content is not None:
        cfg.content = content
    try:
        with console.status("training") as status:
            path = train_run(cfg, out, overwrite=overwrite,
                             progress=lambda m: status.update(escape(m)) or console.log(m, markup=False))
    except DeepshelfError as exc:
        raise _explain_empty_training(exc, cfg) from None
    _print_metrics(json.loads((path / "metrics.json").read_text()))
    if replay:
        _replay(path, refit_days, False, [], (10, 20), None)


def _replay_sets(sets: list[str]) -> tuple[list[str], bool, int | None]:
    """`--set protocol=replay` and `--set replay_refit_days=N` taken out of `sets` (the run trains under the temporal
    protocol, then is replayed): (the other sets with protocol=temporal in its place, replay?, refit days)."""
    rest, replay, refit_days = [], False, None
    for item in sets:
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key == "protocol" and value == "replay":
            replay = True
            rest.append("protocol=temporal")
        elif key == "replay_refit_days":
            try:
                refit_days = None if value.lower() in ("", "none") else int(value)
            except ValueError:
                raise DeepshelfError(f"--set replay_refit_days={value!r}: expected a whole number of days or "
                                     "none") from None
            if refit_days is not None and refit_days < 1:
                raise DeepshelfError(f"--set replay_refit_days={value}: expected at least 1 day")
        else:
            rest.append(item)
    if refit_days is not None and not replay:
        raise DeepshelfError("--set replay_refit_days needs --set protocol=replay")
    return rest, replay, refit_days


def _replay(run: Path, refit_days: int | None, frozen: bool, baselines: list[Path], ks: tuple[int, ...],
            output: Path | None) -> None:
    """Replay the run's test period through the serving engine and print (and write) the results."""
    import tempfile

    from deepshelf.apps.replay import replay_run, table

    with tempfile.TemporaryDirectory(prefix="deepshelf-replay-") as workdir, console.status("replay") as status:
        results = replay_run(run, Path(workdir), refit_days=refit_days, frozen=frozen, baselines=baselines, ks=ks,
                             progress=lambda m: status.update(m))
    if output is not None:
        from deepshelf.files import atomic_path

        with atomic_path(output) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=2))
    out_console.print(f"replay of {run} on {results['dataset']}: {results['cut']} to {results['end']} "
                      f"({results['days']} days), {results['seconds']:.0f}s", highlight=False)
    out_console.print(table(results, k=min(ks)), markup=False, highlight=False, soft_wrap=True)
    if output is not None:
        out_console.print(f"wrote {output}", highlight=False)


def _explain_empty_training(exc: DeepshelfError, cfg) -> DeepshelfError:
    """A model refusing zero training events after a temporal split means the data spans too little time: the
    message says which periods were cut off and how to shorten them."""
    if "zero interactions" not in str(exc) or cfg.protocol == "leave-one-out":
        return exc
    return DeepshelfError(f"{exc}: with timestamped data the last test_days={cfg.test_days:g} days are the test "
                          f"period and the valid_days={cfg.valid_days:g} before them validation, so training only "
                          f"sees events older than {cfg.test_days + cfg.valid_days:g} days before the newest one. "
                          "Give data spanning more time, or shorten the periods (--set test_days=7 --set "
                          "valid_days=7), or --set protocol=leave-one-out")


def _few_users_warning(n: int, what: str) -> str | None:
    return _few_users_line({what: n})


def _few_users_line(counts: dict[str, int]) -> str | None:
    """One warning for every view with fewer than FEW_USERS evaluated shoppers (one line, not one per view)."""
    few = {name: n for name, n in counts.items() if n < FEW_USERS}
    if not few:
        return None
    if len(few) == 1:
        (name, n), = few.items()
        which = f"{name} has only {n} evaluated shoppers"
    else:
        which = "few evaluated shoppers (" + ", ".join(f"{name} {n}" for name, n in few.items()) + ")"
    return (f"warning: {which}; metrics over fewer than {FEW_USERS} mostly measure chance (a longer test period, "
            "--set test_days=…, evaluates more)")


def _print_metrics(metrics: dict) -> None:
    if "content" in metrics:  # a catalogue-only run has content P@k, not ranking metrics
        from deepshelf.cli.content import print_content_metrics

        return print_content_metrics(metrics, out_console)
    table = Table(title=f"{metrics['model']} on {metrics['dataset']} ({metrics['protocol']})")
    if any(name.endswith("_again") for name in metrics):
        table.caption = VIEWS_CAPTION
    cols = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "coverage@10"]
    table.add_column("split")
    for c in cols:
        table.add_column(c, justify="right")
    rows = [(name, metrics[name]) for name in ("valid", "valid_again", "test", "test_again") if name in metrics]
    rows += [(f"{name}, before refit", r) for name, r in metrics.get("before_refit", {}).items()]
    for name, result in rows:
        m = result["metrics"]
        table.add_row(name, *(f"{m.get(c, float('nan')):.4f}" for c in cols))
    out_console.print(table)
    _print_new_products(rows)
    # a view's "before refit" row evaluates the same shoppers as the view: named once
    counts = {name: int(users) for name, result in rows if not name.endswith("before refit")
              and (users := result.get("metrics", {}).get("users", result.get("users"))) is not None}
    warning = _few_users_line(counts)
    if warning:
        console.print(warning, style="yellow", markup=False)
    out_console.print(f"training {metrics['train_seconds']:.1f}s on {metrics['device']}")
    if "content_indexes" in metrics:
        built = metrics["content_indexes"]
        out_console.print(f"content indexes (similar by {', '.join(built['modes'])}; semantic search) over "
                          f"{built['items']:,} products in content/", highlight=False)
    if "refit" in metrics:
        refit = metrics["refit"]
        kept = ", ".join(f"{k}={v}" for k, v in (refit["overrides"] or {}).items()) or "nothing"
        out_console.print(f"refit on {refit['train_events']:,} events before the test period in "
                          f"{refit['train_seconds']:.1f}s (kept from validation: {kept}); "
                          "the saved model is the refit one", markup=False)


def _print_new_products(rows: list[tuple[str, dict]]) -> None:
    """Each view's new-product slice (temporal protocol: `slices.new_items` in metrics.json)."""
    if not any("new_items" in result.get("slices", {}) for _, result in rows):
        return
    table = Table(title="new products (never sold before the cut): their buyers")
    for c in ("split", "users", "hr@10", "recall@10", "ndcg@10"):
        table.add_column(c, justify="left" if c == "split" else "right")
    for name, result in rows:
        new = result.get("slices", {}).get("new_items")
        table.add_row(name, *(format_metric(c, new[c]) if new else "0" if c == "users" else "-"
                              for c in ("users", "hr@10", "recall@10", "ndcg@10")))
    out_console.print(table)


@app.command()
def evaluate(run: Annotated[Path, typer.Option(help="run folder")],
             users: Annotated[str, typer.Option(help=USERS_HELP)] = "test",
             k: Annotated[list[int], typer.Option(help="cut-offs")] = [10, 20],
             protocol: Annotated[str, typer.Option(help="as-trained: the run's own split, model and counts frozen at "
                                                        "the cut; replay: the test period replayed day by day "
                                                        "through the serving engine, each shopper who buys on a day "
                                                        "scored at its start from their history and live trending "
                                                        "up to then (discovery view), the engine's trending "
                                                        "alone beside it (README, 'Replay')")] = "as-trained",
             refit_days: Annotated[Optional[int], typer.Option(min=1, help="replay: refit the run's model (its "
                                                               "chosen parameters) every N days on every event "
                                                               "before the day, as retrain --every Nd would; "
                                                               "default: never (model frozen at the cut, "
                                                               "histories and counts live)")] = None,
             frozen: Annotated[bool, typer.Option("--frozen", help="replay: keep the store (histories, trending) "
                                                  "at the cut too: the frozen protocol, scored on replay's "
                                                  "per-day targets")] = False,
             baseline: Annotated[list[Path], typer.Option(help="replay: another run replayed beside it at the "
                                                          "same cadence (repeatable)")] = [],
             output: Annotated[Optional[Path], typer.Option(help="replay: write every number (overall, per "
                                                            "shopper, slices, weeks) as JSON")] = None) -> None:
    """Re-evaluate a saved run on its split and print the metrics; --protocol replay replays its test period
    through the serving engine day by day."""
    if protocol not in ("as-trained", "replay"):
        raise DeepshelfError(f"--protocol {protocol!r}: expected as-trained or replay")
    if protocol == "replay":
        if users != "test":
            raise DeepshelfError("--protocol replay scores the test period's discovery view; leave out --users")
        return _replay(run, refit_days, frozen, list(baseline), tuple(sorted(set(k))), output)
    if refit_days is not None or frozen or baseline or output is not None:
        raise DeepshelfError("--refit-days, --frozen, --baseline and --output belong to --protocol replay")
    from deepshelf.evaluation.evaluate import evaluate as run_eval
    from deepshelf.runs.artifacts import load_run
    from deepshelf.runs.pipeline import eval_split_of, view_model

    loaded = load_run(run)
    _, split, es = eval_split_of(loaded, users)
    result = run_eval(view_model(loaded, users), es, tuple(k), split.train.item_popularity())
    table = Table(title=f"{run} ({users}, {len(es)} users)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, format_metric(name, value))
    new = result.slices.get("new_items")  # shoppers who bought a product never sold before the cut
    for name in ([f"{m}@{c}" for c in k for m in ("hr", "recall")] + ["users", "targets"]) if new else []:
        table.add_row(f"new_items/{name}", format_metric(f"new_items/{name}", new[name]))
    if new:
        table.caption = "new_items: buyers of products never sold before the cut"
    out_console.print(table)
    warning = _few_users_warning(len(es), users)
    if warning:
        console.print(warning, style="yellow", markup=False)


def format_metric(name: str, value: float) -> str:
    """Counts (users, targets, also per slice: `new_items/users`) as integers, rates with four decimals."""
    if name.rsplit("/", 1)[-1] in ("users", "targets") and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


@app.command()
def recommend(run: Annotated[Path, typer.Option(help="run folder")],
              output: Annotated[Path, typer.Option(help="CSV to write: user_id,item_id,rank,score; only rows the "
                                                        "model has evidence for (a list ends before its first "
                                                        "0-score item, so a shopper may get fewer than k rows)")],
              users: Annotated[str, typer.Option(help=USERS_HELP)] = "test",
              k: Annotated[int, typer.Option(min=1, max=1000)] = 10) -> None:
    """Export top-k recommendations for every evaluated user, in original ids (the test views from the saved,
    refit model; the validation views from the model fit before the validation period)."""
    from deepshelf.runs.artifacts import load_run
    from deepshelf.runs.pipeline import export_recommendations

    rows = export_recommendations(load_run(run), users, k, output)
    out_console.print(f"wrote {rows:,} rows to {output}")


@app.command("attach-content")
def attach_content(run: Annotated[Path, typer.Option(help="run folder to give content indexes")],
                   from_: Annotated[Optional[Path], typer.Option("--from", help="copy them from this run (a "
                                                                 "content model's or another run's) instead of "
                                                                 "building them")] = None) -> None:
    """Give a run content indexes (similar by text / picture, semantic search) in RUN/content, replacing any it
    has: built from the catalogue of the run's data as it is now (a store: today's products), or copied from
    another run. A server following the run (serve --run, runs/current) reloads it."""
    from deepshelf.runs.content import attach_content as attach

    with console.status("content indexes") as status:
        info = attach(run, from_, say=lambda m: status.update(m) or console.log(m, highlight=False))
    out_console.print(f"{run}/content: {info['items']:,} products, similar by {', '.join(info['modes'])}, "
                      "semantic search", highlight=False)


@app.command("import-events")
def import_events(export: Annotated[Path, typer.Argument(help="GA4 BigQuery export: newline-delimited JSON, "
                                                              "optionally gzipped")],
                  database: Annotated[str, typer.Option(help="the service's store: sqlite:///shop.db or "
                                                             "postgresql://…")]) -> None:
    """Store a GA4 export's shopper events in the service's store (one transaction), so served shoppers keep
    their history and `train --database` / `retrain` learn from it; importing the same or an overlapping export
    again stores nothing twice."""
    from contextlib import closing

    from deepshelf.data.ga4 import export_events
    from deepshelf.storage import open_store

    events = export_events(export)
    with closing(open_store(database)) as store:
        before = store.count_events()
        store.add_events(events)
        added = store.count_events() - before
    out_console.print(f"stored {added:,} new events of {len(events):,} from {export}")


@app.command("import-feed")
def import_feed(feed: Annotated[Path, typer.Argument(help="Google Merchant Center feed: XML (RSS 2.0 / Atom) or TSV")],
                database: Annotated[str, typer.Option(help="the service's store: sqlite:///shop.db or "
                                                           "postgresql://…")]) -> None:
    """Upsert a product feed's items into the store's catalogue; malformed items are listed (item and field) and
    left out, the others import. A running service sees them within its catalogue refresh."""
    from contextlib import closing

    from deepshelf.data.feeds import read_feed
    from deepshelf.storage import open_store

    parsed = read_feed(feed)
    for error in parsed.errors:
        console.print(f"[yellow]skipped[/yellow] {escape(str(error))}", soft_wrap=True)
    if not parsed.items:
        raise DeepshelfError(f"{feed}: no valid items to import ({len(parsed.errors)} malformed)")
    with closing(open_store(database)) as store:
        n = store.upsert_items(parsed.items)
    out_console.print(f"imported {n:,} products from {feed} ({len(parsed.errors)} skipped)")


@app.command("shopper-token")
def shopper_token(user: Annotated[str, typer.Option(help="the shopper id the token opens")],
                  ttl: Annotated[int, typer.Option(min=1, help="seconds until it expires")] = 3600) -> None:
    """Print a shopper token (X-Shopper-Token) for USER, signed with DEEPSHELF_TOKEN_SECRET: beside the public
    key, it opens that shopper's personal list until it expires. A shop's backend mints its own the same way
    (README, "Shopper tokens")."""
    import os

    from deepshelf.tokens import mint

    secret = os.environ.get("DEEPSHELF_TOKEN_SECRET", "")
    if not secret:
        raise DeepshelfError("DEEPSHELF_TOKEN_SECRET is not set: a shopper token is signed with the server's secret")
    if not user.strip():
        raise DeepshelfError("--user is blank: a shopper token names one shopper")
    print(mint(secret, user, ttl))


def _register_command_groups() -> None:
    """Commands that live beside their subsystem: content (similar, search), serving, demo."""
    from deepshelf.cli import content, demo, retrain, serve

    for module in (content, serve, demo, retrain):
        module.register(app)


def log_handler() -> logging.Handler:
    """Log records through the one console: a warning logged while a spinner or bar is live prints above it, not
    into it; no source file and line on every line."""
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return handler


def main() -> None:
    logging.basicConfig(level=logging.WARNING, handlers=[log_handler()])
    try:
        _register_command_groups()
        app()
    except DeepshelfError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
