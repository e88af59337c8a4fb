"""Keeping native libraries' log lines off the terminal.

TensorFlow's start-up messages and SentencePiece's trainer log go straight to
file descriptor 2 from C++, past Python's logging, so the only way to hide
them is to point that descriptor elsewhere for a moment. `--verbose` (which
sets KERASLLM_VERBOSE=1) keeps them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional

_saved_fd: Optional[int] = None  # the real stderr while descriptor 2 is silenced


def saved_stderr_fd() -> Optional[int]:
    """The descriptor of the real stderr while `stderr_silenced` is active
    (progress lines still go there), else None."""
    return _saved_fd


@contextlib.contextmanager
def stderr_silenced():
    global _saved_fd
    if os.environ.get("KERASLLM_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    outer = _saved_fd
    _saved_fd = saved if outer is None else outer  # nested: the real one is the outer's
    try:
        yield
    finally:
        _saved_fd = outer
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
