"""The click application, installed as the package `kerasllm.cli`."""
