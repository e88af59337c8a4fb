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


@contextlib.contextmanager
def stderr_silenced():
    if os.environ.get("KERASLLM_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
