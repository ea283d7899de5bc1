"""A host-wide signal that a store's events changed, read without a store round trip.

Each server process holds shoppers' histories in memory (engine/shoppers.py). Its own events drop their shoppers at
once; events stored by another process (another worker of `deepshelf serve --workers N`, a second server on the same
store, an import or a replay) must too, or a storefront whose click lands on one worker and whose next list lands on
another would answer from the history before the click. The store bumps an 8-byte counter in a small shared file
after every commit that adds or erases events; a process compares it with the value it last synchronised at before
it trusts a held history (a memory read), and reads the store's event log only when it moved.

An SQLite store keeps the file beside its database (as SQLite keeps its -wal and -shm files); a PostgreSQL one in
/dev/shm (memory) where there is one, else the temporary folder, named by its URL without the password, so every
process on this host that opens the same store shares it. Servers on other hosts see each other's events through the periodic poll of the event log.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
from pathlib import Path

_COUNTER = struct.Struct("<Q")


def _folder() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


class ChangeSignal:
    """The counter of one store's event commits on this host."""

    def __init__(self, identity: str, file: Path | None = None):
        self.path = file or _folder() / f"deepshelf-events-{hashlib.sha256(identity.encode()).hexdigest()[:24]}"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < _COUNTER.size:  # a new file (another process may extend it too: same size)
            os.ftruncate(self._fd, _COUNTER.size)
        self._map = mmap.mmap(self._fd, _COUNTER.size)

    def value(self) -> int:
        return _COUNTER.unpack_from(self._map)[0]

    def bump(self) -> None:
        """After a commit: under the file's lock, so two writers never leave one increment (a reader that synchronised
        between them would miss the second commit)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _COUNTER.pack_into(self._map, 0, (self.value() + 1) % (1 << 64))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            self._map.close()
            os.close(self._fd)
        except (OSError, ValueError):  # closed already
            pass
