"""Evaluation: metrics of trained runs on held-out data."""

__all__ = ["evaluate_run"]


def evaluate_run(run_dir: str, data_dir=None, split: str | None = None, beams: int = 1,
                 length_penalty: float = 0.6) -> dict:
    """Language-model metrics, or BLEU/chrF for a translation run."""
    from kerasllm import config as config_lib
    from kerasllm.errors import UserError
    from kerasllm.training.checkpoint import RunDir

    config_path = RunDir(run_dir).config
    if not config_path.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    model = config_lib.load(config_path).model
    if model.kind == "seq2seq":
        from kerasllm.evaluation.translation import evaluate_translation

        return evaluate_translation(run_dir, data_dir, split or "test", beams, length_penalty)
    if model.kind == "encoder" and model.head == "span":
        from kerasllm.evaluation.question_answering import evaluate_qa

        if split not in (None, "dev", "validation"):
            raise UserError(f"--split {split}: question-answering runs are scored on dev or validation")
        return evaluate_qa(run_dir, data_dir, split or "dev")
    if model.kind == "encoder":  # masked-LM pretraining
        from kerasllm.evaluation.language_model import evaluate_masked_lm

        return evaluate_masked_lm(run_dir, data_dir, split or "validation")
    if split == "test":
        raise UserError("--split test: language-model runs have train and validation splits only")
    from kerasllm.evaluation.language_model import evaluate_lm

    return evaluate_lm(run_dir, data_dir, split or "validation")
