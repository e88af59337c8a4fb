"""The extractive question-answering task (`model.kind: encoder`, `model.head: span`).

SQuAD-format data is cut into windows of `model.seq_len` tokens and an
encoder learns the answer's start and end (`kerasllm.training.encoder_tasks.
QuestionAnsweringTask`), from scratch or from a pretraining run
(`train.init_from`). Runs are scored by SQuAD's Exact Match and F1,
exported with a `question, context -> answer` signature, and used by
`kerasllm qa`.

Example:
    from kerasllm import task_registry

    task_registry.get("encoder", "span").evaluate("runs/squad-qa", None, "dev")["f1"]
"""

from __future__ import annotations

from kerasllm.config import require
from kerasllm.errors import UserError
from kerasllm.tasks.base import Explaining
from kerasllm.tasks.encoders import ENCODER_KEYS, check_encoder


class QuestionAnswering:
    """A span head over a BERT-style encoder.

    Example:
        register(QuestionAnswering())
    """

    kind = "encoder"
    head = "span"
    description = "question-answering"
    # dev: the registered dataset's dev file; validation: articles held out of its training file.
    splits = ("dev", "validation")
    serving_kind = "question_answering"
    commands = ("qa",)
    explaining = Explaining(no_attention="a question-answering explanation shows the start and end probabilities, "
                            "not attention", passage=True)
    config_keys = ENCODER_KEYS + ("model.doc_stride", "model.max_question_tokens", "model.max_answer_tokens",
                                  "model.question_match", "train.num_samples")

    def build(self, model_config, vocabulary_size: int, dtype=None):
        """A built `SpanModel` for a vocabulary."""
        from kerasllm.models.encoder import span_model

        return span_model(model_config, vocabulary_size, dtype)

    def explain(self, loaded, text, *passage, layers=None, heads=None):
        from kerasllm.inference.explain import explain_question_answering

        return explain_question_answering(loaded, text, *passage)

    def validate(self, config, where: str) -> None:
        check_encoder(config, where)
        check_question_answering(config, where)

    def report_corpus(self, config, data_dir):
        return None  # SQuAD contexts and questions are read as they are: nothing cleaned or split to report

    def open_training(self, config, run, data_dir):
        from kerasllm.training.encoder_tasks import QuestionAnsweringTask

        return QuestionAnsweringTask(config, run, data_dir)

    def preprocessor(self, config, tokenizer, target_tokenizer=None):
        """A `QuestionAnsweringPreprocessor` with the window sizes of `model`."""
        from kerasllm.data.preprocessors import QuestionAnsweringPreprocessor

        return QuestionAnsweringPreprocessor.for_model(tokenizer, config.model)

    def load_model(self, config, run) -> tuple:
        from kerasllm.data.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run.tokenizer)
        return self.build(config.model, tokenizer.vocabulary_size), tokenizer, tokenizer

    def evaluate(self, run_dir, data_dir, split, beams=1, length_penalty=0.6) -> dict:
        from kerasllm.evaluation.question_answering import evaluate_qa

        return evaluate_qa(run_dir, data_dir, split)

    def export(self, loaded, run_dir, name, base_dir, version, beams, length_penalty) -> dict:
        from kerasllm.export.runs import export_question_answering

        return export_question_answering(loaded, run_dir, name, base_dir, version)

    def export_width(self, given: set, beams: int, beam_search_width: int) -> int:
        return beam_search_width  # a question answerer has no beam search: the width is unused

    def open_client(self, command, model=None, run=None, **options):
        from kerasllm.export.client import QuestionAnsweringClient

        return QuestionAnsweringClient.open(model=model, run=run)

    def refuse(self, command: str, source: str) -> str:
        if command == "translate":
            return "a question-answering or masked-LM encoder run; `kerasllm qa` answers with a QA run"
        return f"a question-answering run; use `kerasllm qa --run {source}`"

    def check_prepare(self, where: str) -> None:
        pass


def check_question_answering(config, where: str) -> None:
    """The rules of every question-answering run, from scratch or from a
    pretrained checkpoint: windows with room for a question and an answer,
    SQuAD text read as it is.

    Args:
        config: the `RunConfig`.
        where: the config file, for messages.

    Raises:
        UserError: a rule broken, naming the key and the fix.

    Example:
        check_question_answering(config, "configs/squad-bert.yaml")
    """
    m, c = config.model, config.data.cleaning
    require(m.max_question_tokens + 4 <= m.seq_len, where,
            f"model.max_question_tokens ({m.max_question_tokens}) leaves no room for context in model.seq_len "
            f"({m.seq_len}); lower it or raise model.seq_len")
    # A window holds [CLS], at least one question token and two [SEP]s.
    require(m.max_answer_tokens <= m.seq_len - 4, where,
            f"model.max_answer_tokens ({m.max_answer_tokens}) is longer than any window's context can be "
            f"(model.seq_len {m.seq_len} - 4); lower it or raise model.seq_len")
    require(not (c.lowercase or c.normalize == "NFKC" or c.drop_empty or c.dedupe), where,
            "data.cleaning: question answering reads SQuAD text as it is (answers are character offsets into "
            "it, and the tokenizer lowercases if it was built to); remove the data.cleaning settings")
    require(c.pii == "keep" and not c.near_duplicates, where,
            "data.cleaning.pii and near_duplicates: question answering reads SQuAD text as it is (answers are "
            "character offsets into it); remove them")
