"""A trained run, loaded for use: its config, tokenizer(s), preprocessor and
best weights.

Why its own module: inference, evaluation and export all start from a
trained run, and loading one needs the run's task (which builds its model
and loads its tokenizers, through `kerasllm.task_registry`).
It sits one layer above models/data and below inference, evaluation and
export, so none of those three has to import another to load a run
(`RunDir`, the directory layout alone, is `kerasllm.run_dir`'s, below data).

Example:
    lm = load_run("runs/shakespeare-char")
    lm.model, lm.tokenizer, lm.config.model.kind
    lm.preprocessor  # the task's strings <-> ids (kerasllm.data.preprocessors)
"""

from __future__ import annotations

from dataclasses import dataclass

from kerasllm import config as config_lib
from kerasllm import task_registry
from kerasllm.errors import UserError
from kerasllm.run_dir import RunDir


@dataclass
class LoadedRun:
    config: object
    tokenizer: object  # a translator's source tokenizer
    model: object
    target_tokenizer: object = None  # translators: the target side's (may be `tokenizer`)
    preprocessor: object = None  # the task's `preprocessor` over the tokenizer(s)
    checkpoint: str = ""  # a pretrained checkpoint used as it is (`load_checkpoint`), not a run


def load_run(run_dir: str) -> LoadedRun:
    """Config, tokenizer(s), the task's preprocessor over them
    (`Task.preprocessor`) and best (else latest) weights of a run directory;
    a LoRA run's model has its adapters (`kerasllm.models.finetune.apply`).

    Args:
        run_dir: a run directory from `kerasllm train`.

    Raises:
        UserError: not a run directory, or no weights saved yet.

    Example:
        load_run("runs/tiny").model.count_params()
    """
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    config = config_lib.load(run.config)
    weights = run.inference_weights()
    if weights is None:
        raise UserError(f"--run {run_dir}: no weights saved yet; train longer (see train.save_every_steps)")
    # The run's task builds its model, loads its tokenizer(s) and makes its preprocessor.
    task = task_registry.for_model(config.model)
    model, tokenizer, target_tokenizer = task.load_model(config, run)
    # A LoRA run's weights are the frozen kernels and their adapters: the
    # model gets its adapters before they load.
    from kerasllm.models import finetune

    finetune.apply(model, config.train)
    run.load_inference_weights(model)
    return LoadedRun(config, tokenizer, model, target_tokenizer, task.preprocessor(config, tokenizer, target_tokenizer))


def load_checkpoint(path: str) -> LoadedRun:
    """A pretrained checkpoint used as it is (`--checkpoint DIR`): the
    `LoadedRun` of its family's task, with the checkpoint's weights and
    tokenizer and a config of its whole context (`checkpoint_config`).

    Args:
        path: a Hugging Face directory, a keras-hub preset, or a `hf://` /
            `kaggle://` handle.

    Raises:
        UserError: not a checkpoint, a family kerasllm does not run, or
            damaged weights.

    Example:
        load_checkpoint("checkpoints/gpt2").model.count_params()
    """
    config = checkpoint_config(path)
    task = task_registry.for_model(config.model)
    model, tokenizer, target_tokenizer = task.load_checkpoint(config)
    return LoadedRun(config, tokenizer, model, target_tokenizer, task.preprocessor(config, tokenizer, target_tokenizer),
                     checkpoint=path)


# The context of `--checkpoint` use when a checkpoint states no positions.
DEFAULT_CONTEXT = 2048


def checkpoint_config(path: str, where: str = "--checkpoint"):
    """The `RunConfig` of using a checkpoint as it is (`--checkpoint`): its
    family's kind, its tokenizer, its whole context.

    Example:
        checkpoint_config("checkpoints/gpt2").model.seq_len  # 1024
    """
    import os

    from kerasllm import pretrained

    info = pretrained.inspect(path, where)
    return config_lib.from_dict({
        "name": os.path.basename(os.path.normpath(path)) or info.family.kind,
        "tokenizer": {"kind": "pretrained"},
        "model": {"kind": info.family.kind, "seq_len": info.max_positions or DEFAULT_CONTEXT},
        "train": {"init_from": path},
    }, where=f"{where} {path}")
