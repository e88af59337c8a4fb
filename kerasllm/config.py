"""Typed run configuration: YAML files plus `--set key=value` overrides.

A run config has four sections (`data`, `tokenizer`, `model`, `train`) and a
`name`. Every field is a typed dataclass attribute, so an unknown key or a
value of the wrong type is reported with its full key path (for example
`configs/x.yaml: train.batch_size: expected an integer, got 'big'`) before
anything is built.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from kerasllm import task_registry
from kerasllm.errors import UserError

_SERVICE_ADDRESS = re.compile(r"^grpc://(?P<host>[^:/\s]+):(?P<port>\d{1,5})$")


def parse_address(value: str, where: str = "train.data_service") -> tuple[str, int]:
    """`grpc://host:port` -> (host, port), or a one-line error.

    A tf.data service dispatcher address (`train.data_service`, the workers'
    `--dispatcher`); here, not in kerasllm.data.service, so that validating a
    config needs nothing above this module.

    Example:
        parse_address("grpc://host0:5050")  # ("host0", 5050)
    """
    match = _SERVICE_ADDRESS.match(value.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise UserError(f"{where}: {value!r} is not a dispatcher address like grpc://host:5050")
    return match["host"], int(match["port"])


@dataclass
class CleaningConfig:
    """Text normalisation applied inside the tf.data pipeline."""

    normalize: str = "NFC"  # NFC | NFKC | none
    strip_control: bool = True  # drop control characters except \n and \t
    lowercase: bool = False
    drop_empty: bool = False  # drop lines that are empty after cleaning
    dedupe: bool = False  # drop exact duplicate documents (keeps each distinct one in memory)
    # Personal data (e-mail, phone, IP, credit card, IBAN: kerasllm.data.pii):
    # keep | mask (typed placeholders such as <EMAIL>) | drop (the document).
    pii: str = "keep"
    # Remove documents whose character 5-gram Jaccard similarity to an earlier
    # one is at least this (MinHash LSH, before the split); 0 = off.
    near_duplicates: float = 0.0


@dataclass
class DataConfig:
    """Where the text comes from and how it is split."""

    # A registered dataset name (tinyshakespeare, spa-eng, squad-v1.1), a
    # file, a directory or a glob.
    source: str = "tinyshakespeare"
    format: str = "auto"  # auto | text | jsonl | csv | tsv
    # For plain text: one document per file, or one per line. Documents are
    # separated by the end-of-text token when packed.
    document: str = "file"
    field: str = "text"  # JSONL field or CSV/TSV column
    # Translation pairs: the source and target side, each a CSV/TSV column
    # (header name or 0-based index; other columns are ignored) or a dotted
    # JSONL path such as translation.en.
    source_field: str = "0"
    target_field: str = "1"
    # Translation: fail on the first malformed line instead of skipping it.
    strict: bool = False
    # Translation: share of pairs held out for the final test split.
    test_fraction: float = 0.0
    # A directory written by `kerasllm prepare`; when set, training reads its
    # tokenized TFRecord shards instead of `source`.
    prepared: Optional[str] = None
    val_fraction: float = 0.1
    # Lines (or records) are assigned to train or validation in groups of
    # this many consecutive ones, so neighbouring text rarely straddles the split.
    split_group: int = 32
    split_seed: int = 1337
    shuffle_buffer: int = 10000
    cleaning: CleaningConfig = dataclasses.field(default_factory=CleaningConfig)


@dataclass
class TokenizerConfig:
    """Which tokenizer to train on the training split."""

    # char | byte | codepoint | wordpiece | sentencepiece | pretrained (the
    # checkpoint's own, for runs that start from one: model.kind gpt2, ...)
    kind: str = "char"
    # Subword vocabulary size; for `char`, the most frequent characters kept
    # (0 keeps all); for `codepoint`, code points at or above it map to the
    # replacement character.
    vocab_size: int = 0
    lowercase: bool = False
    # Megabytes of training text used to learn the vocabulary.
    sample_mb: float = 50.0
    # Translation: one vocabulary for both languages (true) or one per side.
    shared: bool = True
    # SentencePiece only (they are passed to its trainer). The share of the
    # training text's characters the vocabulary must cover; the rarest rest
    # become <unk>, or bytes with `byte_fallback`. 0.9995, SentencePiece's own
    # default, is what its authors recommend for scripts with thousands of
    # characters (Chinese, Japanese), where many characters occur once or
    # twice and a vocabulary that must hold all of them has less room for
    # multi-character pieces. Use 1.0 for an alphabet, where every character
    # is common.
    character_coverage: float = 0.9995
    # SentencePiece only: characters outside the vocabulary become their
    # UTF-8 bytes (256 byte pieces in the vocabulary) instead of <unk>, so no
    # text is lost.
    byte_fallback: bool = False
    # SentencePiece only: NFKC (SentencePiece's nmt_nfkc rule, which also
    # turns line breaks into spaces, collapses runs of spaces and maps
    # full-width punctuation to ASCII) or none (the text as data.cleaning
    # left it: tokenizing then detokenizing gives it back).
    normalize: str = "NFKC"


@dataclass
class ModelConfig:
    """Model architecture."""

    # gpt | lstm | seq2seq (translation) | encoder (BERT-style), or a
    # pretrained family started from train.init_from: gpt2 | llama3, or
    # bert | distilbert (question answering under a span head)
    kind: str = "gpt"
    # encoder only: masked_lm (pretraining on text) | span (extractive
    # question answering on SQuAD-format data).
    head: str = "span"
    # Tokens per block (language models) or per sentence side (seq2seq).
    seq_len: int = 256
    num_layers: int = 4
    num_heads: int = 4
    hidden_dim: int = 128
    intermediate_dim: int = 512
    dropout: float = 0.1
    tie_embeddings: bool = True
    # LSTM only: embedding width (hidden_dim is the LSTM width).
    embedding_dim: int = 128
    # Question answering: a context longer than a window of seq_len tokens is
    # read in windows starting every doc_stride tokens; questions keep at most
    # max_question_tokens; answers are at most max_answer_tokens long.
    doc_stride: int = 128
    max_question_tokens: int = 64
    max_answer_tokens: int = 30
    # Question answering: mark context tokens that also occur in the question
    # (a segment of their own), DrQA's "exact match" feature. It gives a
    # small model the lexical overlap that it would otherwise take long
    # training to learn from attention alone.
    question_match: bool = False


@dataclass
class TrainConfig:
    """Optimisation, precision, strategy, checkpointing and logging."""

    batch_size: int = 32  # global batch, split across replicas
    epochs: int = 10
    # Optimizer steps per epoch; 0 = one pass over the training split.
    steps_per_epoch: int = 0
    # Stop after this many optimizer steps (0 = no limit), then validate,
    # save and sample as at the end of any run.
    max_steps: int = 0
    # Stop after this many minutes of training (0 = no limit), then
    # validate, save and sample. The learning rate's decay ends by then. It
    # is the run's whole budget: a resumed run gets what is left of it.
    time_limit_minutes: float = 0.0
    optimizer: str = "adamw"  # adamw | adam
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | constant
    weight_decay: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    clip_norm: float = 1.0  # global norm; 0 disables
    grad_accum_steps: int = 1
    # Translation: share of the target probability spread over the vocabulary.
    label_smoothing: float = 0.0
    # float32 | mixed_bfloat16 | auto (mixed_bfloat16 where the hardware
    # computes bfloat16 natively, else float32: kerasllm.training.precision)
    precision: str = "float32"
    jit_compile: bool = False
    # Optimizer steps run inside one TensorFlow call; fewer Python round
    # trips, callbacks see every N-th step. Reduced automatically to divide
    # epochs, checkpoints and the run length.
    steps_per_execution: int = 1
    # auto | one_device | mirrored | multi_worker (TF_CONFIG) | tpu. The
    # learning rate and batch_size are per global batch (all replicas).
    strategy: str = "auto"
    cpu_devices: int = 0  # split the CPU into N logical devices (mirrored)
    tpu: str = ""  # strategy tpu: TPU name, grpc://host:port, or "local"
    # multi_worker: how long a worker waits for its peers, at start-up and in
    # each collective (a worker that died mid-run); 0 = wait forever.
    worker_timeout_seconds: int = 300
    # grpc://host:port of a tf.data service dispatcher (`kerasllm data-service`):
    # its workers read and tokenize the training text. Language models only.
    data_service: str = ""
    early_stopping_patience: int = 0  # epochs without improvement; 0 = off
    # What starts this run's weights (and gives its tokenizer): a run
    # directory (an encoder run: matching weights, the rest listed), or for
    # a pretrained family (model.kind gpt2, ...) a Hugging Face checkpoint
    # directory, a keras-hub preset, or a hf:// / kaggle:// handle. Used
    # when the run starts, not when it resumes.
    init_from: str = ""
    # Masked-LM pretraining: share of tokens chosen for prediction (of which
    # 80% become [MASK], 10% a random token, 10% stay).
    mask_rate: float = 0.15
    # Fine-tuning controls (Transformer runs: kerasllm.models.finetune).
    # LoRA: the rank of the low-rank adapters keras-hub's
    # `Backbone.enable_lora` puts on every attention query and value
    # projection; only the adapters (and a head the task adds on top of the
    # backbone) train. 0 = off.
    lora_rank: int = 0
    # LoRA: the adapters' update is scaled by lora_alpha / lora_rank (Keras'
    # `enable_lora(rank, lora_alpha)`); 0 = lora_rank (a scale of 1).
    lora_alpha: float = 0.0
    # Weights that do not train, comma-separated: `embeddings` (the token,
    # position and segment embedding tables) and `layers:N` (the first N
    # Transformer blocks; of a seq2seq model, the first N encoder and the
    # first N decoder blocks). Not with lora_rank, which freezes the rest.
    freeze: str = ""
    save_every_steps: int = 200
    # Resumable checkpoints kept, the newest ones (best.weights.h5 besides).
    keep_checkpoints: int = 2
    # Validate every N optimizer steps instead of at each epoch's end (0 =
    # at epoch ends), and at the run's end. Best weights, samples and early
    # stopping (its patience then counts validations) follow validation.
    eval_every_steps: int = 0
    validation_steps: int = 0  # 0 = the whole validation split
    seed: int = 1337
    log_every_steps: int = 50
    sample_prompt: str = "\n"
    sample_tokens: int = 200
    num_samples: int = 2


@dataclass
class RunConfig:
    """A whole run: what `configs/*.yaml` files describe."""

    name: str = "run"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    # The dotted keys the config file and --set overrides gave (`from_dict`
    # sets it; not a field, so not written to config.yaml): a pretrained
    # run's task tells a key the user set apart from its default.
    given = frozenset()

    def to_dict(self, applicable_only: bool = False) -> dict:
        """Every key as a nested dict; with `applicable_only`, only the keys
        that apply to this run's kind (`applicable_keys`)."""
        values = dataclasses.asdict(self)
        return applicable_keys(values) if applicable_only else values

    def to_yaml(self) -> str:
        """The run's config.yaml: the keys that apply to its kind. Loading it
        gives this config back (defaults fill the keys left out)."""
        return yaml.safe_dump(self.to_dict(applicable_only=True), sort_keys=False, allow_unicode=True)


def applies(key: str, task) -> bool:
    """Whether the dotted config `key` (or a key inside it) is read by runs
    of `task`: a key that some registered task lists in its `config_keys`
    applies only to the tasks that list it; every other key applies to all.

    Example:
        applies("model.doc_stride", task_registry.get("gpt"))  # False
    """
    for listed in task_registry.kind_specific_keys():
        if key == listed or key.startswith(listed + "."):
            return any(key == own or key.startswith(own + ".") for own in task.config_keys)
    return True


def applicable_keys(values: dict) -> dict:
    """A nested config dict without the keys its task does not read
    (`applies`); the task is read from the dict's own model section.

    Example:
        applicable_keys(RunConfig().to_dict())["model"]  # a gpt model: no doc_stride, no head
    """
    task = task_registry.for_model(values.get("model") or {})

    def keep(node: dict, prefix: str) -> dict:
        out = {}
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if applies(path, task):
                out[key] = keep(value, path) if isinstance(value, dict) else value
        return out

    return keep(values, "")


_CHOICES = {
    "data.format": ("auto", "text", "jsonl", "csv", "tsv", "squad"),
    "data.document": ("file", "line"),
    "data.cleaning.normalize": ("NFC", "NFKC", "none"),
    "data.cleaning.pii": ("keep", "mask", "drop"),
    "tokenizer.kind": ("char", "byte", "codepoint", "wordpiece", "sentencepiece", "pretrained"),
    "tokenizer.normalize": ("NFKC", "none"),
    "train.optimizer": ("adamw", "adam"),
    "train.schedule": ("cosine", "constant"),
    "train.precision": ("float32", "mixed_bfloat16", "auto"),
    "train.strategy": ("auto", "one_device", "mirrored", "multi_worker", "tpu"),
}


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, str(tp)
    )


class _Override:
    """A `--set` value: its raw text and its YAML reading. A string field
    takes the raw text (`--set train.sample_prompt=ROMEO:` is a string, not
    a mapping), other fields the YAML value."""

    def __init__(self, raw: str, parsed: Any):
        self.raw, self.parsed = raw, parsed


def _coerce(value: Any, tp, where: str) -> Any:
    """Checks `value` against the annotated type `tp`, converting int->float."""
    if isinstance(value, _Override):
        plain = typing.get_args(tp) if typing.get_origin(tp) is typing.Union else (tp,)
        if str in plain and not (value.parsed is None and type(None) in plain):
            return value.raw
        value = value.parsed
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise UserError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls, values: Any, where: str, prefix: str):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{where}: {prefix or 'the config'} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            known = ", ".join(sorted(names))
            raise UserError(f"{where}: unknown key '{path}' (known keys here: {known})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, where, path)
        else:
            kwargs[key] = _coerce(value, tp, f"{where}: {path}")
    return cls(**kwargs)


def from_dict(values: dict, where: str = "config") -> RunConfig:
    config = _build(RunConfig, values, where, "")
    config.given = frozenset(_dotted_keys(values))
    validate(config, where)
    return config


def _dotted_keys(values: dict, prefix: str = ""):
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        if isinstance(value, dict):
            yield from _dotted_keys(value, path)


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.batch_size=32")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        parsed = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        parsed = raw
    return key, _Override(raw, parsed)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Sets dotted keys (`train.batch_size=32`) in a nested dict, in place."""
    for text in overrides or []:
        key, value = _parse_override(text)
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return values


def load(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Reads a YAML run config, applies overrides and validates it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path} (see configs/ for examples)")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{line} is not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping with sections data, tokenizer, model, train")
    values.setdefault("name", path.stem)
    apply_overrides(values, overrides or [])
    return from_dict(values, str(path))


# Smallest allowed value of each numeric key (0 means "off" or "no limit").
_MINIMUMS = {
    "model.seq_len": 2,
    "model.num_layers": 1,
    "model.num_heads": 1,
    "model.hidden_dim": 1,
    "model.intermediate_dim": 1,
    "model.embedding_dim": 1,
    "train.batch_size": 1,
    "train.epochs": 1,
    "train.grad_accum_steps": 1,
    "train.steps_per_execution": 1,
    "train.save_every_steps": 1,
    "train.keep_checkpoints": 1,
    "train.eval_every_steps": 0,
    "train.log_every_steps": 1,
    "train.steps_per_epoch": 0,
    "train.max_steps": 0,
    "train.time_limit_minutes": 0,
    "train.warmup_steps": 0,
    "train.min_learning_rate": 0,
    "train.clip_norm": 0,
    "train.early_stopping_patience": 0,
    "train.cpu_devices": 0,
    "train.worker_timeout_seconds": 0,
    "train.lora_rank": 0,
    "train.lora_alpha": 0,
    "data.split_group": 1,
    "tokenizer.vocab_size": 0,
    "train.validation_steps": 0,
    "train.weight_decay": 0,
    "train.num_samples": 0,
    "train.sample_tokens": 1,
    "data.split_seed": 0,
    "data.shuffle_buffer": 0,
}


def _get(config: RunConfig, path: str):
    node = config
    for part in path.split("."):
        node = getattr(node, part)
    return node


def require(cond: bool, where: str, message: str) -> None:
    """Raises `UserError("{where}: {message}")` unless `cond` holds: the one
    shape of a config mistake (tasks' `validate` uses it too).

    Example:
        require(m.seq_len >= 2, "configs/x.yaml", "model.seq_len must be at least 2")
    """
    if not cond:
        raise UserError(f"{where}: {message}")


def validate(config: RunConfig, where: str = "config") -> None:
    """Rejects impossible values with the key path and the fix."""
    for path, choices in _CHOICES.items():
        node = _get(config, path)
        require(node in choices, where, f"{path} must be one of {', '.join(choices)}, got {node!r}")
    m, t, d = config.model, config.train, config.data
    require(bool(config.name) and "/" not in config.name, where, "name must be a non-empty word without '/'")
    for path, low in _MINIMUMS.items():
        value = _get(config, path)
        require(value >= low, where, f"{path} must be at least {low}, got {value}")
    require(0.0 <= m.dropout < 1.0, where, f"model.dropout must be in [0, 1), got {m.dropout}")
    require(0.0 < d.val_fraction < 1.0, where, f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
    require(0.0 <= d.test_fraction < 1.0 - d.val_fraction, where,
           f"data.test_fraction must be in [0, 1 - data.val_fraction), got {d.test_fraction}")
    require(0.0 <= d.cleaning.near_duplicates <= 1.0, where, "data.cleaning.near_duplicates must be a Jaccard "
            f"similarity in (0, 1], or 0 for off, got {d.cleaning.near_duplicates}")
    require(t.learning_rate > 0, where, "train.learning_rate must be positive")
    require(0.0 <= t.label_smoothing < 1.0, where, f"train.label_smoothing must be in [0, 1), got {t.label_smoothing}")
    for key in ("beta_1", "beta_2"):
        value = getattr(t, key)
        require(0.0 <= value < 1.0, where, f"train.{key} must be in [0, 1), got {value}")
    if t.data_service:
        try:
            parse_address(t.data_service)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        require(t.strategy != "multi_worker", where,
               "train.data_service: not with train.strategy multi_worker (each worker would start its own pass); "
               "use one trainer with mirrored devices")
    tk = config.tokenizer
    if tk.kind in ("wordpiece", "sentencepiece"):
        require(tk.vocab_size >= 16, where, f"tokenizer.vocab_size must be at least 16 for {tk.kind}")
    require(0 < tk.sample_mb < 1e9, where, "tokenizer.sample_mb must be a positive number of megabytes")
    require(0.0 < tk.character_coverage <= 1.0, where,
            f"tokenizer.character_coverage must be in (0, 1], got {tk.character_coverage}")
    # What only some kinds of run check: the task's own rules (and an
    # unknown model.kind or model.head is refused here, naming the
    # registered ones).
    try:
        task = task_registry.for_model(m)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    task.validate(config, where)
    validate_finetune(config, task, where)  # after the task's: a pretrained run's sizes come from its checkpoint


# The fine-tuning keys (`train.lora_rank`, `train.lora_alpha`, `train.freeze`):
# a task whose model has a keras-hub Transformer backbone lists them in its
# `config_keys`.
FINETUNE_KEYS = ("train.lora_rank", "train.lora_alpha", "train.freeze")


@dataclass(frozen=True)
class Freeze:
    """What `train.freeze` freezes: the embedding tables, and the first
    `layers` Transformer blocks (of each stack: a seq2seq model's encoder
    and decoder)."""

    embeddings: bool = False
    layers: int = 0


def parse_freeze(text: str, where: str = "config") -> Freeze:
    """Reads `train.freeze`: comma-separated items `embeddings` and
    `layers:N` (the first N blocks); "" freezes nothing.

    Args:
        text: the value of `train.freeze`.
        where: the config file, for the error message.

    Raises:
        UserError: an unknown item, or a block count that is not a positive
            integer.

    Example:
        parse_freeze("embeddings, layers:2")  # Freeze(embeddings=True, layers=2)
    """
    embeddings, layers = False, 0
    for item in (part.strip() for part in text.split(",")):
        if item == "embeddings":
            embeddings = True
        elif re.fullmatch(r"layers:\s*\d+", item) and int(item.split(":")[1]) > 0:
            layers = max(layers, int(item.split(":")[1]))
        elif item:
            raise UserError(f"{where}: train.freeze: unknown item {item!r}; give a comma-separated list of "
                            "embeddings and layers:N (the first N Transformer blocks, N at least 1)")
    return Freeze(embeddings, layers)


def validate_finetune(config: RunConfig, task, where: str) -> None:
    """The rules of `train.lora_rank`, `train.lora_alpha` and `train.freeze`
    (`FINETUNE_KEYS`): only for tasks that list them (a keras-hub
    Transformer backbone; an LSTM has none), LoRA or freezing but not both,
    at most `model.num_layers` blocks frozen.

    Args:
        config: the run's config.
        task: its registered task (`task_registry.for_model`).
        where: the config file, for the error message.

    Raises:
        UserError: one line naming the key and the fix.

    Example:
        config = load("configs/tiny-char.yaml", ["train.lora_rank=4"])
        validate_finetune(config, task_registry.for_model(config.model), "configs/tiny-char.yaml")
    """
    t = config.train
    used = [key for key in FINETUNE_KEYS if _get(config, key) != _get(RunConfig(), key)]
    if used and not applies(used[0], task):
        kinds = sorted({task_registry.name(other) for other in task_registry.all_tasks() if applies(used[0], other)})
        raise UserError(f"{where}: {used[0]}: {task_registry.name(task)} runs have no keras-hub Transformer "
                        f"backbone to fine-tune; LoRA and train.freeze apply to {', '.join(kinds)} runs")
    require(not t.lora_alpha or t.lora_rank, where,
            "train.lora_alpha scales LoRA adapters; set train.lora_rank too (or leave lora_alpha at 0)")
    frozen = parse_freeze(t.freeze, where)
    require(not (t.lora_rank and t.freeze.strip()), where,
            "train.freeze: not with train.lora_rank (LoRA already freezes every backbone weight but its "
            "adapters); use one of them")
    # Where the task builds its blocks from model.num_layers; a model of
    # another size (a pretrained preset) is checked when it is built.
    require(frozen.layers <= config.model.num_layers or not applies("model.num_layers", task), where,
            f"train.freeze: layers:{frozen.layers} is more Transformer blocks than model.num_layers "
            f"({config.model.num_layers})")


# Sections that define what a run directory holds; a run directory written
# with other values here belongs to another config.
IDENTITY_KEYS = ("data", "tokenizer", "model", "train.batch_size", "train.seed", "train.grad_accum_steps",
                 "train.init_from") + FINETUNE_KEYS


def identity(config: RunConfig | dict) -> dict:
    """The values of `IDENTITY_KEYS` that apply to the run's task (`applies`):
    a key the run never reads is not part of what its directory holds, so a
    config.yaml written with or without it (older kerasllm wrote every key)
    belongs to the same run."""
    values = config.to_dict() if isinstance(config, RunConfig) else config
    values = applicable_keys(values)
    out = {}
    for key in IDENTITY_KEYS:
        node = values
        for part in key.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else None
        out[key] = node
    # Keys added after runs existed count only when set: a run without them
    # keeps the fingerprint it had (exports record it).
    for key in FINETUNE_KEYS:
        if out[key] in (None, {}, _get(RunConfig(), key)):  # {}: a key the task does not read
            del out[key]
    # Where the data is read from may move (another data directory); what it
    # is may not.
    out["data"] = {k: v for k, v in (out["data"] or {}).items() if k != "prepared"}
    if out["train.init_from"]:  # runs/x, ./runs/x/ and ~/... spellings of one run
        out["train.init_from"] = os.path.normpath(os.path.expanduser(out["train.init_from"]))
    return out


def identity_hash(config: RunConfig) -> str:
    """A stable fingerprint of the run's identity (`identity`): the same for
    every config that may resume the run, whatever else differs.

    Example:
        identity_hash(load("configs/tiny-char.yaml"))  # "sha256:3f0c..."
    """
    import hashlib
    import json

    text = json.dumps(identity(config), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def diff_identity(old: dict, new: RunConfig) -> list[str]:
    """Keys whose values differ between a saved config dict and a new config.
    The saved dict is read with today's defaults, so a key added to kerasllm
    after the run was made does not count as a change."""
    try:
        old = from_dict(old, where="saved config").to_dict()
    except UserError:
        pass  # compare as written
    a, b = identity(old), identity(new)
    out = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else k)
        elif x != y:
            out.append(f"{path} ({x!r} -> {y!r})")

    walk(a, b, "")
    return out
