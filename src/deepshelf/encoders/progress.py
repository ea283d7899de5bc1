"""A progress report that library code can ask for without printing when it is not wanted: a rich bar on an
interactive terminal, plain time-stamped lines otherwise (a log file, `make run | tee`, CI), so a long encoding
never leaves a log silent, the same way the training loop reports epochs (training/loop.py `_Progress`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

TICK_S = 10.0  # the longest a log stays silent, as in the training loop
_console = None  # the one terminal console (terminal()): bars, log lines and messages share it


def terminal():
    """The console every bar, log line and message goes through (stderr unless `use_terminal` gave another):
    one console, so rich draws a line printed while a bar is live above the bar instead of over it. No emoji
    codes (a feed's `g:id:` is not 🆔), no source path on log lines, no colouring of numbers in user text."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, emoji=False, log_path=False, highlight=False)
    return _console


def use_terminal(console) -> None:
    """Make `console` the one `terminal()` returns (the demo prints its steps and bars to stdout), and the one the
    root logger's rich handler writes to, so log lines keep printing above the bars."""
    import logging

    from rich.logging import RichHandler

    global _console
    _console = console
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RichHandler):
            handler.console = console


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; when `enabled`, draws a transient bar on stderr if it is a terminal, else writes
    a line there at the start, at least every `TICK_S` seconds of progress and at the end, each with the
    count done and an estimate of the time left."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    if not terminal().is_terminal:
        lines = ProgressLines(total, description, sys.stderr)
        yield lines.advance
        lines.finish()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = terminal()
    with Progress("[progress.description]{task.description}", BarColumn(bar_width=bar_width(console, 40)),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def bar_width(console, other_columns: int) -> int:
    """A bar's width that leaves `other_columns` characters of its line to the other columns: at 80 columns a
    fixed 40-character bar squeezed the text beside it to `━╸━ 0:0…`."""
    return max(10, min(40, console.width - other_columns))


class ProgressLines:
    """`advance(n)` writes "[HH:MM:SS] description done/total  elapsed, about S s left" to `out` when `tick_s`
    seconds have passed since its last line (a rich bar draws nothing useful where output is not a terminal)."""

    def __init__(self, total: int, description: str, out: TextIO, tick_s: float = TICK_S,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.description, self.out, self.tick_s, self.clock = total, description, out, tick_s, clock
        self.done = 0
        self.start = self.last = clock()
        self._line(f"{description} {total:,} to do")

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.tick_s and self.done < self.total:
            elapsed = now - self.start
            left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            self._line(f"{self.description} {self.done:,}/{self.total:,}  {elapsed:.0f} s, about {left:.0f} s left")
            self.last = now

    def finish(self) -> None:
        self._line(f"{self.description} {self.done:,}/{self.total:,} done in {self.clock() - self.start:.0f} s")

    def _line(self, text: str) -> None:
        self.out.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.out.flush()
