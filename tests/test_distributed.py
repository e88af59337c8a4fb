"""Training under tf.distribute: two logical CPU devices and two worker
processes on 127.0.0.1 give the same model as one device with the same
global batch; only the chief writes; the Keras workarounds are still needed;
configuration mistakes are one-line errors."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, cli_in_process, run_cli
from kerasllm.training.strategy import local_worker_addresses

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_distributed")

TRAIN = [sys.executable, "-c", "from kerasllm.cli.main import main; main()", "train", "--quiet"]


def _final_weights(run_dir: Path) -> list:
    from kerasllm.loaded_run import load_run

    latest = (run_dir / "checkpoints/latest").read_text().strip()
    lm = load_run(str(run_dir))
    lm.model.load_weights(str(run_dir / "checkpoints" / latest / "weights.weights.h5"))
    return [w.numpy() for w in lm.model.weights]


def _val_loss(stdout: str) -> float:
    return float(re.findall(r"Validation Loss: ([0-9.]+)", stdout)[-1])


def _assert_close(a, b, atol):
    assert len(a) == len(b)
    worst = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
    assert worst < atol, worst


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """The reference: the tiny GPT on one device, 12 steps."""
    tmp = tmp_path_factory.mktemp("one_device")
    config = tmp / "tiny.yaml"
    config.write_text((ROOT / "configs/tiny-char.yaml").read_text())
    result = cli_in_process("train", "--config", config, "--set", "train.max_steps=12", "--run-dir", tmp / "run", "--quiet")
    assert result.code == 0, result.err
    return config, tmp / "run", result.out


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(one_device, tmp_path):
    config, reference, _ = one_device
    result = run_cli("train", "--config", str(config), "--set", "train.max_steps=12", "--set", "train.strategy=mirrored",
                     "--set", "train.cpu_devices=2", "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "2 replica(s)" in result.stdout
    # Same global batch (16 = 2 x 8), same seed, same batches: the same
    # validation loss and weights up to float rounding in the gradient
    # all-reduce (which Adam's normalised steps carry into the weights).
    assert abs(_val_loss(result.stdout) - _val_loss(one_device[2])) < 2e-3, (result.stdout, one_device[2])
    _assert_close(_final_weights(tmp_path / "run"), _final_weights(reference), atol=5e-3)


def _start_workers(config, run_dir, tmp, *extra, n=2):
    workers = local_worker_addresses(n)
    env = {**os.environ, "TMPDIR": str(tmp / "tmp")}
    (tmp / "tmp").mkdir(exist_ok=True)
    return [
        subprocess.Popen(TRAIN + ["--config", str(config), "--run-dir", str(run_dir), "--workers", workers,
                                  "--worker-index", str(i), *extra],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]


def _finish(procs, timeout=600):
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        outs.append((proc.returncode, out, err))
    return outs


@pytest.mark.slow
def test_two_workers_train_in_sync_and_only_the_chief_writes(one_device, tmp_path):
    config, reference, _ = one_device
    run_dir = tmp_path / "run"
    results = _finish(_start_workers(config, run_dir, tmp_path, "--set", "train.max_steps=12",
                                     "--set", "train.steps_per_execution=4"))
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "2 replica(s)" in out and "Done: reached 12 steps" in out
        assert "Running 1 step per execution instead of 4" in out
        assert "Input: each worker keeps its share of every global batch (DATA sharding)" in out
    digests = [re.search(r"worker (\d): weights sha256 (\w+)", out).groups() for _, out, _ in results]
    assert sorted(d[0] for d in digests) == ["0", "1"] and digests[0][1] == digests[1][1]  # in sync
    # Only the chief wrote: one run directory, and the other worker's
    # temporary directory is gone.
    assert (run_dir / "checkpoints/latest").is_file() and list((run_dir / "logs").rglob("events.*"))
    assert "-" * 40 in results[0][1] and "-" * 40 not in results[1][1]  # samples: chief only
    assert list((tmp_path / "tmp").iterdir()) == []
    # The same global batch split over two workers trains the same model.
    assert abs(_val_loss(results[0][1]) - _val_loss(one_device[2])) < 2e-3, (results[0][1], one_device[2])
    _assert_close(_final_weights(run_dir), _final_weights(reference), atol=5e-3)


@pytest.mark.slow
def test_workers_with_different_configs_are_refused(one_device, tmp_path):
    config, _, _ = one_device
    workers = local_worker_addresses(2)
    procs = [
        subprocess.Popen(TRAIN + ["--config", str(config), "--run-dir", str(tmp_path / f"run{i}"), "--workers", workers,
                                  "--worker-index", str(i), "--set", f"train.learning_rate={0.001 * (i + 1)}"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for code, _, err in _finish(procs, timeout=300):
        assert code == 2 and "the workers do not have the same config and tokenizer" in err, err[-2000:]


@pytest.mark.slow
def test_keras_still_needs_the_multi_worker_fixes(tmp_path):
    """Without kerasllm.compat.apply_distribution_fixes, Keras' fit fails
    under MultiWorkerMirroredStrategy (keras-team/keras#20585); with them it
    trains. When this test fails on the first assertion, Keras has fixed it
    and the module can go."""

    def run(mode):
        cluster = {"worker": local_worker_addresses(2).split(",")}
        procs = [
            subprocess.Popen([sys.executable, str(ROOT / "tests/multi_worker_probe.py"), mode], cwd=ROOT,
                             env={**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)
        ]
        return [json.loads(out.strip().splitlines()[-1]) for _, out, _ in _finish(procs, timeout=300)]

    assert not any(r["ok"] for r in run("plain")), "Keras fit works under MWMS now: remove the workaround"
    fixed = run("fixed")
    assert all(r["ok"] for r in fixed) and fixed[0]["loss"] == fixed[1]["loss"]


def test_symbolic_build_no_longer_reads_the_training_data():
    """Keras' symbolic build takes a batch from the training data under any
    strategy; with the fix it reads the element spec and the data is
    iterated once."""
    import keras
    import tensorflow as tf

    from kerasllm.compat import apply_distribution_fixes

    apply_distribution_fixes()
    starts = []

    def batches():
        starts.append(1)
        while True:
            yield np.ones((4, 3), "float32"), np.ones((4, 1), "float32")

    data = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None, 1], tf.float32)))
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    assert len(starts) == 1


@pytest.mark.parametrize("args, message", [
    (["--workers", "127.0.0.1:1"], "--workers and --worker-index go together"),
    (["--workers", "127.0.0.1:1,nohost", "--worker-index", "0"], "'nohost' is not host:port"),
    (["--workers", "127.0.0.1:1", "--worker-index", "3"], "--worker-index 3: must be in 0..0"),
    (["--set", "train.strategy=multi_worker"], "multi_worker needs the cluster in TF_CONFIG"),
    (["--set", "train.strategy=tpu"], "train.tpu: name the TPU"),
    (["--set", "train.strategy=tpu", "--set", "train.tpu=local"], "train.tpu: no TPU reachable at 'local'"),
    (["--set", "train.strategy=multi_worker", "--set", "train.time_limit_minutes=5"], "not with multi_worker"),
])
@pytest.mark.slow
def test_distribution_mistakes_are_one_line_errors(one_device, tmp_path, args, message):
    config, _, _ = one_device
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run(TRAIN + ["--config", str(config), "--run-dir", str(tmp_path / "run"), *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()



@pytest.mark.slow
def test_a_lost_worker_stops_the_other_and_both_resume_together(one_device, tmp_path):
    """Killing a worker mid-run makes the other stop with one clear line
    (not a hang); launching both again resumes from the chief's newest
    checkpoint (the other worker takes the chief's tokenizer and counts)."""
    config, _, _ = one_device
    run_dir = tmp_path / "run"
    procs = _start_workers(config, run_dir, tmp_path, "--set", "train.steps_per_epoch=2000",
                           "--set", "train.worker_timeout_seconds=30", "--set", "train.num_samples=0")
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints/latest").is_file():
        assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].communicate()[1][-3000:]
        time.sleep(0.2)
    workers = procs[1].args[procs[1].args.index("--workers") + 1].split(",")
    procs[1].kill()
    killed_at = time.monotonic()
    code, _, err = _finish(procs[:1], timeout=120)[0]
    procs[1].wait()
    assert time.monotonic() - killed_at < 60
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"error: training stopped: lost worker 1 at {workers[1]}"), err[-3000:]
    assert "start every worker again with the same command to resume" in err and "Traceback" not in err
    step = int(re.search(r"(\d+)$", (run_dir / "checkpoints/latest").read_text().strip()).group(1))
    results = _finish(_start_workers(config, run_dir, tmp_path, "--set", f"train.max_steps={step + 6}"))
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert f"Resuming {run_dir} at step {step}" in out and f"Done: reached {step + 6} steps" in out
    digests = {re.search(r"weights sha256 (\w+)", out).group(1) for _, out, _ in results}
    assert len(digests) == 1
    # The killed worker's temporary run directory was cleared at the restart.
    assert list((tmp_path / "tmp").glob("kerasllm-worker-*")) == []


@pytest.mark.slow
def test_a_worker_whose_peer_never_starts_gives_up_naming_it(one_device, tmp_path):
    config, _, _ = one_device
    workers = local_worker_addresses(2)
    started = time.monotonic()
    result = subprocess.run(TRAIN + ["--config", str(config), "--run-dir", str(tmp_path / "run"), "--workers", workers,
                                     "--worker-index", "0", "--set", "train.worker_timeout_seconds=5"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60
    peer = workers.split(",")[1]
    assert result.returncode != 0 and (
        f"error: the cluster did not form within train.worker_timeout_seconds=5 s: no answer from {peer};"
        in result.stderr), result.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def _prepared(tmp_path, shard_mb=0.25):
    from kerasllm import config as config_lib
    from kerasllm.data.prepare import prepare

    counts = prepare(config_lib.load(ROOT / "configs/tiny-char.yaml"), tmp_path / "prepared", shard_mb=shard_mb)
    return tmp_path / "prepared", counts


@pytest.mark.slow
def test_prepared_shards_are_split_by_file_across_workers(tmp_path):
    """Several workers on `prepare`d TFRecord shards: worker i reads only
    files i, i+N, ...; together one pass of each covers every block but at
    most one per worker (cut at its files' end), and resuming a worker skips
    exactly its own batches."""
    import tensorflow as tf

    from kerasllm import config as config_lib
    from kerasllm.data import pipelines, shards
    from kerasllm.run_dir import RunDir
    from kerasllm.training.tasks import LanguageModelTask

    prepared, counts = _prepared(tmp_path)
    assert counts["shards"]["train"] >= 4
    config = config_lib.load(ROOT / "configs/tiny-char.yaml", [f"data.prepared={prepared}", "data.shuffle_buffer=1"])
    (tmp_path / "run").mkdir()
    task = LanguageModelTask(config, RunDir(tmp_path / "run"))
    files = shards.shard_files(prepared, "train")

    def inputs(ds, n):
        return [x for x, _ in ds.take(n).as_numpy_iterator()]

    per_worker = []
    for i in range(2):
        mine = pipelines.count(pipelines.token_blocks(shards.read_chunks(prepared, "train", files[i::2]), 32))
        per_worker.append(mine)
        batches = inputs(task.worker_batches(i, 2, 8), mine // 8)
        # In order (no shuffle here): the blocks of this worker's files only.
        expected = [b[:-1] for b in pipelines.token_blocks(shards.read_chunks(prepared, "train", files[i::2]), 32)
                    .take(mine // 8 * 8).as_numpy_iterator()]
        assert np.array_equal(np.concatenate(batches), np.stack(expected))
        resumed = inputs(task.worker_batches(i, 2, 8, skip=10), 5)
        assert all(np.array_equal(a, b) for a, b in zip(resumed, batches[10:15]))
    assert task.counts["train"] - 2 <= sum(per_worker) <= task.counts["train"]
    assert tf.data.experimental.AutoShardPolicy.DATA == task.train_batches(0).options().experimental_distribute.auto_shard_policy


@pytest.mark.slow
def test_two_workers_train_on_prepared_shards_by_file(tmp_path):
    prepared, _ = _prepared(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text((ROOT / "configs/tiny-char.yaml").read_text())
    results = _finish(_start_workers(config, tmp_path / "run", tmp_path, "--set", f"data.prepared={prepared}",
                                     "--set", "train.max_steps=12"))
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "Input: each worker reads its own shard files (FILE sharding)" in out and "Done: reached 12 steps" in out
    assert len({re.search(r"weights sha256 (\w+)", out).group(1) for _, out, _ in results}) == 1
