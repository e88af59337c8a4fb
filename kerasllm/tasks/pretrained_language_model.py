"""Language models started from pretrained checkpoints: one registered task
per keras-hub family (`model.kind: gpt2 | llama3`, see
`kerasllm.pretrained.FAMILIES`).

A run names its checkpoint in `train.init_from` (a Hugging Face directory,
a keras-hub preset or a `hf://` / `kaggle://` handle) and reads text with
the checkpoint's own tokenizer (`tokenizer.kind: pretrained`); the model's
sizes come from the checkpoint. Everything after that is the language
model's: training, exact resume, evaluation, generate, score, export.
`kerasllm generate | score | export --checkpoint DIR` use a checkpoint
without training it (`load_checkpoint`).

Example:
    from kerasllm import task_registry

    task = task_registry.get("gpt2")
    task.validate(config, "configs/finetune-gpt2.yaml")  # fills model sizes from the checkpoint
"""

from __future__ import annotations

import os

from kerasllm import pretrained
from kerasllm.config import FINETUNE_KEYS, require
from kerasllm.errors import UserError
from kerasllm.tasks.base import Explaining
from kerasllm.tasks.language_model import TRANSFORMER_KEYS, LanguageModel

SIZE_KEYS = ("num_layers", "num_heads", "hidden_dim", "intermediate_dim")


class PretrainedLanguageModel(LanguageModel):
    """The language-model task over one keras-hub family's checkpoints.

    Args:
        family: a `kerasllm.pretrained.Family`.

    Example:
        register(PretrainedLanguageModel(pretrained.FAMILIES["gpt2"]))
    """

    def __init__(self, family):
        super().__init__(family.kind, None, TRANSFORMER_KEYS + FINETUNE_KEYS, transformer=False)
        self.family = family
        self.explaining = Explaining(no_attention=f"explain draws attention for kerasllm's own GPT; for a "
                                                  f"{family.title} model it shows the surprisal only")

    def validate(self, config, where: str) -> None:
        t, title = config.train, self.family.title
        require(config.tokenizer.kind == "pretrained", where,
                f"tokenizer.kind: a {title} run reads text with its checkpoint's tokenizer; set tokenizer.kind: "
                f"pretrained (got {config.tokenizer.kind})")
        # No checkpoint, or a missing directory, is not an error here: the
        # shipped configs leave it to --set, and a run that has started no
        # longer needs its checkpoint (starting a new one says what is wrong).
        if t.init_from and (pretrained.is_handle(t.init_from) or os.path.isdir(os.path.expanduser(t.init_from))):
            match_checkpoint(config, pretrained.inspect(t.init_from), where)

    def open_training(self, config, run, data_dir):
        from kerasllm.training.pretrained import PretrainedLanguageModelTask

        return PretrainedLanguageModelTask(config, run, data_dir, self.family)

    def load_model(self, config, run) -> tuple:
        import json

        import numpy as np

        from kerasllm.data.tokenizers import load_tokenizer
        from kerasllm.models.hub import HubCausalLM, backbone_from_config

        tokenizer = load_tokenizer(run.tokenizer)
        backbone = backbone_from_config(json.loads(run.architecture.read_text()), self.family)
        model = HubCausalLM.wrap(backbone, self.family, context=config.model.seq_len)
        model(np.zeros((1, 2), "int32"))
        return model, tokenizer, tokenizer

    def load_checkpoint(self, config) -> tuple:
        """(model, tokenizer, tokenizer) of `config.train.init_from`, with the
        checkpoint's weights: `kerasllm ... --checkpoint DIR`."""
        from kerasllm.data.tokenizers import PretrainedTokenizer
        from kerasllm.models.hub import HubCausalLM, backbone_from_checkpoint, load_checkpoint_weights

        path = config.train.init_from
        tokenizer = PretrainedTokenizer.from_checkpoint(path)
        backbone = backbone_from_checkpoint(path, self.family, config.model.seq_len)
        load_checkpoint_weights(backbone, path, self.family)
        return HubCausalLM.wrap(backbone, self.family, context=config.model.seq_len), tokenizer, tokenizer

    def check_prepare(self, where: str) -> None:
        raise UserError(f"{where}: kerasllm prepare writes shards of a tokenizer it trains; a {self.family.title} "
                        "run reads its text directly with the checkpoint's tokenizer (leave data.prepared out)")


def match_checkpoint(config, info, where: str) -> None:
    """Checks a config against its checkpoint and fills the model's sizes
    (and a `model.seq_len` left out, cut to the checkpoint's positions)
    from it; a key the config sets that contradicts it is a `UserError`
    naming both values.

    Example:
        match_checkpoint(config, pretrained.inspect("checkpoints/gpt2"), "configs/finetune-gpt2.yaml")
        config.model.num_layers  # 12
    """
    m, family = config.model, info.family
    require(family.kind == m.kind, where, f"model.kind: {m.kind}, but train.init_from {info.path} is a "
            f"{family.title} checkpoint (model.kind: {family.kind})")
    for key in SIZE_KEYS:
        if key in info.sizes:
            value = getattr(m, key)
            require(f"model.{key}" not in config.given or value == info.sizes[key], where,
                    f"model.{key}: {value} contradicts the checkpoint's {info.sizes[key]} ({info.path}); leave it out")
            setattr(m, key, info.sizes[key])
    vocab, given = info.sizes.get("vocab_size"), config.tokenizer.vocab_size
    if vocab is not None:
        require(given in (0, vocab), where, f"tokenizer.vocab_size: {given} does not match the checkpoint's "
                f"vocabulary of {vocab} ({info.path}); leave it out")
        config.tokenizer.vocab_size = vocab
    if info.max_positions:
        if "model.seq_len" in config.given:
            require(m.seq_len <= info.max_positions, where, f"model.seq_len: {m.seq_len} is longer than the "
                    f"{info.max_positions} positions of the checkpoint {info.path}; at most {info.max_positions}")
        else:
            m.seq_len = min(m.seq_len, info.max_positions)

