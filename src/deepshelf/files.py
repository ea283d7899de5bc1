"""Replacing files and folders so that a reader sees the old version or the new one, never none or half of one.

Outside the layers (like `errors`): any part of deepshelf that writes what another process may be reading uses it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed over `target` when the block ends without error,
    removed when it raises. The rename is atomic (same folder), so readers of `target` never see a partial file.

        with atomic_path(output) as tmp:
            table.write_csv(tmp)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _remove(tmp)  # left behind by a killed process with the same pid
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def replace_dir(new: str | Path, target: str | Path) -> None:
    """Move folder `new` to `target`, replacing what is there, and delete the old contents.

    `target` never stops existing for a reader: on Linux the two are swapped in one step
    (renameat2 RENAME_EXCHANGE); where that is unavailable, the old folder is renamed away and `new` renamed in
    (two steps, with a moment where `target` is missing). `new` must be on the same filesystem as `target`.
    """
    new, target = Path(new), Path(target)
    if not os.path.lexists(target):
        try:
            os.rename(new, target)
            return
        except OSError as exc:  # someone created `target` meanwhile: replace it as below
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if _exchange(new, target):
        _remove(new)  # `new` now names the old contents
        return
    trash = target.with_name(f".{target.name}.old-{time.time_ns()}")
    os.rename(target, trash)
    os.rename(new, target)
    _remove(trash)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot (no renameat2, or a filesystem
    without RENAME_EXCHANGE)."""
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _renameat2.restype = ctypes.c_int
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        log.debug("renameat2(RENAME_EXCHANGE) unsupported here (%s): replacing %s in two steps", os.strerror(err), b)
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    """Delete a file, symlink (not its target) or folder tree, if present."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
