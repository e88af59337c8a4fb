"""Evaluation: metrics of trained runs on held-out data.

Each kind of run is scored on the splits it has (`SPLITS`, the default
first); any other `--split` is refused before TensorFlow loads, naming the
valid ones. Every result names the run and the split.

Example:
    evaluate_run("runs/shakespeare-char")  # {"run": ..., "split": "validation", "loss": ...}
"""

from __future__ import annotations

__all__ = ["SPLITS", "evaluate_run", "resolve_split"]

# The splits a run of each kind (`kerasllm.config.run_kind`) can be scored
# on, its default first. `train` is the training data itself: a score there
# measures fit, not generalisation, and the result says so.
SPLITS = {
    "gpt": ("validation", "train"),
    "lstm": ("validation", "train"),
    "encoder/masked_lm": ("validation", "train"),
    "seq2seq": ("test", "validation", "train"),
    # dev: the registered dataset's dev file; validation: articles held out of its training file.
    "encoder/span": ("dev", "validation"),
}
_DESCRIPTIONS = {"gpt": "language-model", "lstm": "language-model", "encoder/masked_lm": "masked-LM pretraining",
                 "seq2seq": "translation", "encoder/span": "question-answering"}
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
    kind = config_lib.run_kind(config.model)
    valid = SPLITS[kind]
    if split is None:
        return config, valid[0]
    if split not in valid:
        raise UserError(f"--split {split}: {_DESCRIPTIONS[kind]} runs are scored on {', '.join(valid)} "
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
        split: one of `SPLITS` for the run's kind, or None for its default.
        beams, length_penalty: translation only: the beam search scored.

    Raises:
        UserError: not a run directory, or a split this kind of run does not have.

    Example:
        evaluate_run("runs/spa-eng", split="validation", beams=4)["bleu"]
    """
    config, split = resolve_split(run_dir, split)
    model = config.model
    if model.kind == "seq2seq":
        from kerasllm.evaluation.translation import evaluate_translation

        result = evaluate_translation(run_dir, data_dir, split, beams, length_penalty)
    elif model.kind == "encoder" and model.head == "span":
        from kerasllm.evaluation.question_answering import evaluate_qa

        result = evaluate_qa(run_dir, data_dir, split)
    elif model.kind == "encoder":  # masked-LM pretraining
        from kerasllm.evaluation.language_model import evaluate_masked_lm

        result = evaluate_masked_lm(run_dir, data_dir, split)
    else:
        from kerasllm.evaluation.language_model import evaluate_lm

        result = evaluate_lm(run_dir, data_dir, split)
    named = {"run": str(run_dir), "split": split}
    if split == "train":
        named["note"] = TRAINING_SPLIT_NOTE
    return {**named, **{k: v for k, v in result.items() if k not in named}}
