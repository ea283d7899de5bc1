"""A runs folder's `current` link and its decision log: what `deepshelf retrain` and `deepshelf rollback` decided.

`DIR/current` is a relative symlink to the served run (`deepshelf serve --run DIR/current` follows it); it is
re-pointed by renaming a new link over it, so a reader always finds the old target or the new one.
`DIR/decisions.jsonl` holds one JSON object per decision, oldest first: every retraining round (promoted, refused
or failed) and every rollback. Writers hold `DIR/.retrain.lock` and replace the whole file (a small file, a few
lines a day), so a reader never sees half a line and two writers never lose one another's line.

Light on purpose (stdlib and `deepshelf.files`): a dashboard may read the log without the training stack.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deepshelf.errors import DeepshelfError
from deepshelf.files import atomic_path

log = logging.getLogger(__name__)

CURRENT = "current"
DECISIONS = "decisions.jsonl"
LOCK = ".retrain.lock"


@contextmanager
def locked(runs_dir: Path) -> Iterator[None]:
    """Hold the runs folder's lock: one process at a time re-points `current` and writes the log."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_target(runs_dir: Path) -> str | None:
    """The run `DIR/current` points at, as the link names it (a folder name inside DIR), or None without a link.

    Raises `DeepshelfError` when `current` exists but is not a link (it could not be re-pointed atomically).
    """
    link = runs_dir / CURRENT
    if link.is_symlink():
        return os.readlink(link)
    if link.exists():
        raise DeepshelfError(f"{link} is not a symlink; move it aside so that retrain can point it at a run")
    return None


def point_current(runs_dir: Path, run: str) -> None:
    """Point `DIR/current` at `DIR/run` in one step (a new relative link renamed over the old one)."""
    with atomic_path(runs_dir / CURRENT) as tmp:
        os.symlink(run, tmp)


def append_decision(runs_dir: Path, record: dict) -> None:
    """Add one decision to `DIR/decisions.jsonl`; the caller holds `locked(runs_dir)`."""
    path = runs_dir / DECISIONS
    before = path.read_bytes() if path.exists() else b""
    if before and not before.endswith(b"\n"):
        before += b"\n"
    with atomic_path(path) as tmp:
        tmp.write_bytes(before + (json.dumps(record, sort_keys=True) + "\n").encode())


def read_decisions(runs_dir: str | Path, limit: int | None = None) -> list[dict]:
    """The decisions in `DIR/decisions.jsonl`, oldest first (the last `limit` when given); [] without a log.

    A line that is not a JSON object (edited by hand) is skipped with a warning naming it.
    """
    path = Path(runs_dir) / DECISIONS
    if not path.exists():
        return []
    decisions = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            log.warning("%s line %d: not a JSON object, skipped", path, number)
            continue
        decisions.append(record)
    return decisions[-limit:] if limit else decisions


def promotion_history(decisions: list[dict]) -> list[str]:
    """The runs `current` was pointed at, oldest first, with rolled-back ones removed: the last is the one served,
    the one before it is where a rollback goes.

    A promotion adds its run (after the run it replaced, when that one is not already the last: the log's first
    promotion, or a link re-pointed by hand); a rollback removes the last run and ends on the run it restored.
    """
    history: list[str] = []
    for d in decisions:
        if d.get("action") == "promoted" and d.get("run"):
            if d.get("serving") and (not history or history[-1] != d["serving"]):
                history.append(d["serving"])
            history.append(d["run"])
        elif d.get("action") == "rollback" and d.get("run"):
            if history:
                history.pop()
            if not history or history[-1] != d["run"]:
                history.append(d["run"])
    return history
