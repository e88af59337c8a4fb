"""Text generation from a trained run: strings in, strings out.

Wraps keras-hub's `CausalLM.generate` (cached decoding, `keras_hub.samplers`)
with our tokenizer. Every prompt is preceded by the end-of-text token, which
is how the model saw document starts in training, so an empty prompt works.
Prompts longer than the context are cut from the left, with a warning.

Example:
    lm = load_run("runs/shakespeare-char")
    generate(lm.model, lm.tokenizer, ["ROMEO:"], max_new_tokens=100, top_k=10)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras_hub
import numpy as np
import tensorflow as tf

from kerasllm.errors import warn
from kerasllm.models import max_context


def make_sampler(temperature: float = 1.0, top_k: int = 0, seed: int | None = None):
    """Greedy at temperature 0, else top-k (k > 0) or full random sampling."""
    if temperature <= 0:
        return keras_hub.samplers.GreedySampler()
    if top_k > 0:
        return keras_hub.samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    return keras_hub.samplers.RandomSampler(seed=seed, temperature=temperature)


def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    stop_at_end: bool = True,
) -> list[str]:
    """Continuations (without the prompt) of each prompt."""
    ids = tokenizer.tokenize(tf.constant(prompts, tf.string)).to_list()
    context = max_context(model)
    if context is not None and max_new_tokens >= context:
        warn(f"max_new_tokens={max_new_tokens} lowered to {context - 1}: the model's context is {context} tokens")
        max_new_tokens = context - 1
    rows = []
    for row in ids:
        row = [tokenizer.eot_id] + row
        if context is not None and len(row) + max_new_tokens > context:
            keep = context - max_new_tokens
            warn(f"prompt of {len(row)} tokens cut to its last {keep} to fit the context of {context}")
            row = row[-keep:]
        rows.append(row)
    length = max(len(r) for r in rows) + max_new_tokens
    token_ids = np.full((len(rows), length), tokenizer.pad_id, dtype="int32")
    mask = np.zeros((len(rows), length), dtype=bool)
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
        mask[i, : len(row)] = True

    model.sampler = make_sampler(temperature, top_k, seed)
    model.generate_function = None  # the sampler is part of the traced function
    out = model.generate(
        {"token_ids": token_ids, "padding_mask": mask},
        stop_token_ids=(tokenizer.eot_id,) if stop_at_end else None,
    )
    # Decode prompt + continuation together (a subword tokenizer joins
    # pieces across the boundary), then drop the decoded prompt.
    full, prompt_only = [], []
    for i, row in enumerate(rows):
        keep = out["padding_mask"][i].astype(bool)
        full.append(out["token_ids"][i][keep].tolist())
        prompt_only.append(row)
    full_text, prompt_text = _decode(tokenizer, full), _decode(tokenizer, prompt_only)
    return [f[len(p) :] if f.startswith(p) else f for f, p in zip(full_text, prompt_text)]


def _decode(tokenizer, rows: list) -> list[str]:
    decoded = tokenizer.detokenize(tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)).numpy()
    return [d.decode("utf-8", errors="replace") for d in decoded]


@dataclass
class LoadedRun:
    config: object
    tokenizer: object
    model: object


def load_run(run_dir: str) -> LoadedRun:
    """Config, tokenizer and best (else latest) weights of a run directory."""
    from kerasllm import config as config_lib
    from kerasllm.data.tokenizers import load_tokenizer
    from kerasllm.errors import UserError
    from kerasllm.models import build_model
    from kerasllm.training.checkpoint import RunDir

    run = RunDir(run_dir)
    if not run.config.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    config = config_lib.load(run.config)
    weights = run.inference_weights()
    if weights is None:
        raise UserError(f"--run {run_dir}: no weights saved yet; train longer (see train.save_every_steps)")
    tokenizer = load_tokenizer(run.tokenizer)
    model = build_model(config.model, tokenizer.vocabulary_size)
    model(np.zeros((1, 2), "int32"))
    model.load_weights(str(weights))
    return LoadedRun(config, tokenizer, model)
