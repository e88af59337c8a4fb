"""The panels a picture is made of, as plain data (lists and arrays).

Each panel has a `name` (a short identifier: TensorBoard's image tag, and
the JSON's key) and a `title` (the caption drawn above it).

Example:
    TokenValues("surprisal", "Surprisal of each token", ["T", "o"], [2.1, 0.3], "surprisal (nats)")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

# How a token's whitespace is shown, so a space or a line break is visible
# in a picture (DejaVu fonts, which matplotlib ships, have these glyphs).
_VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "\r": "\u21a9"}


def visible(token: str) -> str:
    """A token's text with whitespace made visible and control characters
    dropped; an empty token shows as `∅`.

    Args:
        token: a token's text.

    Example:
        visible("a b\\n")  # "a␣b↵"
    """
    shown = "".join(_VISIBLE.get(c, c) for c in token if c in _VISIBLE or c.isprintable())
    return shown or "\u2205"


@dataclass
class TokenValues:
    """Tokens in reading order, each coloured by its value (NaN: no colour).

    Args:
        name: a short identifier, e.g. "surprisal".
        title: the caption.
        tokens: each token's text (whitespace as it is; pictures show it).
        values: one number per token.
        label: what the values are, with their unit (the colour bar's label).
        colormap: a matplotlib colormap name.
    """

    name: str
    title: str
    tokens: list
    values: list
    label: str
    colormap: str = "Reds"

    def __post_init__(self):
        if len(self.tokens) != len(self.values):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.values)} values")

    def value_range(self) -> tuple:
        """(low, high) of the colour scale: 0 to the largest value (1 if none)."""
        finite = [v for v in self.values if np.isfinite(v)]
        return 0.0, max(max(finite, default=1.0), 1e-6)


@dataclass
class Heatmap:
    """A matrix of weights with a token on each row and column, e.g.
    attention: row i is what query token i attends to.

    Args:
        name: a short identifier, e.g. "attention_layer_1".
        title: the caption.
        rows: the row tokens (top to bottom).
        columns: the column tokens (left to right).
        weights: [len(rows), len(columns)] numbers.
        row_label, column_label: what the rows and columns are.
    """

    name: str
    title: str
    rows: list
    columns: list
    weights: np.ndarray
    row_label: str = ""
    column_label: str = ""

    def __post_init__(self):
        self.weights = np.asarray(self.weights, np.float32)
        if self.weights.shape != (len(self.rows), len(self.columns)):
            raise ValueError(f"weights of shape {self.weights.shape} for {len(self.rows)} rows x "
                             f"{len(self.columns)} columns")


@dataclass
class SpanProbabilities:
    """The start and end probability of each token, with the chosen span
    (and the gold span, where one is known) marked.

    Args:
        name: a short identifier, e.g. "start_end".
        title: the caption.
        tokens: the tokens' texts.
        start, end: one probability per token.
        span: (first, last) token index of the chosen span, or None.
        gold: (first, last) of the gold span, or None.
    """

    name: str
    title: str
    tokens: list
    start: list
    end: list
    span: Optional[tuple] = None
    gold: Optional[tuple] = None

    def __post_init__(self):
        if not len(self.tokens) == len(self.start) == len(self.end):
            raise ValueError("one start and one end probability per token")
