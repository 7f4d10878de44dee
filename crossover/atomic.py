"""Atomic file writes: write beside the target, fsync, rename. A reader sees the old file or the new one, whole."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: str | Path, write) -> None:
    """Create `path` through `write(tmp_path)`; a run killed midway leaves the previous file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two may write the same file
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_file(path: str | Path) -> None:
    """Wait until the file's bytes are on disk: before a rename makes it the real one, so a crash cannot leave a
    renamed but empty file."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_json_atomic(path: str | Path, obj) -> None:
    write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2)))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    write_atomic(path, lambda p: p.write_bytes(data))
