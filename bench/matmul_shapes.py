"""Float32 matrix-product speed at the shapes of training size (a)
(bench/train_throughput.py: width 128, feed-forward 512, 12 x 64 = 768
tokens a step), in the kernels each framework calls: TensorFlow with XLA
(what `train.jit_compile` runs), TensorFlow without it (oneDNN), and
PyTorch when this interpreter has it. It explains a gap between
train_throughput.py and torch_reference.py on one host: at (a) a training
step is mostly these products, so a framework whose kernels are slower at
these shapes cannot make it up elsewhere.

    .venv/bin/python bench/matmul_shapes.py              # TensorFlow: XLA and oneDNN
    /tmp/torch-venv/bin/python bench/matmul_shapes.py    # PyTorch (see torch_reference.py)

Prints one JSON line: microseconds and GFLOP/s per shape and kernel, and
the FLOP-weighted mean GFLOP/s of each kernel over the shapes.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (rows, inner, columns): the forward products of size (a) and the
# weight-gradient products of the backward pass (inner = the 768 tokens).
SHAPES = [(768, 128, 128), (768, 128, 512), (768, 512, 128), (128, 768, 128), (128, 768, 512), (512, 768, 128)]

from record import emit  # noqa: E402  (bench/record.py)


def _time_tensorflow(shape, reps: int, jit: bool) -> float:
    import tensorflow as tf

    m, k, n = shape
    a, b = tf.random.normal([m, k]), tf.random.normal([k, n])

    @tf.function(jit_compile=jit)
    def chain(a, b):
        # Each product feeds the next iteration, so none can be skipped or
        # hoisted; the scalar add costs a few microseconds against hundreds.
        def body(i, carry):
            return i + 1, tf.matmul(a + carry * 1e-9, b)[0, 0]

        return tf.while_loop(lambda i, _: i < reps, body, (0, tf.constant(0.0)))[1]

    chain(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        chain(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return best / reps


def _time_torch(shape, reps: int) -> float:
    import torch

    m, k, n = shape
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(10):
        a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        carry = torch.zeros(())
        for _ in range(reps):
            carry = (a + carry * 1e-9).matmul(b)[0, 0]
        best = min(best, time.perf_counter() - start)
    return best / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200, help="products per timing")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        kernels = {f"torch_{torch.__version__.split('+')[0]}": lambda s: _time_torch(s, args.reps)}
    except ImportError:
        kernels = {
            "tensorflow_xla": lambda s: _time_tensorflow(s, args.reps, jit=True),
            "tensorflow_onednn": lambda s: _time_tensorflow(s, args.reps, jit=False),
        }
    rows, mean = [], {}
    for name, timer in kernels.items():
        flops = seconds = 0.0
        for shape in SHAPES:
            t = timer(shape)
            f = 2.0 * shape[0] * shape[1] * shape[2]
            flops, seconds = flops + f, seconds + t
            rows.append({"kernel": name, "shape": list(shape), "us": round(t * 1e6, 1), "gflops": round(f / t / 1e9, 1)})
        mean[name] = round(flops / seconds / 1e9, 1)
    emit({"benchmark": "matmul_shapes", "threads": os.cpu_count(), "mean_gflops": mean, "results": rows})


if __name__ == "__main__":
    main()
