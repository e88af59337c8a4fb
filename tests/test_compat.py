"""Sentinels for kerasllm/compat.py: each private Keras, keras-hub or
TensorFlow API kerasllm uses still exists and still means what kerasllm
relies on. A failure here names the compat function to fix for the new
upstream release; no other module needs to change."""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from kerasllm import compat

ROOT = Path(__file__).resolve().parents[1]


def test_decoder_sublayers_run_in_the_order_of_keras_hubs_decoder():
    """The cached decoding step (kerasllm/models/gpt.py) calls the sublayers
    one by one; chained the same way, they give the decoder's own output."""
    import keras
    import keras_hub
    from keras import ops

    layer = keras_hub.layers.TransformerDecoder(intermediate_dim=16, num_heads=2, normalize_first=True)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    expected = layer(x)
    parts = compat.decoder_sublayers(layer)
    assert isinstance(parts.self_attention, keras.layers.MultiHeadAttention)
    assert all(isinstance(p, keras.layers.LayerNormalization) for p in (parts.self_attention_norm, parts.feedforward_norm))
    assert all(isinstance(p, keras.layers.Dense) for p in (parts.feedforward_intermediate, parts.feedforward_output))
    h = parts.self_attention_norm(x)
    causal = np.tril(np.ones((1, 5, 5), bool))
    x1 = parts.self_attention(h, h, attention_mask=causal) + x
    out = parts.feedforward_output(parts.feedforward_intermediate(parts.feedforward_norm(x1))) + x1
    np.testing.assert_allclose(ops.convert_to_numpy(out), ops.convert_to_numpy(expected), atol=1e-5)


def test_cross_attention_sublayers_run_between_self_attention_and_feedforward():
    """kerasllm/inference/attention.py calls the cross-attention sublayers
    after the self-attention ones; chained so with the feedforward, they
    give a decoder's own output (with an encoder sequence)."""
    import keras
    import keras_hub
    from keras import ops

    layer = keras_hub.layers.TransformerDecoder(intermediate_dim=16, num_heads=2, normalize_first=True)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    encoded = rng.normal(size=(2, 3, 8)).astype("float32")
    expected = layer(x, encoded)
    parts, cross = compat.decoder_sublayers(layer), compat.cross_attention_sublayers(layer)
    assert isinstance(cross.cross_attention, keras.layers.MultiHeadAttention)
    assert isinstance(cross.cross_attention_norm, keras.layers.LayerNormalization)
    h = parts.self_attention_norm(x)
    x1 = parts.self_attention(h, h, attention_mask=np.tril(np.ones((1, 5, 5), bool))) + x
    x2 = cross.cross_attention(cross.cross_attention_norm(x1), encoded) + x1
    out = parts.feedforward_output(parts.feedforward_intermediate(parts.feedforward_norm(x2))) + x2
    np.testing.assert_allclose(ops.convert_to_numpy(out), ops.convert_to_numpy(expected), atol=1e-5)
    self_only = keras_hub.layers.TransformerDecoder(intermediate_dim=16, num_heads=2)
    self_only(x)
    with pytest.raises(ValueError, match="has no cross-attention"):
        compat.cross_attention_sublayers(self_only)


def test_attention_scale_with_the_public_projections_gives_keras_attention():
    """gpt.py computes attention from the public query/key/value/output_dense
    and `attention_scale`; that must equal Keras' own attention."""
    import keras
    from keras import ops

    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=5)
    x = np.random.default_rng(1).normal(size=(2, 4, 6)).astype("float32")
    expected = ops.convert_to_numpy(mha(x, x))
    assert compat.attention_scale(mha) == 1.0 / np.sqrt(5.0)
    q, k, v = mha.query_dense(x), mha.key_dense(x), mha.value_dense(x)  # (batch, length, heads, dim)
    probs = ops.softmax(ops.einsum("bthd,bshd->bhts", q, k) * compat.attention_scale(mha), axis=-1)
    out = mha.output_dense(ops.einsum("bhts,bshd->bthd", probs, v))
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, atol=1e-5)


def test_learning_rate_schedule_is_the_schedule_the_optimizer_was_given():
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(1.0, decay_steps=10)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    assert compat.learning_rate_schedule(optimizer) is schedule
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 1.0  # the public value is not it


def test_start_progbar_epoch_is_what_keras_progbar_logger_does_before_its_header():
    """kerasllm's Progress prints its own header instead of Keras' `Epoch
    x/y`; the rest of Keras' epoch start must be exactly this."""
    import keras
    from keras.src.callbacks import progbar_logger

    source = inspect.getsource(progbar_logger.ProgbarLogger.on_epoch_begin)
    assert source.split("\n")[1:3] == ["        self._reset_progbar()", "        self._maybe_init_progbar()"]
    logger = keras.callbacks.ProgbarLogger()
    logger.set_params({"verbose": 1, "epochs": 1, "steps": 7})
    logger.seen, logger.progbar = 3, object()
    compat.start_progbar_epoch(logger)
    assert logger.seen == 0 and isinstance(logger.progbar, keras.utils.Progbar) and logger.progbar.target == 7


def test_in_multi_worker_mode_is_false_on_one_machine():
    """The multi-worker answer is exercised by tests/test_distributed.py's
    two-worker runs; here the private method must exist and say False for
    the default and a mirrored strategy."""
    import tensorflow as tf

    assert compat.in_multi_worker_mode(tf.distribute.get_strategy()) is False
    assert compat.in_multi_worker_mode(tf.distribute.MirroredStrategy(["/cpu:0"])) is False


def test_wordpiece_split_patterns_split_words_as_keras_hub_does():
    """Every word is in the vocabulary, so keras-hub's tokens are its words;
    the patterns must cut the text into the same words, with and without
    splitting CJK characters."""
    import keras_hub
    import tensorflow_text as tf_text

    text = ["hello, world!你好 again"]
    vocab = ["[UNK]", "hello", ",", "world", "!", "你", "好", "你好", "again"]
    for split_on_cjk, words in ((True, ["hello", ",", "world", "!", "你", "好", "again"]),
                                (False, ["hello", ",", "world", "!", "你好", "again"])):
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab, split_on_cjk=split_on_cjk, lowercase=False)
        keras_hub_words = [tokenizer.id_to_token(int(i)) for i in tokenizer.tokenize(text)[0]]
        split = tf_text.regex_split(text, *compat.wordpiece_split_patterns(split_on_cjk)).to_list()[0]
        assert [w.decode() for w in split] == keras_hub_words == words


def test_keras_slice_update_replaced_routes_ops_slice_update_and_restores_it():
    from keras import ops

    calls = []

    def recording(inputs, start_indices, updates):
        calls.append(1)
        return inputs

    zeros, ones = np.zeros((2, 3), "float32"), np.ones((1, 2), "float32")
    with compat.keras_slice_update_replaced(recording):
        assert np.all(ops.convert_to_numpy(ops.slice_update(zeros, [0, 1], ones)) == 0)
    assert calls == [1]
    after = ops.convert_to_numpy(ops.slice_update(zeros, [0, 1], ones))
    assert calls == [1] and after[0, 1:].tolist() == [1.0, 1.0]


def test_the_keras_trainer_still_has_what_the_distribution_fixes_replace():
    """Read from Keras' source file (a test that already applied the fixes
    cannot see the originals at run time): the two replaced functions, with
    the signatures the replacements take, and the helpers they call."""
    from keras.src.backend.tensorflow import trainer as tf_trainer
    from keras.src.trainers.trainer import Trainer

    source = Path(inspect.getsourcefile(tf_trainer)).read_text()
    assert "    def _maybe_symbolic_build(self, iterator=None, data_batch=None):\n" in source
    assert "\ndef reduce_per_replica(values, strategy, reduction):\n" in source
    # fit and evaluate reach the build through the iterator, so the fix sees them
    assert source.count("self._maybe_symbolic_build(iterator=epoch_iterator)") == 2
    assert callable(tf_trainer._collective_all_reduce_multi_worker) and callable(tf_trainer._is_per_replica_instance)
    assert list(inspect.signature(Trainer._symbolic_build).parameters) == ["self", "iterator", "data_batch"]
    compat.apply_distribution_fixes()
    patched = (tf_trainer.TensorFlowTrainer._maybe_symbolic_build, tf_trainer.reduce_per_replica)
    compat.apply_distribution_fixes()  # once per process: a second call wraps nothing again
    assert (tf_trainer.TensorFlowTrainer._maybe_symbolic_build, tf_trainer.reduce_per_replica) == patched


def test_hub_preset_file_is_keras_hubs_cached_download_and_reads_local_presets(tmp_path):
    """keras-hub's get_file still takes (handle, filename); given a local
    preset directory it returns that file without any network."""
    from keras_hub.src.utils import preset_utils

    assert list(inspect.signature(preset_utils.get_file).parameters)[:2] == ["preset", "path"]
    (tmp_path / "config.json").write_text("{}")
    assert Path(compat.hub_preset_file(str(tmp_path), "config.json")) == tmp_path / "config.json"
    assert compat.hub_preset_json(str(tmp_path), "config.json") == {}
    assert compat.hub_preset_json(str(tmp_path), "tokenizer.json") is None


def test_sublayers_reach_the_attention_projections_keras_hub_adapts():
    """kerasllm/models/finetune.py finds the adapted layers, embeddings and
    blocks of a backbone among `sublayers`."""
    import keras_hub

    layer = keras_hub.layers.TransformerDecoder(intermediate_dim=16, num_heads=2)
    layer(np.zeros((1, 3, 8), "float32"))
    names = [sub.name for sub in compat.sublayers(layer)]
    assert {"query", "value", "key"} <= set(names) and layer.name not in names


@pytest.mark.parametrize("make", ["dense", "einsum", "embedding"])
def test_an_adapted_layer_computes_from_its_base_and_saves_it_merged_unless_told(make, tmp_path):
    """The merged value is base + alpha / rank * a @ b (what
    kerasllm/export/merge.py computes from `lora_base_weight`); Keras saves
    an adapted layer merged and zeroes its adapters on loading, which
    `save_lora_unmerged` undoes for checkpoints."""
    import keras

    def build():
        layer = {"dense": lambda: keras.layers.Dense(3), "einsum": lambda: keras.layers.EinsumDense("ab,bcd->acd", (2, 3)),
                 "embedding": lambda: keras.layers.Embedding(5, 4)}[make]()
        layer.build((None, 4) if make != "embedding" else (None,))
        layer.enable_lora(2, lora_alpha=6)
        return layer

    layer = build()
    rng = np.random.default_rng(0)
    base, a, b = compat.lora_parts(layer)
    for v in (a, b):
        v.assign(rng.normal(size=v.shape).astype("float32"))
    assert not base.trainable and base.path.endswith(("/kernel", "/embeddings"))
    assert a.trainable and b.trainable and {a.path[-2:], b.path[-2:]} == {"_a", "_b"}
    merged = np.asarray(base) + 3 * np.matmul(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(layer.embeddings if make == "embedding" else layer.kernel), merged, atol=1e-5)

    class Holder(keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.built = True  # its one layer is built

    Holder(layer).save_weights(str(tmp_path / "merged.weights.h5"))
    plain_load = build()
    Holder(plain_load).load_weights(str(tmp_path / "merged.weights.h5"))
    np.testing.assert_allclose(np.asarray(compat.lora_parts(plain_load).base), merged, atol=1e-5)
    assert not np.asarray(compat.lora_parts(plain_load).b).any()  # Keras' own files: merged, adapters zeroed

    compat.save_lora_unmerged(layer)
    Holder(layer).save_weights(str(tmp_path / "unmerged.weights.h5"))
    again = build()
    compat.save_lora_unmerged(again)
    Holder(again).load_weights(str(tmp_path / "unmerged.weights.h5"))
    for a, b in zip(layer.weights, again.weights, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_no_module_but_compat_reaches_private_upstream_apis():
    """keras.src / keras_hub.src and the private attributes compat wraps
    appear nowhere else in kerasllm or the CLI."""
    private = re.compile(
        r"keras(_hub)?\.src|\._in_multi_worker_mode|optimizer\._learning_rate|\._inverse_sqrt_key_dim"
        r"|\._(self_attention|feedforward|query|key|value|output)_\w+|\._(reset|maybe_init)_progbar"
        r"|\._flatten_layers|\._kernel\b|\._embeddings\b"
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("kerasllm", "cli")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "compat.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []
