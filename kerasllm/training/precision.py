"""`train.precision`: which Keras dtype policy a run trains under.

`auto` picks `mixed_bfloat16` only where the hardware multiplies bfloat16
natively, and float32 elsewhere. Whether bfloat16 pays depends on the
machine, not the model alone (bench/train_throughput.py; the figures are in
docs/benchmarks.md): with AMX (Intel) or AVX512_BF16 (AMD Zen 5) the
bfloat16 matmul peak is well above the float32 one, and the quickstart
model trains faster in `mixed_bfloat16`; on an AVX2-only CPU (AMD Zen 3)
bfloat16 has no instructions of its own, the two peaks are equal, and both
the quickstart model and the squad-qa encoder train slower in
`mixed_bfloat16` than in float32.

Example:
    policy = dtype_policy("auto")   # "mixed_bfloat16" or None (float32)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import tensorflow as tf

# /proc/cpuinfo flags of CPUs with bfloat16 matrix instructions: x86 (AMX,
# AVX512_BF16) list them under "flags", Arm (BF16) under "Features".
BFLOAT16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})


def cpu_has_bfloat16(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists a bfloat16 matrix instruction set."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and BFLOAT16_CPU_FLAGS & set(value.split()):
            return True
    return False


def native_bfloat16(strategy: str = "auto") -> bool:
    """Whether this machine's training devices compute in bfloat16 natively:
    TPUs, GPUs of compute capability 8.0 or more (Ampere on), CPUs with
    AMX, AVX512_BF16 or Arm BF16. Unknown (no /proc/cpuinfo) counts as no."""
    if strategy == "tpu":
        return True
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
        return all(c is not None and tuple(c) >= (8, 0) for c in capabilities)
    try:
        return cpu_has_bfloat16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def resolve(precision: str, strategy: str = "auto") -> str:
    """`float32` or `mixed_bfloat16` for a `train.precision` value."""
    if precision == "auto":
        return "mixed_bfloat16" if native_bfloat16(strategy) else "float32"
    return precision


def dtype_policy(precision: str, strategy: str = "auto") -> Optional[str]:
    """The dtype policy to build a model with (None: Keras' float32 default)."""
    return "mixed_bfloat16" if resolve(precision, strategy) == "mixed_bfloat16" else None
