"""What a translation run started from a pretrained encoder-decoder trains
(`model.kind: bart`): the translation task's sentence pairs, bucketed
batches, loss and samples, with the checkpoint's byte-level BPE tokenizer
(inside the tf.data graph), keras-hub's `BartSeq2SeqLM` and its weights.

On a new run the checkpoint's tokenizer is saved into the run and its
backbone's config into `architecture.json`, so the run needs the
checkpoint only to start: resuming, evaluating and exporting read the run
alone.
"""

from __future__ import annotations

import json

from kerasllm import pretrained
from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text
from kerasllm.models.hub import backbone_from_checkpoint, backbone_from_config, load_checkpoint_weights, seq2seq_lm_on
from kerasllm.training.pretrained import save_checkpoint_tokenizer
from kerasllm.training.tasks import TranslationTask


class PretrainedTranslationTask(TranslationTask):
    """`TranslationTask` over a keras-hub encoder-decoder started from
    `train.init_from` (see the module docstring).

    Args:
        config: the run's `RunConfig` (sizes already checked against the
            checkpoint by the task's `validate`).
        run: its `RunDir`.
        data_dir: where registered datasets live.
        family: the checkpoint's `kerasllm.pretrained.Family`.

    Example:
        training = PretrainedTranslationTask(config, RunDir("runs/translate-bart"), None, FAMILIES["bart"])
        model = training.build_model(None)
    """

    def __init__(self, config, run, data_dir, family):
        self.family, self.run = family, run
        if not run.architecture.is_file():  # a new run: read the checkpoint now
            if not config.train.init_from:
                raise UserError(f"train.init_from: model.kind {family.kind} starts from a {family.title} checkpoint; "
                                f"give its directory, e.g. --set train.init_from=checkpoints/{family.kind}")
            save_checkpoint_tokenizer(config, run, pretrained.inspect(config.train.init_from))
        super().__init__(config, run, data_dir)

    def build_model(self, dtype):
        if self.run.architecture.is_file():
            backbone = backbone_from_config(json.loads(self.run.architecture.read_text()), self.family, dtype)
        else:
            backbone = backbone_from_checkpoint(self.config.train.init_from, self.family, self.config.model.seq_len,
                                                dtype)
            atomic_write_text(self.run.architecture, json.dumps(backbone.get_config()))
        return seq2seq_lm_on(backbone, self.family)

    def initialise(self, model, print_fn) -> None:
        path = self.config.train.init_from
        copied, cut = load_checkpoint_weights(model.backbone, path, self.family)
        print_fn(f"Initialised all {copied} weights from the {self.family.title} checkpoint {path}"
                 + (f"; cut to model.seq_len={self.config.model.seq_len} positions: {', '.join(cut)}" if cut else ""))

    def validation_explainer(self):
        return None  # the attention pictures are of kerasllm's own translator
