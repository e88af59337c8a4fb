"""The extraction test for memorized training text.

The standard test (Carlini et al., "Extracting Training Data from Large
Language Models", 2021; "Quantifying Memorization Across Neural Language
Models", 2022): take N prefixes of P tokens from training text, continue
each greedily for K tokens, and count a prefix as extracted when those K
tokens are exactly the K that follow it in the text. The same test on the
run's validation split says how much of that rate is ordinary prediction
(text the model never saw can only be reproduced by predicting it), so
the two rates side by side are what a model card can quote.

Prefixes are the starts of the blocks the run trains on (its own split,
tokenizer and packing: `kerasllm.data.corpus.open_corpus`), N chosen at
random (seeded) among all blocks of each split, every block at most once.

Example:
    audit_memorization("runs/tang-poems", prefixes=200)
    # {"train_rate": 0.035, "validation_rate": 0.0, "prefix_tokens": 50, ...}
"""

from __future__ import annotations

from typing import Optional

from kerasllm import config as config_lib
from kerasllm import task_registry
from kerasllm.errors import UserError

# The standard test's prefix and suffix lengths (Carlini et al. 2022).
STANDARD_TOKENS = 50
BATCH = 32  # prefixes continued at once


def check_kind(config, run_dir: str) -> None:
    """Refuses, in one line, a run whose task does not list the command
    (`Task.commands`: the language models, gpt and lstm, do).

    Args:
        config: the run's `RunConfig`.
        run_dir: the run directory, as the user named it (for the message).

    Example:
        check_kind(config_lib.load("runs/spa-eng/config.yaml"), "runs/spa-eng")  # UserError: ... this run is seq2seq
    """
    task = task_registry.for_model(config.model)
    if "audit-memorization" not in task.commands:
        raise UserError(f"--run {run_dir}: audit-memorization tests language models (gpt, lstm); "
                        f"this run is {task_registry.name(task)}")


def lengths(seq_len: int, prefix_tokens: Optional[int], suffix_tokens: Optional[int]) -> tuple[int, int]:
    """(P, K): the lengths asked for, each defaulting to 50 or, for a
    shorter model, half of `seq_len`; together at most `seq_len` (a block
    holds seq_len + 1 tokens and the model attends over seq_len).

    Args:
        seq_len: the run's `model.seq_len`.
        prefix_tokens, suffix_tokens: the lengths asked for, or None.

    Raises:
        UserError: P + K exceeds `seq_len`.

    Example:
        lengths(128, None, None)  # (50, 50)
        lengths(32, None, None)   # (16, 16)
    """
    default = min(STANDARD_TOKENS, seq_len // 2)
    p = prefix_tokens or default
    k = suffix_tokens or default
    if p + k > seq_len:
        raise UserError(f"--prefix-tokens {p} + --suffix-tokens {k} = {p + k} is more than the run's model.seq_len "
                        f"({seq_len}); lower them")
    return p, k


def check_request(run_dir: str, prefix_tokens: Optional[int], suffix_tokens: Optional[int]):
    """The run's config and (P, K), checked from config.yaml alone (no
    TensorFlow), so that a mistake is answered at once.

    Example:
        config, (p, k) = check_request("runs/tiny", None, None)
    """
    from kerasllm.run_dir import RunDir

    path = RunDir(run_dir).config
    if not path.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    config = config_lib.load(path)
    check_kind(config, run_dir)
    return config, lengths(config.model.seq_len, prefix_tokens, suffix_tokens)


def audit_memorization(run_dir: str, data_dir: Optional[str] = None, prefixes: int = 200,
                       prefix_tokens: Optional[int] = None, suffix_tokens: Optional[int] = None,
                       seed: int = 0) -> dict:
    """The extraction rate of a run's best weights on its training and its
    validation split.

    Args:
        run_dir: a language-model run directory from `kerasllm train`.
        data_dir: where the datasets are (default: $KERASLLM_DATA_DIR).
        prefixes: N, prefixes per split (fewer if a split has fewer blocks).
        prefix_tokens: P (None: 50, or half of a shorter model.seq_len).
        suffix_tokens: K (None: likewise).
        seed: which blocks are drawn.

    Returns:
        {"run", "train_rate", "validation_rate", "train_prefixes",
        "validation_prefixes", "train_extracted", "validation_extracted",
        "prefix_tokens", "suffix_tokens", "seed"}; a rate is extracted /
        prefixes.

    Example:
        audit_memorization("runs/tiny", prefixes=64, prefix_tokens=8, suffix_tokens=8)["train_rate"]
    """
    from kerasllm.data.corpus import count_blocks, open_corpus
    from kerasllm.loaded_run import load_run
    from kerasllm.run_dir import RunDir

    _, (p, k) = check_request(run_dir, prefix_tokens, suffix_tokens)
    lm = load_run(run_dir)
    seq_len = lm.config.model.seq_len
    corpus = open_corpus(lm.config, RunDir(run_dir).tokenizer, data_dir)
    counts = count_blocks(corpus, seq_len, RunDir(run_dir).data)
    out = {"run": str(run_dir)}
    for offset, split in enumerate(("train", "validation")):
        blocks = drawn_blocks(corpus.blocks(split, seq_len), counts[split], prefixes, seed + offset)
        hits = extracted(lm.model, blocks[:, : p + k], p)
        out[f"{split}_rate"] = round(float(hits.mean()), 4) if len(hits) else None
        out[f"{split}_prefixes"], out[f"{split}_extracted"] = int(len(hits)), int(hits.sum())
    return {**out, "prefix_tokens": p, "suffix_tokens": k, "seed": seed}


def drawn_blocks(blocks, count: int, n: int, seed: int):
    """`n` of the `count` blocks of a dataset (all if fewer), drawn without
    replacement by a seeded generator, in stream order, as an int32 array.

    Example:
        drawn_blocks(corpus.blocks("train", 128), counts["train"], 200, seed=0).shape  # (200, 129)
    """
    import numpy as np
    import tensorflow as tf

    chosen = np.sort(np.random.default_rng(seed).choice(count, size=min(n, count), replace=False))
    wanted = tf.constant(chosen, tf.int64)
    picked = blocks.enumerate().filter(lambda i, block: tf.reduce_any(tf.equal(i, wanted)))
    rows = [block for _, block in picked.take(len(chosen)).as_numpy_iterator()]
    return np.stack(rows) if rows else np.zeros([0, 0], np.int32)


def extracted(model, sequences, prefix_tokens: int):
    """Whether greedy decoding from each row's first `prefix_tokens` ids
    reproduces the rest of the row exactly (a bool array, one per row).

    Args:
        model: a keras-hub `CausalLM` (`load_run(...).model`).
        sequences: int array [n, P + K].
        prefix_tokens: P.

    Example:
        extracted(lm.model, np.array([[5, 6, 7, 8]]), 2)  # array([ True]) if 7, 8 follow 5, 6 greedily
    """
    import numpy as np
    import tensorflow as tf

    from kerasllm.inference.sampling import make_sampler, use_sampler

    use_sampler(model, (0.0, 0, 1.0, 1), lambda: make_sampler(temperature=0.0))
    hits = []
    for start in range(0, len(sequences), BATCH):
        rows = np.asarray(sequences[start : start + BATCH], np.int32)
        # A short last batch is filled up with copies of its first row, so
        # that every batch has one shape and decoding is traced once.
        full = np.concatenate([rows, np.repeat(rows[:1], BATCH - len(rows), axis=0)])
        mask = np.zeros(full.shape, bool)
        mask[:, :prefix_tokens] = True
        inputs = {"token_ids": tf.constant(np.where(mask, full, 0)), "padding_mask": tf.constant(mask)}
        out = np.asarray(model.generate(inputs, stop_token_ids=None)["token_ids"])[: len(rows)]
        hits.append(np.all(out[:, prefix_tokens:] == rows[:, prefix_tokens:], axis=1))
    return np.concatenate(hits) if hits else np.zeros([0], bool)
