"""`deepshelf serve`: the HTTP service over a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app) -> None:
    """Add this module's commands to the deepshelf Typer app."""
    app.command()(serve)


def serve(
    run: Annotated[Path, typer.Option(help="run folder to serve, e.g. runs/NAME (a symlink may be re-pointed: "
                                           "the server swaps to the new target)")],
    database: Annotated[Optional[str], typer.Option(help="sqlite:///path.db (default) or postgresql://...")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="server processes sharing the port (each loads the "
                                                             "run; they share the store)")] = 1,
) -> None:
    """Serve recommendations, similar products and search over HTTP (settings also from DEEPSHELF_* variables,
    e.g. DEEPSHELF_API_KEYS=key1,key2)."""
    import logging
    import os

    import uvicorn

    from deepshelf.errors import DeepshelfError
    from deepshelf.serving.app import create_app
    from deepshelf.serving.settings import Settings

    if not (run / "config.json").exists():
        raise DeepshelfError(f"--run {run}: not a deepshelf run (no config.json)")
    overrides = {"run": run}
    if database:
        overrides["database"] = database
    settings = Settings(**overrides)  # validates the environment and options here, before any worker starts
    logging.getLogger("deepshelf").setLevel(log_level.upper())
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=access_log)
        return
    # Several processes: uvicorn imports the app factory in each; the settings travel as DEEPSHELF_* variables.
    os.environ["DEEPSHELF_RUN"] = str(settings.run)
    os.environ["DEEPSHELF_DATABASE"] = settings.database
    uvicorn.run("deepshelf.serving.app:create_app", factory=True, workers=workers, host=host, port=port,
                log_level=log_level, access_log=access_log)
