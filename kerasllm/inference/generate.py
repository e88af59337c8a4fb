"""Text generation from a trained run, in-process: strings in, strings out.

Runs keras-hub's `CausalLM.generate` (cached decoding, `keras_hub.samplers`)
between the run's `LanguageModelPreprocessor` (`generate_preprocess`) and
`decode_continuations`, the same string <-> id code the exported SavedModel
runs in its graph.

Example:
    lm = load_run("runs/shakespeare-char")  # kerasllm.loaded_run
    generate(lm.model, lm.tokenizer, ["ROMEO:"], max_new_tokens=100, top_k=10).texts
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kerasllm.data.preprocessors.language_model import LanguageModelPreprocessor
from kerasllm.errors import warn
from kerasllm.inference.prompts import decode_continuations
from kerasllm.inference.sampling import make_sampler, use_sampler
from kerasllm.models import max_context


# Traced once per tokenizer (a tf.function keys its traces on its Python
# arguments): the preprocessor is made inside, from the tokenizer.
@functools.partial(tf.function, reduce_retracing=True, autograph=False)
def _encode(tokenizer, prompts, max_new_tokens, context):
    return LanguageModelPreprocessor(tokenizer).generate_preprocess(prompts, max_new_tokens, context)


@functools.partial(tf.function, reduce_retracing=True, autograph=False)
def _decode(tokenizer, token_ids, batch, max_new_tokens):
    return decode_continuations(LanguageModelPreprocessor(tokenizer), token_ids, batch, max_new_tokens)


class Generated(NamedTuple):
    texts: list  # continuations, without the prompts
    num_tokens: list  # new tokens in each (end-of-text not counted)


DEFAULT_NEW_TOKENS = 100
UNBOUNDED_NEW_TOKENS = 4096  # models without a context limit (LSTM)


def default_new_tokens(context: int | None) -> int:
    """New tokens when the caller names none: 100, but at most half the
    context, so that a default request keeps about half the context of a
    long prompt (a 64-token model asked for 63 new tokens keeps none of it:
    the start token takes the last position)."""
    return DEFAULT_NEW_TOKENS if context is None else max(1, min(DEFAULT_NEW_TOKENS, context // 2))


def cap_new_tokens(max_new_tokens: int | None, context: int | None) -> int:
    """`max_new_tokens` (None: `default_new_tokens`), at most context - 1
    (the start token takes one position), or 4096 without a context."""
    if max_new_tokens is None:
        return default_new_tokens(context)
    limit = UNBOUNDED_NEW_TOKENS if context is None else context - 1
    if max_new_tokens > limit:
        why = f"the model's context is {context} tokens" if context else "the limit of a model without a context"
        warn(f"max_new_tokens={max_new_tokens} lowered to {limit}: {why}")
        return limit
    return max_new_tokens


def warn_truncated(full_lengths, kept_lengths, context, say=warn) -> None:
    """A warning line (given to `say`) for each prompt cut from the left."""
    for full, kept in zip(np.asarray(full_lengths), np.asarray(kept_lengths)):
        if full > kept:
            say(f"prompt of {full} tokens cut to its last {kept} to fit the context of {context}")


def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int | None = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    beams: int = 1,
) -> Generated:
    """Continuations of each prompt; stops at end-of-text.

    Args:
        model: a `GPTCausalLM` or `LSTMCausalLM`.
        tokenizer: the run's tokenizer; prompts and continuations go through
            its `LanguageModelPreprocessor`.
        prompts: the texts to continue.
        max_new_tokens: new tokens per prompt (None: `default_new_tokens`),
            at most the context - 1.
        temperature, top_k, top_p, seed, beams: the sampler (`make_sampler`).

    Example:
        generate(lm.model, lm.tokenizer, ["ROMEO:"], max_new_tokens=20, temperature=0).texts
    """
    context = max_context(model)
    max_new_tokens = cap_new_tokens(max_new_tokens, context)
    batch = _encode(tokenizer, tf.constant(prompts, tf.string), tf.constant(max_new_tokens), context)
    warn_truncated(batch.full_lengths, batch.lengths, context)

    setting = None if seed is not None else (float(temperature), int(top_k), float(top_p), int(beams))
    use_sampler(model, setting, lambda: make_sampler(temperature, top_k, top_p, seed, beams))
    out = model.generate(batch.inputs(), stop_token_ids=(tokenizer.eot_id,))
    texts, counts = _decode(tokenizer, tf.convert_to_tensor(out["token_ids"]), batch, tf.constant(max_new_tokens))
    return Generated([t.decode("utf-8", errors="replace") for t in texts.numpy()], counts.numpy().tolist())
