"""Starting a new run from another kerasllm run's weights (`train.init_from`
naming a run directory): its tokenizer(s) are taken, and its best weights
are copied into the new run's model of the same architecture. A language
model or translator continues on new data this way; an encoder is
fine-tuned from its pretraining (kerasllm.training.encoder_tasks copies
its backbone only).
"""

from __future__ import annotations

import os
import shutil

from kerasllm import task_registry
from kerasllm.config import RunConfig
from kerasllm.data.pair_corpus import TARGET_TOKENIZER_DIR
from kerasllm.errors import UserError
from kerasllm.run_dir import RunDir

TOKENIZER_DIRS = ("tokenizer", TARGET_TOKENIZER_DIR)  # a translator's second vocabulary, where it has one


def init_run(config: RunConfig) -> RunDir:
    """The run `train.init_from` names, checked before anything is taken
    from it: a run directory with weights and a tokenizer, of this run's
    `model.kind`.

    Example:
        init_run(config).root  # PosixPath("runs/shakespeare-char")
    """
    from kerasllm import config as config_lib

    run = RunDir(os.path.expanduser(config.train.init_from))
    if not run.config.is_file() or run.inference_weights() is None or not (run.tokenizer / "tokenizer.json").is_file():
        raise UserError(f"train.init_from: {run.root} is not a run directory with saved weights and a tokenizer; "
                        "train that run first")
    init = config_lib.load(run.config)
    kind = init.model.kind
    if kind != config.model.kind:  # the weights are copied layer by layer into the same architecture
        article = "an" if config.model.kind[0] in "aeiou" else "a"
        raise UserError(f"train.init_from: {run.root} trained a {kind} model, not {article} {config.model.kind}; "
                        f"name a run of model.kind {config.model.kind}")
    if init.train.lora_rank:  # its weights are frozen kernels plus adapters, not a plain model's
        raise UserError(f"train.init_from: {run.root} trained LoRA adapters (train.lora_rank), whose weights are "
                        "not a plain model's; start from a run trained without them")
    return run


def take_tokenizers(config: RunConfig, run: RunDir) -> None:
    """A new run that starts from another reads text with that run's
    tokenizer(s), copied into it once. (A run cannot gain init_from later:
    it is part of the run's identity.)"""
    if not config.train.init_from or (run.tokenizer / "tokenizer.json").is_file():
        return
    source = init_run(config)
    for name in TOKENIZER_DIRS:
        if (source.root / name).is_dir():
            shutil.copytree(source.root / name, run.root / name, dirs_exist_ok=True)


def load_run_weights(model, config: RunConfig, print_fn) -> None:
    """Copies the best weights of `train.init_from`'s run into `model` (the
    same architecture; a position table cut to a shorter `model.seq_len`),
    and says so."""
    from kerasllm import config as config_lib
    from kerasllm.models.weights import copy_weights

    init = init_run(config)
    init_config = config_lib.load(init.config)
    source, _, _ = task_registry.for_model(init_config.model).load_model(init_config, init)
    init.load_inference_weights(source)
    cut = copy_weights(source.weights, model.weights, f"train.init_from: {init.root}")
    print_fn(f"Initialised all {len(model.weights)} weights from {init.root}"
             + (f"; cut to model.seq_len={config.model.seq_len} positions: {', '.join(cut)}" if cut else ""))
