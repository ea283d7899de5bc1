"""`deepshelf serve`: the HTTP service over a trained run (and the store's catalogue on its first start)."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path
from typing import Annotated, Optional

import typer

log = logging.getLogger(__name__)

# An idle keep-alive connection is closed after this long. A reverse proxy must reuse its upstream connections
# for less (deploy/nginx.conf: keepalive_timeout 4s), or it may send a request on one being closed. A connection
# that sends half a header (or nothing) is closed after `header_timeout_s` by the server's own protocol
# (api/idle.py; uvicorn has no such timer). uvicorn's `limit_concurrency` is not used: it counts idle keep-alive
# connections too and answers without Retry-After; requests in progress are bounded by api/shedding.py.
KEEP_ALIVE_S = 5

# Math-library threads per server process, unless the environment names its own: a request is one small query
# (a fold-in, one ANN search), where a thread team costs more than it saves, and `--workers N` processes share the
# machine's cores; a team per process (OpenMP in FAISS and torch, OpenBLAS) would have each process's threads spin
# on the cores the others serve from. Set before those libraries load, and inherited by uvicorn's worker processes
# and every thread (an OpenMP library reads it once, when loaded; a limit set later holds for the setting thread only).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread_each(environ) -> None:
    """Default each math library's thread count to 1 in `environ` (a value already set is kept), and hold a BLAS
    this process has loaded already (numpy's, loaded by the command line before `serve` runs) to that count."""
    for name in THREAD_VARIABLES:
        environ.setdefault(name, "1")
    blas = environ["OPENBLAS_NUM_THREADS"]
    if blas.isdigit() and int(blas) > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(blas), user_api="blas")


def register(app) -> None:
    """Add this module's commands to the deepshelf Typer app."""
    app.command()(serve)


def serve(
    run: Annotated[Path, typer.Option(help="run folder to serve, e.g. runs/NAME (a symlink may be re-pointed: "
                                           "the server swaps to the new target)")],
    database: Annotated[Optional[str], typer.Option(envvar="DEEPSHELF_DATABASE", show_default=False,
                                                    help="the store of events and catalogue (required): "
                                                         "sqlite:///path.db or postgresql://...")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="server processes sharing the port (each loads the "
                                                             "run; they share the store)")] = 1,
) -> None:
    """Serve recommendations, similar products and search over HTTP (settings also from DEEPSHELF_* variables:
    DEEPSHELF_API_KEYS=key1,key2 are private keys, for everything; DEEPSHELF_PUBLIC_KEYS=key3 are public keys, safe
    in a web page: post events and read recommendations, similar items, search and popular)."""
    import os

    one_thread_each(os.environ)  # before numpy, FAISS or torch is imported (create_app's imports)

    import uvicorn

    from deepshelf.errors import DeepshelfError
    from deepshelf.api.app import create_app
    from deepshelf.api.idle import HeaderTimeout
    from deepshelf.engine.settings import Settings

    if not (run / "config.json").exists():
        raise DeepshelfError(f"--run {run}: not a deepshelf run (no config.json)")
    if not database:  # never a store made up in the current folder: the shop's events must land where it looks
        raise DeepshelfError("--database is required (or DEEPSHELF_DATABASE): where the service stores events and "
                             "the catalogue, e.g. sqlite:///runs/shop.db or postgresql://user@host/shop")
    settings = Settings(run=run, database=database)  # validates the environment and options here, before any worker starts
    logging.getLogger("deepshelf").setLevel(log_level.upper())
    seed_catalog(settings.run, settings.database)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=access_log,
                    timeout_keep_alive=KEEP_ALIVE_S, http=HeaderTimeout)
        return
    # Several processes: uvicorn imports the app factory in each; the settings travel as DEEPSHELF_* variables.
    os.environ["DEEPSHELF_RUN"] = str(settings.run)
    os.environ["DEEPSHELF_DATABASE"] = settings.database
    uvicorn.run("deepshelf.api.app:create_app", factory=True, workers=workers, host=host, port=port,
                log_level=log_level, access_log=access_log, timeout_keep_alive=KEEP_ALIVE_S, http=HeaderTimeout)


def seed_catalog(run: Path, database: str) -> int:
    """Give an empty store the catalogue of the run's dataset, so rules (category, price, stock) and item pages
    work from the first start; after that the store is the source of truth (upserts over HTTP).

    Done here, once, before any server process starts: the service itself never loads training data.
    Returns the number of products stored.
    """
    from deepshelf.errors import DeepshelfError
    from deepshelf.runs.pipeline import run_catalog
    from deepshelf.storage import items_from_table, open_store

    with closing(open_store(database)) as store:
        if store.count_items() > 0:
            return 0
        try:
            catalog = run_catalog(run)
        except (DeepshelfError, OSError) as exc:  # the dataset may not exist here; the catalogue can come later
            log.warning("could not seed the catalogue from the run's dataset: %s", exc)
            return 0
        if catalog is None:
            return 0
        items = items_from_table(catalog.table, catalog.attributes)
        store.upsert_items(items)  # one transaction: no half-seeded catalogue
        log.info("seeded the store's catalogue with %d products from %s", len(items), run)
        return len(items)
