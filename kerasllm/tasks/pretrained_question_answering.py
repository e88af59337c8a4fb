"""Extractive question answering on a pretrained encoder: one registered
task per keras-hub encoder family (`model.kind: bert | distilbert`, see
`kerasllm.pretrained.FAMILIES`, role "span").

A run names its checkpoint in `train.init_from` (a Hugging Face directory,
a keras-hub preset or a `hf://` / `kaggle://` handle) and reads SQuAD with
the checkpoint's own WordPiece tokenizer (`tokenizer.kind: pretrained`);
the encoder's sizes come from the checkpoint, and a new span head (start
and end logits, `kerasllm.models.encoder.SpanModel`) learns on top of it.
Everything after that is the question-answering task's: training, exact
resume, SQuAD Exact Match and F1, `kerasllm qa`, `explain`, the exported
`question, context -> answer` signature.

A checkpoint alone has no span head that learnt anything, so `qa` and
`export` refuse `--checkpoint` with one line that says to fine-tune first.

Example:
    from kerasllm import task_registry

    task = task_registry.get("bert")
    task.validate(config, "configs/squad-bert.yaml")  # fills model sizes from the checkpoint
"""

from __future__ import annotations

import os

from kerasllm import pretrained
from kerasllm.config import require
from kerasllm.errors import UserError
from kerasllm.tasks.language_model import check_heads_divide, only_local_data
from kerasllm.tasks.pretrained_language_model import match_checkpoint
from kerasllm.tasks.question_answering import QuestionAnswering, check_question_answering


class PretrainedQuestionAnswering(QuestionAnswering):
    """The question-answering task over one keras-hub encoder family's
    checkpoints (its `head` is None: `model.head` means nothing here).

    Args:
        family: a `kerasllm.pretrained.Family` with role "span".

    Example:
        register(PretrainedQuestionAnswering(pretrained.FAMILIES["bert"]))
    """

    head = None

    def __init__(self, family):
        self.family = family
        self.kind = family.kind

    def validate(self, config, where: str) -> None:
        m, t, title = config.model, config.train, self.family.title
        require(config.tokenizer.kind == "pretrained", where,
                f"tokenizer.kind: a {title} run reads text with its checkpoint's WordPiece tokenizer; set "
                f"tokenizer.kind: pretrained (got {config.tokenizer.kind})")
        require("model.head" not in config.given or m.head == "span", where,
                f"model.head: a {title} run answers questions with a span head; leave model.head out (got {m.head})")
        require(not m.question_match, where, f"model.question_match: a {title} checkpoint has no segment for "
                "question matches; leave it out")
        # As for the decoders: no checkpoint here yet, or a run that has
        # started and no longer needs it, is not an error at this point.
        if t.init_from and (pretrained.is_handle(t.init_from) or os.path.isdir(os.path.expanduser(t.init_from))):
            match_checkpoint(config, pretrained.inspect(t.init_from), where)
        check_heads_divide(config, where)
        require(1 <= m.doc_stride, where, "model.doc_stride must be at least 1")
        require(1 <= m.max_answer_tokens, where, "model.max_answer_tokens must be at least 1")
        only_local_data(config, where)
        check_question_answering(config, where)

    def build(self, model_config, vocabulary_size: int, dtype=None):
        raise UserError(f"a {self.family.title} model is built from its checkpoint (train.init_from) or from a run "
                        "that started from one")

    def open_training(self, config, run, data_dir):
        from kerasllm.training.pretrained_encoders import PretrainedQuestionAnsweringTask

        return PretrainedQuestionAnsweringTask(config, run, data_dir, self.family)

    def load_model(self, config, run) -> tuple:
        import json

        from kerasllm.data.tokenizers import load_tokenizer
        from kerasllm.models.encoder import span_model_on
        from kerasllm.models.hub import backbone_from_config

        tokenizer = load_tokenizer(run.tokenizer)
        backbone = backbone_from_config(json.loads(run.architecture.read_text()), self.family)
        return span_model_on(backbone, config.model.seq_len), tokenizer, tokenizer

    def _no_span_head(self, path: str) -> str:
        return (f"a {self.family.title} checkpoint has no trained span head to answer with; fine-tune it first: "
                f"kerasllm train --config configs/squad-bert.yaml --set model.kind={self.kind} "
                f"--set train.init_from={path}, then use the run (--run)")

    def load_checkpoint(self, config) -> tuple:
        """Refused (`kerasllm export --checkpoint`): see `_no_span_head`."""
        raise UserError(f"--checkpoint {config.train.init_from}: {self._no_span_head(config.train.init_from)}")

    def open_client(self, command, model=None, run=None, checkpoint=None, **options):
        if checkpoint is not None:
            raise UserError(f"--checkpoint {checkpoint}: {self._no_span_head(checkpoint)}")
        return super().open_client(command, model=model, run=run, **options)

    def refuse(self, command: str, source: str) -> str:
        from kerasllm.run_dir import RunDir

        if RunDir(source).config.is_file():
            return super().refuse(command, source)
        return (f"a {self.family.title} checkpoint is an encoder for question answering, not a language model; "
                "fine-tune it (configs/squad-bert.yaml) and use `kerasllm qa --run RUN`")
