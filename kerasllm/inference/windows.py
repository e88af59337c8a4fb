"""Continuing token id sequences call by call, with ids (not text) carried
from one call to the next, so that streaming and one-shot generation are
the same computation.

Each call continues every row's *window*: its ids from a window start on.
A row's window start moves only when the window fills the model's context;
it then keeps its last `window_keep(context)` ids (a sliding window, as
nanoGPT's sample.py crops to the last block_size tokens), so a generation
may run past the context. Because a start moves only at a full window, and
no call writes past one, where windows start does not depend on how many
tokens each call asks for: a stream (16 tokens a call) and one call per
window see the same windows, the same positions, and (sampling draws by
seed and position) draw the same tokens.

Cost: keras-hub's cached `generate` builds its cache from the window on
every call, so each slide pays one pass over `window_keep` ids; sliding by
a quarter of the context keeps that to one batched pass per quarter
context of new tokens, while every new token still sees at least three
quarters of the context. nanoGPT's crop per token gives each token the
whole context but runs the whole window per token, without a cache.

Example:
    for new, ended in continue_rows(call, [[eot] + prompt_ids], 200, context=128, slides=True, per_call=16):
        print(len(new[0]))
"""

from __future__ import annotations

from typing import Callable, Iterator


def window_keep(context: int) -> int:
    """Ids a full window keeps when it slides: all but a quarter of the context."""
    return context - max(1, context // 4)


def window_start(length: int, start: int, context: int | None) -> int:
    """Where a row of `length` ids, windowed from `start`, is windowed for
    the next call: from `start` while it has room to grow, else its last
    `window_keep(context)` ids."""
    if context is None or length - start < context:
        return start
    return length - window_keep(context)


def continue_rows(call: Callable, rows: list, max_new_tokens: int, context: int | None, slides: bool,
                  per_call: int) -> Iterator[tuple[list, list]]:
    """Generates up to `max_new_tokens` ids after each row of `rows` (id
    lists) and yields (new ids of each row so far, whether each row ended)
    after every call.

    Args:
        call: (windows: list of id lists, n) -> each row's next ids, at most
            n; fewer means the row reached end-of-text.
        rows: prompt ids, end-of-text start token first.
        max_new_tokens: new ids wanted per row.
        context: the model's context (None: unbounded, never windowed).
        slides: whether windows slide; if not, every row with
            `max_new_tokens` must already fit the context.
        per_call: most new ids one call asks for.
    """
    starts = [0] * len(rows)
    new = [[] for _ in rows]
    ended = [False] * len(rows)
    produced = 0
    while produced < max_new_tokens and not all(ended):
        sequences = [list(r) + n for r, n in zip(rows, new)]
        if slides:
            starts = [window_start(len(s), start, context) for s, start in zip(sequences, starts)]
        windows = [s[start:] for s, start in zip(sequences, starts)]
        n = min(max_new_tokens - produced, per_call)
        if context is not None:
            n = min(n, context - max(len(w) for w in windows))
        if n < 1:
            raise ValueError(f"a window of {max(len(w) for w in windows)} ids leaves no room in the context of {context}")
        for i, ids in enumerate(call(windows, n)):
            if not ended[i]:
                new[i] += list(ids)[:n]
                ended[i] = len(ids) < n
        produced += n
        yield [list(ids) for ids in new], list(ended)  # copies: the caller may keep them
