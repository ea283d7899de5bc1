"""A background thread that runs a few tasks, each at its own interval, until stopped.

The served run's duties (live trending, watching the run path) and the experiments' (re-reading definitions,
their runs' trending) run this way; a task that fails (a database restart, ...) is logged and tried again at its
next turn, and never ends the thread or skips the other tasks. A store outage is logged as one line (`OutageLog`),
a bug with its traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from deepshelf.storage import is_outage

log = logging.getLogger(__name__)

Task = tuple[Callable[[], float], Callable[[], None]]  # (its interval in seconds, read at each turn; the work)


def _name(work) -> str:
    return getattr(work, "__name__", str(work))


class OutageLog:
    """One line per store outage in background work, not a stack trace per try: the first failure, then one line
    every `every_s` while it lasts (with how many tries failed), and one when the work succeeds again. Failures
    that are not the store's (`is_outage`: a bug) are logged by the caller, with their traceback."""

    def __init__(self, what: str, every_s: float = 60.0):
        self.what, self.every_s = what, every_s
        self._failures = 0
        self._said_at = 0.0

    def failed(self, exc: BaseException) -> None:
        if not is_outage(exc):
            return
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1 or now - self._said_at >= self.every_s:
            self._said_at = now
            more = f" ({self._failures} tries so far)" if self._failures > 1 else ""
            log.warning("%s: the store is unavailable; trying again%s: %s", self.what, more,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def ok(self) -> None:
        if self._failures:
            log.warning("%s: the store answers again (after %d failed tries)", self.what, self._failures)
            self._failures = 0


class Periodic:
    def __init__(self, name: str, tasks: Sequence[Task], tick_s: float = 0.2):
        self.name, self.tasks, self.tick_s = name, list(tasks), tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outages = [OutageLog(f"{name}: {_name(work)}") for _, work in self.tasks]

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
                except Exception as exc:
                    if not is_outage(exc):  # a bug: its traceback
                        log.exception("%s: %s failed; trying again later", self.name, _name(work))
                    self._outages[i].failed(exc)
                else:
                    self._outages[i].ok()
