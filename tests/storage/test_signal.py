"""The host-wide change signal: shared by every opener of one store, moved by each commit of events or an erasure,
and read by a separate process without a store round trip."""

from __future__ import annotations

import subprocess
import sys

from deepshelf.storage.connect import open_store
from deepshelf.storage.records import Event
from deepshelf.storage.signal import ChangeSignal


def test_two_openers_of_one_file_share_the_counter(tmp_path):
    a, b = ChangeSignal("x", file=tmp_path / "c"), ChangeSignal("x", file=tmp_path / "c")
    assert a.value() == b.value() == 0
    a.bump()
    b.bump()
    assert a.value() == b.value() == 2
    assert ChangeSignal("x", file=tmp_path / "other").value() == 0


def test_event_commits_and_erasures_move_every_processes_view(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    store = open_store(url)
    seen = store.changes.value()
    store.add_events([Event("u1", "i1", "view", 1.0, None, None)])
    assert store.changes.value() == seen + 1
    # another process opening the same database reads the same counter
    other = subprocess.run([sys.executable, "-c", "from deepshelf.storage.connect import open_store; "
                            f"print(open_store({url!r}).changes.value())"], capture_output=True, text=True, check=True)
    assert int(other.stdout) == seen + 1
    store.erase_user("u1")
    assert store.changes.value() == seen + 2
    store.upsert_items([])  # catalogue writes are not events
    assert store.changes.value() == seen + 2
