"""Training throughput on this machine: peak matmul GFLOP/s, then tokens/s,
step time and model FLOP utilisation (MFU) of GPT sizes (a) and (b) in float32 and
mixed_bfloat16, trained with kerasllm's own model, optimizer and `fit` on the
Tiny Shakespeare character pipeline; `--only char` times the quickstart
config's shape (configs/shakespeare-char.yaml) to check its precision choice
on a new host. bench/torch_reference.py runs the same sizes a and b in PyTorch
on the same machine, the like-for-like comparison.

    python bench/train_throughput.py [--steps 60] [--only a|b|char] [--variants fp32,bf16,...]

Prints one JSON line. Model FLOPs per token are 6 x parameters (forward and
backward matmuls) + 12 x layers x seq_len x width (attention scores and
values), the usual accounting (PaLM, appendix B); MFU divides the achieved
FLOP/s by the measured matmul peak of the same precision.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from record import config_entry, emit  # noqa: E402  (bench/record.py)

SIZES = {
    # (a) the nanoGPT CPU example size; (b) nanoGPT's shakespeare-char model.
    "a": dict(num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=512, seq_len=64, batch_size=12),
    "b": dict(num_layers=6, num_heads=6, hidden_dim=384, intermediate_dim=1536, seq_len=256, batch_size=64),
    # configs/shakespeare-char.yaml, the quickstart default: checks its precision choice on this host.
    "char": dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, seq_len=128, batch_size=32),
}
VARIANTS = {
    "fp32": dict(precision="float32", jit_compile=False, steps_per_execution=1),
    "fp32_spe8": dict(precision="float32", jit_compile=False, steps_per_execution=8),
    "fp32_jit": dict(precision="float32", jit_compile=True, steps_per_execution=1),
    "fp32_jit_spe8": dict(precision="float32", jit_compile=True, steps_per_execution=8),
    "bf16": dict(precision="mixed_bfloat16", jit_compile=False, steps_per_execution=1),
    "bf16_spe8": dict(precision="mixed_bfloat16", jit_compile=False, steps_per_execution=8),
    "bf16_jit_spe8": dict(precision="mixed_bfloat16", jit_compile=True, steps_per_execution=8),
}


def peak_gflops(dtype: str, n: int = 2048, reps: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal([n, n], dtype=tf.float32)
    b = tf.random.normal([n, n], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)

    @tf.function
    def chain(x, y):
        # Every product is consumed whole, so the optimizer cannot shrink it.
        acc = tf.zeros([], tf.float32)
        for i in range(reps):
            acc += tf.cast(tf.reduce_sum(tf.matmul(x + tf.cast(i, dtype), y)), tf.float32)
        return acc

    chain(a, b).numpy()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        chain(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 * reps / min(times) / 1e9


class StepTimer:
    def __init__(self):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(inner):
                super().__init__()
                inner.marks = []

            def on_train_batch_end(inner, batch, logs=None):
                inner.marks.append((batch, time.perf_counter()))

        self.callback = _Timer()

    def step_times(self, skip: int) -> list:
        marks = self.callback.marks
        out = []
        for (b0, t0), (b1, t1) in zip(marks, marks[1:]):
            if b0 >= skip and b1 > b0:
                out.append((t1 - t0) / (b1 - b0))
        return out


def measure(size: str, variant: str, steps: int, blocks_cache: dict) -> tuple[dict, object]:
    """(timings of one size and variant, the config it trained)."""
    import keras

    from kerasllm import config as config_lib
    from kerasllm.data import pipelines
    from kerasllm.data.corpus import open_corpus
    from kerasllm.training.trainer import build_training_model

    spec = dict(SIZES[size])
    batch = spec.pop("batch_size")
    seq_len = spec["seq_len"]
    config = config_lib.from_dict(
        {
            "name": f"bench-{size}",
            "model": {**spec, "dropout": 0.0},
            "train": {"batch_size": batch, **VARIANTS[variant], "warmup_steps": 10},
        }
    )
    import tempfile
    from pathlib import Path

    keras.utils.set_random_seed(0)
    key = seq_len
    if key not in blocks_cache:
        tok_dir = Path(tempfile.mkdtemp()) / "tokenizer"
        corpus = open_corpus(config, tok_dir)
        blocks_cache[key] = (corpus, corpus.blocks("train", seq_len).cache())
    corpus, blocks = blocks_cache[key]
    ds = pipelines.lm_batches(blocks, batch, training=True, shuffle_buffer=1000, seed=0)
    spe = config.train.steps_per_execution
    # Whole executions only, and at least two timed ones.
    steps = max(-(-steps // spe), 2) * spe
    model = build_training_model(config, corpus.tokenizer.vocabulary_size, steps, spe)
    timer = StepTimer()
    warm = max(2, -(-8 // spe)) * spe
    start = time.perf_counter()
    history = model.fit(ds, steps_per_epoch=steps + warm, epochs=1, verbose=0, callbacks=[timer.callback])
    wall = time.perf_counter() - start
    times = timer.step_times(skip=warm)
    step = statistics.median(times)
    tokens = batch * seq_len
    params = model.count_params()
    L, D = config.model.num_layers, config.model.hidden_dim
    flops_per_token = 6 * params + 12 * L * seq_len * D
    return {
        "size": size,
        "variant": variant,
        "parameters": params,
        "step_ms": round(step * 1000, 2),
        "tokens_per_second": round(tokens / step),
        "model_tflops_per_second": round(flops_per_token * tokens / step / 1e12, 4),
        "final_loss": round(float(history.history["loss"][-1]), 4),
        "wall_seconds": round(wall, 1),
    }, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--only", choices=sorted(SIZES), default=None)
    parser.add_argument("--variants", default="fp32,fp32_jit,fp32_jit_spe8,bf16,bf16_spe8,bf16_jit_spe8")
    args = parser.parse_args()
    if "KERASLLM_DATA_DIR" not in os.environ and os.path.isdir("../shared/data"):
        os.environ["KERASLLM_DATA_DIR"] = os.path.abspath("../shared/data")

    peaks = {"float32": peak_gflops("float32"), "bfloat16": peak_gflops("bfloat16")}
    results, cache, configs = [], {}, {}
    for size in [args.only] if args.only else sorted(SIZES):
        steps = {"a": args.steps, "char": max(args.steps // 3, 8)}.get(size, max(args.steps // 10, 4))
        for variant in args.variants.split(","):
            r, config = measure(size, variant, steps, cache)
            configs[f"{size}/{variant}"] = config_entry(config, [])
            peak = peaks["bfloat16" if "bf16" in variant else "float32"]
            r["mfu"] = round(r["model_tflops_per_second"] * 1000 / peak, 4)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    best = {}
    for r in results:
        if r["size"] not in best or r["tokens_per_second"] > best[r["size"]]["tokens_per_second"]:
            best[r["size"]] = r
    emit(
        {
            "benchmark": "train_throughput",
            "peak_gflops": {k: round(v, 1) for k, v in peaks.items()},
            "results": results,
            "best": {k: {"variant": v["variant"], "tokens_per_second": v["tokens_per_second"]} for k, v in best.items()},
            "targets_tokens_per_second": {"a": 24000, "b": 2600},
        },
        configs,
    )


if __name__ == "__main__":
    main()
