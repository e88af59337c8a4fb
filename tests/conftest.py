"""Shared fixtures: the data directory, tiny configs, and running the CLI."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read datasets where the library does, from $KERASLLM_DATA_DIR; when it
# is not set, from ../shared/data if that exists, else from the library's
# default ~/.cache/kerasllm, where a registered dataset is downloaded the first
# time a test needs it (CONTRIBUTING.md, Data for tests).
if "KERASLLM_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["KERASLLM_DATA_DIR"] = str(SHARED_DATA)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def data_dir() -> Path:
    """The data directory the library reads: $KERASLLM_DATA_DIR, else ~/.cache/kerasllm."""
    from kerasllm.data import registry

    return registry.data_dir()


def dataset_file(name: str, split: str = "train") -> Path:
    """A registered dataset's file in data_dir(), downloaded there first if it
    is missing (as a training run would)."""
    from kerasllm.data import registry

    return registry.resolve(name, split)


@pytest.fixture
def tiny_config(tmp_path):
    """Writes configs/tiny-char.yaml with changes to a temporary file."""

    def make(changes: dict | None = None, name: str = "tiny.yaml") -> Path:
        values = yaml.safe_load((ROOT / "configs" / "tiny-char.yaml").read_text())
        for key, value in (changes or {}).items():
            node = values
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(values))
        return path

    return make


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs the installed `kerasllm` entry point in a fresh process."""
    exe = Path(sys.executable).with_name("kerasllm")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kerasllm.cli.main"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@dataclass
class Result:
    code: int
    out: str
    err: str


def exit_code(e: SystemExit) -> int:
    """The process exit status a SystemExit stands for."""
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


def cli_in_process(*args: str) -> "Result":
    """Runs the CLI in this process and returns what it printed; for
    fixtures of any scope (the `cli` fixture needs a test's capsys)."""
    from kerasllm.cli.main import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = exit_code(e)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(capsys):
    """Runs the CLI in this process (fast: TensorFlow is imported once)."""
    from kerasllm.cli.main import main

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = exit_code(e)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny run (configs/tiny-char.yaml), shared read-only by many tests."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    out = cli_in_process("train", "--config", ROOT / "configs" / "tiny-char.yaml", "--run-dir", run_dir, "--quiet")
    assert out.code == 0, out.err
    return run_dir, out.out
