"""The background runner: each task at its own interval; a failing task is retried and never stops the others."""

import time

from deepshelf.engine.periodic import Periodic


def test_tasks_run_at_their_intervals_and_a_failure_stops_nothing():
    calls = {"fast": 0, "slow": 0, "broken": 0}

    def broken():
        calls["broken"] += 1
        raise RuntimeError("the database restarted")

    runner = Periodic("test", [(lambda: 0.0, lambda: calls.__setitem__("fast", calls["fast"] + 1)),
                               (lambda: 0.0, broken),
                               (lambda: 3600.0, lambda: calls.__setitem__("slow", calls["slow"] + 1))], tick_s=0.01)
    runner.start()
    deadline = time.monotonic() + 10
    while (calls["fast"] < 5 or calls["broken"] < 5) and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert calls["fast"] >= 5 and calls["broken"] >= 5  # the broken task is tried again, the others go on
    assert calls["slow"] == 0  # not due within its hour
    stopped = dict(calls)
    time.sleep(0.05)
    assert calls == stopped  # stop() ends the thread
