"""Data-parallel overhead on this machine, and the gradient traffic a real
cluster would carry.

    python bench/scaling.py [--steps 60] [--config configs/shakespeare-char.yaml]

Trains the same config (same global batch) three ways, through the CLI:
one device; `mirrored` over 2 logical CPU devices; two `multi_worker`
processes on 127.0.0.1. All three share the same 2 cores, so the ratios
measure the cost of replication and all-reduce, not a speed-up. Tokens/s is
the median of the trainer's `step/tokens_per_second` TensorBoard scalars
after the first (tracing) interval.

Then, for every config in configs/, the gradient bytes one step all-reduces
(trainable parameters x 4 bytes, float32 gradients; character vocabularies
are taken as 256 symbols) and what a ring all-reduce sends per worker
(2 (N-1)/N times that) for 2 and 8 workers. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import config_entry, emit  # noqa: E402  (bench/record.py)

TRAIN = [sys.executable, "-c", "from kerasllm.cli.main import main; main()", "train", "--quiet"]


def _tokens_per_second(run_dir: Path) -> float:
    import tensorflow as tf

    values = []
    for path in sorted((run_dir / "logs" / "train").glob("events.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "step/tokens_per_second":
                    values.append(float(tf.make_ndarray(value.tensor)))
    if len(values) < 2:
        raise RuntimeError(f"{run_dir}: too few tokens/s scalars; raise --steps")
    return statistics.median(values[1:])


def _train(config: str, run_dir: Path, settings: list, workers: int = 0) -> float:
    args = TRAIN + ["--config", config, "--run-dir", str(run_dir)] + [x for s in settings for x in ("--set", s)]
    if not workers:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return _tokens_per_second(run_dir)
    from kerasllm.training.strategy import local_worker_addresses

    addresses = local_worker_addresses(workers)
    procs = [subprocess.Popen(args + ["--workers", addresses, "--worker-index", str(i)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(workers)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(err[-2000:])
    return _tokens_per_second(run_dir)


def _gradient_bytes(config_path: Path) -> dict:
    from kerasllm import config as config_lib
    from kerasllm.models import build_translator
    from kerasllm.tasks import build_model

    config = config_lib.load(config_path)
    vocabulary = config.tokenizer.vocab_size if config.tokenizer.kind in ("wordpiece", "sentencepiece") else 256
    if config.model.kind == "seq2seq":

        class _Vocabulary:
            vocabulary_size = vocabulary

        model = build_translator(config.model, _Vocabulary, _Vocabulary)
    else:
        model = build_model(config.model, vocabulary)
    import numpy as np

    if config.model.kind == "seq2seq":
        ids, mask = np.zeros((1, 2), "int32"), np.ones((1, 2), bool)
        model({"encoder_token_ids": ids, "encoder_padding_mask": mask, "decoder_token_ids": ids,
               "decoder_padding_mask": mask})
    else:
        model(np.zeros((1, 2), "int32"))
    parameters = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    size = parameters * 4
    return {"parameters": parameters, "gradient_mb_per_step": round(size / 1e6, 2),
            "ring_mb_sent_per_worker": {str(n): round(2 * (n - 1) / n * size / 1e6, 2) for n in (2, 8)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--config", default=str(ROOT / "configs/shakespeare-char.yaml"))
    args = parser.parse_args()
    settings = [f"train.max_steps={args.steps}", f"train.steps_per_epoch={args.steps}", "train.log_every_steps=10",
                "train.save_every_steps=100000", "train.num_samples=0"]
    mirrored_settings = settings + ["train.strategy=mirrored", "train.cpu_devices=2"]
    from kerasllm import config as config_lib

    # The three runs' configs; the two workers also get --workers and --worker-index.
    configs = {name: config_entry(config_lib.load(args.config, s), s)
               for name, s in (("one_device", settings), ("mirrored_2_logical_cpus", mirrored_settings),
                               ("multi_worker_2_processes", settings))}
    work = Path(tempfile.mkdtemp(prefix="kerasllm-scaling-"))
    one = _train(args.config, work / "one", settings)
    mirrored = _train(args.config, work / "mirrored", mirrored_settings)
    workers = _train(args.config, work / "workers", settings, workers=2)
    traffic = {p.name: _gradient_bytes(p) for p in sorted((ROOT / "configs").glob("*.yaml"))}
    emit({
        "benchmark": "scaling",
        "config": os.path.relpath(args.config, ROOT),
        "steps": args.steps,
        "tokens_per_s": {"one_device": round(one), "mirrored_2_logical_cpus": round(mirrored),
                         "multi_worker_2_processes": round(workers)},
        "relative_to_one_device": {"mirrored_2_logical_cpus": round(mirrored / one, 3),
                                   "multi_worker_2_processes": round(workers / one, 3)},
        "gradient_traffic": traffic,
    }, configs)


if __name__ == "__main__":
    main()
