"""Inference: generation (and later scoring) from trained runs."""
