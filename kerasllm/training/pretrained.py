"""What a run started from a pretrained checkpoint trains (`model.kind:
gpt2 | llama3`): the language-model task's data and loss, with the
checkpoint's tokenizer, architecture and weights.

On a new run the checkpoint's tokenizer is saved into the run and its
backbone's config into `architecture.json`, so the run needs the
checkpoint only to start: resuming, evaluating and exporting read the run
alone.
"""

from __future__ import annotations

import json

from kerasllm import pretrained
from kerasllm.data.tokenizers import META_FILE, PretrainedTokenizer
from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text
from kerasllm.models.hub import HubCausalLM, backbone_from_checkpoint, backbone_from_config, load_checkpoint_weights
from kerasllm.training.tasks import LanguageModelTask


def save_checkpoint_tokenizer(config, run, info) -> None:
    """Saves the checkpoint's tokenizer into a new run (once), after checking
    its vocabulary fits the checkpoint's embedding rows."""
    if (run.tokenizer / META_FILE).is_file():
        return
    tokenizer = PretrainedTokenizer.from_checkpoint(info.path)
    rows = info.sizes.get("vocab_size")
    if rows is not None and tokenizer.vocabulary_size > rows:
        raise UserError(f"train.init_from: {info.path}'s tokenizer files hold {tokenizer.vocabulary_size} tokens, "
                        f"but its config.json gives the model {rows} embedding rows; the files belong to "
                        "different checkpoints")
    tokenizer.save(run.tokenizer)


class PretrainedLanguageModelTask(LanguageModelTask):
    """`LanguageModelTask` over a keras-hub causal LM started from
    `train.init_from` (see the module docstring).

    Args:
        config: the run's `RunConfig` (sizes already checked against the
            checkpoint by the task's `validate`).
        run: its `RunDir`.
        data_dir: where registered datasets live.
        family: the checkpoint's `kerasllm.pretrained.Family`.

    Example:
        training = PretrainedLanguageModelTask(config, RunDir("runs/gpt2-poems"), None, FAMILIES["gpt2"])
        model = training.build_model(None)
    """

    def __init__(self, config, run, data_dir, family):
        self.family, self.run = family, run
        if not run.architecture.is_file():  # a new run: read the checkpoint now
            if not config.train.init_from:
                raise UserError(f"train.init_from: model.kind {family.kind} starts from a {family.title} checkpoint; "
                                f"give its directory, e.g. --set train.init_from=checkpoints/{family.kind}")
            save_checkpoint_tokenizer(config, run, pretrained.inspect(config.train.init_from))
        super().__init__(config, run, data_dir, build=self._build)

    def _build(self, model_config, vocabulary_size, dtype):
        if self.run.architecture.is_file():
            backbone = backbone_from_config(json.loads(self.run.architecture.read_text()), self.family, dtype)
        else:
            backbone = backbone_from_checkpoint(self.config.train.init_from, self.family, model_config.seq_len, dtype)
            atomic_write_text(self.run.architecture, json.dumps(backbone.get_config()))
        return HubCausalLM.wrap(backbone, self.family, context=model_config.seq_len)

    def initialise(self, model, print_fn) -> None:
        path = self.config.train.init_from
        copied, cut = load_checkpoint_weights(model.backbone, path, self.family)
        print_fn(f"Initialised all {copied} weights from the {self.family.title} checkpoint {path}"
                 + (f"; cut to model.seq_len={self.config.model.seq_len} positions: {', '.join(cut)}" if cut else ""))
