"""Extractive question answering features: text <-> encoder windows <-> spans.

Everything here is TensorFlow graph ops (core TF and tensorflow_text, no
Python loops over examples, no numpy, no py_function), so the same functions
run inside tf.data for training and inside an exported SavedModel for
serving, and a model never sees features built differently in the two.

The encoder reads `[CLS] question [SEP] context [SEP]`. A context too long
for one window becomes several overlapping windows; each window carries the
character offsets of its context tokens, so a predicted token span maps back
to characters of the original context (Python `str` / SQuAD `answer_start`
units: Unicode code points).

Example (a batch of B questions; W >= B windows come out):
    q_ids, _, _ = tokenize_with_offsets(tok, questions)           # string[B]
    c_ids, c_starts, c_ends = tokenize_with_offsets(tok, contexts)
    windows = make_windows(q_ids, c_ids, c_starts, c_ends, seq_len=384, doc_stride=128,
                           max_question_tokens=64, cls_id=tok.special_id("[CLS]"),
                           sep_id=tok.special_id("[SEP]"), pad_id=tok.pad_id)
    # training: labels from character offsets (end exclusive)
    start_pos, end_pos = window_labels(windows, answer_starts, answer_ends)
    # serving: logits [W, seq_len] from the model -> best span per question
    score, start, end = best_spans(start_logits, end_logits, windows, B, max_answer_tokens=30)
    answers = answer_text(contexts, start, end)
"""

from __future__ import annotations

import weakref

import tensorflow as tf

from kerasllm.compat import wordpiece_split_patterns
from kerasllm.errors import UserError

# One FastWordpieceTokenizer (a compiled model held in a constant) per
# project tokenizer: building it takes time, so it is built once, eagerly.
_WORDPIECE_WITH_OFFSETS = weakref.WeakKeyDictionary()

# The public functions have no Python control flow that depends on tensors;
# skipping AutoGraph's rewrite makes tracing them faster.
_no_autograph = tf.autograph.experimental.do_not_convert


def _wordpiece_layer(tokenizer):
    """The keras-hub WordPiece layer, after checking we split text as it does.

    Two kinds of tokenizer qualify: the project's (`tokenizer.kind:
    wordpiece`, which lowercases in `Tokenizer.prepare` and never asks
    keras-hub to lowercase or strip accents) and a pretrained encoder's
    (`tokenizer.kind: pretrained` over keras-hub's `BertTokenizer` or
    `DistilBertTokenizer`, whose layer lowercases and may strip accents
    itself: `_normalized_per_character`)."""
    from keras_hub.tokenizers import WordPieceTokenizer

    layer = getattr(tokenizer, "layer", None)
    kind = getattr(tokenizer, "kind", "")
    if not isinstance(layer, WordPieceTokenizer) or kind not in ("wordpiece", "pretrained"):
        raise UserError(f"question answering needs `tokenizer.kind: wordpiece` or a BERT-family checkpoint's "
                        f"WordPiece tokenizer (this tokenizer is {kind!r})")
    # Offsets below assume the layer splits text itself and keeps no
    # special tokens in strings; the project's layer also never normalizes.
    if not layer.split or layer.special_tokens_in_strings or (
            kind == "wordpiece" and (layer.lowercase or layer.strip_accents)):
        raise ValueError("tokenize_with_offsets supports only the project's and keras-hub's BERT WordPiece settings")
    return layer


def _normalizes(layer) -> bool:
    """Whether keras-hub's layer changes the text before splitting it."""
    return bool(layer.lowercase or layer.strip_accents)


def _normalized_per_character(layer, texts):
    """(prepared texts, the prepared size in bytes of each character of
    `texts`, flat) for a layer that lowercases or strips accents.

    keras-hub's BERT tokenizer strips accents (NFD, then drops nonspacing
    marks) and case-folds (`tf_text.case_fold_utf8`, NFKC case folding)
    before and after splitting words; here each character is normalized on
    its own and the results joined, so every byte of the prepared text
    belongs to one character of the original and offsets map back exactly.
    That equals normalizing the whole text except where NFKC composes
    several characters into one (a letter followed by a combining accent
    that is not stripped, Hangul jamo), which text in composed form (NFC,
    as SQuAD's is) does not have.
    """
    import tensorflow_text as tf_text

    chars = tf.strings.unicode_split(texts, "UTF-8")
    pieces = chars.flat_values
    if layer.strip_accents:
        pieces = tf.strings.regex_replace(tf_text.normalize_utf8(pieces, "NFD"), r"\p{Mn}", "")
    if layer.lowercase:
        pieces = tf_text.case_fold_utf8(pieces)
    return tf.strings.reduce_join(chars.with_flat_values(pieces), axis=-1), tf.strings.length(pieces)


def _fast_wordpiece(tokenizer):
    import tensorflow_text as tf_text

    fast = _WORDPIECE_WITH_OFFSETS.get(tokenizer)
    if fast is None:
        layer = _wordpiece_layer(tokenizer)
        with tf.init_scope():  # eager, even when first called inside tf.data
            fast = tf_text.FastWordpieceTokenizer(
                vocab=list(layer.vocabulary),
                suffix_indicator=layer.suffix_indicator,
                unknown_token=layer.oov_token,
                token_out_type=tf.int32,
                no_pretokenization=True,
                support_detokenization=False,
            )
        _WORDPIECE_WITH_OFFSETS[tokenizer] = fast
    return fast


@_no_autograph
def tokenize_with_offsets(tokenizer, texts, with_words: bool = False):
    """string[batch] -> (ids, starts, ends), RaggedTensors [batch, None].

    `ids` (int32) equal `tokenizer.tokenize(texts)`; `starts`/`ends` (int64,
    end exclusive) are code point offsets of each token in the ORIGINAL text,
    so `text[start:end]` is the token's surface form (a `##` piece is the
    part of the word it covers; `[UNK]` covers its whole word).

    With a lowercasing tokenizer the ids come from the lowercased text, whose
    length may differ from the original (`İ` lowercases to two code points);
    offsets are mapped back through each original character's lowercased
    size, so they still index the original text. Texts must be valid UTF-8.

    `with_words=True` adds (word_starts, word_ends): per token, the offsets
    of the whole word that holds it (a word as the tokenizer splits text:
    punctuation marks and Han characters are words of their own; a run of
    kana or Hangul is one word).
    """
    import tensorflow_text as tf_text

    layer = _wordpiece_layer(tokenizer)
    texts = tf.convert_to_tensor(texts, tf.string)
    if _normalizes(layer):
        prepared, sizes = _normalized_per_character(layer, texts)
    else:
        prepared, sizes = tokenizer.prepare(texts), None
    delimiters, kept = wordpiece_split_patterns(layer.split_on_cjk)
    words, word_starts, word_ends = tf_text.regex_split_with_offsets(prepared, delimiters, kept)
    pieces, piece_starts, piece_ends = _fast_wordpiece(tokenizer).tokenize_with_offsets(words)
    ids = pieces.merge_dims(1, 2)
    # Byte offsets in the prepared text: piece offsets are within the word.
    pieces_per_word = piece_starts.values.row_lengths()
    word_of_piece = tf.repeat(word_starts.flat_values, pieces_per_word)
    spans = [(tf.cast(piece_starts.flat_values, tf.int64) + word_of_piece,
              tf.cast(piece_ends.flat_values, tf.int64) + word_of_piece)]
    if with_words:
        spans.append((word_of_piece, tf.repeat(word_ends.flat_values, pieces_per_word)))
    offsets = _bytes_to_chars(tokenizer, texts, ids.row_splits, spans, sizes)
    return (tf.cast(ids, tf.int32), *(ids.with_flat_values(o) for span in offsets for o in span))


def _bytes_to_chars(tokenizer, texts, token_splits, spans, sizes=None):
    """Byte offsets in the prepared texts -> code point offsets in `texts`,
    for each (byte_starts, byte_ends) pair in `spans`; `sizes`, if given,
    are the prepared bytes of each character of `texts` (flat).

    Works on the whole batch at once: every original character gets its byte
    start in the concatenation of the prepared texts (rows are contiguous
    there, so one sorted vector), and `searchsorted` finds the character that
    holds each token's first and last byte.
    """
    chars, char_starts = tf.strings.unicode_split_with_offsets(texts, "UTF-8")
    char_splits = chars.row_splits
    if sizes is None and tokenizer.lowercase:
        # Lowercasing is per character except Final_Sigma, which keeps the size.
        sizes = tf.strings.length(tokenizer.prepare(chars.flat_values))
    elif sizes is None:
        row_bytes = tf.cast(tf.strings.length(texts), tf.int64)
        row_offsets = tf.cumsum(row_bytes, exclusive=True)
        starts = char_starts.flat_values + tf.repeat(row_offsets, chars.row_lengths())
        bounds = tf.concat([starts, tf.reduce_sum(row_bytes, keepdims=True)], 0)
        sizes = bounds[1:] - bounds[:-1]
    bounds = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(tf.cast(sizes, tf.int64))], 0)
    prepared_starts = bounds[:-1]  # global byte start of each original character
    token_rows = tf.ragged.row_splits_to_segment_ids(token_splits, out_type=tf.int64)
    row_byte_offset = tf.gather(bounds, tf.gather(char_splits, token_rows))
    row_char_offset = tf.gather(char_splits, token_rows)

    def char_holding(byte):
        where = (byte + row_byte_offset)[tf.newaxis]
        found = tf.searchsorted(prepared_starts[tf.newaxis], where, side="right", out_type=tf.int64)
        return found[0] - 1 - row_char_offset

    return [(char_holding(starts), char_holding(ends - 1) + 1) for starts, ends in spans]


def _take_rows(ragged, example, positions, mask, fill):
    """ragged[example, positions] where mask, else fill; safe on empty rows."""
    values = tf.concat([ragged.flat_values, tf.constant([fill], ragged.flat_values.dtype)], 0)
    flat_index = tf.gather(ragged.row_splits, example)[:, tf.newaxis] + positions
    index = tf.where(mask, flat_index, tf.shape(ragged.flat_values, out_type=tf.int64)[0])
    return tf.gather(values, index)


def _max_context(context_ids, example, k, c_pos, wl, is_context, context_index, seq_len: int):
    """BERT's "max context" rule: windows overlap, and a token near a
    window's edge is read with little context on one side. Rank each
    (token, window) by the shorter side's context, then by the window's
    context length, then by the earlier window, as exact integers; True
    where a window holds its token's best rank."""
    shorter_side = tf.minimum(c_pos, wl - 1 - c_pos)
    later = tf.reduce_max(tf.concat([k, [0]], 0)) + 1
    rank = (shorter_side * (seq_len + 1) + wl) * later - k[:, tf.newaxis]
    num_tokens = tf.shape(context_ids.flat_values, out_type=tf.int64)[0]
    token = tf.gather(context_ids.row_splits, example)[:, tf.newaxis] + context_index  # row of flat_values
    token = tf.where(is_context, token, num_tokens)  # other positions share one spare segment
    best_rank = tf.math.unsorted_segment_max(rank, token, num_tokens + 1)
    return is_context & tf.equal(rank, tf.gather(best_rank, token))


def _window_spans(q_len, c_len, seq_len: int, doc_stride: int):
    """Where each window reads its example's context: (example index,
    window number within its example, first context token, context tokens),
    each [W]. Short questions leave more room for the context."""
    room = seq_len - 3 - q_len
    stride = tf.minimum(tf.constant(doc_stride, tf.int64), room)
    extra = tf.maximum(c_len - room, 0)
    n_windows = 1 + (extra + stride - 1) // stride
    example = tf.repeat(tf.range(tf.size(n_windows, out_type=tf.int64)), n_windows)
    k = tf.ragged.range(n_windows).flat_values
    win_start = k * tf.gather(stride, example)
    win_len = tf.minimum(tf.gather(room, example), tf.gather(c_len, example) - win_start)
    return example, k, win_start, win_len


@_no_autograph
def make_windows(
    question_ids,
    context_ids,
    context_starts,
    context_ends,
    seq_len: int,
    doc_stride: int,
    max_question_tokens: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    context_word_starts=None,
    context_word_ends=None,
):
    """Ragged question/context tokens [batch, None] -> encoder windows.

    Returns a dict of dense tensors, one row per window (W rows):
    `token_ids`, `segment_ids` (0 `[CLS] q [SEP]`, 1 context and last
    `[SEP]`), `padding_mask` (bool), all [W, seq_len]; `example_index` [W]
    (the input row); `token_starts`/`token_ends` int64 [W, seq_len], the
    context tokens' character offsets, -1 on every other position;
    `max_context` bool [W, seq_len], true where a context token has more
    context on its shorter side than in any other window of its example
    (the first such window on a tie), which is where an answer may start.
    Given the context's word offsets (`tokenize_with_offsets(...,
    with_words=True)`), also `word_starts`/`word_ends` [W, seq_len]: those of
    the word holding each context token, so answers end on whole words.

    Questions keep their first `max_question_tokens` tokens. The context gets
    the rest of the window; a longer one is cut into windows starting every
    `doc_stride` tokens (BERT's scheme; the stride shrinks to the window's
    room if larger, so no token is skipped) until one reaches its end. An
    empty context still makes one window, so every question gets an answer.
    """
    room = seq_len - 3 - max_question_tokens
    if room < 1 or max_question_tokens < 1 or doc_stride < 1:
        raise UserError(
            f"question answering: seq_len={seq_len} must exceed max_question_tokens={max_question_tokens} + 3 "
            f"(and both it and doc_stride={doc_stride} must be at least 1)"
        )
    q_len = tf.minimum(question_ids.row_lengths(), max_question_tokens)
    example, k, win_start, win_len = _window_spans(q_len, context_ids.row_lengths(), seq_len, doc_stride)

    p = tf.range(seq_len, dtype=tf.int64)[tf.newaxis]
    ql = tf.gather(q_len, example)[:, tf.newaxis]
    wl = win_len[:, tf.newaxis]
    c_pos = p - (ql + 2)  # position within the window's context
    is_question = (p >= 1) & (p <= ql)
    is_context = (c_pos >= 0) & (c_pos < wl)
    is_sep = (p == ql + 1) | (c_pos == wl)
    in_use = c_pos <= wl

    def take(ragged, positions, mask, fill):
        return _take_rows(ragged, example, positions, mask, fill)

    context_index = win_start[:, tf.newaxis] + c_pos
    max_context = _max_context(context_ids, example, k, c_pos, wl, is_context, context_index, seq_len)

    ids = take(tf.cast(question_ids, tf.int32), p - 1, is_question, pad_id)
    ids = tf.where(is_context, take(tf.cast(context_ids, tf.int32), context_index, is_context, pad_id), ids)
    ids = tf.where(is_sep, sep_id, tf.where(p == 0, cls_id, ids))
    windows = {
        "token_ids": ids,
        "segment_ids": tf.cast((c_pos >= 0) & in_use, tf.int32),
        "padding_mask": in_use,
        "example_index": tf.cast(example, tf.int32),
        "token_starts": take(tf.cast(context_starts, tf.int64), context_index, is_context, -1),
        "token_ends": take(tf.cast(context_ends, tf.int64), context_index, is_context, -1),
        "max_context": max_context,
    }
    if context_word_starts is not None:
        windows["word_starts"] = take(tf.cast(context_word_starts, tf.int64), context_index, is_context, -1)
        windows["word_ends"] = take(tf.cast(context_word_ends, tf.int64), context_index, is_context, -1)
    return windows


@_no_autograph
def window_labels(windows, answer_char_start, answer_char_end):
    """Answer character span per example -> (start, end) token positions per window.

    The answer's tokens are the context tokens overlapping
    [answer_char_start, answer_char_end). A window gets their first and last
    position when it holds all of them, else 0 0 (`[CLS]`, "not here"),
    as does a window of an example without an answer (end <= start).
    A window holds the whole answer when it starts at or before the answer
    (or is the example's first window) and ends at or after it (or is its last).
    """
    starts, ends = windows["token_starts"], windows["token_ends"]
    example = windows["example_index"]
    a_start = tf.gather(tf.cast(answer_char_start, tf.int64), example)[:, tf.newaxis]
    a_end = tf.gather(tf.cast(answer_char_end, tf.int64), example)[:, tf.newaxis]
    context = starts >= 0
    overlaps = context & (ends > a_start) & (starts < a_end) & (a_end > a_start)
    seq_len = tf.shape(starts, out_type=tf.int64)[1]
    p = tf.range(seq_len)[tf.newaxis]
    first = tf.reduce_min(tf.where(overlaps, p, seq_len), axis=1)
    last = tf.reduce_max(tf.where(overlaps, p, -1), axis=1)

    big = tf.int64.max
    win_first = tf.reduce_min(tf.where(context, starts, big), axis=1)
    win_last = tf.reduce_max(tf.where(context, ends, -1), axis=1)
    n = tf.shape(answer_char_start)[0]
    is_first = win_first <= tf.gather(tf.math.unsorted_segment_min(win_first, example, n), example)
    is_last = win_last >= tf.gather(tf.math.unsorted_segment_max(win_last, example, n), example)
    holds = (
        (last >= 0)
        & (is_first | (win_first <= a_start[:, 0]))
        & (is_last | (win_last >= a_end[:, 0]))
    )
    return tf.cast(tf.where(holds, first, 0), tf.int32), tf.cast(tf.where(holds, last, 0), tf.int32)


@_no_autograph
def window_best_spans(start_logits, end_logits, windows, max_answer_tokens: int):
    """Model logits [W, seq_len] -> each window's best valid span:
    (position start * seq_len + end, its score, whether it has one), each [W].

    Valid: both ends on context tokens, end >= start, at most
    `max_answer_tokens` tokens, and a start where `windows["max_context"]`
    holds; the score is start_logit + end_logit; ties go to the earlier
    position. It needs a [W, seq_len, seq_len] score tensor, so callers with
    many windows run it a chunk at a time (`inference.qa`).
    """
    starts = windows["token_starts"]
    seq_len = tf.shape(starts)[1]
    start_logits = tf.cast(start_logits, tf.float32)
    end_logits = tf.cast(end_logits, tf.float32)
    # End j and start i with j - i in [0, max_answer_tokens). Built from the
    # positions, not band_part, whose band may not be wider than the matrix:
    # a batch of short passages is cut to fewer tokens than that.
    positions = tf.range(seq_len)
    length = positions[tf.newaxis, :] - positions[:, tf.newaxis]
    band = (length >= 0) & (length < max_answer_tokens)
    context = starts >= 0
    may_start = context & windows["max_context"]
    scores = start_logits[:, :, tf.newaxis] + end_logits[:, tf.newaxis, :]
    valid = band[tf.newaxis] & may_start[:, :, tf.newaxis] & context[:, tf.newaxis, :] & ~tf.math.is_nan(scores)
    scores = tf.reshape(tf.where(valid, scores, -float("inf")), [tf.shape(starts)[0], -1])
    best = tf.argmax(scores, axis=1, output_type=tf.int32)
    window_ok = tf.reduce_any(tf.reshape(valid, [tf.shape(starts)[0], -1]), axis=1)
    window_score = tf.where(window_ok, tf.gather(scores, best, batch_dims=1), -float("inf"))
    return best, window_score, window_ok


@_no_autograph
def best_spans(start_logits, end_logits, windows, num_examples, max_answer_tokens: int):
    """Model logits [W, seq_len] -> (score, char_start, char_end), each [num_examples].

    Per example, the best span over all its windows (`window_best_spans`).
    Ties go to the earlier window and position. An example with no valid
    span (or no window) gets -inf and offsets 0 0.
    """
    return spans_of_examples(window_best_spans(start_logits, end_logits, windows, max_answer_tokens), windows,
                             num_examples)


@_no_autograph
def spans_of_examples(window_spans, windows, num_examples):
    """`window_best_spans` of all windows -> (score, char_start, char_end) per
    example: its best window's span. With `word_starts`/`word_ends` in
    `windows`, the offsets widen to whole words: a span that ends on `shakes`
    of `shakes ##peare` answers "Shakespeare". (A word is what the tokenizer
    splits: in Korean or Japanese a run of Hangul or kana, particles
    included, is one word.)
    """
    best, window_score, window_ok = window_spans
    starts, ends = windows["token_starts"], windows["token_ends"]
    example = windows["example_index"]
    seq_len = tf.shape(starts)[1]
    example_score = tf.math.unsorted_segment_max(window_score, example, num_examples)
    has_span = tf.math.unsorted_segment_max(tf.cast(window_ok, tf.int32), example, num_examples) > 0
    w = tf.range(tf.shape(starts)[0])
    winner = tf.where(window_ok & (window_score >= tf.gather(example_score, example)), w, tf.int32.max)
    chosen = tf.math.unsorted_segment_min(winner, example, num_examples)
    chosen = tf.where(has_span, chosen, 0)
    pos = tf.gather(best, chosen)
    first, last = pos // seq_len, pos % seq_len
    char_start = tf.gather(tf.gather(windows.get("word_starts", starts), chosen), first, batch_dims=1)
    char_end = tf.gather(tf.gather(windows.get("word_ends", ends), chosen), last, batch_dims=1)
    score = tf.where(has_span, example_score, -float("inf"))
    zero = tf.zeros_like(char_start)
    return score, tf.where(has_span, char_start, zero), tf.where(has_span, char_end, zero)


@_no_autograph
def answer_text(contexts, char_start, char_end):
    """string[batch] and code point offsets -> the answer strings."""
    char_start = tf.cast(char_start, tf.int64)
    return tf.strings.substr(contexts, char_start, tf.cast(char_end, tf.int64) - char_start, unit="UTF8_CHAR")
