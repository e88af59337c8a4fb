"""What a pretrained checkpoint is, read from its files without TensorFlow.

A checkpoint is a Hugging Face model directory (config.json with a
`model_type`, *.safetensors weights, the tokenizer's files) or a keras-hub
preset (config.json naming a registered backbone, model.weights.h5,
tokenizer.json and assets/), given as a local directory or as a `hf://` /
`kaggle://` handle. keras-hub's converters read both
(`kerasllm.models.hub`); this module only answers the questions asked
before any weights load: which family, which sizes, is it whole, so that
config validation and `--checkpoint` mistakes are one line and quick.

Families are the keras-hub architectures kerasllm runs (`FAMILIES`); each
is one registered task kind (`model.kind: gpt2`, ...), see
`kerasllm.tasks.pretrained`.

Example:
    info = inspect("checkpoints/gpt2")
    info.family.kind, info.sizes["num_layers"], info.max_positions  # "gpt2", 12, 1024
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from kerasllm.errors import UserError

HANDLE_SCHEMES = ("hf://", "kaggle://")


@dataclass(frozen=True)
class Family:
    """One architecture kerasllm runs from pretrained weights.

    Args:
        kind: its `model.kind`.
        title: its name in messages ("GPT-2").
        hf_model_types: Hugging Face `model_type`s keras-hub converts to it.
        backbone: the keras-hub backbone class name.
        task: the keras-hub task class kerasllm wraps ("GPT2CausalLM").
        hf_sizes: kerasllm size key -> the Hugging Face config.json key.
        hub_sizes: kerasllm size key -> the keras-hub backbone config key.
        hf_positions: the Hugging Face key of the most positions, if any.
        hub_positions: the keras-hub key of a learned position table, if any
            (a table can be sliced to a shorter `model.seq_len`).
        role: what kerasllm does with it: "causal_lm" (a language model:
            generate, score, fine-tune on text) or "span" (an encoder under
            kerasllm's span head: extractive question answering; `task` is
            then empty, no keras-hub task is wrapped) or "seq2seq" (an
            encoder-decoder: translate, fine-tune on sentence pairs).
    """

    kind: str
    title: str
    hf_model_types: tuple
    backbone: str
    task: str
    hf_sizes: dict
    hub_sizes: dict
    hf_positions: Optional[str] = None
    hub_positions: Optional[str] = None
    role: str = "causal_lm"


_DECODER_HUB_SIZES = {"num_layers": "num_layers", "hidden_dim": "hidden_dim",
                      "intermediate_dim": "intermediate_dim", "vocab_size": "vocabulary_size"}
_ENCODER_HUB_SIZES = {**_DECODER_HUB_SIZES, "num_heads": "num_heads"}
_LLAMA_HF_SIZES = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads", "hidden_dim": "hidden_size",
                   "intermediate_dim": "intermediate_size", "vocab_size": "vocab_size"}

FAMILIES = {
    f.kind: f
    for f in (
        Family("gpt2", "GPT-2", ("gpt2",), "GPT2Backbone", "GPT2CausalLM",
               {"num_layers": "n_layer", "num_heads": "n_head", "hidden_dim": "n_embd", "vocab_size": "vocab_size"},
               {**_DECODER_HUB_SIZES, "num_heads": "num_heads"}, "n_positions", "max_sequence_length"),
        Family("llama3", "Llama 3", ("llama",), "Llama3Backbone", "Llama3CausalLM",
               _LLAMA_HF_SIZES, {**_DECODER_HUB_SIZES, "num_heads": "num_query_heads"}, "max_position_embeddings"),
        # Encoders for extractive question answering (kerasllm's span head on
        # keras-hub's backbone; their WordPiece tokenizers give offsets).
        # (BERT's config.json names its sizes as Llama's does.)
        Family("bert", "BERT", ("bert",), "BertBackbone", "", _LLAMA_HF_SIZES, _ENCODER_HUB_SIZES,
               "max_position_embeddings", "max_sequence_length", role="span"),
        Family("distilbert", "DistilBERT", ("distilbert",), "DistilBertBackbone", "",
               {"num_layers": "n_layers", "num_heads": "n_heads", "hidden_dim": "dim", "intermediate_dim": "hidden_dim",
                "vocab_size": "vocab_size"},
               _ENCODER_HUB_SIZES, "max_position_embeddings", "max_sequence_length", role="span"),
        # An encoder-decoder for translation: keras-hub's BartSeq2SeqLM (its
        # converter reads the encoder's sizes for both halves).
        Family("bart", "BART", ("bart",), "BartBackbone", "BartSeq2SeqLM",
               {"num_layers": "num_hidden_layers", "num_heads": "encoder_attention_heads", "hidden_dim": "d_model",
                "intermediate_dim": "encoder_ffn_dim", "vocab_size": "vocab_size"},
               _ENCODER_HUB_SIZES, "max_position_embeddings", "max_sequence_length", role="seq2seq"),
    )
}


def supported() -> str:
    """The supported families for a message: "gpt2 (GPT-2), llama3 (Llama 3), ..."."""
    return ", ".join(f"{f.kind} ({f.title})" for f in FAMILIES.values())


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's family and sizes, as its config.json says.

    Attributes:
        path: the directory or handle given.
        format: "huggingface" or "keras-hub".
        family: its `Family`.
        sizes: kerasllm size key (num_layers, num_heads, hidden_dim,
            intermediate_dim, vocab_size) -> value; a key the checkpoint
            does not state is missing.
        max_positions: the most positions it was trained with (None: not stated).
        config: its config.json.
    """

    path: str
    format: str
    family: Family
    sizes: dict = field(default_factory=dict)
    max_positions: Optional[int] = None
    config: dict = field(default_factory=dict)


def is_handle(path: str) -> bool:
    """Whether `path` is a `hf://` or `kaggle://` handle rather than a directory."""
    return path.startswith(HANDLE_SCHEMES)


def inspect(path: str, where: str = "train.init_from") -> Checkpoint:
    """Reads a checkpoint's config.json and checks its weight files are whole.

    Args:
        path: a directory, or a `hf://` / `kaggle://` handle (downloaded by
            keras-hub into its cache when online).
        where: what named the path, for messages ("--checkpoint").

    Raises:
        UserError: no such directory, no config.json, a family kerasllm does
            not run (listing the ones it does), or a truncated or corrupt
            safetensors file.

    Example:
        inspect("checkpoints/gpt2").family.title  # "GPT-2"
    """
    directory = _local_directory(path, where)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise UserError(f"{where}: {path} has no config.json; give a Hugging Face model directory (config.json, "
                        "*.safetensors, tokenizer files) or a keras-hub preset directory")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: {config_file} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UserError(f"{where}: {config_file} is not a JSON object")
    if "registered_name" in config:
        info = _keras_hub_checkpoint(path, config, config_file, where)
    elif "model_type" in config:
        info = _huggingface_checkpoint(path, config, config_file, where)
        check_safetensors(directory, where)
    else:
        raise UserError(f"{where}: {config_file} is neither a Hugging Face config (no model_type) nor a keras-hub "
                        "preset's (no registered_name)")
    return info


def _local_directory(path: str, where: str) -> Path:
    if is_handle(path):
        return Path(_download(path, where))
    directory = Path(os.path.expanduser(path))
    if not directory.is_dir():
        raise UserError(f"{where}: {path} is not a directory; give a Hugging Face model directory or a keras-hub "
                        "preset (kerasllm ships no weights: download one, e.g. `huggingface-cli download gpt2 "
                        "--local-dir checkpoints/gpt2`)")
    return directory


def _download(handle: str, where: str) -> str:
    """The local copy of a handle's files, which keras-hub downloads into its
    cache (online) or finds there; offline, one line says where to put them."""
    try:
        from kerasllm import compat  # imports TensorFlow, which a handle's conversion needs anyway

        return str(Path(compat.hub_preset_file(handle, "config.json")).parent)
    except Exception as e:  # network, authentication, missing repository: all one answer
        raise UserError(f"{where}: could not fetch {handle} ({type(e).__name__}); offline, download its files on "
                        "a machine with internet (config.json, weights, tokenizer files) and give that directory "
                        "instead") from None


def _family_by(attribute: str, value: str, config_file: Path, where: str) -> Family:
    for family in FAMILIES.values():
        if value in getattr(family, attribute):
            return family
    raise UserError(f"{where}: {config_file} is a {value!r} checkpoint, a family kerasllm does not run; "
                    f"supported: {supported()}")


def _huggingface_checkpoint(path, config, config_file, where) -> Checkpoint:
    family = _family_by("hf_model_types", str(config["model_type"]), config_file, where)
    sizes = {key: config[name] for key, name in family.hf_sizes.items() if name in config}
    if family.kind == "gpt2" and "hidden_dim" in sizes:
        # keras-hub's GPT-2 converter builds 4 x n_embd whatever n_inner says
        # (every released GPT-2 has n_inner null, meaning that).
        sizes["intermediate_dim"] = 4 * sizes["hidden_dim"]
    positions = config.get(family.hf_positions) if family.hf_positions else None
    return Checkpoint(path, "huggingface", family, sizes, positions, config)


def _keras_hub_checkpoint(path, config, config_file, where) -> Checkpoint:
    name = str(config.get("class_name") or config["registered_name"].split(">")[-1])
    family = _family_by("backbone", name, config_file, where)
    values = config.get("config") or {}
    sizes = {key: values[name] for key, name in family.hub_sizes.items() if name in values}
    positions = values.get(family.hub_positions) if family.hub_positions else None
    return Checkpoint(path, "keras-hub", family, sizes, positions, config)


def check_safetensors(directory: Path, where: str = "train.init_from") -> None:
    """Checks every *.safetensors file's header: an 8-byte length, that
    many bytes of JSON, and tensors whose byte ranges end inside the file
    (safetensors' own format, read without loading the tensors).

    Raises:
        UserError: no safetensors file, or one that is truncated or corrupt,
            naming the file.

    Example:
        check_safetensors(Path("checkpoints/gpt2"))
    """
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise UserError(f"{where}: {directory} has no *.safetensors weights (kerasllm reads Hugging Face "
                        "checkpoints in the safetensors format, not pytorch_model.bin)")
    for file in files:
        problem = _safetensors_problem(file)
        if problem:
            raise UserError(f"{where}: {file} is {problem}; download it again")


def _safetensors_problem(file: Path) -> str:
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "truncated (shorter than a safetensors header)"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return f"truncated or corrupt (its header claims {length:,} bytes; the file has {size:,})"
        try:
            header = json.loads(f.read(length).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return "corrupt (its header is not JSON)"
    if not isinstance(header, dict):
        return "corrupt (its header is not a JSON object)"
    data_bytes = size - 8 - length
    ends = [t["data_offsets"][1] for name, t in header.items()
            if name != "__metadata__" and isinstance(t, dict) and "data_offsets" in t]
    if len(ends) != len(header) - ("__metadata__" in header):
        return "corrupt (a tensor entry without data offsets)"
    if ends and max(ends) > data_bytes:
        return f"truncated (its tensors need {max(ends):,} bytes of data; the file has {data_bytes:,})"
    return ""
