"""What one more cached position costs a decoding step's attention, at
bench/generate_speed.py's batch 16 on the shakespeare-char shape (4 heads
of 64), against how fast this machine streams memory.

Each generated token's attention reads every cached key and value: 32 KB
per position and layer at batch 16 in float32. That read, not the decoder's
arithmetic, is what makes a long generation's later tokens dearer than its
first ones (generate_speed.py's 256/64 cost ratio above 4). This times the
two attention products alone, in a graph loop as the exported model runs
them, for cache lengths 64..320, and fits microseconds per position:

- `float32_keys_transposed`: kerasllm's cache (keys stored (head_dim,
  length), values (length, head_dim));
- `float32_keys_by_position`: keys (length, head_dim), product with the
  transposed operand (Keras' own layout);
- `bfloat16_keys_transposed`: half the bytes, products in bfloat16.

`stream_read_gb_per_s` is a plain sum of every element of a cache-sized
tensor, which reads it front to back: about the fastest any kernel reads
those bytes here. The products' own `read_gb_per_s` against it says how
much a better kernel for the same bytes could still gain. (Summing over the
first axis instead reads across rows and measures a third of the rate.)

    .venv/bin/python bench/cache_attention.py

Prints one JSON line.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH, HEADS, HEAD_DIM = 16, 4, 64
LENGTHS = (64, 128, 192, 256, 320)
STEPS = 300  # attention steps per timing

from record import emit  # noqa: E402  (bench/record.py)


def _best_seconds(fn, args) -> float:
    fn(*args).numpy()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        fn(*args).numpy()
        best = min(best, time.perf_counter() - start)
    return best


def _attention_loop(layout: str, length: int):
    import tensorflow as tf

    dtype = tf.bfloat16 if layout.startswith("bfloat16") else tf.float32
    by_position = layout.endswith("by_position")
    keys = tf.cast(tf.random.normal([BATCH, HEADS, length, HEAD_DIM] if by_position
                                    else [BATCH, HEADS, HEAD_DIM, length]), dtype)
    values = tf.cast(tf.random.normal([BATCH, HEADS, length, HEAD_DIM]), dtype)
    query = tf.random.normal([BATCH, HEADS, 1, HEAD_DIM])

    @tf.function
    def run(query, keys, values):
        def step(i, carry):  # each step's query depends on the last output
            q = tf.cast(query + carry * 1e-6, dtype)
            logits = tf.cast(tf.matmul(q, keys, transpose_b=by_position), tf.float32)
            probs = tf.cast(tf.nn.softmax(logits, axis=-1), dtype)
            return i + 1, tf.cast(tf.matmul(probs, values), tf.float32)

        return tf.while_loop(lambda i, _: i < STEPS, step, (0, tf.zeros_like(query)))[1]

    return run, (query, keys, values)


def _stream_read_gb_per_s() -> float:
    import tensorflow as tf

    data = tf.random.normal([BATCH * HEADS * 320 * 2, HEAD_DIM])  # one layer's float32 cache at 320

    @tf.function
    def run(data):
        return tf.while_loop(lambda i, _: i < 100, lambda i, acc: (i + 1, acc + tf.reduce_sum(data)),
                             (0, tf.constant(0.0)))[1]

    return data.shape.num_elements() * 4 * 100 / _best_seconds(run, (data,)) / 1e9


def _slope(xs, ys) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    results = {}
    for layout in ("float32_keys_transposed", "float32_keys_by_position", "bfloat16_keys_transposed"):
        us = [_best_seconds(*_attention_loop(layout, n)) / STEPS * 1e6 for n in LENGTHS]
        per_position = _slope(LENGTHS, us)
        bytes_per_position = BATCH * HEADS * HEAD_DIM * 2 * (2 if layout.startswith("bfloat16") else 4)
        results[layout] = {
            "us_per_step": dict(zip(map(str, LENGTHS), (round(u, 1) for u in us))),
            "us_per_position": round(per_position, 3),
            "read_gb_per_s": round(bytes_per_position / per_position / 1e3, 1),
        }
    emit({"benchmark": "cache_attention", "batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM,
          "stream_read_gb_per_s": round(_stream_read_gb_per_s(), 1), "layouts": results})


if __name__ == "__main__":
    main()
