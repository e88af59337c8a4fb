"""What a question-answering run started from a pretrained encoder trains
(`model.kind: bert | distilbert`): the question-answering task's SQuAD
windows, loss and samples, with the checkpoint's WordPiece tokenizer,
keras-hub's backbone and weights, and a new span head.

On a new run the checkpoint's tokenizer is saved into the run and its
backbone's config into `architecture.json`, so the run needs the checkpoint
only to start: resuming, evaluating and exporting read the run alone.
"""

from __future__ import annotations

import json

from kerasllm import compat, pretrained
from kerasllm.data.tokenizers import META_FILE, PretrainedTokenizer
from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text
from kerasllm.models.encoder import span_model_on
from kerasllm.models.hub import backbone_from_checkpoint, backbone_from_config, load_checkpoint_weights
from kerasllm.training.encoder_tasks import QuestionAnsweringTask


def hugging_face_strip_accents(path: str) -> bool | None:
    """Whether a Hugging Face BERT-family tokenizer strips accents: its
    tokenizer.json's `BertNormalizer` (else tokenizer_config.json) says so,
    and `strip_accents: null` means "when it lowercases", as in
    `transformers`. None when neither file says (a keras-hub preset keeps
    its own setting).

    keras-hub's converters pass only `do_lower_case` on, so an uncased
    checkpoint's tokenizer would keep accents that the checkpoint never saw
    ("café" is "cafe" to bert-base-uncased).

    Args:
        path: a checkpoint directory or `hf://` handle (its files are read
            through keras-hub, which fetches a handle's).

    Example:
        hugging_face_strip_accents("checkpoints/bert-base-uncased")  # True
    """
    options = {}
    tokenizer_json = compat.hub_preset_json(path, "tokenizer.json")
    if tokenizer_json is not None:
        normalizer = tokenizer_json.get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            options = {"strip_accents": normalizer.get("strip_accents"), "lowercase": normalizer.get("lowercase")}
    config = None if options else compat.hub_preset_json(path, "tokenizer_config.json")
    if config is not None:
        options = {"strip_accents": config.get("strip_accents"), "lowercase": config.get("do_lower_case")}
    if options.get("lowercase") is None and options.get("strip_accents") is None:
        return None
    return bool(options["lowercase"] if options.get("strip_accents") is None else options["strip_accents"])


def encoder_tokenizer(info) -> PretrainedTokenizer:
    """The WordPiece tokenizer of an encoder checkpoint (`pretrained.inspect`'s
    answer), read by keras-hub's converter, accents stripped as the
    checkpoint's own tokenizer strips them (`hugging_face_strip_accents`).

    Args:
        info: the checkpoint's `kerasllm.pretrained.Checkpoint`.

    Raises:
        UserError: keras-hub cannot read the tokenizer files.

    Example:
        tok = encoder_tokenizer(pretrained.inspect("checkpoints/bert"))
        tok.tokenize(["Who wrote Hamlet?"])  # [[2040, 2626, 8429, 1029]] for bert-base-uncased
    """
    import keras_hub

    options = {}
    if info.format == "huggingface":
        strip = hugging_face_strip_accents(str(info.path))
        options = {} if strip is None else {"strip_accents": strip}
    try:
        return PretrainedTokenizer(keras_hub.tokenizers.Tokenizer.from_preset(str(info.path), **options))
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"train.init_from: cannot read the tokenizer of {info.path}: {e}") from None


def save_encoder_tokenizer(run, info) -> None:
    """Saves the checkpoint's tokenizer into a new run (once), after checking
    its vocabulary fits the checkpoint's embedding rows.

    Args:
        run: the new run's `RunDir`.
        info: the checkpoint's `kerasllm.pretrained.Checkpoint`.

    Raises:
        UserError: the tokenizer files hold more tokens than the model has
            embedding rows (files of different checkpoints).

    Example:
        save_encoder_tokenizer(RunDir("runs/squad-bert"), pretrained.inspect("checkpoints/bert-base-uncased"))
    """
    if (run.tokenizer / META_FILE).is_file():
        return
    tokenizer = encoder_tokenizer(info)
    rows = info.sizes.get("vocab_size")
    if rows is not None and tokenizer.vocabulary_size > rows:
        raise UserError(f"train.init_from: {info.path}'s tokenizer files hold {tokenizer.vocabulary_size} tokens, "
                        f"but its config.json gives the model {rows} embedding rows; the files belong to "
                        "different checkpoints")
    tokenizer.save(run.tokenizer)


class PretrainedQuestionAnsweringTask(QuestionAnsweringTask):
    """`QuestionAnsweringTask` over a keras-hub encoder started from
    `train.init_from` (see the module docstring).

    Args:
        config: the run's `RunConfig` (sizes already checked against the
            checkpoint by the task's `validate`).
        run: its `RunDir`.
        data_dir: where registered datasets live.
        family: the checkpoint's `kerasllm.pretrained.Family`.

    Example:
        training = PretrainedQuestionAnsweringTask(config, RunDir("runs/squad-bert"), None, FAMILIES["bert"])
        model = training.build_model(None)
    """

    def __init__(self, config, run, data_dir, family):
        self.family, self.run = family, run
        self.tokenizer_name = f"{family.title}'s WordPiece"
        if not run.architecture.is_file():  # a new run: read the checkpoint now
            if not config.train.init_from:
                raise UserError(f"train.init_from: model.kind {family.kind} starts from a {family.title} checkpoint; "
                                f"give its directory, e.g. --set train.init_from=checkpoints/{family.kind}")
            save_encoder_tokenizer(run, pretrained.inspect(config.train.init_from))
        super().__init__(config, run, data_dir)

    def build_model(self, dtype):
        m = self.config.model
        if self.run.architecture.is_file():
            backbone = backbone_from_config(json.loads(self.run.architecture.read_text()), self.family, dtype)
        else:
            backbone = backbone_from_checkpoint(self.config.train.init_from, self.family, m.seq_len, dtype)
            atomic_write_text(self.run.architecture, json.dumps(backbone.get_config()))
        return span_model_on(backbone, m.seq_len)

    def initialise(self, model, print_fn) -> None:
        path = self.config.train.init_from
        copied, cut = load_checkpoint_weights(model.backbone, path, self.family)
        print_fn(f"Initialised all {copied} encoder weights from the {self.family.title} checkpoint {path}"
                 + (f"; cut to model.seq_len={self.config.model.seq_len} positions: {', '.join(cut)}" if cut else "")
                 + "; the span head starts from scratch")
