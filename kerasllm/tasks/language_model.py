"""The language-model task: GPT and LSTM runs (`model.kind: gpt | lstm`).

Text is read as documents, packed into blocks of `model.seq_len + 1`
tokens and learnt causally (`kerasllm.training.tasks.LanguageModelTask`);
runs are scored by loss, perplexity and accuracy, exported with generate,
beam_search, score, tokenize and detokenize signatures, and used by
`kerasllm generate` and `kerasllm score`. One class serves both kinds;
each registered instance carries its model builder.

Example:
    from kerasllm import task_registry

    gpt = task_registry.get("gpt")
    model = gpt.build(config.model, vocabulary_size=65)
"""

from __future__ import annotations

from kerasllm.config import require
from kerasllm.tasks.base import Explaining

# Keys only some tasks read that language models read (see `Task.config_keys`).
_DOCUMENT_KEYS = ("data.document", "data.field", "data.prepared", "data.split_group", "data.cleaning")
_LM_KEYS = _DOCUMENT_KEYS + ("train.data_service", "train.sample_prompt", "train.sample_tokens", "train.num_samples",
                             "train.init_from")
TRANSFORMER_KEYS = ("model.num_layers", "model.num_heads", "model.intermediate_dim")


def check_heads_divide(config, where: str) -> None:
    """A Transformer's `model.hidden_dim` splits evenly over its heads."""
    m = config.model
    require(m.hidden_dim % m.num_heads == 0, where,
            f"model.hidden_dim ({m.hidden_dim}) must be divisible by model.num_heads ({m.num_heads})")


def check_init_run(config, where: str, keys=TRANSFORMER_KEYS + ("model.tie_embeddings", "model.embedding_dim")) -> None:
    """For a run that continues another (`train.init_from`, a run of the same
    kind), the model keys must be that run's: its weights are copied into
    the same architecture, whose position table may only be shorter. Read
    from the other run's config.yaml, before TensorFlow loads (a missing
    run is answered when training starts).

    Example:
        check_init_run(config, "configs/more-poems.yaml")
    """
    import os

    from kerasllm import config as config_lib

    path = os.path.join(os.path.expanduser(config.train.init_from or ""), "config.yaml")
    if not config.train.init_from or not os.path.isfile(path):
        return
    other = config_lib.load(path)
    if other.model.kind != config.model.kind:
        return  # refused with its own message when training starts (kerasllm.training.init_from)
    for key in keys:
        name = key.split(".", 1)[1]
        mine, theirs = getattr(config.model, name), getattr(other.model, name)
        require(mine == theirs, where, f"{key}: {mine} differs from {theirs} in train.init_from "
                f"{config.train.init_from}; a run continues with the architecture of the run it starts from")
    require(config.model.seq_len <= other.model.seq_len, where, f"model.seq_len: {config.model.seq_len} is longer "
            f"than the {other.model.seq_len} positions of train.init_from {config.train.init_from}")


def only_local_data(config, where: str) -> None:
    """The rule of tasks that read their data locally, not from the tf.data service."""
    require(not config.train.data_service, where, "train.data_service feeds language models; translation and "
            "question-answering runs read their data locally")


class LanguageModel:
    """A causal language model over one tokenizer's vocabulary.

    Args:
        kind: its `model.kind`.
        build: `(ModelConfig, vocabulary_size, dtype) -> model`, e.g.
            `kerasllm.models.build_gpt`.
        model_keys: the model keys only this architecture (and some other
            tasks) read, e.g. `model.embedding_dim` for the LSTM.
        transformer: whether heads must divide `model.hidden_dim`.

    Example:
        register(LanguageModel("gpt", build_gpt, TRANSFORMER_KEYS + ("model.tie_embeddings",), transformer=True))
    """

    head = None
    description = "language-model"
    splits = ("validation", "train")  # train: the training split itself (the result says so)
    serving_kind = "language_model"
    commands = ("generate", "score", "audit-memorization")

    def __init__(self, kind: str, build, model_keys: tuple, transformer: bool):
        self.kind = kind
        self.explaining = Explaining() if transformer else Explaining(
            no_attention="an LSTM has no attention; explain shows the surprisal only")
        self._build = build
        self.config_keys = _LM_KEYS + tuple(model_keys)
        self._model_keys = tuple(k for k in model_keys if k.startswith("model."))
        self._transformer = transformer

    def build(self, model_config, vocabulary_size: int, dtype=None):
        """The unbuilt model for a vocabulary (see `kerasllm.models`)."""
        return self._build(model_config, vocabulary_size, dtype)

    def explain(self, loaded, text, *passage, layers=None, heads=None):
        from kerasllm.inference.explain import explain_language_model

        return explain_language_model(loaded, text, layers=layers, heads=heads)

    def validate(self, config, where: str) -> None:
        if self._transformer:
            check_heads_divide(config, where)
        check_init_run(config, where, self._model_keys)

    def report_corpus(self, config, data_dir):
        from kerasllm.data.report import language_model_corpus

        return language_model_corpus(config, data_dir)

    def open_training(self, config, run, data_dir):
        from kerasllm.training.tasks import LanguageModelTask

        return LanguageModelTask(config, run, data_dir, build=self.build)

    def preprocessor(self, config, tokenizer, target_tokenizer=None):
        """A `LanguageModelPreprocessor` over the run's tokenizer."""
        from kerasllm.data.preprocessors import LanguageModelPreprocessor

        return LanguageModelPreprocessor(tokenizer)

    def load_model(self, config, run) -> tuple:
        import numpy as np

        from kerasllm.data.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run.tokenizer)
        model = self.build(config.model, tokenizer.vocabulary_size)
        model(np.zeros((1, 2), "int32"))
        return model, tokenizer, tokenizer

    def evaluate(self, run_dir, data_dir, split, beams=1, length_penalty=0.6) -> dict:
        from kerasllm.evaluation.language_model import evaluate_lm

        return evaluate_lm(run_dir, data_dir, split)

    def export(self, loaded, run_dir, name, base_dir, version, beams, length_penalty) -> dict:
        from kerasllm.export.runs import export_language_model

        return export_language_model(loaded, run_dir, name, base_dir, version, beams)

    def export_width(self, given: set, beams: int, beam_search_width: int) -> int:
        # Before --beams got its one meaning, `export --beams` set a language
        # model's beam_search width; now that is --beam-search-width.
        if "beams" in given and beams != 1:
            from kerasllm.errors import UserError

            raise UserError(f"--beams {beams}: a language model's requests do not choose a width; for the width of "
                            f"its beam_search signature give --beam-search-width {beams}")
        return beam_search_width

    def open_client(self, command, model=None, run=None, beams: int = 4, checkpoint=None, **options):
        from kerasllm.export.client import LanguageModelClient

        return LanguageModelClient.open(model=model, run=run, beams=beams, checkpoint=checkpoint)

    def refuse(self, command: str, source: str) -> str:
        return f"a {self.kind} language model; use `kerasllm generate`"

    def check_prepare(self, where: str) -> None:
        pass  # `prepare` writes language-model shards
