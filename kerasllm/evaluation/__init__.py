"""Evaluation: metrics of trained runs on held-out data."""

from kerasllm.evaluation.language_model import evaluate_lm

__all__ = ["evaluate_lm"]
