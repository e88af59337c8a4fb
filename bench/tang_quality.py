"""The Tang poems in bits per character, and what a 9,700-way softmax costs.

Quality (the default): trains configs/tang-poems-char.yaml, -sentencepiece
and -byte as shipped, each stopped at `--minutes` of training
(train.time_limit_minutes), through the real CLI; reports each one's
validation curve in bits per character (the validation losses logged during
training, on `train.validation_steps` batches, times the validation split's
tokens per character / ln 2), the best point, the full validation split's
bits per character of its best weights (`kerasllm evaluate`), and its
training tokens/s.

    python bench/tang_quality.py [--minutes 10] [--configs char,sentencepiece,byte] [--set KEY=VALUE ...]

Speed (`--speed`): training tokens/s of the tang-poems-char shape on the
Tang poems (9,7xx-character vocabulary) and on Tiny Shakespeare (65
characters), under each setting of `--variants`, in `--rounds` interleaved
rounds (medians reported); then where the extra time goes: forward and
backward of the output layer alone (hidden states times the tied embedding,
softmax cross-entropy) at both vocabulary sizes, the projection and the
softmax cross-entropy timed apart.

    python bench/tang_quality.py --speed [--steps 16] [--rounds 2] [--variants base,jit,untied,bf16]

Each mode prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]

from record import config_entry, emit  # noqa: E402  (bench/record.py)

CONFIGS = {name: ROOT / f"configs/tang-poems-{name}.yaml" for name in ("char", "sentencepiece", "byte")}
# Settings tried against the shipped ones (`base`) in --speed.
VARIANTS = {
    "base": [],
    "jit": ["train.jit_compile=true"],
    "untied": ["model.tie_embeddings=false"],
    "bf16": ["train.precision=mixed_bfloat16"],
    "spe1": ["train.steps_per_execution=1"],
    "seq256": ["model.seq_len=256", "train.batch_size=16"],  # the same tokens a step, longer attention
}


def _env() -> dict:
    env = dict(os.environ)
    if "KERASLLM_DATA_DIR" not in env and (ROOT.parent / "shared/data").is_dir():
        env["KERASLLM_DATA_DIR"] = str(ROOT.parent / "shared/data")
    return env


def _events(logdir: Path, tag: str) -> list:
    """The tensor events of one tag in one TensorBoard directory."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc.Tensors(tag) if tag in acc.Tags().get("tensors", []) else []


def _scalars(logdir: Path, tag: str) -> list:
    """(wall_time, step, value) of a scalar in one TensorBoard directory."""
    import tensorflow as tf

    return [(e.wall_time, e.step, float(tf.make_ndarray(e.tensor_proto))) for e in _events(logdir, tag)]


def quality(name: str, minutes: float, overrides: list, run_dir: Path) -> tuple[dict, object]:
    """Trains one config for `minutes`, evaluates its best weights; (result, config)."""
    from kerasllm import config as config_lib

    path = CONFIGS[name]
    sets = [f"train.time_limit_minutes={minutes}", *overrides]
    config = config_lib.load(path, sets)
    shutil.rmtree(run_dir, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("kerasllm"))
    cmd = [exe, "train", "--config", str(path), "--run-dir", str(run_dir), "--quiet"]
    start = time.time()
    out = subprocess.run(cmd + [w for s in sets for w in ("--set", s)], capture_output=True, text=True, env=_env())
    wall = time.time() - start
    if out.returncode != 0:
        sys.exit(f"{name}: training failed: {out.stderr.strip().splitlines()[-1:]}")
    evaluated = subprocess.run([exe, "evaluate", "--run", str(run_dir), "--quiet"], capture_output=True, text=True,
                               env=_env())
    if evaluated.returncode != 0:
        sys.exit(f"{name}: evaluate failed: {evaluated.stderr.strip().splitlines()[-1:]}")
    full = json.loads(evaluated.stdout.strip().splitlines()[-1])
    per_char = full["tokens"] / full["characters"] / math.log(2)  # nats/token -> bits/character
    logs = run_dir / "logs"
    # Training starts right after the hparams summary is written (the time limit counts from there too).
    begin = min((e.wall_time for e in _events(logs, "_hparams_/session_start_info")), default=None)
    curve = _scalars(logs / "validation", "epoch_loss")
    points = [{"minutes": round((w - begin) / 60, 2) if begin else None, "step": s,
               "val_bits_per_character": round(v * per_char, 4)} for w, s, v in curve]
    speeds = [v for _, _, v in _scalars(logs / "train", "step/tokens_per_second")]
    return {
        "config": os.path.relpath(path, ROOT),
        "vocabulary": _vocabulary_size(run_dir),
        "tokens_per_character": round(full["tokens"] / full["characters"], 4),
        "best_curve_bits_per_character": min((p["val_bits_per_character"] for p in points), default=None),
        "curve": points,
        "validation_bits_per_character": full["bits_per_character"],
        "validation_loss_per_token": full["loss"],
        "training_tokens_per_second": round(statistics.median(speeds)) if speeds else None,
        "training_characters_per_second": round(statistics.median(speeds) / (full["tokens"] / full["characters"]))
        if speeds else None,
        "process_seconds": round(wall, 1),
    }, config


def _vocabulary_size(run_dir: Path) -> int:
    from kerasllm.data.tokenizers import load_tokenizer

    return load_tokenizer(run_dir / "tokenizer").vocabulary_size


def speed(variants: list, steps: int, rounds: int) -> tuple[dict, dict]:
    """Tokens/s per (corpus, variant), medians over interleaved rounds."""
    from kerasllm import config as config_lib

    runs, configs = {}, {}
    for corpus in ("tang", "shakespeare"):
        for variant in variants:
            sets = list(VARIANTS[variant])
            if corpus == "shakespeare":
                sets += ["data.source=tinyshakespeare", "data.field=text", "data.document=file"]
            configs[f"{corpus}/{variant}"] = (config_lib.load(CONFIGS["char"], sets), sets)
    cache = {}
    for _ in range(rounds):
        for key, (config, _) in configs.items():
            runs.setdefault(key, []).append(_measure(config, steps, cache))
            print(json.dumps({key: runs[key][-1]}), file=sys.stderr, flush=True)
    table = {}
    for key, results in runs.items():
        table[key] = {"tokens_per_second": round(statistics.median(r["tokens_per_second"] for r in results)),
                      "step_ms": round(statistics.median(r["step_ms"] for r in results), 1),
                      "cpu_ms_per_step": round(statistics.median(r["cpu_ms_per_step"] for r in results), 1),
                      "rounds": [r["tokens_per_second"] for r in results], "vocabulary": results[0]["vocabulary"],
                      "parameters": results[0]["parameters"], "loss_after": results[0]["loss_after"]}
    return table, {key: config_entry(c, s) for key, (c, s) in configs.items()}


def _measure(config, steps: int, cache: dict) -> dict:
    """Median step time of `steps` training steps after a warm-up."""
    import tempfile

    import keras

    from kerasllm.data import pipelines
    from kerasllm.data.corpus import open_corpus
    from kerasllm.training.trainer import build_training_model

    keras.utils.set_random_seed(0)
    m, t = config.model, config.train
    key = (config.data.source, m.seq_len)
    if key not in cache:
        corpus = open_corpus(config, Path(tempfile.mkdtemp()) / "tokenizer")
        cache[key] = (corpus, corpus.blocks("train", m.seq_len).take(4000).cache())
    corpus, blocks = cache[key]
    ds = pipelines.lm_batches(blocks, t.batch_size, training=True, shuffle_buffer=1000, seed=0)
    spe = t.steps_per_execution
    steps = max(-(-steps // spe), 2) * spe
    warm = max(2, -(-8 // spe)) * spe
    model = build_training_model(config, corpus.tokenizer.vocabulary_size, steps + warm, spe)
    marks = []  # (batch, wall clock, this process's CPU time) at each execution's end
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: marks.append((batch, time.perf_counter(), time.process_time())))
    history = model.fit(ds, steps_per_epoch=steps + warm, epochs=1, verbose=0, callbacks=[timer])
    timed = [m for m in marks if m[0] >= warm - 1]
    (b0, w0, c0), (b1, w1, c1) = timed[0], timed[-1]
    step, cpu = (w1 - w0) / (b1 - b0), (c1 - c0) / (b1 - b0)
    return {"tokens_per_second": round(t.batch_size * m.seq_len / step), "step_ms": round(step * 1000, 1),
            # CPU seconds a step takes (both cores): less sensitive than wall time to other processes.
            "cpu_ms_per_step": round(cpu * 1000, 1),
            "vocabulary": corpus.tokenizer.vocabulary_size, "parameters": model.count_params(),
            "loss_after": round(float(history.history["loss"][-1]), 4)}


def head_profile(vocabularies: list, tokens: int, width: int, reps: int = 10) -> dict:
    """Milliseconds of the output layer's forward + backward (a step's
    share of it), split into the projection (hidden x embedding^T, and its
    two gradient products) and the softmax cross-entropy with its gradient."""
    import tensorflow as tf

    out = {}
    for vocab in vocabularies:
        hidden = tf.Variable(tf.random.normal([tokens, width]))
        table = tf.Variable(tf.random.normal([vocab, width]) * 0.02)
        labels = tf.random.uniform([tokens], 0, vocab, tf.int32)
        logits_in = tf.random.normal([tokens, vocab])

        @tf.function
        def full():
            with tf.GradientTape() as tape:
                logits = tf.matmul(hidden, table, transpose_b=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            return tape.gradient(loss, [hidden, table])

        @tf.function
        def projection():
            logits = tf.matmul(hidden, table, transpose_b=True)
            grad = tf.ones_like(logits)
            return tf.matmul(grad, table), tf.matmul(grad, hidden, transpose_a=True)

        @tf.function
        def softmax_xent():
            with tf.GradientTape() as tape:
                tape.watch(logits_in)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits_in))
            return tape.gradient(loss, logits_in)

        timings = {}
        for name, fn in (("forward_backward", full), ("forward_backward_xla", tf.function(full.python_function,
                                                                                         jit_compile=True)),
                         ("projection", projection), ("softmax_xent", softmax_xent)):
            tf.nest.map_structure(lambda x: x.numpy(), fn())
            times, cpu = [], []
            for _ in range(reps):
                start, start_cpu = time.perf_counter(), time.process_time()
                tf.nest.map_structure(lambda x: x.numpy(), fn())
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            timings[f"{name}_ms"] = round(statistics.median(times) * 1000, 1)
            timings[f"{name}_cpu_ms"] = round(statistics.median(cpu) * 1000, 1)
        out[str(vocab)] = timings
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", action="store_true", help="Measure tokens/s and the softmax's cost instead.")
    parser.add_argument("--minutes", type=float, default=10.0, help="Training minutes per config (quality).")
    parser.add_argument("--configs", default="char,sentencepiece,byte")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every config.")
    parser.add_argument("--out", default=str(ROOT / "bench/out/tang-quality"), help="Where the runs go (quality).")
    parser.add_argument("--steps", type=int, default=16, help="Timed steps per measurement (speed).")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds (speed).")
    parser.add_argument("--variants", default="base,jit,untied,bf16", help=f"Of {', '.join(VARIANTS)} (speed).")
    args = parser.parse_args()
    os.environ.update({k: v for k, v in _env().items() if k == "KERASLLM_DATA_DIR"})
    if args.speed:
        variants = args.variants.split(",")
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            sys.exit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
        table, configs = speed(variants, args.steps, args.rounds)
        from kerasllm import config as config_lib

        shape = config_lib.load(CONFIGS["char"]).model
        tokens = config_lib.load(CONFIGS["char"]).train.batch_size * shape.seq_len
        vocabularies = sorted({r["vocabulary"] for r in table.values()})
        emit({"benchmark": "tang_softmax_cost", "steps": args.steps, "rounds": args.rounds, "results": table,
              "output_layer": {"tokens": tokens, "width": shape.hidden_dim,
                               "by_vocabulary": head_profile(vocabularies, tokens, shape.hidden_dim)}}, configs)
        return
    names = args.configs.split(",")
    results, configs = {}, {}
    for name in names:
        if name not in CONFIGS:
            sys.exit(f"--configs: unknown {name} (known: {', '.join(CONFIGS)})")
        results[name], config = quality(name, args.minutes, args.overrides, Path(args.out) / name)
        configs[name] = config_entry(config, [f"train.time_limit_minutes={args.minutes}", *args.overrides])
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    emit({"benchmark": "tang_quality", "minutes": args.minutes, "overrides": args.overrides, "results": results},
         configs)


if __name__ == "__main__":
    main()
