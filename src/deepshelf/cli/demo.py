"""`deepshelf demo`: build the demo store (train, evaluate, seed) and serve the storefront and dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app) -> None:
    """Add this module's commands to the deepshelf Typer app."""
    app.command()(demo)


def demo(
    dataset: Annotated[str, typer.Option(help="online-retail (bundled purchases) or fashion (product photos)")] = "online-retail",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    runs_dir: Annotated[Path, typer.Option(help="where the demo's runs and store live (reused by the next run)")] = Path("runs/demo"),
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="start the service after building")] = True,
    sequential: Annotated[bool, typer.Option("--sequential/--no-sequential", help="also train SASRec")] = True,
    content: Annotated[bool, typer.Option("--content/--no-content", help="also train the content model (text encoder)")] = True,
    api_key: Annotated[str, typer.Option(envvar="DEEPSHELF_DEMO_KEY", help="private API key: the dashboard and admin")] = "demo-key",
    public_key: Annotated[str, typer.Option(envvar="DEEPSHELF_DEMO_PUBLIC_KEY", help="public API key the storefront page is given (events, recommendations)")] = "demo-public-key",
) -> None:
    """Train the demo models on a bundled shop, print their evaluation, seed the store and serve the storefront."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from deepshelf.apps import demo as lib
    from deepshelf.errors import DeepshelfError

    from deepshelf.encoders.progress import use_terminal

    console = Console(log_path=False, emoji=False)  # the time column is useful; the source line of the call is not
    use_terminal(console)  # the models' bars draw on it too, so the "still working" lines print above them
    if dataset not in ("online-retail", "fashion"):
        raise DeepshelfError(f"--dataset {dataset!r}: expected online-retail or fashion")
    if serve:  # before minutes of training, and again before the banner
        check_port_free(host, port)
    if dataset != "online-retail":
        runs_dir = runs_dir / dataset
    paths = lib.DemoPaths(runs_dir)
    console.rule(f"[bold]deepshelf demo[/bold]: {dataset} -> {runs_dir}")

    console.log(f"loading {dataset}" + (" (the product photos' catalogue: about a minute)" if dataset == "fashion"
                                        else ""), highlight=False)
    with console.status(f"loading {dataset}"):
        ds = lib.demo_dataset(dataset)
    progress = _progress_printer(console)
    runs, later = [], {}
    try:
        if ds.interactions is None:  # a catalogue with photos and no shopper events yet: the content model alone
            (run,) = lib.train_models(dataset, runs_dir, lib.CONTENT_MODELS, progress)
            lib.link_current(runs_dir, lib.serving_folder(runs_dir, run, lib.content_folder([run])))
            _print_content_metrics(console, run.metrics.get("content", {}))
        else:
            runs, later = _train_and_report(console, lib, dataset, runs_dir, progress, sequential, content, serve)
    finally:
        progress.close()

    columns = (SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("seeding the store", total=None)
        counts = lib.seed_store(paths.database, ds, progress=lambda m: bar.update(task, description=m[:70]))
    console.print(f"store {paths.database}: {counts['items']:,} products, {counts['events']:,} events")

    shoppers = lib.demo_shoppers(ds)
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    if not serve:
        console.print(f"built; serve it with: deepshelf demo{'' if dataset == 'online-retail' else ' --dataset ' + dataset}"
                      f" --runs-dir {runs_dir if dataset == 'online-retail' else runs_dir.parent}")
        return
    check_port_free(host, port)
    console.rule()
    console.print(f"storefront  [bold]{base}/[/bold]\n"
                  f"dashboard   {base}/admin\n"
                  f"demo shoppers: {', '.join(shoppers) or '-'} (pick one in the storefront's 'Shopping as' menu)\n"
                  f"private API key (the dashboard asks for it): [bold]{api_key}[/bold]; the storefront uses the "
                  f"public key {public_key}        Ctrl+C stops the server")
    training = None
    if runs:  # what GET /demo/status answers: the served model, and the slow ones still training
        from deepshelf.apps import demo_training

        training = demo_training.TrainingStatus(pending=list(later), serving=lib.choose_serving(runs).name)
    if later:  # the slow models train while the store serves (apps/demo_training.py)
        console.print(f"still training in the background: {', '.join(later)} (several minutes; each is swapped in "
                      "if it is better on validation, and the storefront says what is still training)",
                      highlight=False)
        demo_training.start_later(dataset, runs_dir, runs, later, training,
                                  lambda m: console.log(m, highlight=False))
    console.rule()
    lib.serve(paths, host, port, api_key, public_key, shoppers, training)


def check_port_free(host: str, port: int) -> None:
    """One clear line when the port is taken (another demo still running?), instead of a banner and a raw
    `[Errno 98]` from the server."""
    import socket

    from deepshelf.errors import DeepshelfError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DeepshelfError(f"port {port} on {host} is already in use ({exc.strerror}; another `deepshelf "
                                 f"demo` still running?): stop it, or pass --port {port + 1}") from None


class _progress_printer:
    """`progress(message, number, total)` for the demo's training: one line per step with the elapsed time, each
    model's step count, and lines every model repeats (loading the data, the split summary) printed once.

    A step that says nothing for `every` seconds (a model's fit, its evaluation) gets a "still working" line with
    its time so far, and the time left when the step says how long its like took ("trained X in T s; refitting":
    the refit on a little more data takes about as long); `close()` ends the heartbeat.
    """

    def __init__(self, console, every: float = 10.0):
        import re
        import threading
        import time

        self._clock, self._console, self._every = time.monotonic, console, every
        self._start = self._last = self._step_start = self._clock()
        self._seen: set[str] = set()
        self._current: tuple[str, int, int] | None = None
        self._expect: float | None = None  # seconds the current step should take, when known
        self._took = re.compile(r"trained \S+ in ([0-9.]+)s; refitting")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="deepshelf-demo-progress", daemon=True)
        self._thread.start()

    def __call__(self, message: str, number: int, n: int) -> None:
        name, _, rest = message.partition(": ")
        if rest.startswith(("loading ", "temporal split", "leave-one-out split")):
            if rest in self._seen:
                return
            self._seen.add(rest)
        with self._lock:
            now = self._clock()
            took = self._took.search(message)
            self._current, self._last, self._step_start = (name, number, n), now, now
            self._expect = float(took.group(1)) if took else None
            self._console.log(f"[{number}/{n}] {message}  ({now - self._start:.0f} s so far)", highlight=False)

    def _beat(self) -> None:
        tick = self._every / 20  # checked often enough that no silence outlasts `every`
        while not self._stop.wait(tick):
            with self._lock:
                now = self._clock()
                if self._current is None or now - self._last < self._every - tick:
                    continue
                name, number, n = self._current
                in_step = now - self._step_start
                left = (f", about {max(self._expect - in_step, 0):.0f} s left" if self._expect is not None
                        else "")
                self._console.log(f"[{number}/{n}] {name}: still working, {in_step:.0f} s in this step{left}  "
                                  f"({now - self._start:.0f} s so far)", highlight=False)
                self._last = now

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _train_and_report(console, lib, dataset, runs_dir, progress, sequential: bool, content: bool, serve: bool):
    """Train (or reuse) the demo's models, link the serving folder, print the evaluation table; returns the runs
    and the slow models left to train in the background when serving (none with --no-serve: all train here)."""
    from rich.table import Table

    from deepshelf.apps.demo_training import split_models

    # One line per model; SASRec and the encoders draw their own progress bars (rich allows one live bar at once).
    models = lib.demo_models(include_sequential=sequential, include_content=content)
    models, later = split_models(dataset, runs_dir, models) if serve else (models, {})
    total = len(models)
    console.log(f"training {total} models ({', '.join(models)}) before serving; a first build takes about a "
                "minute" + (f", then {', '.join(later)} train in the background while the store serves" if later
                             else "") + "; a second one reuses the runs", highlight=False)
    runs = lib.train_models(dataset, runs_dir, models, progress)
    serving = lib.choose_serving(runs)
    content_dir = lib.content_folder(runs)
    lib.link_current(runs_dir, lib.serving_folder(runs_dir, serving, content_dir))

    first = runs[0].metrics
    table = Table(title=f"{dataset}: full-ranking evaluation, {first.get('protocol', '')} split",
                  caption=f"{first.get('users', 0):,} shoppers, {first.get('items', 0):,} products; "
                          "test columns: the last 30 days, over all products")
    table.add_column("model", no_wrap=True)
    # Two-line headers: a narrow terminal would otherwise cut them to "NDCG@…".
    for col in ("valid\nNDCG@10", "test\nHR@10", "test\nNDCG@10", "test\nMRR@10", "test\ncov@10", "train\ns"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("note", no_wrap=True)
    for row in lib.evaluation_rows(runs, serving):
        table.add_row(*row, style="bold green" if row[-1] == "serving" else None)
    console.print(table)
    console.print(f"{total} models; serving [bold]{serving.name}[/bold] (best validation NDCG@10 among the models "
                  f"that use a shopper's history); reports: {runs_dir}/<model>/report.md")
    console.print("similar by text and semantic search: " +
                  (f"the content run's indexes, copied into {serving.path}/content" if content_dir
                   else "off until the content model is trained" if "content" in later
                   else "off (no content model here)"), highlight=False)
    return runs, later


def _print_content_metrics(console, metrics: dict) -> None:
    """Attribute precision of held-out products' nearest neighbours, per similarity mode."""
    from rich.table import Table

    modes = [m for m, v in metrics.items() if isinstance(v, dict)]
    attrs = metrics.get("attributes", [])
    if not modes or not attrs:
        return
    table = Table(title=f"content model: attribute P@{metrics.get('k', 10)} of held-out products' neighbours",
                  caption=f"{metrics.get('heldout_items', 0):,} held-out products, never seen by a learned head")
    table.add_column("mode")
    for a in attrs:
        table.add_column(a, justify="right")
    for m in modes:
        table.add_row(m, *(f"{metrics[m].get(a, float('nan')):.4f}" for a in attrs))
    console.print(table)
