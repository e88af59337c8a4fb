"""Atomic file writes: write aside, then rename into place.

A reader (a resumed run, a TF Serving model watcher) sees either the old
file or the complete new one, never a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` to `path` so that a reader never sees a partial file.

    Example:
        atomic_write_bytes(Path("picture.png"), png)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def temporary_sibling(path: Path) -> Path:
    """A hidden name next to `path` for writing before the rename."""
    path = Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")
