"""Advisory file locks (flock) that let several processes share one study folder: the OS drops a lock when its
process dies, so a killed process never leaves work claimed."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def claim(lock_file: Path, wait: bool = False):
    """Yield True if this process holds `lock_file` exclusively (always, when wait=True), False if another does."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def held_elsewhere(lock_file: Path) -> bool:
    """Whether another process holds `lock_file`. Read-only: the file is never made, and a missing or unreadable
    one counts as held by no one."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if it was taken
    return False
