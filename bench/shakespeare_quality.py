"""Quality within a wall-clock budget: trains configs/shakespeare-char.yaml
as shipped, stopped at 10 minutes (train.time_limit_minutes), through the real CLI and reports the
best character-level validation loss (nats per character) and its curve.

    python bench/shakespeare_quality.py [--minutes 10] [--set KEY=VALUE ...]

Prints one JSON line. The curve comes from the run's TensorBoard event files
(validation `epoch_loss` with wall-clock times); `best_at_minutes` is the best
validation loss reached by 2, 5 and 10 minutes after training started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from record import config_entry, emit  # noqa: E402  (bench/record.py)


def validation_curve(logdir: Path) -> list:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir / "validation"), size_guidance={"tensors": 0})
    acc.Reload()
    import tensorflow as tf

    return [(e.wall_time, e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors("epoch_loss")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--config", default=str(ROOT / "configs/shakespeare-char.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--run-dir", default=str(ROOT / "bench/out/shakespeare-quality"))
    args = parser.parse_args()
    env = dict(os.environ)
    if "KERASLLM_DATA_DIR" not in env and (ROOT.parent / "shared/data").is_dir():
        env["KERASLLM_DATA_DIR"] = str(ROOT.parent / "shared/data")
    shutil.rmtree(args.run_dir, ignore_errors=True)
    exe = Path(sys.executable).with_name("kerasllm")
    overrides = [f"train.time_limit_minutes={args.minutes}", *args.overrides]
    from kerasllm import config as config_lib

    config = config_lib.load(args.config, overrides)  # what the CLI will train, for the record
    cmd = [str(exe), "train", "--config", args.config, "--run-dir", args.run_dir, "--quiet"]
    for override in overrides:
        cmd += ["--set", override]
    start = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - start
    if out.returncode != 0:
        sys.exit(f"training failed: {out.stderr.strip().splitlines()[-1:]}")
    logdir = Path(args.run_dir) / "logs"
    curve = validation_curve(logdir)
    # Training starts right after the hparams summary is written (the time
    # limit is counted from there too).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    root.Reload()
    begin = min(e.wall_time for e in root.Tensors("_hparams_/session_start_info"))
    points = [{"minutes": round((w - begin) / 60, 2), "epoch": e + 1, "val_loss": round(v, 4)} for w, e, v in curve]
    best = {}
    for mark in (2, 5, 10):
        reached = [p["val_loss"] for p in points if p["minutes"] <= mark + 0.05]
        best[str(mark)] = min(reached) if reached else None
    emit(
        {
            "benchmark": "shakespeare_quality",
            "config": os.path.relpath(args.config, ROOT),
            "overrides": args.overrides,
            "minutes": args.minutes,
            "best_val_loss": min(p["val_loss"] for p in points),
            "best_at_minutes": best,
            "epochs": len(points),
            "curve": points,
            "process_seconds": round(wall, 1),
            "target": 1.65,
        },
        {"run": config_entry(config, overrides)},
    )


if __name__ == "__main__":
    main()
