"""The masked-LM pretraining task (`model.kind: encoder`, `model.head: masked_lm`).

Text blocks framed as `[CLS] block [SEP]` are masked by keras-hub's
`MaskedLMMaskGenerator` and an encoder learns to fill them
(`kerasllm.training.encoder_tasks.MaskedLMTask`). Runs are scored by the
masked tokens' loss and accuracy; they have nothing to serve: a question-
answering run starts from one with `train.init_from`.

Example:
    from kerasllm import task_registry

    task_registry.get("encoder", "masked_lm").evaluate("runs/squad-mlm", None, "validation")
"""

from __future__ import annotations

from kerasllm.config import require
from kerasllm.errors import UserError
from kerasllm.tasks.encoders import ENCODER_KEYS, check_encoder
from kerasllm.tasks.language_model import _DOCUMENT_KEYS


class MaskedLM:
    """BERT-style masked-LM pretraining of an encoder.

    Example:
        register(MaskedLM())
    """

    kind = "encoder"
    head = "masked_lm"
    description = "masked-LM pretraining"
    splits = ("validation", "train")
    serving_kind = None
    commands = ()
    explaining = None  # refuse("explain") says what to do
    config_keys = ENCODER_KEYS + _DOCUMENT_KEYS + ("train.mask_rate",)

    def build(self, model_config, vocabulary_size: int, dtype=None):
        """A built `BertMaskedLM` for a vocabulary."""
        from kerasllm.models.encoder import masked_lm_model

        return masked_lm_model(model_config, vocabulary_size, dtype)

    def explain(self, loaded, text, *passage, layers=None, heads=None):
        raise UserError(self.refuse("explain", ""))

    def validate(self, config, where: str) -> None:
        check_encoder(config, where)
        require(not config.model.question_match, where,
                "model.question_match marks question words in a context; it applies to model.head span only")

    def report_corpus(self, config, data_dir):
        from kerasllm.data.report import language_model_corpus

        return language_model_corpus(config, data_dir)

    def open_training(self, config, run, data_dir):
        from kerasllm.training.encoder_tasks import MaskedLMTask

        return MaskedLMTask(config, run, data_dir)

    def preprocessor(self, config, tokenizer, target_tokenizer=None):
        """A `MaskedLMPreprocessor`: windows of `model.seq_len`, `train.mask_rate` masked."""
        from kerasllm.data.preprocessors import MaskedLMPreprocessor

        return MaskedLMPreprocessor(tokenizer, config.model.seq_len, config.train.mask_rate)

    def load_model(self, config, run) -> tuple:
        from kerasllm.data.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run.tokenizer)
        return self.build(config.model, tokenizer.vocabulary_size), tokenizer, tokenizer

    def evaluate(self, run_dir, data_dir, split, beams=1, length_penalty=0.6) -> dict:
        from kerasllm.evaluation.language_model import evaluate_masked_lm

        return evaluate_masked_lm(run_dir, data_dir, split)

    def export(self, loaded, run_dir, name, base_dir, version, beams, length_penalty) -> dict:
        raise UserError(f"--run {run_dir}: a masked-LM pretraining run has nothing to serve; export the "
                        "question-answering run fine-tuned from it")

    def export_width(self, given: set, beams: int, beam_search_width: int) -> int:
        return beam_search_width  # `export` refuses the run itself, naming what to do

    def open_client(self, command, model=None, run=None, **options):
        raise UserError(f"--run {run}: {self.refuse(command, run)}")

    def refuse(self, command: str, source: str) -> str:
        if command == "explain":
            return ("a encoder/masked_lm run (masked-LM pretraining); explain covers language models, translators "
                    "and question answering: fine-tune it first (configs/squad-qa.yaml)")
        if command == "translate":
            return "a question-answering or masked-LM encoder run; `kerasllm qa` answers with a QA run"
        return ("a masked-LM pretraining run: an encoder, which neither generates nor scores text; fine-tune "
                "it for questions (configs/squad-qa.yaml) or train a GPT run")

    def check_prepare(self, where: str) -> None:
        pass  # pretraining reads the language model's shards
