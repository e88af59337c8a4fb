"""tests/tiny_checkpoints.py writes checkpoints that keras-hub's own
Hugging Face converters read as intended: the converted weights are the
written tensors (after each converter's reshape/transpose), the tokenizers
round-trip English and agree with the written tokenizer.json, and a keras-hub
preset saved from the converted model computes the same outputs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import tiny_checkpoints as tc

pytestmark = pytest.mark.xdist_group("test_tiny_checkpoints")

H, HEADS, KV_HEADS, LAYERS, POSITIONS = 32, 4, 2, 2, 64
HEAD_DIM = H // HEADS


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {family: tc.write(family, root / family) for family in tc.FAMILIES}


@pytest.fixture(scope="module")
def keras_hub():
    import keras_hub

    return keras_hub


def _qkv(hf_weight, heads):
    """A torch Linear (heads*head_dim, H) weight as keras-hub's attention
    kernel (H, heads, head_dim): transposed, then split into heads."""
    return np.reshape(hf_weight.T, (H, heads, HEAD_DIM))


def _pairs_gpt2(backbone, w):
    last = backbone.transformer_layers[LAYERS - 1]
    first = backbone.transformer_layers[0]
    return {
        "wte": (backbone.token_embedding.embeddings, w["wte.weight"]),
        "wpe": (backbone.position_embedding.position_embeddings, w["wpe.weight"]),
        # Conv1D is (in, out) already: c_attn's columns are q | k | v.
        "value kernel": (
            first._self_attention_layer.value_dense.kernel,
            np.reshape(w["h.0.attn.c_attn.weight"][:, 2 * H :], (H, HEADS, HEAD_DIM)),
        ),
        "key bias": (
            first._self_attention_layer.key_dense.bias,
            np.reshape(w["h.0.attn.c_attn.bias"][H : 2 * H], (HEADS, HEAD_DIM)),
        ),
        "last ln_2": (last._feedforward_layer_norm.gamma, w[f"h.{LAYERS - 1}.ln_2.weight"]),
        "last c_proj": (last._feedforward_output_dense.kernel, w[f"h.{LAYERS - 1}.mlp.c_proj.weight"]),
        "ln_f bias": (backbone.layer_norm.beta, w["ln_f.bias"]),
    }


def _pairs_decoder_only(backbone, w, *, tied):
    attention = backbone.get_layer("transformer_layer_0")._self_attention_layer
    last = backbone.get_layer(f"transformer_layer_{LAYERS - 1}")
    q = f"model.layers.{LAYERS - 1}"
    embedding = backbone.get_layer("token_embedding")
    pairs = {
        "embed_tokens": (embedding.embeddings, w["model.embed_tokens.weight"]),
        "q_proj": (attention._query_dense.kernel, _qkv(w["model.layers.0.self_attn.q_proj.weight"], HEADS)),
        # Grouped-query attention: 2 key/value heads of the 4 query heads.
        "k_proj": (attention._key_dense.kernel, _qkv(w["model.layers.0.self_attn.k_proj.weight"], KV_HEADS)),
        "last o_proj": (
            last._self_attention_layer._output_dense.kernel,
            np.reshape(w[f"{q}.self_attn.o_proj.weight"].T, (HEADS, HEAD_DIM, H)),
        ),
        "last down_proj": (last._feedforward_output_dense.kernel, w[f"{q}.mlp.down_proj.weight"].T),
        "last post_attention_layernorm": (
            last._feedforward_layernorm.scale,
            w[f"{q}.post_attention_layernorm.weight"],
        ),
        "model.norm": (backbone.get_layer("sequence_output_layernorm").scale, w["model.norm.weight"]),
    }
    if not tied:
        pairs["lm_head"] = (embedding.reverse_embeddings, w["lm_head.weight"].T)
    return pairs


def _pairs_llama(backbone, w):
    assert not backbone.tie_word_embeddings
    return _pairs_decoder_only(backbone, w, tied=False)


def _pairs_qwen2(backbone, w):
    assert backbone.tie_word_embeddings and "lm_head.weight" not in w
    pairs = _pairs_decoder_only(backbone, w, tied=True)
    first = backbone.get_layer("transformer_layer_0")
    pairs["k bias"] = (
        first._self_attention_layer._key_dense.bias,
        np.reshape(w["model.layers.0.self_attn.k_proj.bias"], (KV_HEADS, HEAD_DIM)),
    )
    return pairs


def _pairs_bert(backbone, w):
    last = backbone.get_layer(f"transformer_layer_{LAYERS - 1}")
    attention = backbone.get_layer("transformer_layer_0")._self_attention_layer
    p = f"bert.encoder.layer.{LAYERS - 1}"
    embeddings = "bert.embeddings"
    return {
        "word_embeddings": (backbone.get_layer("token_embedding").embeddings, w[f"{embeddings}.word_embeddings.weight"]),
        "token_type": (
            backbone.get_layer("segment_embedding").embeddings,
            w[f"{embeddings}.token_type_embeddings.weight"],
        ),
        "query": (attention.query_dense.kernel, _qkv(w["bert.encoder.layer.0.attention.self.query.weight"], HEADS)),
        "last output LayerNorm": (last._feedforward_layer_norm.gamma, w[f"{p}.output.LayerNorm.weight"]),
        "pooler": (backbone.get_layer("pooled_dense").kernel, w["bert.pooler.dense.weight"].T),
    }


def _pairs_distilbert(backbone, w):
    last = backbone.transformer_layers[LAYERS - 1]
    first = backbone.transformer_layers[0]
    p = f"distilbert.transformer.layer.{LAYERS - 1}"
    embeddings = backbone.get_layer("token_and_position_embedding")
    return {
        "word_embeddings": (embeddings.token_embedding.embeddings, w["distilbert.embeddings.word_embeddings.weight"]),
        "q_lin": (
            first._self_attention_layer.query_dense.kernel,
            _qkv(w["distilbert.transformer.layer.0.attention.q_lin.weight"], HEADS),
        ),
        "last output_layer_norm": (last._feedforward_layer_norm.gamma, w[f"{p}.output_layer_norm.weight"]),
        "last lin1": (last._feedforward_intermediate_dense.kernel, w[f"{p}.ffn.lin1.weight"].T),
        "embeddings LayerNorm": (backbone.embeddings_layer_norm.beta, w["distilbert.embeddings.LayerNorm.bias"]),
    }


def _pairs_roberta(backbone, w):
    last = backbone.transformer_layers[LAYERS - 1]
    first = backbone.transformer_layers[0]
    p = f"roberta.encoder.layer.{LAYERS - 1}"
    return {
        "word_embeddings": (backbone.token_embedding.embeddings, w["roberta.embeddings.word_embeddings.weight"]),
        # Real positions start at row 2 (after padding_idx 1).
        "positions": (
            backbone.embeddings.position_embedding.position_embeddings,
            w["roberta.embeddings.position_embeddings.weight"][2:],
        ),
        "value": (
            first._self_attention_layer.value_dense.kernel,
            _qkv(w["roberta.encoder.layer.0.attention.self.value.weight"], HEADS),
        ),
        "last output LayerNorm": (last._feedforward_layer_norm.gamma, w[f"{p}.output.LayerNorm.weight"]),
    }


def _pairs_bart(backbone, w):
    last_decoder = backbone.decoder_transformer_layers[LAYERS - 1]
    first_encoder = backbone.encoder_transformer_layers[0]
    d = f"model.decoder.layers.{LAYERS - 1}"
    return {
        "shared": (backbone.token_embedding.embeddings, w["model.shared.weight"]),
        "encoder positions": (
            backbone.encoder_position_embedding.position_embeddings,
            w["model.encoder.embed_positions.weight"][2:],
        ),
        "encoder fc1": (first_encoder._feedforward_intermediate_dense.kernel, w["model.encoder.layers.0.fc1.weight"].T),
        "last cross-attention key": (
            last_decoder._cross_attention_layer.key_dense.kernel,
            _qkv(w[f"{d}.encoder_attn.k_proj.weight"], HEADS),
        ),
        "last cross-attention LayerNorm": (
            last_decoder._cross_attention_layer_norm.gamma,
            w[f"{d}.encoder_attn_layer_norm.weight"],
        ),
        "decoder layernorm_embedding": (
            backbone.decoder_embeddings_layer_norm.beta,
            w["model.decoder.layernorm_embedding.bias"],
        ),
    }


PAIRS = {
    "gpt2": _pairs_gpt2,
    "llama": _pairs_llama,
    "qwen2": _pairs_qwen2,
    "bert": _pairs_bert,
    "distilbert": _pairs_distilbert,
    "roberta": _pairs_roberta,
    "bart": _pairs_bart,
}

BACKBONES = {
    "gpt2": "GPT2Backbone",
    "llama": "Llama3Backbone",
    "qwen2": "QwenBackbone",
    "bert": "BertBackbone",
    "distilbert": "DistilBertBackbone",
    "roberta": "RobertaBackbone",
    "bart": "BartBackbone",
}


def test_writers_are_deterministic_and_tiny(tmp_path):
    digests = []
    for name in ("a", "b"):
        directory = tc.write_llama(tmp_path / name)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()})
    assert digests[0] == digests[1]
    other_seed = tc.write_llama(tmp_path / "c", seed=1) / "model.safetensors"
    assert hashlib.sha256(other_seed.read_bytes()).hexdigest() != digests[0]["model.safetensors"]
    tokens, merges = tc.byte_level_bpe()
    assert len(tokens) == 256 + 200 and len(merges) == 200
    assert len(set(tokens)) == len(tokens)
    with pytest.raises(ValueError, match="num_merges=5000"):
        tc.byte_level_bpe(5000)


@pytest.mark.parametrize("family", tc.FAMILIES)
def test_hub_layout(hf_dirs, family):
    from safetensors import safe_open

    directory = hf_dirs[family]
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == family
    with safe_open(str(directory / "model.safetensors"), framework="np") as f:
        assert f.metadata() == {"format": "pt"}
        names = list(f.keys())
    tensors = tc.read_tensors(directory)
    assert {t.dtype for t in tensors.values()} == {np.dtype("float32")}
    assert 200 < config["vocab_size"] < 600
    embedding_names = ("wte.weight", "embed_tokens.weight", "word_embeddings.weight", "shared.weight")
    embedding = next(t for n, t in tensors.items() if n.endswith(embedding_names))
    assert embedding.shape == (config["vocab_size"], H)
    assert len(names) == len(tensors)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in directory.iterdir()}


@pytest.mark.parametrize("family", tc.FAMILIES)
def test_keras_hub_converts_the_written_tensors(keras_hub, hf_dirs, family):
    backbone = keras_hub.models.Backbone.from_preset(str(hf_dirs[family]))
    assert type(backbone).__name__ == BACKBONES[family]
    assert backbone.num_layers == LAYERS
    tensors = tc.read_tensors(hf_dirs[family])
    for name, (variable, expected) in PAIRS[family](backbone, tensors).items():
        np.testing.assert_array_equal(np.asarray(variable), expected, err_msg=f"{family}: {name}")


@pytest.mark.parametrize("family", tc.FAMILIES)
def test_other_sizes(keras_hub, tmp_path, family):
    sizes = {"num_layers": 1, "hidden_size": 24, "num_heads": 3, "max_positions": 16}
    if family in ("llama", "qwen2"):
        sizes["num_kv_heads"] = 1
    if family != "gpt2":
        sizes["intermediate_size"] = 40
    directory = tc.write(family, tmp_path / family, **sizes)
    backbone = keras_hub.models.Backbone.from_preset(str(directory))
    assert (backbone.num_layers, backbone.hidden_dim) == (1, 24)
    tensors = tc.read_tensors(directory)
    assert any(np.array_equal(np.asarray(backbone.token_embedding.embeddings), t) for t in tensors.values())


@pytest.mark.parametrize("family", tc.FAMILIES)
def test_tokenizer_round_trips_english(keras_hub, hf_dirs, family):
    from tokenizers import Tokenizer

    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(hf_dirs[family]))
    ids = [int(i) for i in tokenizer(tc.SENTENCE)]
    pieces = [tokenizer.id_to_token(i) for i in ids]
    # Learned merges, not bytes: whole words such as "keeper" are one token.
    assert len(ids) < len(tc.SENTENCE) / 2
    assert any(piece.lstrip("Ġ") == "keeper" for piece in pieces)
    text = tokenizer.detokenize(ids)
    if family in ("bert", "distilbert"):
        # do_lower_case: true; WordPiece detokenizes with spaces around punctuation.
        assert "The" not in pieces and ids == [int(i) for i in tokenizer(tc.SENTENCE.lower())]
        assert text.replace(" ", "") == tc.SENTENCE.lower().replace(" ", "")
    else:
        assert text == tc.SENTENCE
    # The tokenizer.json written beside the keras-hub-read files agrees.
    hf = Tokenizer.from_file(str(hf_dirs[family] / "tokenizer.json"))
    assert hf.encode(tc.SENTENCE, add_special_tokens=False).ids == ids


def test_special_tokens(keras_hub, hf_dirs):
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset
    gpt2 = tokenizer(str(hf_dirs["gpt2"]))
    assert gpt2.end_token_id == gpt2.vocabulary_size() - 1 == gpt2.token_to_id("<|endoftext|>")
    llama = tokenizer(str(hf_dirs["llama"]))
    config = json.loads((hf_dirs["llama"] / "config.json").read_text())
    assert (llama.start_token_id, llama.end_token_id) == (config["bos_token_id"], config["eos_token_id"])
    assert llama.token_to_id("<|eot_id|>") > llama.token_to_id("<|begin_of_text|>")
    assert [int(i) for i in llama("<|begin_of_text|>Hi")][0] == config["bos_token_id"]
    qwen = tokenizer(str(hf_dirs["qwen2"]))
    assert qwen.end_token_id == json.loads((hf_dirs["qwen2"] / "config.json").read_text())["eos_token_id"]
    for family in ("roberta", "bart"):
        t = tokenizer(str(hf_dirs[family]))
        assert [t.token_to_id(s) for s in ("<s>", "<pad>", "</s>")] == [0, 1, 2]
    roberta = tokenizer(str(hf_dirs["roberta"]))
    assert roberta.mask_token_id == roberta.vocabulary_size() - 1
    bert = tokenizer(str(hf_dirs["bert"]))
    assert [bert.token_to_id(s) for s in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]


def test_cased_bert_with_legacy_layer_norm_names(keras_hub, tmp_path):
    directory = tc.write_bert(tmp_path / "bert", lowercase=False, legacy_layer_norm_names=True)
    tensors = tc.read_tensors(directory)
    assert "bert.embeddings.LayerNorm.gamma" in tensors and "bert.embeddings.LayerNorm.weight" not in tensors
    backbone = keras_hub.models.Backbone.from_preset(str(directory))
    np.testing.assert_array_equal(
        np.asarray(backbone.get_layer("embeddings_layer_norm").gamma), tensors["bert.embeddings.LayerNorm.gamma"]
    )
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(directory))
    # do_lower_case: false keeps capitals, in the vocabulary and the pieces.
    pieces = [tokenizer.id_to_token(int(i)) for i in tokenizer("The Keeper")]
    assert pieces[0] == "The" and "K" in pieces and "[UNK]" not in pieces


def test_sharded_checkpoint_loads_the_same_weights(keras_hub, hf_dirs, tmp_path):
    import shutil

    directory = tmp_path / "llama"
    shutil.copytree(hf_dirs["llama"], directory)
    tc.shard(directory, num_shards=3)
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert not (directory / "model.safetensors").exists()
    tensors = tc.read_tensors(directory)
    original = tc.read_tensors(hf_dirs["llama"])
    assert tensors.keys() == original.keys() and index["weight_map"].keys() == original.keys()
    assert index["metadata"]["total_size"] == sum(t.nbytes for t in original.values())
    backbone = keras_hub.models.Backbone.from_preset(str(directory))
    for name, (variable, expected) in _pairs_llama(backbone, original).items():
        np.testing.assert_array_equal(np.asarray(variable), expected, err_msg=name)


@pytest.mark.parametrize("how", ["truncate", "garbage_header"])
def test_corrupt_copy_fails_to_load(keras_hub, hf_dirs, tmp_path, how):
    from safetensors import SafetensorError

    source = hf_dirs["gpt2"] / "model.safetensors"
    before = source.read_bytes()
    damaged = tc.write_corrupt_copy(hf_dirs["gpt2"], tmp_path / how, how=how)
    assert source.read_bytes() == before
    assert (damaged / "model.safetensors").read_bytes() != before
    assert (damaged / "vocab.json").read_bytes() == (hf_dirs["gpt2"] / "vocab.json").read_bytes()
    # keras-hub passes safetensors' own error through unchanged.
    with pytest.raises(SafetensorError, match="Error while deserializing header"):
        keras_hub.models.Backbone.from_preset(str(damaged))


def _inputs(tokenizer, family):
    ids = np.asarray([[int(i) for i in tokenizer(tc.SENTENCE)]], dtype="int32")
    mask = np.ones_like(ids, dtype=bool)
    if family in tc.SEQ2SEQ_FAMILIES:
        return {
            "encoder_token_ids": ids,
            "encoder_padding_mask": mask,
            "decoder_token_ids": ids[:, :7],
            "decoder_padding_mask": mask[:, :7],
        }
    inputs = {"token_ids": ids, "padding_mask": mask}
    if family == "bert":
        inputs["segment_ids"] = np.zeros_like(ids)
    return inputs


@pytest.mark.parametrize("family", tc.FAMILIES)
def test_keras_hub_preset_matches_the_hf_directory(keras_hub, hf_dirs, tmp_path, family):
    preset = tc.write_keras_hub_preset(tmp_path / "preset", family, source=hf_dirs[family])
    assert "registered_name" in json.loads((preset / "config.json").read_text())
    if family in tc.CAUSAL_LM_FAMILIES + tc.SEQ2SEQ_FAMILIES:
        base = keras_hub.models.CausalLM if family in tc.CAUSAL_LM_FAMILIES else keras_hub.models.Seq2SeqLM
        from_hf, from_preset = (base.from_preset(str(d)) for d in (hf_dirs[family], preset))
        assert type(from_hf) is type(from_preset)
        tokenizer, saved_tokenizer = from_hf.preprocessor.tokenizer, from_preset.preprocessor.tokenizer
    else:
        from_hf, from_preset = (keras_hub.models.Backbone.from_preset(str(d)) for d in (hf_dirs[family], preset))
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(hf_dirs[family]))
        saved_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    assert [int(i) for i in saved_tokenizer(tc.SENTENCE)] == [int(i) for i in tokenizer(tc.SENTENCE)]
    inputs = _inputs(tokenizer, family)
    expected, got = from_hf(inputs), from_preset(inputs)
    if isinstance(expected, dict):
        assert expected.keys() == got.keys()
        expected, got = expected["sequence_output"], got["sequence_output"]
    expected, got = np.asarray(expected), np.asarray(got)
    length = inputs.get("token_ids", inputs.get("decoder_token_ids")).shape[1]
    assert expected.shape[:2] == (1, length) and np.std(expected) > 0
    if family in tc.CAUSAL_LM_FAMILIES + tc.SEQ2SEQ_FAMILIES:
        assert expected.shape[-1] == json.loads((hf_dirs[family] / "config.json").read_text())["vocab_size"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
