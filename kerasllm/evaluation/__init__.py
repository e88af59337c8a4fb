"""Evaluation: metrics of trained runs on held-out data.

Each kind of run is scored on the splits its task has (`Task.splits`, the
default first); any other `--split` is refused before TensorFlow loads, naming the
valid ones. Every result names the run and the split.

Example:
    evaluate_run("runs/shakespeare-char")  # {"run": ..., "split": "validation", "loss": ...}
"""

from __future__ import annotations

__all__ = ["evaluate_run", "resolve_split", "splits"]

from kerasllm import task_registry


def splits() -> dict:
    """The splits a run of each task (by `task_registry.name`) is scored on,
    its default first (each task's `splits`). `train` is the training data
    itself: a score there measures fit, not generalisation, and the result
    says so.

    Example:
        splits()["seq2seq"]  # ("test", "validation", "train")
    """
    return {task_registry.name(t): t.splits for t in task_registry.all_tasks()}


TRAINING_SPLIT_NOTE = "train is the training split: these scores measure fit to the training data, not held-out quality"


def resolve_split(run_dir, split: str | None):
    """The run's config and the split to score: `split`, or the kind's
    default when None. Reads only config.yaml (no TensorFlow), so a wrong
    split is answered at once.

    Args:
        run_dir: a run directory from `kerasllm train`.
        split: a split name, or None for the default of the run's kind.

    Raises:
        UserError: not a run directory, or a split this kind of run does not have.

    Example:
        resolve_split("runs/shakespeare-char", None)[1]  # "validation"
    """
    from kerasllm import config as config_lib
    from kerasllm.errors import UserError
    from kerasllm.run_dir import RunDir  # imports no TensorFlow

    config_path = RunDir(run_dir).config
    if not config_path.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    config = config_lib.load(config_path)
    task = task_registry.for_model(config.model)
    valid = task.splits
    if split is None:
        return config, valid[0]
    if split not in valid:
        raise UserError(f"--split {split}: {task.description} runs are scored on {', '.join(valid)} "
                        f"(default {valid[0]})")
    return config, split


def evaluate_run(run_dir: str, data_dir=None, split: str | None = None, beams: int = 1,
                 length_penalty: float = 0.6) -> dict:
    """The metrics of a run's best weights on `split` (None: its kind's
    default): loss, perplexity and accuracy for language models, masked
    loss and accuracy for pretraining, BLEU/chrF for translation, Exact
    Match and F1 for question answering. The result starts with `run` and
    `split`, and a score on `train` carries a `note` that it is the training split.

    Args:
        run_dir: a run directory from `kerasllm train`.
        data_dir: where the datasets are (default: $KERASLLM_DATA_DIR).
        split: one of the run's task's `splits`, or None for its default.
        beams, length_penalty: translation only: the beam search scored.

    Raises:
        UserError: not a run directory, or a split this kind of run does not have.

    Example:
        evaluate_run("runs/spa-eng", split="validation", beams=4)["bleu"]
    """
    config, split = resolve_split(run_dir, split)
    result = task_registry.for_model(config.model).evaluate(run_dir, data_dir, split, beams, length_penalty)
    named = {"run": str(run_dir), "split": split}
    if split == "train":
        named["note"] = TRAINING_SPLIT_NOTE
    return {**named, **{k: v for k, v in result.items() if k not in named}}
