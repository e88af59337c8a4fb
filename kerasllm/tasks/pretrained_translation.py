"""Translation from a pretrained encoder-decoder: one registered task per
keras-hub family with role "seq2seq" (`model.kind: bart`, see
`kerasllm.pretrained.FAMILIES`).

A run names its checkpoint in `train.init_from` (a Hugging Face directory,
a keras-hub preset or a `hf://` / `kaggle://` handle) and reads its
sentence pairs with the checkpoint's own byte-level BPE tokenizer
(`tokenizer.kind: pretrained`, one vocabulary for both languages); the
model's sizes come from the checkpoint, and the model is keras-hub's
`BartSeq2SeqLM` with its cached decoding. Ids are framed as BART was
pretrained (`BartTranslationPreprocessor`). Everything after that is the
translation task's: length-bucketed pairs, training, exact resume, BLEU
and chrF, `kerasllm translate`, the exported `sources -> translations`
signature. `kerasllm translate | export --checkpoint DIR` use a checkpoint
as it is (`load_checkpoint`).

Example:
    from kerasllm import task_registry

    task = task_registry.get("bart")
    task.validate(config, "configs/translate-bart.yaml")  # fills model sizes from the checkpoint
"""

from __future__ import annotations

import os

from kerasllm import pretrained
from kerasllm.config import require
from kerasllm.errors import UserError
from kerasllm.tasks.language_model import only_local_data
from kerasllm.tasks.pretrained_language_model import match_checkpoint
from kerasllm.tasks.translation import Translation

# Encoder and decoder sizes a Hugging Face BART config.json states apart;
# keras-hub's BartBackbone has one of each for both halves.
_SYMMETRIC = (("encoder_layers", "decoder_layers"), ("encoder_attention_heads", "decoder_attention_heads"),
              ("encoder_ffn_dim", "decoder_ffn_dim"))


class PretrainedTranslation(Translation):
    """The translation task over one keras-hub encoder-decoder family's
    checkpoints.

    Args:
        family: a `kerasllm.pretrained.Family` with role "seq2seq".

    Example:
        register(PretrainedTranslation(pretrained.FAMILIES["bart"]))
    """

    explaining = None  # refuse("explain") says why
    # One vocabulary (the checkpoint's): no tokenizer.shared, no tie choice.
    config_keys = tuple(k for k in Translation.config_keys if k not in ("tokenizer.shared", "model.tie_embeddings"))

    def __init__(self, family):
        self.family = family
        self.kind = family.kind

    def validate(self, config, where: str) -> None:
        t, title = config.train, self.family.title
        require(config.tokenizer.kind == "pretrained", where,
                f"tokenizer.kind: a {title} run reads text with its checkpoint's tokenizer; set tokenizer.kind: "
                f"pretrained (got {config.tokenizer.kind})")
        # As for the other families: no checkpoint here yet (the shipped
        # config leaves it to --set), or a run that has started and no
        # longer needs it, is not an error at this point.
        if t.init_from and (pretrained.is_handle(t.init_from) or os.path.isdir(os.path.expanduser(t.init_from))):
            info = pretrained.inspect(t.init_from)
            for encoder, decoder in _SYMMETRIC:
                sizes = info.config.get(encoder), info.config.get(decoder)
                require(None in sizes or sizes[0] == sizes[1], where, f"train.init_from: {info.path} has "
                        f"{encoder} {sizes[0]} but {decoder} {sizes[1]}; keras-hub's {self.family.backbone} needs "
                        "them equal")
            match_checkpoint(config, info, where)
        require(config.model.seq_len >= 3, where, f"model.seq_len: a {title} sentence is framed by <s> and </s>; "
                f"give at least 3 (got {config.model.seq_len})")
        only_local_data(config, where)

    def build(self, model_config, vocabulary_size: int, dtype=None):
        raise UserError(f"a {self.family.title} model is built from its checkpoint (train.init_from) or from a run "
                        "that started from one")

    def open_training(self, config, run, data_dir):
        from kerasllm.training.pretrained_translation import PretrainedTranslationTask

        return PretrainedTranslationTask(config, run, data_dir, self.family)

    def preprocessor(self, config, tokenizer, target_tokenizer=None):
        """A `BartTranslationPreprocessor` over the checkpoint's tokenizer:
        `<s> source </s>` in, `</s> <s>` as the decoder's prompt."""
        from kerasllm.data.preprocessors import BartTranslationPreprocessor

        return BartTranslationPreprocessor(tokenizer, target_tokenizer or tokenizer, config.model.seq_len)

    def _model(self, backbone):
        import numpy as np

        from kerasllm.models.hub import seq2seq_lm_on

        model = seq2seq_lm_on(backbone, self.family)
        ids, mask = np.zeros((1, 2), "int32"), np.ones((1, 2), bool)
        model({"encoder_token_ids": ids, "encoder_padding_mask": mask, "decoder_token_ids": ids,
               "decoder_padding_mask": mask})
        return model

    def load_model(self, config, run) -> tuple:
        import json

        from kerasllm.data.pair_corpus import load_pair_tokenizers
        from kerasllm.models.hub import backbone_from_config

        tokenizer, target_tokenizer = load_pair_tokenizers(run.root)
        backbone = backbone_from_config(json.loads(run.architecture.read_text()), self.family)
        return self._model(backbone), tokenizer, target_tokenizer

    def load_checkpoint(self, config) -> tuple:
        """(model, tokenizer, tokenizer) of `config.train.init_from`, with the
        checkpoint's weights: `kerasllm translate | export --checkpoint DIR`."""
        from kerasllm.data.tokenizers import PretrainedTokenizer
        from kerasllm.models.hub import backbone_from_checkpoint, load_checkpoint_weights

        path = config.train.init_from
        tokenizer = PretrainedTokenizer.from_checkpoint(path)
        backbone = backbone_from_checkpoint(path, self.family, config.model.seq_len)
        model = self._model(backbone)
        load_checkpoint_weights(model.backbone, path, self.family)
        return model, tokenizer, tokenizer

    def open_client(self, command, model=None, run=None, checkpoint=None, **options):
        from kerasllm.export.client import TranslatorClient

        if checkpoint is not None:
            from kerasllm.loaded_run import load_checkpoint

            return TranslatorClient.from_loaded(load_checkpoint(checkpoint))
        return TranslatorClient.open(model=model, run=run)

    def refuse(self, command: str, source: str) -> str:
        if command == "explain":
            return (f"explain draws the attention of kerasllm's own translator (model.kind seq2seq); a "
                    f"{self.family.title} run has no explanation; use `kerasllm translate --run {source}`")
        return f"a {self.family.title} translation model; use `kerasllm translate`"

    def check_prepare(self, where: str) -> None:
        raise UserError(f"{where}: `prepare` writes language-model shards; a {self.family.title} run reads its "
                        "sentence pairs directly with the checkpoint's tokenizer (leave data.prepared out)")
