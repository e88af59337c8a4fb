"""GPT and LSTM models: shapes, options, and cached decoding."""

import numpy as np
import pytest

from kerasllm.config import ModelConfig
from kerasllm.models import max_context
from kerasllm.tasks import build_model


def _config(**changes):
    values = dict(kind="gpt", num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, seq_len=24, embedding_dim=16)
    values.update(changes)
    return ModelConfig(**values)


def test_gpt_shapes_and_tied_embeddings():
    tied = build_model(_config(), 50)
    untied = build_model(_config(tie_embeddings=False), 50)
    x = np.random.default_rng(0).integers(0, 50, size=(3, 24)).astype("int32")
    assert tied(x).shape == (3, 24, 50)
    assert untied.count_params() - tied.count_params() == 50 * 32
    assert max_context(tied) == 24


def test_gpt_is_causal():
    model = build_model(_config(), 50)
    x = np.random.default_rng(1).integers(0, 50, size=(1, 24)).astype("int32")
    y = x.copy()
    y[0, 10:] = (y[0, 10:] + 7) % 50
    a, b = model(x).numpy(), model(y).numpy()
    assert np.allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not np.allclose(a[0, 10:], b[0, 10:], atol=1e-5)


def test_mixed_bfloat16_keeps_float32_logits():
    model = build_model(_config(), 50, dtype="mixed_bfloat16")
    x = np.zeros((1, 8), "int32")
    assert model(x).dtype.name == "float32"
    assert model.backbone.transformer_layers[0].compute_dtype == "bfloat16"


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_cached_step_keeps_a_float32_cache_and_matches_the_full_pass(dtype):
    """The key/value cache is float32 under any precision (kerasllm.models.gpt
    `_decoder_step`), and a token decoded from it gets the logits of a full
    pass over the sequence (to bfloat16 rounding under mixed precision)."""
    model = build_model(_config(), 50, dtype=dtype)
    x = np.random.default_rng(4).integers(3, 50, size=(2, 9)).astype("int32")
    _, cache = model._build_cache(x[:, :8], length=12)
    assert all(t.dtype.name == "float32" for pair in cache for t in pair)
    assert tuple(cache[0][0].shape) == (2, 2, 16, 12) and tuple(cache[0][1].shape) == (2, 2, 12, 16)
    logits, _, _ = model.call_with_cache(x[:, 8:], cache, 8)
    full = model(x).numpy()[:, -1]
    np.testing.assert_allclose(logits.numpy()[:, 0], full, atol=1e-5 if dtype == "float32" else 5e-3)


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_cached_greedy_decoding_matches_full_recompute(kind):
    model = build_model(_config(kind=kind), 50)
    rng = np.random.default_rng(2)
    prompts = [rng.integers(3, 50, size=n).tolist() for n in (5, 3)]
    length = 16
    token_ids = np.zeros((2, length), "int32")
    mask = np.zeros((2, length), bool)
    for i, p in enumerate(prompts):
        token_ids[i, : len(p)] = p
        mask[i, : len(p)] = True
    model.compile(sampler="greedy")
    out = model.generate({"token_ids": token_ids, "padding_mask": mask}, stop_token_ids=None)["token_ids"]
    for i, p in enumerate(prompts):
        seq = list(p)
        while len(seq) < length:
            logits = model(np.array([seq], "int32")).numpy()
            seq.append(int(np.argmax(logits[0, -1])))
        assert out[i].tolist() == seq


@pytest.mark.parametrize("sampler", ["greedy", "beam_search", "request"])
def test_decoding_with_an_unknown_length_grows_the_cache_in_chunks(monkeypatch, sampler):
    """Traced with a dynamic length (as exports are), the cache holds at most
    the filled positions plus one chunk, and every sampler the exports use
    gives the same ids as with the whole-length cache."""
    import keras_hub
    import tensorflow as tf

    from kerasllm.inference.beam_search import BeamSearch
    from kerasllm.inference.sampling import RequestSampler
    from kerasllm.models import gpt

    model = build_model(_config(), 50)
    model.sampler = {
        "greedy": lambda: keras_hub.samplers.GreedySampler(),
        "beam_search": lambda: BeamSearch(num_beams=2, length_penalty=0.6),
        "request": lambda: RequestSampler(tf.constant(1.0), tf.constant(0), tf.constant(0.9), tf.constant(5)),
    }[sampler]()
    token_ids = np.zeros((2, 20), "int32")
    mask = np.zeros((2, 20), bool)
    for i, n in enumerate((5, 2)):
        token_ids[i, :n] = np.random.default_rng(3).integers(3, 50, size=n)
        mask[i, :n] = True
    spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool)]

    def decode():
        fn = tf.function(lambda ids, m: model.generate_step({"token_ids": ids, "padding_mask": m},
                                                            stop_token_ids=(7,))["token_ids"], input_signature=spec)
        return fn(token_ids, mask).numpy().tolist()

    monkeypatch.setattr(gpt, "CACHE_CHUNK", 0)
    whole = decode()
    step = gpt._decoder_step

    def step_within_one_chunk(layer, x, keys, values, index):
        x, keys, values = step(layer, x, keys, values, index)
        check = tf.debugging.assert_less_equal(gpt.cache_length((keys, values)), index + tf.shape(x)[1] + 3,
                                               "cache past one chunk")
        with tf.control_dependencies([check]):
            return tf.identity(x), keys, values

    monkeypatch.setattr(gpt, "_decoder_step", step_within_one_chunk)
    monkeypatch.setattr(gpt, "CACHE_CHUNK", 3)
    assert decode() == whole
    monkeypatch.setattr(gpt, "CACHE_CHUNK", 0)  # the whole-length cache breaks the check, so it can fail
    with pytest.raises(tf.errors.InvalidArgumentError, match="cache past one chunk"):
        decode()
