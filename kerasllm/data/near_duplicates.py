"""Near-duplicate documents, found with datasketch's MinHash LSH.

`data.cleaning.near_duplicates: THRESHOLD` (a Jaccard similarity in (0, 1];
0 turns it off) keeps the first of every group of near-copies in corpus
order and removes the rest, before the train/validation split
(`kerasllm.data.sources`, `paired_text`), so a near-copy cannot sit on both
sides of it.

A document is compared by its set of character 5-grams ("shingles"),
after lowercasing and collapsing runs of white space: character shingles
work for short lines and for scripts written without spaces (Chinese,
Japanese), where word shingles would be few or none. datasketch's
`MinHashLSH` proposes the earlier documents that are probably that similar;
each proposal is confirmed with the two MinHash estimates of the Jaccard
similarity before the document counts as a near-copy.

Memory: the kept documents' MinHash signatures (128 32-bit values, 512
bytes each) and the LSH index stay in memory for the pass.

Example:
    finder = NearDuplicates(threshold=0.8)
    finder.is_near_copy(["The quick brown fox jumps over the lazy dog."])  # False: the first one
    finder.is_near_copy(["The quick brown fox jumps over the lazy dog!"])  # True
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np
from datasketch import MinHash, MinHashLSH

SHINGLE_CHARS = 5
NUM_PERM = 128
SEED = 1
_SPACES = re.compile(r"\s+")
# Odd multiplier of the shingles' polynomial hash (FNV's 32-bit prime).
_PRIME = np.uint32(0x01000193)
_POWERS = np.array([pow(int(_PRIME), SHINGLE_CHARS - 1 - i, 2**32) for i in range(SHINGLE_CHARS)], np.uint32)


def shingle_hashes(text: str) -> np.ndarray:
    """32-bit hashes of the character 5-grams of `text` (already normalised);
    a text shorter than that is one shingle.

    Hashed with numpy over the whole text at once: datasketch's default
    hashes each value with a Python call, which for millions of shingles
    would take most of the pass. datasketch mixes these hashes (MurmurHash3's
    finaliser) before its permutations.

    Args:
        text: a document's normalised text.

    Returns:
        uint32[max(len(text) - 4, 1)] (empty for an empty text).

    Example:
        shingle_hashes("hello world").shape  # (7,)
    """
    if not text:
        return np.zeros([0], np.uint32)
    points = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    if len(points) < SHINGLE_CHARS:
        points = np.concatenate([points, np.zeros(SHINGLE_CHARS - len(points), np.uint32)])
    windows = np.lib.stride_tricks.sliding_window_view(points, SHINGLE_CHARS)
    with np.errstate(over="ignore"):  # arithmetic mod 2**32 is the point
        return (windows * _POWERS).sum(axis=1, dtype=np.uint32)


def normalise(text: str) -> str:
    """What shingles are taken from: lowercase, white space runs as one space.

    Args:
        text: a document's text.

    Example:
        normalise("  To be,\n  or NOT ")  # "to be, or not"
    """
    return _SPACES.sub(" ", text.lower()).strip()


class NearDuplicates:
    """Keeps the first document of each group of near-copies, in the order
    they are offered.

    Args:
        threshold: Jaccard similarity of the shingle sets (0 < threshold
            <= 1) at or above which a document is a near-copy of an
            earlier kept one.
        num_perm: MinHash permutations (signature length).

    Example:
        finder = NearDuplicates(0.8)
        first = "It was the best of times, it was the worst of times, it was the age of wisdom"
        texts = [first, first + "!", "Call me Ishmael."]
        [finder.is_near_copy([t]) for t in texts]  # [False, True, False]
    """

    def __init__(self, threshold: float, num_perm: int = NUM_PERM):
        self.threshold = threshold
        # The index is asked for less than the threshold: its banding
        # misses some pairs just above the similarity it is built for, and
        # the confirmation below holds the line at `threshold` anyway
        # (datasketch cannot band thresholds near 1 at all).
        self._lsh = MinHashLSH(threshold=min(0.85 * threshold, 0.9), num_perm=num_perm)
        # Copied for each document: building a MinHash draws its permutations.
        self._template = MinHash(num_perm=num_perm, seed=SEED, hashfunc=int)
        # The kept documents' signatures, row = LSH key; grown by doubling.
        self._signatures = np.zeros([1024, num_perm], np.uint32)
        self._kept = 0
        self.removed = 0

    def sketch(self) -> "Sketch":
        """An empty `Sketch` to `add` a document's pieces to, then `check`."""
        return Sketch(self._template.copy())

    def is_near_copy(self, pieces: Iterable[str]) -> bool:
        """Whether the document made of `pieces` (its text in order: one
        string, or the lines of a file) is a near-copy of a document kept
        before; if not, it is kept (remembered) itself.

        Args:
            pieces: the document's text, in one or more strings.

        Returns:
            True when it is a near-copy (counted in `removed`).
        """
        sketch = self.sketch()
        for piece in pieces:
            sketch.add(piece)
        return self.check(sketch)

    def check(self, sketch: "Sketch") -> bool:
        """`is_near_copy` for a document already sketched."""
        minhash = sketch.minhash
        keys = self._lsh.query(minhash)
        if keys:
            # MinHash's Jaccard estimate: the share of equal signature values.
            equal = np.count_nonzero(self._signatures[keys] == minhash.hashvalues, axis=1)
            if equal.max() >= self.threshold * len(minhash.hashvalues):
                self.removed += 1
                return True
        if self._kept == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.zeros_like(self._signatures)])
        self._signatures[self._kept] = minhash.hashvalues
        self._lsh.insert(self._kept, minhash, check_duplication=False)
        self._kept += 1
        return False


class Sketch:
    """The MinHash of one document, read piece by piece (a file's lines):
    shingles run across the joins, so the pieces need not be held together.

    Example:
        finder = NearDuplicates(0.9)
        sketch = finder.sketch(); sketch.add("first line"); sketch.add("second line")
        finder.check(sketch)  # False: the first document
    """

    def __init__(self, minhash: MinHash):
        self.minhash = minhash
        self._carry = ""

    def add(self, piece: str) -> None:
        """Adds the next piece of the document's text."""
        text = self._carry + normalise(piece) + " "
        hashes = shingle_hashes(text)
        if len(hashes):
            self.minhash.update_batch(hashes.tolist())
        self._carry = text[-(SHINGLE_CHARS - 1):]


def near_copies(documents: Iterable[Iterable[str]], threshold: float) -> list:
    """The positions of the documents that are near-copies of an earlier one.

    Args:
        documents: each document as an iterable of its pieces of text.
        threshold: Jaccard similarity (0 < threshold <= 1).

    Returns:
        Sorted list of 0-based positions.

    Example:
        near_copies([["one two three four five"], ["One two three four five."], ["six"]], 0.7)  # [1]
    """
    finder = NearDuplicates(threshold)
    return [i for i, pieces in enumerate(documents) if finder.is_near_copy(pieces)]
