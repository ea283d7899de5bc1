"""`deepshelf retrain` (train from the store, promote a run that is not worse) and `deepshelf rollback`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app) -> None:
    """Add this module's commands to the deepshelf Typer app."""
    app.command()(retrain)
    app.command()(rollback)


def retrain(
    database: Annotated[str, typer.Option(help="the service's event store: sqlite:///… or postgresql://…")],
    runs_dir: Annotated[Path, typer.Option(help="where new runs go; DIR/current is the served run "
                                                "(deepshelf serve --run DIR/current)")],
    every: Annotated[Optional[str], typer.Option(help="retrain every interval (e.g. 6h, 30m, 1d) until "
                                                      "stopped")] = None,
    once: Annotated[bool, typer.Option("--once", help="one round, then exit (the default without --every)")] = False,
    model: Annotated[Optional[str], typer.Option(help="model to train (default: the one DIR/current serves, with "
                                                      "its settings; without one, the learned ranker)")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="override a parameter: key=value (repeatable), as for "
                                            "deepshelf train (content=false: no content indexes in the new "
                                            "runs)")] = [],
    tolerance: Annotated[float, typer.Option(min=0.0, max=0.99, help="promote a new run whose NDCG@10 on the most "
                                                                     "recent period is at most this share below "
                                                                     "the serving run's")] = 0.02,
) -> None:
    """Train a new run from the event store, compare it with the serving run on the most recent period, and
    promote it (re-point DIR/current) only when it is not worse beyond the tolerance. Every decision is appended
    to DIR/decisions.jsonl."""
    from rich.console import Console

    from deepshelf.errors import DeepshelfError
    from deepshelf.runs import retrain as lib

    if every and once:
        raise DeepshelfError("give either --every or --once, not both")
    console = Console(stderr=True)
    cfg = lib.RetrainConfig(database=database, runs_dir=runs_dir, model=model, overrides=list(set_),
                            tolerance=tolerance)
    progress = lambda message: console.log(message, highlight=False)  # noqa: E731
    if every:
        interval = lib.parse_interval(every)
        console.print(f"retraining every {every} into {runs_dir}; Ctrl+C stops")
        try:
            lib.retrain_every(cfg, interval, progress=progress, on_decision=lambda d: _show(console, d))
        except KeyboardInterrupt:
            console.print("stopped")
        return
    decision = lib.retrain_once(cfg, progress)
    _show(console, decision)
    if decision["action"] == "failed":
        if decision["user_error"]:
            raise DeepshelfError(decision["reason"])
        raise typer.Exit(1)


def rollback(runs_dir: Annotated[Path, typer.Option(help="the runs folder whose DIR/current to re-point")]) -> None:
    """Point DIR/current back at the previously promoted run (from DIR/decisions.jsonl) and log it."""
    from rich.console import Console

    from deepshelf.runs.retrain import rollback as roll_back

    record = roll_back(runs_dir)
    Console().print(f"{runs_dir}/current -> {record['run']} (was {record['serving']})", highlight=False)


def _show(console, decision: dict) -> None:
    """One line per decision, with both runs' NDCG@10 when they were compared."""
    from rich.markup import escape

    new, serving = decision.get("new_metrics") or {}, decision.get("serving_metrics") or {}
    numbers = ""
    if new:
        numbers = f" [new {new.get('ndcg@10', float('nan')):.4f}"
        numbers += f", serving {serving['ndcg@10']:.4f}]" if serving else "]"
    colour = {"promoted": "green", "refused": "yellow"}.get(decision["action"], "red")
    console.print(f"[{colour}]{decision['action']}[/{colour}] "
                  + escape(f"{decision.get('run') or '-'}{numbers}: {decision['reason']}"),
                  highlight=False, soft_wrap=True)
