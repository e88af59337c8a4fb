"""tf.data service: a dispatcher and two workers, started with the CLI on
127.0.0.1, tokenize the training text of a run."""

from __future__ import annotations

import collections
import math
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, cli_in_process, dataset_file, run_cli

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_data_service")

CLI = [sys.executable, "-c", "from kerasllm.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()[1][-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


@pytest.fixture(scope="module")
def service():
    """grpc://127.0.0.1:P of a dispatcher with two registered workers."""
    port = _free_port()
    processes = []
    try:
        dispatcher = subprocess.Popen(CLI + ["data-service", "dispatcher", "--port", str(port)], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(dispatcher)
        _wait_listening(port, dispatcher)
        for _ in range(2):
            worker_port = _free_port()
            worker = subprocess.Popen(
                CLI + ["data-service", "worker", "--dispatcher", f"127.0.0.1:{port}", "--port", str(worker_port),
                       "--host", "127.0.0.1"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            processes.append(worker)
            _wait_listening(worker_port, worker)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Tiny Shakespeare cut into 6 files: the service's splits."""
    text = dataset_file("tinyshakespeare").read_text(encoding="utf-8")[:300_000]
    out = tmp_path_factory.mktemp("corpus")
    size = len(text) // 6
    for i in range(6):
        (out / f"part{i}.txt").write_text(text[i * size:(i + 1) * size], encoding="utf-8")
    return out


def _config(corpus_dir: Path, **train):
    from kerasllm import config as config_lib

    overrides = [f"data.source={corpus_dir}"] + [f"train.{k}={v}" for k, v in train.items()]
    return config_lib.load(ROOT / "configs" / "tiny-char.yaml", overrides)


@pytest.mark.slow
def test_every_training_chunk_arrives_once_per_pass(service, corpus_dir, tmp_path):
    from kerasllm.data.corpus import open_corpus

    local = open_corpus(_config(corpus_dir), tmp_path / "tokenizer")
    served = open_corpus(_config(corpus_dir, data_service=service), tmp_path / "tokenizer", for_training=True)
    assert served.service == service and not served.cacheable

    def chunks(ds):
        return collections.Counter(c.tobytes() for c in ds.as_numpy_iterator())

    expected = chunks(local.token_chunks("train"))
    assert sum(expected.values()) > 6  # several chunks per file: a real test of the split
    stream = served.token_chunks("train")
    for _ in range(2):  # each pass is a new job: once per pass, every pass
        assert chunks(stream) == expected
    # Validation text is read locally, unchanged.
    assert chunks(served.token_chunks("validation")) == chunks(local.token_chunks("validation"))


@pytest.mark.slow
def test_training_run_reads_through_the_service(service, corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = cli_in_process("train", "--quiet", "--config", ROOT / "configs" / "tiny-char.yaml", "--run-dir", run_dir,
                     "--set", f"data.source={corpus_dir}", "--set", f"train.data_service={service}",
                     "--set", "train.num_samples=0")
    assert result.code == 0, result.err[-3000:]
    assert f"tokenized by the tf.data service at {service}" in result.out
    losses = [float(v) for v in re.findall(r"Validation Loss: ([0-9.]+)", result.out)]
    assert len(losses) == 2 and losses[-1] < losses[0] < math.log(65)
    # Resuming with the service starts a fresh pass and finishes the run.
    again = cli_in_process("train", "--quiet", "--config", ROOT / "configs" / "tiny-char.yaml", "--run-dir", run_dir,
                    "--set", f"data.source={corpus_dir}", "--set", f"train.data_service={service}",
                    "--set", "train.epochs=3", "--set", "train.num_samples=0")
    assert again.code == 0, again.err[-3000:]
    assert "Resuming" in again.out and "reached 60 steps" in again.out


@pytest.mark.parametrize("changes, message", [
    (["train.data_service=127.0.0.1:5050"], "is not a dispatcher address like grpc://host:5050"),
    (["train.data_service=grpc://127.0.0.1:1"], "no dispatcher answers at 127.0.0.1:1"),
    (["train.data_service=grpc://127.0.0.1:1", "train.strategy=multi_worker"], "not with train.strategy multi_worker"),
    (["train.data_service=grpc://127.0.0.1:1", "data.source=CSV", "data.format=csv"], "CSV records are read in Python"),
])
def test_service_mistakes_are_one_line(changes, message, corpus_dir, tmp_path, cli):
    (tmp_path / "a.csv").write_text("text\nhello there\n")
    changes = [c.replace("CSV", str(tmp_path / "a.csv")) for c in changes]
    args = ["train", "--config", str(ROOT / "configs" / "tiny-char.yaml"), "--run-dir", str(tmp_path / "run"),
            "--set", f"data.source={corpus_dir}"]
    for change in changes:
        args += ["--set", change]
    result = cli(*args)
    assert result.code == 2, result.err[-2000:]
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_busy_port_is_refused(service):
    port = service.rsplit(":", 1)[1]
    result = run_cli("data-service", "dispatcher", "--port", port, timeout=120)
    assert result.returncode == 2 and f"--port {port}: cannot listen there" in result.stderr
