"""Evaluation: metrics of trained runs on held-out data."""

from kerasllm.evaluation.language_model import evaluate_lm

__all__ = ["evaluate_lm", "evaluate_run"]


def evaluate_run(run_dir: str, data_dir=None, split: str | None = None, beams: int = 1,
                 length_penalty: float = 0.6) -> dict:
    """Language-model metrics, or BLEU/chrF for a translation run."""
    from kerasllm import config as config_lib
    from kerasllm.errors import UserError
    from kerasllm.training.checkpoint import RunDir

    config_path = RunDir(run_dir).config
    if not config_path.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    if config_lib.load(config_path).model.kind == "seq2seq":
        from kerasllm.evaluation.translation import evaluate_translation

        return evaluate_translation(run_dir, data_dir, split or "test", beams, length_penalty)
    if split == "test":
        raise UserError("--split test: language-model runs have train and validation splits only")
    return evaluate_lm(run_dir, data_dir, split or "validation")
