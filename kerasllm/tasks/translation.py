"""The translation task: encoder-decoder runs (`model.kind: seq2seq`).

Sentence pairs are read from a CSV/TSV (`kerasllm.data.paired_text`),
bucketed by length and learnt with teacher forcing
(`kerasllm.training.tasks.TranslationTask`); runs are scored by BLEU and
chrF, exported with a `sources -> translations` signature, and used by
`kerasllm translate`.

Example:
    from kerasllm import task_registry

    task_registry.get("seq2seq").evaluate("runs/spa-eng", None, "test", beams=4)["bleu"]
"""

from __future__ import annotations

from kerasllm.config import FINETUNE_KEYS, require
from kerasllm.errors import UserError
from kerasllm.tasks.base import Explaining
from kerasllm.tasks.language_model import TRANSFORMER_KEYS, check_heads_divide, check_init_run, only_local_data


class Translation:
    """Translation with a Transformer encoder-decoder (one or two vocabularies).

    Example:
        register(Translation())
    """

    kind = "seq2seq"
    head = None
    description = "translation"
    splits = ("test", "validation", "train")
    serving_kind = "translator"
    commands = ("translate",)
    explaining = Explaining()  # the cross-attention of its translation over the source
    config_keys = TRANSFORMER_KEYS + FINETUNE_KEYS + (
        "data.source_field", "data.target_field", "data.strict", "data.test_fraction", "data.cleaning",
        "tokenizer.shared", "model.tie_embeddings", "train.label_smoothing", "train.num_samples", "train.init_from",
    )

    def explain(self, loaded, text, *passage, layers=None, heads=None):
        from kerasllm.inference.explain import explain_translation

        return explain_translation(loaded, text, layers=layers, heads=heads)

    def validate(self, config, where: str) -> None:
        check_heads_divide(config, where)
        check_init_run(config, where, TRANSFORMER_KEYS + ("model.tie_embeddings",))
        only_local_data(config, where)

    def report_corpus(self, config, data_dir):
        from kerasllm.data.report import translation_corpus

        return translation_corpus(config, data_dir)

    def open_training(self, config, run, data_dir):
        from kerasllm.training.tasks import TranslationTask

        return TranslationTask(config, run, data_dir)

    def preprocessor(self, config, tokenizer, target_tokenizer=None):
        """A `TranslationPreprocessor` over the source and target tokenizers,
        translating at most `model.seq_len` tokens."""
        from kerasllm.data.preprocessors import TranslationPreprocessor

        return TranslationPreprocessor(tokenizer, target_tokenizer or tokenizer, config.model.seq_len)

    def load_model(self, config, run) -> tuple:
        import numpy as np

        from kerasllm.data.pair_corpus import load_pair_tokenizers
        from kerasllm.models import build_translator

        tokenizer, target_tokenizer = load_pair_tokenizers(run.root)
        model = build_translator(config.model, tokenizer, target_tokenizer)
        ids, mask = np.zeros((1, 2), "int32"), np.ones((1, 2), bool)
        model({"encoder_token_ids": ids, "encoder_padding_mask": mask, "decoder_token_ids": ids,
               "decoder_padding_mask": mask})
        return model, tokenizer, target_tokenizer

    def evaluate(self, run_dir, data_dir, split, beams=1, length_penalty=0.6) -> dict:
        from kerasllm.evaluation.translation import evaluate_translation

        return evaluate_translation(run_dir, data_dir, split, beams, length_penalty)

    def export(self, loaded, run_dir, name, base_dir, version, beams, length_penalty) -> dict:
        from kerasllm.export.runs import export_translator

        return export_translator(loaded, run_dir, name, base_dir, version, beams, length_penalty)

    def export_width(self, given: set, beams: int, beam_search_width: int) -> int:
        if "beam_search_width" in given:
            raise UserError("--beam-search-width: a translator has no beam_search signature; "
                            "its requests choose their width, --beams sets the default")
        return beams

    def open_client(self, command, model=None, run=None, **options):
        from kerasllm.export.client import TranslatorClient

        return TranslatorClient.open(model=model, run=run)

    def refuse(self, command: str, source: str) -> str:
        return f"a translation run; use `kerasllm translate --run {source}`"

    def check_prepare(self, where: str) -> None:
        require(False, where, "`prepare` writes language-model shards; translation runs read their pairs directly")
