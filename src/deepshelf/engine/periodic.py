"""A background thread that runs a few tasks, each at its own interval, until stopped.

The served run's duties (live trending, watching the run path) and the experiments' (re-reading definitions,
their runs' trending) run this way; a task that fails (a database restart, ...) is logged and tried again at its
next turn, and never ends the thread or skips the other tasks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

Task = tuple[Callable[[], float], Callable[[], None]]  # (its interval in seconds, read at each turn; the work)


class Periodic:
    def __init__(self, name: str, tasks: Sequence[Task], tick_s: float = 0.2):
        self.name, self.tasks, self.tick_s = name, list(tasks), tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        due = [time.monotonic() + interval() for interval, _ in self.tasks]
        while not self._stop.wait(self.tick_s):
            for i, (interval, work) in enumerate(self.tasks):
                now = time.monotonic()
                if now < due[i]:
                    continue
                due[i] = now + interval()
                try:
                    work()
                except Exception:
                    log.exception("%s: %s failed; trying again later", self.name, getattr(work, "__name__", work))
