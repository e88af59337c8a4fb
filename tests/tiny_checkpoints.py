"""Tiny pretrained checkpoints on disk, laid out like the Hugging Face Hub's,
with seeded random weights and no downloads.

Each `write_<family>(directory, **sizes)` writes one model directory the way
`save_pretrained` and the Hub lay it out: `config.json`, `model.safetensors`
(Hugging Face tensor names and layouts, float32, metadata `{"format": "pt"}`)
and the tokenizer files that family ships. keras-hub reads such a directory
through `keras_hub/src/utils/transformers/preset_loader.py` and its
`convert_<family>.py`:

    keras_hub.models.Backbone.from_preset(str(directory))
    keras_hub.tokenizers.Tokenizer.from_preset(str(directory))
    keras_hub.models.CausalLM.from_preset(str(directory))   # gpt2, llama, qwen2

The tokenizers are tiny but real: a byte-level BPE of 256 byte symbols plus
`num_merges` merges (GPT-2, Llama 3, Qwen2, RoBERTa, BART), or a WordPiece
vocabulary (BERT, DistilBERT), both learned from `ENGLISH_TEXT` below, so
ordinary English text becomes multi-character tokens and round-trips. They are
learned with Hugging Face's `tokenizers` trainers (a dependency of keras-hub),
which are deterministic: the same call writes the same bytes.

Sizes default to 2 layers, hidden size 32, 4 heads (2 key/value heads for
llama and qwen2) and 64 positions. `max_positions` is the number of positions
a model accepts; RoBERTa and BART store 2 more rows of position embeddings,
as on the Hub.

Also: `write(family, directory, **sizes)` for any of FAMILIES,
`read_tensors(directory)` (the written tensors by Hugging Face name),
`shard(directory, num_shards)` (the Hub's sharded layout with
model.safetensors.index.json), `write_corrupt_copy(src, dst, how)` and
`write_keras_hub_preset(directory, family, source=None, **sizes)`.
keras-hub's `from_preset` takes a `str`, not a `Path`.

Example:

    from tiny_checkpoints import write_llama
    path = write_llama(tmp_path / "llama")
    lm = keras_hub.models.CausalLM.from_preset(str(path))
"""

from __future__ import annotations

import json
import shutil
import string
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

FAMILIES = ("gpt2", "llama", "qwen2", "bert", "distilbert", "roberta", "bart")
CAUSAL_LM_FAMILIES = ("gpt2", "llama", "qwen2")
SEQ2SEQ_FAMILIES = ("bart",)

# The text the tokenizers are learned from: plain English with capitals,
# digits, punctuation and contractions, long enough for a few hundred merges.
ENGLISH_TEXT = """\
The old lighthouse stands at the end of the harbour, where the river meets
the sea. Every evening the keeper climbs the ninety-two steps to light the
lamp, and every morning she writes the weather in a thick blue book. On
clear nights the light can be seen from the hills across the bay; on foggy
nights the ships listen for the horn instead. The keeper's grandfather kept
the same light for forty years, and his notes are still on the shelf beside
the stairs. He wrote about storms that lasted for days, about the winter the
harbour froze, and about the summer when a whale followed the fishing boats
into the river. Visitors often ask whether the work is lonely. The keeper
says that it isn't: the gulls are loud, the radio is never quiet, and the
children from the village come on Saturdays to count the boats and draw the
waves. In the spring she paints the railings white again, because the salt
wind takes the paint away a little more each year. She has learned to read
the colour of the water, the shape of the clouds and the smell of the air
before rain. When the new automatic lamp arrives next year, she will keep
the book anyway, and she will still write the weather every morning.
"""

# A sentence for tests: words from the text above and others, capitals,
# punctuation and a digit, so both learned tokens and single bytes occur.
SENTENCE = "The keeper's lamp was seen from the hills, 12 miles across the quiet bay."

_STDDEV = 0.02

# The Llama 3 and Qwen2 pre-tokenizer patterns, as their tokenizer.json files
# write them (Qwen2 splits digits one at a time, Llama 3 in groups of three).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = _LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")

# Llama 3.1's first added tokens, in id order after the BPE vocabulary. The
# reserved ones are there because keras-hub's converter skips them.
_LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)
_QWEN2_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


# ---------------------------------------------------------------- tokenizers


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte-to-unicode table as the 256 characters for bytes 0..255,
    listed in GPT-2's vocabulary order (printable bytes first), which is the
    order ids 0..255 have in GPT-2's vocab.json."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(rest))]


@lru_cache(maxsize=None)
def byte_level_bpe(num_merges: int = 200) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Learns `num_merges` byte-level BPE merges from `ENGLISH_TEXT`.

    Returns the tokens in id order (the 256 byte symbols in GPT-2's order,
    then each merge's result in merge order, as GPT-2's vocab.json has them)
    and the merges as pairs. Raises ValueError when the text allows fewer
    merges than asked for.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=256 + num_merges,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(ENGLISH_TEXT.splitlines(keepends=True), trainer)
    merges = [tuple(pair) for pair in json.loads(tokenizer.to_str())["model"]["merges"]]
    if len(merges) != num_merges:
        raise ValueError(f"ENGLISH_TEXT allows {len(merges)} merges, not num_merges={num_merges}")
    tokens = _bytes_to_unicode() + ["".join(pair) for pair in merges]
    return tuple(tokens), tuple(merges)


@lru_cache(maxsize=None)
def wordpiece_vocabulary(vocab_size: int = 300, lowercase: bool = True) -> tuple[str, ...]:
    """Learns a WordPiece vocabulary of about `vocab_size` entries from
    `ENGLISH_TEXT`: the five BERT special tokens first, then every printable
    ASCII character alone and as a `##` continuation (so no ASCII word is
    unknown), then the learned pieces."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(lowercase=lowercase)
    tokenizer.train_from_iterator(
        ENGLISH_TEXT.splitlines(),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(_WORDPIECE_SPECIALS),
        show_progress=False,
    )
    learned = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    characters = [c for c in string.printable if not c.isspace()]
    if lowercase:
        characters = [c for c in characters if not c.isupper()]
    tokens = list(_WORDPIECE_SPECIALS) + characters + ["##" + c for c in characters if c.isalnum()]
    seen = set(tokens)
    tokens += [token for token, _ in learned if token not in seen]
    return tuple(tokens)


def _write_vocab_and_merges(directory: Path, vocab: dict[str, int], merges) -> None:
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _byte_level_tokenizer_json(path: Path, vocab, merges, specials, *, split=None, template=None) -> None:
    """Writes a Hugging Face fast-tokenizer `tokenizer.json`: byte-level BPE,
    the GPT-2 pre-tokenizer (or `split`, a regex split before the byte-level
    step, as Llama 3 and Qwen2 have), `specials` as added tokens and
    `template` as the post-processor."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges), ignore_merges=split is not None))
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = template or processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer.save(str(path))


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- weights


class _Tensors:
    """Seeded random tensors in the order they are asked for. Norm scales are
    1 + noise and biases noise, not the ones and zeros of a fresh model, so a
    converter that leaves one unset shows up in a comparison."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, np.ndarray] = {}

    def normal(self, name: str, *shape: int) -> None:
        self.tensors[name] = (self.rng.standard_normal(shape) * _STDDEV).astype(np.float32)

    def linear(self, name: str, out_dim: int, in_dim: int, bias: bool = True) -> None:
        """A torch `nn.Linear`: weight (out, in), bias (out)."""
        self.normal(f"{name}.weight", out_dim, in_dim)
        if bias:
            self.normal(f"{name}.bias", out_dim)

    def norm(self, name: str, size: int, bias: bool = True, names=("weight", "bias")) -> None:
        self.tensors[f"{name}.{names[0]}"] = (1.0 + self.rng.standard_normal(size) * _STDDEV).astype(np.float32)
        if bias:
            self.normal(f"{name}.{names[1]}", size)

    def save(self, directory: Path) -> None:
        save_file(self.tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})


def read_tensors(directory) -> dict[str, np.ndarray]:
    """The tensors of a checkpoint directory by Hugging Face name, from
    model.safetensors or from all the shards of a sharded one."""
    directory = Path(directory)
    if not (directory / "model.safetensors").exists():
        tensors = {}
        for path in sorted(directory.glob("model-*-of-*.safetensors")):
            tensors.update(load_file(str(path)))
        return tensors
    return load_file(str(directory / "model.safetensors"))


def _start(directory) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# ---------------------------------------------------------------- families


def write_gpt2(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    max_positions: int = 64,
    num_merges: int = 200,
    seed: int = 0,
) -> Path:
    """A GPT-2 checkpoint like `openai-community/gpt2`: `GPT2LMHeadModel`
    tensors without the `transformer.` prefix and with Conv1D (in, out)
    weights, the feed-forward 4 x hidden wide, `<|endoftext|>` last in
    vocab.json."""
    directory = _start(directory)
    tokens, merges = byte_level_bpe(num_merges)
    vocab = {token: i for i, token in enumerate(tokens + ("<|endoftext|>",))}
    eos = vocab["<|endoftext|>"]
    t = _Tensors(seed)
    h = hidden_size
    t.normal("wte.weight", len(vocab), h)
    t.normal("wpe.weight", max_positions, h)
    for i in range(num_layers):
        p = f"h.{i}"
        t.norm(f"{p}.ln_1", h)
        # Conv1D stores its weight (in, out): c_attn is q, k, v side by side.
        t.normal(f"{p}.attn.c_attn.weight", h, 3 * h)
        t.normal(f"{p}.attn.c_attn.bias", 3 * h)
        t.normal(f"{p}.attn.c_proj.weight", h, h)
        t.normal(f"{p}.attn.c_proj.bias", h)
        t.norm(f"{p}.ln_2", h)
        t.normal(f"{p}.mlp.c_fc.weight", h, 4 * h)
        t.normal(f"{p}.mlp.c_fc.bias", 4 * h)
        t.normal(f"{p}.mlp.c_proj.weight", 4 * h, h)
        t.normal(f"{p}.mlp.c_proj.bias", h)
    t.norm("ln_f", h)
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "activation_function": "gelu_new",
            "architectures": ["GPT2LMHeadModel"],
            "attn_pdrop": 0.1,
            "bos_token_id": eos,
            "embd_pdrop": 0.1,
            "eos_token_id": eos,
            "initializer_range": 0.02,
            "layer_norm_epsilon": 1e-05,
            "model_type": "gpt2",
            "n_ctx": max_positions,
            "n_embd": h,
            "n_head": num_heads,
            "n_inner": None,
            "n_layer": num_layers,
            "n_positions": max_positions,
            "resid_pdrop": 0.1,
            "torch_dtype": "float32",
            "vocab_size": len(vocab),
        },
    )
    _write_json(directory / "generation_config.json", {"bos_token_id": eos, "eos_token_id": eos})
    _write_vocab_and_merges(directory, vocab, merges)
    _byte_level_tokenizer_json(directory / "tokenizer.json", vocab, merges, ["<|endoftext|>"])
    _write_json(directory / "tokenizer_config.json", {"model_max_length": max_positions})
    return directory


def _decoder_only(t, num_layers, h, num_heads, num_kv_heads, intermediate, *, qkv_bias):
    """The tensors of a Llama-style decoder (`LlamaForCausalLM`,
    `Qwen2ForCausalLM`): RMSNorm scales, grouped-query attention, SwiGLU."""
    head_dim = h // num_heads
    for i in range(num_layers):
        p = f"model.layers.{i}"
        t.norm(f"{p}.input_layernorm", h, bias=False)
        t.linear(f"{p}.self_attn.q_proj", num_heads * head_dim, h, bias=qkv_bias)
        t.linear(f"{p}.self_attn.k_proj", num_kv_heads * head_dim, h, bias=qkv_bias)
        t.linear(f"{p}.self_attn.v_proj", num_kv_heads * head_dim, h, bias=qkv_bias)
        t.linear(f"{p}.self_attn.o_proj", h, num_heads * head_dim, bias=False)
        t.norm(f"{p}.post_attention_layernorm", h, bias=False)
        t.linear(f"{p}.mlp.gate_proj", intermediate, h, bias=False)
        t.linear(f"{p}.mlp.up_proj", intermediate, h, bias=False)
        t.linear(f"{p}.mlp.down_proj", h, intermediate, bias=False)
    t.norm("model.norm", h, bias=False)


def write_llama(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 64,
    max_positions: int = 64,
    num_merges: int = 200,
    tie_word_embeddings: bool = False,
    rope_scaling: dict | None = None,
    seed: int = 0,
) -> Path:
    """A Llama 3 checkpoint like `meta-llama/Meta-Llama-3-8B`: RoPE (theta
    500000), RMSNorm, SwiGLU, grouped-query attention; a separate `lm_head`
    unless `tie_word_embeddings` (as Llama 3.2 1B); `rope_scaling` is written
    as given (Llama 3.1 has `{"rope_type": "llama3", "factor": 8.0,
    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192}`). The tokenizer is
    tokenizer.json (BPE vocabulary plus added tokens from
    `<|begin_of_text|>` on) and tokenizer_config.json with bos/eos."""
    directory = _start(directory)
    tokens, merges = byte_level_bpe(num_merges)
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab_size = len(vocab) + len(_LLAMA3_SPECIALS)
    special_ids = {token: len(vocab) + i for i, token in enumerate(_LLAMA3_SPECIALS)}
    bos, eos = special_ids["<|begin_of_text|>"], special_ids["<|end_of_text|>"]
    t = _Tensors(seed)
    t.normal("model.embed_tokens.weight", vocab_size, hidden_size)
    _decoder_only(t, num_layers, hidden_size, num_heads, num_kv_heads, intermediate_size, qkv_bias=False)
    if not tie_word_embeddings:
        t.normal("lm_head.weight", vocab_size, hidden_size)
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "head_dim": hidden_size // num_heads,
            "hidden_act": "silu",
            "hidden_size": hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": intermediate_size,
            "max_position_embeddings": max_positions,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": num_heads,
            "num_hidden_layers": num_layers,
            "num_key_value_heads": num_kv_heads,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": rope_scaling,
            "rope_theta": 500000.0,
            "tie_word_embeddings": tie_word_embeddings,
            "torch_dtype": "float32",
            "use_cache": True,
            "vocab_size": vocab_size,
        },
    )
    _write_json(directory / "generation_config.json", {"bos_token_id": bos, "eos_token_id": eos, "do_sample": True})
    from tokenizers import processors

    template = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    _byte_level_tokenizer_json(
        directory / "tokenizer.json", vocab, merges, _LLAMA3_SPECIALS, split=_LLAMA3_SPLIT, template=template
    )
    _write_json(
        directory / "tokenizer_config.json",
        {
            "added_tokens_decoder": {
                str(i): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": True}
                for token, i in special_ids.items()
            },
            "bos_token": "<|begin_of_text|>",
            "clean_up_tokenization_spaces": True,
            "eos_token": "<|end_of_text|>",
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": max_positions,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _write_json(
        directory / "special_tokens_map.json",
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
    )
    return directory


def write_qwen2(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 64,
    max_positions: int = 64,
    num_merges: int = 200,
    tie_word_embeddings: bool = True,
    seed: int = 0,
) -> Path:
    """A Qwen2 checkpoint like `Qwen/Qwen2-0.5B`: the Llama layout plus
    biases on q/k/v, tied embeddings by default, and an embedding table
    padded past the tokenizer to a multiple of 64 rows (config vocab_size >
    the tokenizer's size, as on the Hub). tokenizer.json plus vocab.json and
    merges.txt; `<|endoftext|>` ends text and there is no bos token."""
    directory = _start(directory)
    tokens, merges = byte_level_bpe(num_merges)
    vocab = {token: i for i, token in enumerate(tokens)}
    special_ids = {token: len(vocab) + i for i, token in enumerate(_QWEN2_SPECIALS)}
    vocab_size = -(-(len(vocab) + len(special_ids)) // 64) * 64
    eos = special_ids["<|endoftext|>"]
    t = _Tensors(seed)
    t.normal("model.embed_tokens.weight", vocab_size, hidden_size)
    _decoder_only(t, num_layers, hidden_size, num_heads, num_kv_heads, intermediate_size, qkv_bias=True)
    if not tie_word_embeddings:
        t.normal("lm_head.weight", vocab_size, hidden_size)
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": eos,
            "eos_token_id": eos,
            "hidden_act": "silu",
            "hidden_size": hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": intermediate_size,
            "max_position_embeddings": max_positions,
            "max_window_layers": num_layers,
            "model_type": "qwen2",
            "num_attention_heads": num_heads,
            "num_hidden_layers": num_layers,
            "num_key_value_heads": num_kv_heads,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "sliding_window": max_positions,
            "tie_word_embeddings": tie_word_embeddings,
            "torch_dtype": "float32",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": vocab_size,
        },
    )
    _write_json(directory / "generation_config.json", {"bos_token_id": eos, "eos_token_id": eos})
    _write_vocab_and_merges(directory, vocab, merges)
    _byte_level_tokenizer_json(directory / "tokenizer.json", vocab, merges, _QWEN2_SPECIALS, split=_QWEN2_SPLIT)
    _write_json(
        directory / "tokenizer_config.json",
        {
            "bos_token": None,
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "model_max_length": max_positions,
            "tokenizer_class": "Qwen2Tokenizer",
        },
    )
    return directory


def _wordpiece_files(directory: Path, vocab_size: int, lowercase: bool, max_positions: int) -> list[str]:
    from tokenizers import BertWordPieceTokenizer

    tokens = wordpiece_vocabulary(vocab_size, lowercase)
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    BertWordPieceTokenizer({t: i for i, t in enumerate(tokens)}, lowercase=lowercase).save(
        str(directory / "tokenizer.json")
    )
    _write_json(
        directory / "tokenizer_config.json",
        {"do_lower_case": lowercase, "model_max_length": max_positions},
    )
    return list(tokens)


def _encoder_layers(t, prefix, num_layers, h, intermediate, ln=("weight", "bias")):
    """BERT and RoBERTa's `encoder.layer.N` tensors (post-norm)."""
    for i in range(num_layers):
        p = f"{prefix}encoder.layer.{i}"
        for name in ("query", "key", "value"):
            t.linear(f"{p}.attention.self.{name}", h, h)
        t.linear(f"{p}.attention.output.dense", h, h)
        t.norm(f"{p}.attention.output.LayerNorm", h, names=ln)
        t.linear(f"{p}.intermediate.dense", intermediate, h)
        t.linear(f"{p}.output.dense", h, intermediate)
        t.norm(f"{p}.output.LayerNorm", h, names=ln)


def write_bert(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    intermediate_size: int = 64,
    max_positions: int = 64,
    vocab_size: int = 300,
    lowercase: bool = True,
    legacy_layer_norm_names: bool = False,
    seed: int = 0,
) -> Path:
    """A BERT checkpoint like `google-bert/bert-base-uncased`
    (`BertForPreTraining`: `bert.` prefix, pooler, `cls.` heads), with a
    WordPiece vocab.txt and tokenizer_config.json `do_lower_case` =
    `lowercase`. `legacy_layer_norm_names` names LayerNorm tensors
    gamma/beta, as the original TensorFlow-converted checkpoints do."""
    directory = _start(directory)
    tokens = _wordpiece_files(directory, vocab_size, lowercase, max_positions)
    ln = ("gamma", "beta") if legacy_layer_norm_names else ("weight", "bias")
    t = _Tensors(seed)
    h = hidden_size
    t.normal("bert.embeddings.word_embeddings.weight", len(tokens), h)
    t.normal("bert.embeddings.position_embeddings.weight", max_positions, h)
    t.normal("bert.embeddings.token_type_embeddings.weight", 2, h)
    t.norm("bert.embeddings.LayerNorm", h, names=ln)
    _encoder_layers(t, "bert.", num_layers, h, intermediate_size, ln)
    t.linear("bert.pooler.dense", h, h)
    t.normal("cls.predictions.bias", len(tokens))
    t.linear("cls.predictions.transform.dense", h, h)
    t.norm("cls.predictions.transform.LayerNorm", h, names=ln)
    t.linear("cls.seq_relationship", 2, h)
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "architectures": ["BertForPreTraining"],
            "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": h,
            "initializer_range": 0.02,
            "intermediate_size": intermediate_size,
            "layer_norm_eps": 1e-12,
            "max_position_embeddings": max_positions,
            "model_type": "bert",
            "num_attention_heads": num_heads,
            "num_hidden_layers": num_layers,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
            "type_vocab_size": 2,
            "vocab_size": len(tokens),
        },
    )
    return directory


def write_distilbert(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    intermediate_size: int = 64,
    max_positions: int = 64,
    vocab_size: int = 300,
    lowercase: bool = True,
    seed: int = 0,
) -> Path:
    """A DistilBERT checkpoint like `distilbert/distilbert-base-uncased`
    (`DistilBertForMaskedLM`: `distilbert.` prefix, q_lin/k_lin/v_lin/out_lin,
    the vocab_transform/vocab_layer_norm/vocab_projector head), WordPiece
    vocab.txt as for BERT."""
    directory = _start(directory)
    tokens = _wordpiece_files(directory, vocab_size, lowercase, max_positions)
    t = _Tensors(seed)
    h = hidden_size
    t.normal("distilbert.embeddings.word_embeddings.weight", len(tokens), h)
    t.normal("distilbert.embeddings.position_embeddings.weight", max_positions, h)
    t.norm("distilbert.embeddings.LayerNorm", h)
    for i in range(num_layers):
        p = f"distilbert.transformer.layer.{i}"
        for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
            t.linear(f"{p}.attention.{name}", h, h)
        t.norm(f"{p}.sa_layer_norm", h)
        t.linear(f"{p}.ffn.lin1", intermediate_size, h)
        t.linear(f"{p}.ffn.lin2", h, intermediate_size)
        t.norm(f"{p}.output_layer_norm", h)
    t.linear("vocab_transform", h, h)
    t.norm("vocab_layer_norm", h)
    t.normal("vocab_projector.bias", len(tokens))
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "activation": "gelu",
            "architectures": ["DistilBertForMaskedLM"],
            "attention_dropout": 0.1,
            "dim": h,
            "dropout": 0.1,
            "hidden_dim": intermediate_size,
            "initializer_range": 0.02,
            "max_position_embeddings": max_positions,
            "model_type": "distilbert",
            "n_heads": num_heads,
            "n_layers": num_layers,
            "pad_token_id": 0,
            "qa_dropout": 0.1,
            "seq_classif_dropout": 0.2,
            "sinusoidal_pos_embds": False,
            "tie_weights_": True,
            "vocab_size": len(tokens),
        },
    )
    return directory


def _roberta_style_vocab(num_merges: int):
    """RoBERTa's and BART's ids: <s> <pad> </s> <unk>, the byte-level BPE,
    then <mask> last."""
    tokens, merges = byte_level_bpe(num_merges)
    ordered = ("<s>", "<pad>", "</s>", "<unk>") + tokens + ("<mask>",)
    return {token: i for i, token in enumerate(ordered)}, merges


def _roberta_style_tokenizer(directory: Path, vocab, merges, max_positions: int) -> None:
    from tokenizers import processors

    _write_vocab_and_merges(directory, vocab, merges)
    template = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]), trim_offsets=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    _byte_level_tokenizer_json(directory / "tokenizer.json", vocab, merges, specials, template=template)
    _write_json(directory / "tokenizer_config.json", {"model_max_length": max_positions})


def write_roberta(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    intermediate_size: int = 64,
    max_positions: int = 64,
    num_merges: int = 200,
    seed: int = 0,
) -> Path:
    """A RoBERTa checkpoint like `FacebookAI/roberta-base`
    (`RobertaForMaskedLM`: `roberta.` prefix, `lm_head.`): 2 more position
    rows than `max_positions` (real positions start after padding_idx 1),
    a one-row token_type_embeddings of zeros as the Hub's conversion from
    fairseq left it, vocab.json/merges.txt."""
    directory = _start(directory)
    vocab, merges = _roberta_style_vocab(num_merges)
    t = _Tensors(seed)
    h = hidden_size
    t.normal("roberta.embeddings.word_embeddings.weight", len(vocab), h)
    t.normal("roberta.embeddings.position_embeddings.weight", max_positions + 2, h)
    t.tensors["roberta.embeddings.token_type_embeddings.weight"] = np.zeros((1, h), np.float32)
    t.norm("roberta.embeddings.LayerNorm", h)
    _encoder_layers(t, "roberta.", num_layers, h, intermediate_size)
    t.normal("lm_head.bias", len(vocab))
    t.linear("lm_head.dense", h, h)
    t.norm("lm_head.layer_norm", h)
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "architectures": ["RobertaForMaskedLM"],
            "attention_probs_dropout_prob": 0.1,
            "bos_token_id": vocab["<s>"],
            "eos_token_id": vocab["</s>"],
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": h,
            "initializer_range": 0.02,
            "intermediate_size": intermediate_size,
            "layer_norm_eps": 1e-05,
            "max_position_embeddings": max_positions + 2,
            "model_type": "roberta",
            "num_attention_heads": num_heads,
            "num_hidden_layers": num_layers,
            "pad_token_id": vocab["<pad>"],
            "type_vocab_size": 1,
            "vocab_size": len(vocab),
        },
    )
    _roberta_style_tokenizer(directory, vocab, merges, max_positions)
    return directory


def write_bart(
    directory,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    intermediate_size: int = 64,
    max_positions: int = 64,
    num_merges: int = 200,
    seed: int = 0,
) -> Path:
    """A BART checkpoint like `facebook/bart-base`
    (`BartForConditionalGeneration`: `model.` prefix, shared embeddings,
    `final_logits_bias` of zeros), `num_layers` encoder and decoder layers,
    2 more position rows than `max_positions` (BART's offset),
    vocab.json/merges.txt with RoBERTa's ids."""
    directory = _start(directory)
    vocab, merges = _roberta_style_vocab(num_merges)
    t = _Tensors(seed)
    h = hidden_size
    t.normal("model.shared.weight", len(vocab), h)
    for side in ("encoder", "decoder"):
        t.normal(f"model.{side}.embed_positions.weight", max_positions + 2, h)
        for i in range(num_layers):
            p = f"model.{side}.layers.{i}"
            attentions = ("self_attn", "encoder_attn") if side == "decoder" else ("self_attn",)
            for attention in attentions:
                for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    t.linear(f"{p}.{attention}.{name}", h, h)
                t.norm(f"{p}.{attention}_layer_norm", h)
            t.linear(f"{p}.fc1", intermediate_size, h)
            t.linear(f"{p}.fc2", h, intermediate_size)
            t.norm(f"{p}.final_layer_norm", h)
        t.norm(f"model.{side}.layernorm_embedding", h)
    t.tensors["final_logits_bias"] = np.zeros((1, len(vocab)), np.float32)
    t.save(directory)
    _write_json(
        directory / "config.json",
        {
            "activation_dropout": 0.1,
            "activation_function": "gelu",
            "add_bias_logits": False,
            "add_final_layer_norm": False,
            "architectures": ["BartForConditionalGeneration"],
            "attention_dropout": 0.1,
            "bos_token_id": vocab["<s>"],
            "d_model": h,
            "decoder_attention_heads": num_heads,
            "decoder_ffn_dim": intermediate_size,
            "decoder_layerdrop": 0.0,
            "decoder_layers": num_layers,
            "decoder_start_token_id": vocab["</s>"],
            "dropout": 0.1,
            "encoder_attention_heads": num_heads,
            "encoder_ffn_dim": intermediate_size,
            "encoder_layerdrop": 0.0,
            "encoder_layers": num_layers,
            "eos_token_id": vocab["</s>"],
            "forced_bos_token_id": vocab["<s>"],
            "forced_eos_token_id": vocab["</s>"],
            "init_std": 0.02,
            "is_encoder_decoder": True,
            "max_position_embeddings": max_positions,
            "model_type": "bart",
            "normalize_before": False,
            "num_hidden_layers": num_layers,
            "pad_token_id": vocab["<pad>"],
            "scale_embedding": False,
            "torch_dtype": "float32",
            "use_cache": True,
            "vocab_size": len(vocab),
        },
    )
    _roberta_style_tokenizer(directory, vocab, merges, max_positions)
    return directory


WRITERS = {
    "gpt2": write_gpt2,
    "llama": write_llama,
    "qwen2": write_qwen2,
    "bert": write_bert,
    "distilbert": write_distilbert,
    "roberta": write_roberta,
    "bart": write_bart,
}


def write(family: str, directory, **sizes) -> Path:
    """`write_<family>(directory, **sizes)` for a family named in FAMILIES."""
    if family not in WRITERS:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    return WRITERS[family](directory, **sizes)


# ---------------------------------------------------------------- derived


def write_corrupt_copy(src, dst, how: str = "truncate") -> Path:
    """Copies the checkpoint directory `src` to `dst` and damages each
    .safetensors file in the copy: `how="truncate"` keeps the first half of
    its bytes (the header survives, the tensor data ends early);
    `how="garbage_header"` keeps the 8-byte header length but overwrites the
    JSON header after it with bytes that are not JSON. Returns `dst`."""
    if how not in ("truncate", "garbage_header"):
        raise ValueError(f"how={how!r}: use 'truncate' or 'garbage_header'")
    dst = Path(dst)
    shutil.copytree(src, dst)
    files = sorted(dst.rglob("*.safetensors"))
    if not files:
        raise ValueError(f"{src} has no .safetensors file to damage")
    for path in files:
        data = path.read_bytes()
        if how == "truncate":
            path.write_bytes(data[: len(data) // 2])
        else:
            header_length = int.from_bytes(data[:8], "little")
            garbage = (b"\xff\x00not json" * header_length)[:header_length]
            path.write_bytes(data[:8] + garbage + data[8 + header_length :])
    return dst


def shard(directory, num_shards: int = 2) -> Path:
    """Splits `<directory>/model.safetensors` into `num_shards` files named
    as the Hub names them (`model-00001-of-00002.safetensors`, ...) plus
    `model.safetensors.index.json` (`metadata.total_size`, `weight_map`),
    the layout of every checkpoint above a few gigabytes, and removes the
    single file. Returns `directory`."""
    directory = Path(directory)
    tensors = read_tensors(directory)
    names = list(tensors)
    if not 1 < num_shards <= len(names):
        raise ValueError(f"num_shards={num_shards}: use 2..{len(names)}")
    weight_map = {}
    for index, part in enumerate(np.array_split(np.arange(len(names)), num_shards), start=1):
        filename = f"model-{index:05d}-of-{num_shards:05d}.safetensors"
        part_names = [names[i] for i in part]
        save_file({n: tensors[n] for n in part_names}, str(directory / filename), metadata={"format": "pt"})
        weight_map.update({n: filename for n in part_names})
    total_size = sum(t.nbytes for t in tensors.values())
    _write_json(
        directory / "model.safetensors.index.json",
        {"metadata": {"total_size": total_size}, "weight_map": weight_map},
    )
    (directory / "model.safetensors").unlink()
    return directory


def write_keras_hub_preset(directory, family: str, source=None, **sizes) -> Path:
    """Loads a Hugging Face checkpoint of `family` with keras-hub and saves
    it to `directory` with keras-hub's `save_to_preset`: the CausalLM task
    (backbone, preprocessor, tokenizer) for gpt2/llama/qwen2, the Seq2SeqLM
    task for bart, the backbone and tokenizer for the encoders. `source` is
    the checkpoint directory; without it one is written with `**sizes` to a
    temporary directory first. Returns `directory`."""
    import keras_hub

    directory = Path(directory)
    with tempfile.TemporaryDirectory() as tmp:
        source = str(source if source is not None else write(family, Path(tmp) / family, **sizes))
        if family in CAUSAL_LM_FAMILIES:
            keras_hub.models.CausalLM.from_preset(source).save_to_preset(str(directory))
        elif family in SEQ2SEQ_FAMILIES:
            keras_hub.models.Seq2SeqLM.from_preset(source).save_to_preset(str(directory))
        else:
            keras_hub.models.Backbone.from_preset(source).save_to_preset(str(directory))
            keras_hub.tokenizers.Tokenizer.from_preset(source).save_to_preset(str(directory))
    return directory
