"""train.precision: auto picks bfloat16 only where the hardware has it."""

import pytest

from kerasllm.training import precision

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma bmi2
"""
ZEN5 = ZEN3.replace("bmi2", "bmi2 avx512f avx512bw avx512_bf16 avx512_vnni")
SAPPHIRE_RAPIDS = ZEN3.replace("bmi2", "avx512f avx512_fp16 amx_tile amx_int8 amx_bf16")
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd atomics dotprod\n"


@pytest.mark.parametrize("cpuinfo, native", [
    (ZEN3, False), (ZEN5, True), (SAPPHIRE_RAPIDS, True), (GRAVITON3, True), (GRAVITON2, False), ("", False),
    # A flag name that merely contains "bf16" is not the instruction set.
    (ZEN3.replace("bmi2", "avx512_fp16 xbf16y"), False),
])
def test_cpu_bfloat16_flags(cpuinfo, native):
    assert precision.cpu_has_bfloat16(cpuinfo) is native


@pytest.mark.parametrize("native, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_follows_the_hardware_and_explicit_choices_stand(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "native_bfloat16", lambda strategy="auto": native)
    assert precision.resolve("auto") == expected
    assert precision.dtype_policy("auto") == (None if expected == "float32" else "mixed_bfloat16")
    assert precision.resolve("float32") == "float32" and precision.dtype_policy("float32") is None
    assert precision.dtype_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_tpus_count_as_native():
    assert precision.resolve("auto", strategy="tpu") == "mixed_bfloat16"


def test_the_benchmark_model_follows_the_strategy_too(monkeypatch, tiny_config):
    """bench/train_throughput.py builds through build_training_model: `auto`
    under a TPU strategy must mean bfloat16 there as in `kerasllm train`."""
    from kerasllm import config as config_lib
    from kerasllm.training.trainer import build_training_model

    monkeypatch.setattr(precision, "native_bfloat16", lambda strategy="auto": strategy == "tpu")
    for strategy, expected in (("tpu", "mixed_bfloat16"), ("auto", "float32")):
        config = config_lib.load(tiny_config({"train.precision": "auto", "train.strategy": strategy}))
        model = build_training_model(config, vocabulary_size=40, total_steps=10)
        assert model.dtype_policy.name == expected
