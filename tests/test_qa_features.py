"""Question answering features: offsets, windows, labels and span search,
checked against plain-Python references, eagerly, in a tf.function, in
tf.data and in a SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from kerasllm.config import TokenizerConfig
from kerasllm.data.preprocessors import qa_features as qa
from kerasllm.data.tokenizers import WordPieceTokenizer, train_tokenizer
from kerasllm.errors import UserError

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_qa_features")

WORDS = (
    "the capital of japan is tokyo . which city is the capital ? paris france river seine "
    "a b c d e f g h zürich café , 東 京 は 日 本 の 首 都 で す"
).split()
PIECES = ["un", "##known", "##s", "cap", "##ital", "zur", "##ich", "caf", "##e", "i", "##̇", "##stanbul", "σας"]
VOCAB = WordPieceTokenizer.RESERVED + sorted(set(WORDS)) + PIECES
CLS, SEP, PAD = VOCAB.index("[CLS]"), VOCAB.index("[SEP]"), VOCAB.index("[PAD]")

TEXTS = [
    "The capital of Japan is Tokyo.",
    "Zürich  café, Zurich unknowns capitalx",
    "東京は日本の首都です",
    "",
    " ...  ",
]


@pytest.fixture(scope="module", params=[False, True], ids=["cased", "lowercase"])
def tok(request):
    return WordPieceTokenizer(VOCAB, lowercase=request.param)


def _check_offsets(tok, texts, ids, starts, ends):
    for text, row_ids, row_s, row_e in zip(texts, ids, starts, ends):
        assert row_s == sorted(row_s) and all(s < e for s, e in zip(row_s, row_e))
        covered = set()
        for i, s, e in zip(row_ids, row_s, row_e):
            piece, surface = VOCAB[i].removeprefix("##"), text[s:e]
            if piece != "[UNK]":
                assert piece == (surface.lower() if tok.lowercase else surface), (text, piece, surface)
            covered.update(range(s, e))
        # Every character but spaces is in a token ([UNK] covers its word).
        assert covered == {i for i, c in enumerate(text) if not c.isspace()}


def test_ids_equal_tokenize_and_offsets_index_the_original_text(tok):
    ids, starts, ends = qa.tokenize_with_offsets(tok, TEXTS)
    assert ids.dtype == tf.int32 and starts.dtype == tf.int64 and ends.dtype == tf.int64
    assert ids.to_list() == tok.tokenize(TEXTS).to_list()
    _check_offsets(tok, TEXTS, ids.to_list(), starts.to_list(), ends.to_list())
    # CJK characters are one token each; accented words keep their length.
    assert list(zip(starts[2].numpy(), ends[2].numpy()))[:3] == [(0, 1), (1, 2), (2, 3)]
    row = TEXTS[1]
    assert [row[s:e] for s, e in zip(starts[1].numpy(), ends[1].numpy())][:3] == ["Zürich", "café", ","]


def test_word_offsets_span_the_whole_word_of_each_token(tok):
    texts = ["Zurich unknowns capitalx, cafe.", "東京は", "İstanbul"]
    ids, starts, ends, word_starts, word_ends = qa.tokenize_with_offsets(tok, texts, with_words=True)
    assert qa.tokenize_with_offsets(tok, texts)[0].to_list() == ids.to_list()
    words = [[t[s:e] for s, e in zip(*row)] for t, *row in zip(texts, word_starts.to_list(), word_ends.to_list())]
    if tok.lowercase:
        assert [VOCAB[i] for i in ids[0].numpy()] == ["zur", "##ich", "un", "##known", "##s", "[UNK]", ",", "caf", "##e", "."]
        assert words[0] == ["Zurich", "Zurich", "unknowns", "unknowns", "unknowns", "capitalx", ",", "cafe", "cafe", "."]
        assert words[2] == ["İstanbul"] * 3
    assert words[1] == ["東", "京", "は"]  # each Han character is a word (and so is a lone kana)
    for t, row_s, row_e, w_s, w_e in zip(texts, starts.to_list(), ends.to_list(), word_starts.to_list(), word_ends.to_list()):
        assert all(ws <= s < e <= we for s, e, ws, we in zip(row_s, row_e, w_s, w_e))


def test_lowercasing_that_changes_length_keeps_original_offsets():
    """`İ` lowercases to `i` + U+0307 (two code points, one more byte)."""
    tok = WordPieceTokenizer(VOCAB, lowercase=True)
    texts = ["İstanbul ΣΑΣ tokyo", "İİ Tokyo"]
    ids, starts, ends = qa.tokenize_with_offsets(tok, texts)
    assert ids.to_list() == tok.tokenize(texts).to_list()
    assert [VOCAB[i] for i in ids[0].numpy()] == ["i", "##̇", "##stanbul", "σας", "tokyo"]
    assert list(zip(starts[0].numpy(), ends[0].numpy())) == [(0, 1), (0, 1), (1, 8), (9, 12), (13, 18)]
    assert texts[1][starts[1][-1] : ends[1][-1]] == "Tokyo"


def test_trained_tokenizer_ids_and_offsets():
    corpus = ["The river Seine flows through Paris, the capital of France.", "Zürich café 東京は日本の首都です"]
    corpus *= 20
    tok = train_tokenizer(
        TokenizerConfig(kind="wordpiece", vocab_size=70, lowercase=True),
        tf.data.Dataset.from_tensor_slices(corpus).batch(8),
    )
    assert tok.special_id("[CLS]") == 3 and tok.special_id("[SEP]") == 4 and tok.pad_id == 0
    texts = ["Paris flows through Zürich!", "首都 café Seines"]
    ids, starts, ends = qa.tokenize_with_offsets(tok, texts)
    assert ids.to_list() == tok.tokenize(texts).to_list()
    for text, row_ids, row_s, row_e in zip(texts, ids.to_list(), starts.to_list(), ends.to_list()):
        for i, s, e in zip(row_ids, row_s, row_e):
            piece = tok.vocabulary[i].removeprefix("##")
            assert piece == "[UNK]" or piece == text[s:e].lower()


def test_special_ids_need_a_new_wordpiece_vocabulary():
    old = WordPieceTokenizer(["[PAD]", "[UNK]", "[EOT]", "the"])  # before [CLS] was reserved
    with pytest.raises(UserError, match=r"no \[CLS\].*retrain"):
        old.special_id("[CLS]")
    char = train_tokenizer(TokenizerConfig(kind="char"), tf.data.Dataset.from_tensor_slices(["ab"]).batch(1))
    with pytest.raises(UserError, match="tokenizer.kind: wordpiece"):
        char.special_id("[CLS]")
    with pytest.raises(UserError, match="tokenizer.kind: wordpiece"):
        qa.tokenize_with_offsets(char, ["ab"])


def _reference_windows(q, c, seq_len, stride, max_q):
    """BERT's run_squad windowing, in Python: (token ids, first context index) per window."""
    q = q[:max_q]
    room = seq_len - 3 - len(q)
    stride = min(stride, room)
    out, start = [], 0
    while True:
        piece = c[start : start + room]
        row = [CLS] + q + [SEP] + piece + [SEP]
        out.append((row + [PAD] * (seq_len - len(row)), start))
        if start + room >= len(c):
            return out
        start += stride


SEQ_LEN, STRIDE, MAX_Q = 16, 4, 3
QUESTIONS = ["which city is the capital of japan ?", "which river ?", "the capital ?"]
CONTEXTS = [
    " ".join(["a b c d e f g h"] * 4) + " tokyo is the capital of japan . paris is the capital of france",
    "paris river seine",
    "",
]


def _windows(tok, questions=QUESTIONS, contexts=CONTEXTS):
    q_ids, _, _ = qa.tokenize_with_offsets(tok, questions)
    c_ids, c_s, c_e = qa.tokenize_with_offsets(tok, contexts)
    w = qa.make_windows(q_ids, c_ids, c_s, c_e, SEQ_LEN, STRIDE, MAX_Q, CLS, SEP, PAD)
    return q_ids, c_ids, c_s, c_e, w


def test_windows_match_bert_windowing_and_cover_every_context_token():
    tok = WordPieceTokenizer(VOCAB, lowercase=True)
    q_ids, c_ids, c_s, c_e, w = _windows(tok)
    w = {k: v.numpy() for k, v in w.items()}
    expected, examples, firsts = [], [], []
    for b, (q, c) in enumerate(zip(q_ids.to_list(), c_ids.to_list())):
        for row, first in _reference_windows(q, c, SEQ_LEN, STRIDE, MAX_Q):
            expected.append(row)
            examples.append(b)
            firsts.append(first)
    assert len(c_ids[0]) == 45 and len(q_ids[0]) == 8  # long context, long question
    assert w["token_ids"].tolist() == expected
    assert w["example_index"].tolist() == examples
    assert examples.count(0) == 10 and examples.count(1) == 1 and examples.count(2) == 1
    # The question keeps its first MAX_Q tokens.
    assert w["token_ids"][0, 1 : MAX_Q + 1].tolist() == q_ids[0][:MAX_Q].numpy().tolist()
    assert w["token_ids"].shape[1] == SEQ_LEN and w["token_ids"].dtype == np.int32
    # Empty context: [CLS] q [SEP] [SEP].
    assert w["token_ids"][-1, :6].tolist() == [CLS, *q_ids[2].numpy(), SEP, SEP, PAD][:6]
    for r, (b, first) in enumerate(zip(examples, firsts)):
        n_q = min(len(q_ids[b]), MAX_Q)
        used = int(w["padding_mask"][r].sum())
        assert w["padding_mask"][r].tolist() == [True] * used + [False] * (SEQ_LEN - used)
        assert w["segment_ids"][r].tolist() == [0] * (n_q + 2) + [1] * (used - n_q - 2) + [0] * (SEQ_LEN - used)
        ctx = w["token_starts"][r] >= 0
        assert ctx.tolist() == [False] * (n_q + 2) + [True] * (used - n_q - 3) + [False] * (SEQ_LEN - used + 1)
        n = int(ctx.sum())
        assert w["token_starts"][r][ctx].tolist() == c_s[b][first : first + n].numpy().tolist()
        assert w["token_ends"][r][ctx].tolist() == c_e[b][first : first + n].numpy().tolist()
        assert (w["token_ends"][r][~ctx] == -1).all()
    # Union over an example's windows = all its context tokens.
    for b in range(len(CONTEXTS)):
        rows = [r for r, e in enumerate(examples) if e == b]
        seen = {(s, e) for r in rows for s, e in zip(w["token_starts"][r], w["token_ends"][r]) if s >= 0}
        assert seen == set(zip(c_s[b].numpy().tolist(), c_e[b].numpy().tolist()))


@pytest.mark.parametrize("stride", [STRIDE, 5])  # 5 makes ties: the first window wins them
def test_each_context_token_may_start_an_answer_in_its_max_context_window(stride):
    """The window BERT's run_squad (_check_is_max_context) picks: the most
    context on the token's shorter side, ties to the longer window, then to
    the first."""
    tok = WordPieceTokenizer(VOCAB, lowercase=True)
    q_ids, c_ids, c_s, c_e = _windows(tok)[:4]
    w = qa.make_windows(q_ids, c_ids, c_s, c_e, SEQ_LEN, stride, MAX_Q, CLS, SEP, PAD)
    w = {k: v.numpy() for k, v in w.items()}
    ties = 0
    for b, (q, c) in enumerate(zip(q_ids.to_list(), c_ids.to_list())):
        rows = [r for r, e in enumerate(w["example_index"]) if e == b]
        firsts = [first for _, first in _reference_windows(q, c, SEQ_LEN, stride, MAX_Q)]
        for j in range(len(c)):
            scores = []
            for r, first in zip(rows, firsts):
                n = int((w["token_starts"][r] >= 0).sum())
                if first <= j < first + n:
                    scores.append((min(j - first, first + n - 1 - j) + 0.01 * n, r))
            best = max(scores, key=lambda sr: (sr[0], -sr[1]))[1]
            ties += sum(sc == max(scores)[0] for sc, _ in scores) > 1
            marked = [r for r in rows if w["max_context"][r][w["token_starts"][r] == c_s[b][j].numpy()].any()]
            assert marked == [best], (b, j)
    assert not (w["max_context"] & (w["token_starts"] < 0)).any()
    assert (ties > 0) == (stride == 5)


def test_window_size_limits():
    tok = WordPieceTokenizer(VOCAB)
    q_ids, _, _ = qa.tokenize_with_offsets(tok, ["the"])
    with pytest.raises(UserError, match="seq_len=8 must exceed max_question_tokens=5"):
        qa.make_windows(q_ids, q_ids, q_ids, q_ids, 8, 2, 5, CLS, SEP, PAD)
    # A stride larger than the room shrinks to it: nothing is skipped.
    c_ids, c_s, c_e = qa.tokenize_with_offsets(tok, [" ".join("abcdefgh")])
    w = qa.make_windows(q_ids, c_ids, c_s, c_e, 8, 100, 2, CLS, SEP, PAD)
    assert w["token_ids"].numpy()[:, 3:7].tolist() == [c_ids[0][:4].numpy().tolist(), c_ids[0][4:].numpy().tolist()]


def _answer(context, text, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = context.index(text, start + 1)
    return start, start + len(text)


def test_window_labels_point_at_the_answer_or_at_cls():
    tok = WordPieceTokenizer(VOCAB, lowercase=True)
    _, _, _, _, w = _windows(tok)
    spans = [_answer(CONTEXTS[0], "capital of japan"), _answer(CONTEXTS[1], "river seine"), (-1, -1)]
    answer_starts = tf.constant([s for s, _ in spans], tf.int64)
    starts, ends = qa.window_labels(w, answer_starts, tf.constant([e for _, e in spans], tf.int64))
    starts, ends = starts.numpy(), ends.numpy()
    assert starts.dtype == np.int32
    w = {k: v.numpy() for k, v in w.items()}
    hits = []
    for r, b in enumerate(w["example_index"]):
        a_s, a_e = spans[b]
        ctx = w["token_starts"][r] >= 0
        inside = a_s >= 0 and ctx.any()
        inside = inside and w["token_starts"][r][ctx].min() <= a_s and w["token_ends"][r][ctx].max() >= a_e
        if inside:
            hits.append(r)
            i, j = starts[r], ends[r]
            assert 0 < i <= j
            assert (w["token_starts"][r][i], w["token_ends"][r][j]) == (a_s, a_e)
        else:
            assert (starts[r], ends[r]) == (0, 0)
    # The long context's answer is whole in some windows, cut or absent in the others.
    rows0 = [r for r in hits if w["example_index"][r] == 0]
    assert 0 < len(rows0) < list(w["example_index"]).count(0)
    assert [w["example_index"][r] for r in hits if w["example_index"][r] != 0] == [1]
    # An answer starting mid-token labels the token that holds its start.
    s, e = _answer(CONTEXTS[0], "apital of ja")
    one_starts, one_ends = qa.window_labels(w, tf.constant([s, 0, 0], tf.int64), tf.constant([e, 0, 0], tf.int64))
    r = rows0[0]
    assert (int(one_starts[r]), int(one_ends[r])) == (starts[r], ends[r])


def _hand_windows():
    """Two windows of example 0, one empty window of example 1 and one of example 2."""
    seq = 8
    starts = np.full([4, seq], -1, np.int64)
    starts[0, 3:7] = [0, 5, 10, 15]
    starts[1, 3:7] = [10, 15, 20, 25]
    starts[3, 3:5] = [0, 4]
    # chars 10 and 15 are in both windows of example 0: 10 has more context
    # in the first, 15 in the second
    max_context = starts >= 0
    max_context[0, 6] = max_context[1, 3] = False
    windows = {
        "token_starts": tf.constant(starts),
        "token_ends": tf.constant(np.where(starts >= 0, starts + 4, -1)),
        "example_index": tf.constant([0, 0, 1, 2], tf.int32),
        "max_context": tf.constant(max_context),
    }
    return windows, np.zeros([4, seq], np.float32), np.zeros([4, seq], np.float32)


def test_best_spans_finds_a_planted_span_across_windows():
    windows, s, e = _hand_windows()
    s[1, 3:7], e[1, 5] = [-100.0, 5.0, -100.0, -100.0], 4.0  # chars 15..24 in the second window
    s[0, 4], e[0, 5] = 4.0, 4.0  # a lesser span in the first window
    s[:, 0] = e[:, 0] = s[:, 1] = e[:, 2] = 100.0  # [CLS] and question positions never win
    e[1, 3] = 50.0  # only as an end before the start
    s[3, 3], e[3, 4] = 1.0, 2.0
    score, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert score.numpy().tolist() == [9.0, -np.inf, 3.0, -np.inf]
    assert start.numpy().tolist() == [15, 0, 0, 0] and end.numpy().tolist() == [24, 0, 8, 0]
    assert start.dtype == tf.int64 and score.dtype == tf.float32
    # A longer span scores more but is over max_answer_tokens.
    e[1, 6] = 10.0
    _, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=2)
    assert (int(start[0]), int(end[0])) == (15, 24)
    _, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert (int(start[0]), int(end[0])) == (15, 29)
    # A span may not start at a token that another window reads with more
    # context (char 15 in the first window), however high it scores.
    s[0, 6] = 50.0
    score, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert (int(start[0]), int(end[0])) == (15, 29) and float(score[0]) == 15.0
    s[1, 4] = -50.0  # with the second window's start made unlikely, the first window's span wins
    score, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert (int(start[0]), int(end[0])) == (5, 14) and float(score[0]) == 8.0


def test_best_spans_widen_to_whole_words_when_windows_know_them():
    windows, s, e = _hand_windows()
    s[1, 4], e[1, 5] = 5.0, 4.0  # tokens at chars 15..19 and 20..24 of the second window
    _, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert (int(start[0]), int(end[0])) == (15, 24)
    # Say the token at 15 continues a word from 12, and the one at 20 one that ends at 27.
    windows["word_starts"] = tf.where(windows["token_starts"] == 15, tf.constant(12, tf.int64), windows["token_starts"])
    windows["word_ends"] = tf.where(windows["token_ends"] == 24, tf.constant(27, tf.int64), windows["token_ends"])
    _, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert (int(start[0]), int(end[0])) == (12, 27)


def test_best_spans_skip_nan_scores():
    """A window whose logits are NaN (a diverged model) has no span; the
    example's other windows still answer, and an example with nothing else
    gets no answer rather than a failed gather."""
    windows, s, e = _hand_windows()
    s[0, 3], e[0, 4] = 2.0, 2.0  # chars 0..9 in the first window of example 0
    s[1], s[3] = np.nan, np.nan
    score, start, end = qa.best_spans(tf.constant(s), tf.constant(e), windows, 4, max_answer_tokens=3)
    assert score.numpy().tolist() == [4.0, -np.inf, -np.inf, -np.inf]
    assert start.numpy().tolist() == [0, 0, 0, 0] and end.numpy().tolist() == [9, 0, 0, 0]


def test_answer_text_counts_characters():
    contexts = tf.constant(["東京は日本の首都です", "Zürich café"])
    got = qa.answer_text(contexts, tf.constant([3, 7], tf.int64), tf.constant([5, 11], tf.int64))
    assert [g.decode() for g in got.numpy()] == ["日本", "café"]


def _features(tok, questions, contexts, answer_starts, answer_ends):
    q_ids, _, _ = qa.tokenize_with_offsets(tok, questions)
    c_ids, c_s, c_e = qa.tokenize_with_offsets(tok, contexts)
    w = qa.make_windows(q_ids, c_ids, c_s, c_e, SEQ_LEN, STRIDE, MAX_Q, CLS, SEP, PAD)
    w["start_positions"], w["end_positions"] = qa.window_labels(w, answer_starts, answer_ends)
    # As a model would: logits that point at the labels (else at [CLS]).
    seq = tf.range(SEQ_LEN)[tf.newaxis]
    start_logits = tf.cast(seq == w["start_positions"][:, tf.newaxis], tf.float32)
    end_logits = tf.cast(seq == w["end_positions"][:, tf.newaxis], tf.float32)
    score, start, end = qa.best_spans(start_logits, end_logits, w, tf.shape(questions)[0], 4)
    w["answer"] = qa.answer_text(contexts, start, end)
    return w


def test_non_ascii_answers_round_trip_through_windows_labels_and_spans(tok):
    """Character span -> token labels -> best span -> the same characters,
    where characters are not bytes, lowercasing changes a word's length
    (İ -> i + combining dot) and a cased [UNK] covers a whole word."""
    contexts = ["Zürich  café , 東京は日本の首都です", "a b c d e f g h İstanbul", "σας café"]
    golds = ["首都です", "İstanbul", "σας"]
    spans = [_answer(c, g) for c, g in zip(contexts, golds)]
    got = _features(tok, tf.constant(QUESTIONS), tf.constant(contexts), tf.constant([s for s, _ in spans], tf.int64),
                    tf.constant([e for _, e in spans], tf.int64))
    assert [a.decode() for a in got["answer"].numpy()] == golds
    assert len(got["example_index"].numpy()) > 3  # the answers sit in later windows too


def test_same_results_eager_in_tf_function_tf_data_and_saved_model(tmp_path):
    tok = WordPieceTokenizer(VOCAB, lowercase=True)
    spans = [_answer(CONTEXTS[0], "capital of japan"), _answer(CONTEXTS[1], "river seine"), (-1, -1)]
    a_s = tf.constant([s for s, _ in spans], tf.int64)
    a_e = tf.constant([e for _, e in spans], tf.int64)
    eager = _features(tok, tf.constant(QUESTIONS), tf.constant(CONTEXTS), a_s, a_e)
    assert [a.decode() for a in eager["answer"].numpy()] == ["capital of japan", "river seine", ""]

    spec = [tf.TensorSpec([None], tf.string)] * 2 + [tf.TensorSpec([None], tf.int64)] * 2
    traced = tf.function(lambda *a: _features(tok, *a), input_signature=spec)
    graph = traced(tf.constant(QUESTIONS), tf.constant(CONTEXTS), a_s, a_e)
    assert graph["token_ids"].shape[1] == SEQ_LEN and traced.experimental_get_tracing_count() == 1

    ds = tf.data.Dataset.from_tensor_slices((QUESTIONS, CONTEXTS, a_s, a_e)).batch(2)
    rows = list(ds.map(lambda *a: _features(tok, *a)).map(lambda w: (w["token_ids"], w["start_positions"])).unbatch())

    module = tf.Module()
    module.tok = tok.trackables()
    module.features = traced
    tf.saved_model.save(module, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m")).features(tf.constant(QUESTIONS), tf.constant(CONTEXTS), a_s, a_e)

    for key in eager:
        assert np.array_equal(graph[key].numpy(), eager[key].numpy()), key
        assert np.array_equal(loaded[key].numpy(), eager[key].numpy()), key
    assert np.array_equal(np.stack([r[0] for r in rows]), eager["token_ids"].numpy())
    assert [int(r[1]) for r in rows] == eager["start_positions"].numpy().tolist()


@pytest.mark.parametrize("max_answer_tokens", [8, 30])
def test_answering_reads_only_the_tokens_in_use(max_answer_tokens):
    """The model runs on windows cut to the longest one's last token; spans
    and offsets are the same as on whole windows, also when answers may be
    longer than the cut windows (a short question about a short passage)."""
    from kerasllm.config import ModelConfig
    from kerasllm.inference.qa import answer_graph

    tok = WordPieceTokenizer(VOCAB, lowercase=True)
    seen = []

    def model(inputs, training=False):  # prefers the first context token as start, the last as end
        seen.append(inputs["token_ids"].shape)
        ctx = tf.cast(inputs["segment_ids"] == 1, tf.float32)
        n = tf.cast(tf.shape(ctx)[1], tf.float32)
        position = tf.range(n)[tf.newaxis]
        return ctx * (n - position), ctx * position

    config = ModelConfig(kind="encoder", head="span", seq_len=SEQ_LEN, max_question_tokens=MAX_Q, doc_stride=STRIDE,
                         max_answer_tokens=max_answer_tokens)
    out = answer_graph(model, tok, config, tf.constant(["which river ?"]), tf.constant(["paris river seine"]))
    assert seen == [(1, 9)]  # [CLS] which river ? [SEP] paris river seine [SEP]
    assert out["answer"].numpy().tolist() == [b"paris river seine"]  # the final [SEP] is not a context token
