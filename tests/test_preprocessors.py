"""Each task's preprocessor is its one path between strings and ids.

Per task, the preprocessor gives the ids and inputs the code it replaced
gave (the expected values below were computed with that code, on the tiny
hand-written vocabularies of test_tokenizer_api), the same eagerly, in a
`tf.function` and inside tf.data (keras-hub's WordPiece and SentencePiece
take another path eagerly than in a graph). A source scan checks that no
module outside the preprocessors and the tokenizers calls a tokenizer's
`tokenize`, `detokenize` or `tokenize_with_offsets`.
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasllm import task_registry
from kerasllm.config import ModelConfig, RunConfig
from kerasllm.data.preprocessors import (
    LanguageModelPreprocessor,
    MaskedLMPreprocessor,
    QuestionAnsweringPreprocessor,
    TranslationPreprocessor,
)
from kerasllm.inference.prompts import decode_continuations
from test_tokenizer_api import KINDS, _tokenizer

TEXTS = ["The cat sat", "un chat", "", "the cats"]
# WordPiece ids: [PAD] 0 [UNK] 1 [EOT] 2 [CLS] 3 [SEP] 4 [MASK] 5, the 6 cat 7
# sat 8 un 9 ch 10 ##at 11 ##s 12 c 13 ##h 14; the tokenizer lowercases.


def _values(x):
    """Nested Python values of tensors, ragged tensors, dicts and tuples."""
    if isinstance(x, tf.RaggedTensor):
        return x.to_list()
    if isinstance(x, dict):
        return {k: _values(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return [_values(v) for v in x]
    return tf.convert_to_tensor(x).numpy().tolist()


def _dense(x):
    """Ragged tensors in `x` made dense (with -1), as tf.data returns them."""
    return tf.nest.map_structure(lambda t: t.to_tensor(-1) if isinstance(t, tf.RaggedTensor) else t, x)


def _same_everywhere(make, *args):
    """`make()(*args)` eagerly, in a tf.function and in a tf.data map must
    agree; returns the eager result as Python values. `make` gives a fresh
    function each time: keras-hub's ByteTokenizer keeps the table it makes
    in the first graph that detokenizes, so each graph gets its own."""
    args = tuple(tf.convert_to_tensor(a) for a in args)
    eager = make()(*args)
    assert _values(tf.function(make(), autograph=False)(*args)) == _values(eager)
    fn = make()
    in_data = tf.data.Dataset.from_tensors(args).map(lambda *a: _dense(fn(*a))).get_single_element()
    assert _values(in_data) == _values(_dense(eager))
    return _values(eager)


# -- language model --------------------------------------------------------


def test_language_model_preprocessor_gives_the_ids_of_the_code_it_replaced():
    lm = LanguageModelPreprocessor(_tokenizer("wordpiece"))
    texts = tf.constant(TEXTS)
    # Training: each document, then end-of-text (2) where a document ends.
    documents = _same_everywhere(lambda: lm.document_ids, texts, tf.constant([1, 0, 1, 1]))
    assert documents == [6, 7, 8, 2, 9, 10, 11, 2, 6, 7, 12, 2]
    assert _values(lm.training_example(tf.constant([[2, 6, 7, 8]]))) == [[[2, 6, 7]], [[6, 7, 8]]]
    # Scoring and prompts: end-of-text first.
    assert _same_everywhere(lambda: lm.with_start_token, texts) == [[2, 6, 7, 8], [2, 9, 10, 11], [2], [2, 6, 7, 12]]
    batch = lm.generate_preprocess(texts, 3, 6)  # 3 new tokens in a context of 6: prompts keep their last 3
    assert _values(batch.token_ids) == [[6, 7, 8, 0, 0, 0], [9, 10, 11, 0, 0, 0], [2, 0, 0, 0, 0, 0], [6, 7, 12, 0, 0, 0]]
    assert _values(batch.lengths) == [3, 3, 1, 3] and _values(batch.full_lengths) == [4, 4, 1, 4]
    assert _values(batch.prompt_mask)[2] == [True, False, False, False, False, False]
    # Decoding wrote "cat sat" and end-of-text after each prompt.
    generated = tf.constant([[6, 7, 8, 7, 8, 2], [9, 10, 11, 7, 8, 2], [2, 7, 8, 2, 0, 0], [6, 7, 12, 7, 8, 2]])
    text, num_tokens = decode_continuations(lm, generated, batch, 3)
    assert _values(text) == [b" cat sat", b" cat sat", b"cat sat", b" cat sat"] and _values(num_tokens) == [2] * 4
    text, num_tokens = decode_continuations(lm, generated, batch, 1)
    assert _values(text) == [b" cat", b" cat", b"cat", b" cat"] and _values(num_tokens) == [1] * 4
    # The export's tokenize and detokenize signatures.
    ids = lm.texts_to_ids(texts)
    assert _values(ids) == {"token_ids": [[6, 7, 8], [9, 10, 11], [0, 0, 0], [6, 7, 12]], "num_tokens": [3, 3, 0, 3]}
    assert _values(lm.ids_to_texts(ids["token_ids"])) == [b"the cat sat", b"un chat", b"", b"the cats"]


@pytest.mark.parametrize("kind", KINDS)
def test_language_model_preprocessor_is_the_same_eagerly_and_in_graphs(kind):
    tok = _tokenizer(kind)

    def fresh():
        return LanguageModelPreprocessor(_tokenizer(kind))

    texts = tf.constant(TEXTS)
    documents = _same_everywhere(lambda: fresh().document_ids, texts, tf.constant([1, 1, 0, 1]))
    assert documents == [i for row, end in zip(tok.tokenize(TEXTS).to_list(), [1, 1, 0, 1])
                         for i in row + [tok.eot_id] * end]
    assert _same_everywhere(lambda: fresh().with_start_token, texts) == [
        [tok.eot_id] + row for row in tok.tokenize(TEXTS).to_list()]
    token_ids, prompt_mask, lengths, _ = _same_everywhere(lambda: lambda t: tuple(fresh().generate_preprocess(t, 4, 8)),
                                                          texts)
    assert all(n <= 4 for n in lengths)  # a context of 8 with room for 4 new tokens
    # Each prompt continued by its last id twice, then end-of-text.
    generated = np.array(token_ids)
    for row, n in enumerate(lengths):
        generated[row, n:n + 3] = [generated[row, n - 1]] * 2 + [tok.eot_id]
    keep = generated != tok.pad_id
    text = _same_everywhere(lambda: fresh().generate_postprocess, generated, keep, np.array(prompt_mask))
    assert text[0] != b"" and len(text) == 4


# -- translation -----------------------------------------------------------


def test_translation_preprocessor_gives_the_inputs_of_the_code_it_replaced():
    tok = _tokenizer("wordpiece")
    tr = TranslationPreprocessor(tok, tok, sequence_length=4)
    sources, decoder_ids, labels = _same_everywhere(lambda: tr.encode_pairs, tf.constant(TEXTS), tf.constant(TEXTS[::-1]))
    assert sources == [[6, 7, 8], [9, 10, 11], [], [6, 7, 12]]
    assert decoder_ids == [[2, 6, 7, 12], [2], [2, 9, 10, 11], [2, 6, 7, 8]]  # end-of-text starts the decoder
    assert labels == [[6, 7, 12, 2], [2], [9, 10, 11, 2], [6, 7, 8, 2]]  # and ends the labels
    inputs = _same_everywhere(lambda: lambda s: tr.generate_preprocess(s, 3), tf.constant(["the cat sat un chat", "un"]))
    assert inputs == {"encoder_token_ids": [[6, 7, 8], [9, 0, 0]],  # cut to 3
                      "encoder_padding_mask": [[True, True, True], [True, False, False]],
                      "decoder_token_ids": [[2, 0, 0], [2, 0, 0]],
                      "decoder_padding_mask": [[True, False, False], [True, False, False]]}
    generated = tf.constant([[2, 9, 10, 11, 2, 0], [2, 7, 2, 0, 0, 0]])
    keep = tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]) > 0
    assert _same_everywhere(lambda: tr.generate_postprocess, generated, keep) == [b"un chat", b"cat"]
    batch_inputs, batch_labels, weights = tr.training_example(
        tf.constant([[6, 7], [9, 0]]), tf.constant([[2, 9], [2, 0]]), tf.constant([[9, 2], [2, 0]]),
        tf.constant([2, 1]), tf.constant([2, 1]))
    assert _values(batch_inputs["encoder_padding_mask"]) == [[True, True], [True, False]]
    assert _values(weights) == [[1.0, 1.0], [1.0, 0.0]] and _values(batch_labels) == [[9, 2], [2, 0]]


@pytest.mark.parametrize("kind", ["char", "wordpiece", "sentencepiece"])
def test_translation_with_two_vocabularies_is_the_same_eagerly_and_in_graphs(kind):
    def fresh():
        return TranslationPreprocessor(_tokenizer(kind), _tokenizer("byte"), sequence_length=8)

    _, decoder_ids, labels = _same_everywhere(lambda: fresh().encode_pairs, tf.constant(TEXTS), tf.constant(TEXTS))
    assert decoder_ids[0] == [256] + list(b"The cat sat") and labels[0] == list(b"The cat sat") + [256]
    inputs = _same_everywhere(lambda: lambda s: fresh().generate_preprocess(s, 5), tf.constant(TEXTS))
    source = _tokenizer(kind)
    assert inputs["encoder_token_ids"][0] == (source.tokenize(TEXTS).to_list()[0] + [source.pad_id] * 5)[:5]
    generated = np.array([[256] + list(b"un chat") + [256], [256] + list(b"cat") + [256] + [0] * 4])
    assert _same_everywhere(lambda: fresh().generate_postprocess, generated, generated != 0) == [b"un chat", b"cat"]


# -- masked LM -------------------------------------------------------------


def test_masked_lm_preprocessor_frames_and_masks_blocks_in_graphs():
    tok = _tokenizer("wordpiece")
    mlm = MaskedLMPreprocessor(tok, sequence_length=8, mask_selection_rate=0.5)
    blocks = np.array([[6, 7, 8, 9, 10, 11], [12, 6, 7, 8, 9, 10]] * 8, "int32")
    assert mlm.masker.mask_selection_length == 5  # round(8 * 0.5 * 1.25), as the trainer always sized it
    for inputs, mask_ids, weights in (mlm.training_example(tf.constant(blocks)),
                                      tf.data.Dataset.from_tensors(blocks).map(mlm.training_example)
                                      .get_single_element()):
        ids = inputs["token_ids"].numpy()
        assert ids.shape == (16, 8) and (ids[:, 0] == 3).all() and (ids[:, -1] == 4).all()  # [CLS] ... [SEP]
        assert inputs["padding_mask"].numpy().all() and not inputs["segment_ids"].numpy().any()
        positions, weights = inputs["mask_positions"].numpy(), weights.numpy()
        assert weights.sum() > 0 and (positions[weights > 0] >= 1).all() and (positions[weights > 0] <= 6).all()
        restored = ids.copy()
        for row in range(len(ids)):
            chosen = weights[row] > 0
            restored[row, positions[row][chosen]] = mask_ids.numpy()[row][chosen]
        assert (restored[:, 1:-1] == blocks).all()  # the masked ids are the block's own


# -- question answering ----------------------------------------------------


def _qa_preprocessor():
    config = ModelConfig(kind="encoder", head="span", seq_len=10, doc_stride=2, max_question_tokens=3,
                         max_answer_tokens=3)
    return QuestionAnsweringPreprocessor.for_model(_tokenizer("wordpiece"), config)


def test_question_answering_preprocessor_gives_the_windows_of_the_code_it_replaced():
    qa = _qa_preprocessor()
    questions, contexts = tf.constant(["the cat ?", "Un"]), tf.constant(["The cat sat, the cats sat", "chat"])
    windows = _same_everywhere(lambda: lambda q, c: qa.windows(q, c, whole_words=True), questions, contexts)
    assert windows["token_ids"] == [[3, 6, 7, 1, 4, 6, 7, 8, 1, 4], [3, 6, 7, 1, 4, 8, 1, 6, 7, 4],
                                    [3, 6, 7, 1, 4, 6, 7, 12, 8, 4], [3, 9, 4, 10, 11, 4, 0, 0, 0, 0]]
    assert windows["segment_ids"][3] == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0] and windows["example_index"] == [0, 0, 0, 1]
    assert windows["token_starts"] == [[-1] * 5 + [0, 4, 8, 11, -1], [-1] * 5 + [8, 11, 13, 17, -1],
                                       [-1] * 5 + [13, 17, 20, 22, -1], [-1, -1, -1, 0, 2] + [-1] * 5]
    assert windows["word_starts"][2] == [-1] * 5 + [13, 17, 17, 22, -1]  # "cats" is one word: "cat" + "##s"
    assert windows["max_context"][1] == [False] * 6 + [True, True, False, False]
    # Training: the answer "sat" (characters 8-11) and "chat" (0-4), labelled per window, inside tf.data.
    batch = {"question": questions, "context": contexts, "answer_start": tf.constant([8, 0], tf.int64),
             "answer_end": tf.constant([11, 4], tf.int64)}
    inputs, (starts, ends) = tf.data.Dataset.from_tensors(batch).map(qa.training_example).get_single_element()
    assert sorted(inputs) == ["padding_mask", "segment_ids", "token_ids"]
    assert starts.numpy().tolist() == [7, 5, 0, 3] and ends.numpy().tolist() == [7, 5, 0, 4]


def test_question_answering_preprocessor_turns_spans_into_answers():
    qa = _qa_preprocessor()
    contexts = tf.constant(["The cat sat, the cats sat", "chat"])
    windows = qa.windows(tf.constant(["the cat ?", "Un"]), contexts, whole_words=True)
    # Logits that favour "cat" (position 6) in the first window and "ch ##at" in the last.
    start, end = np.full((4, 10), -9.0, "float32"), np.full((4, 10), -9.0, "float32")
    start[0, 6] = end[0, 6] = 5.0
    start[3, 3] = end[3, 4] = 1.0
    spans = qa.best_window_spans(start, end, windows)
    answers = _values(qa.answers(contexts, spans, windows, 2))
    assert answers["answer"] == [b"cat", b"chat"] and answers["start"] == [4, 0] and answers["end"] == [7, 4]
    assert answers["score"] == [10.0, 2.0]


# -- the tasks make them ---------------------------------------------------


def test_each_task_makes_its_preprocessor_from_the_run_config():
    tok = _tokenizer("wordpiece")
    config = RunConfig()
    config.model.seq_len, config.model.doc_stride, config.train.mask_rate = 16, 4, 0.25
    made = {task_registry.name(t): t.preprocessor(config, tok, tok) for t in task_registry.all_tasks()}
    assert {name: type(p).__name__ for name, p in made.items()} == {
        "gpt": "LanguageModelPreprocessor", "lstm": "LanguageModelPreprocessor",
        "seq2seq": "TranslationPreprocessor", "encoder/masked_lm": "MaskedLMPreprocessor",
        "encoder/span": "QuestionAnsweringPreprocessor", "gpt2": "LanguageModelPreprocessor",
        "llama3": "LanguageModelPreprocessor", "bert": "QuestionAnsweringPreprocessor",
        "distilbert": "QuestionAnsweringPreprocessor", "bart": "BartTranslationPreprocessor"}
    assert made["seq2seq"].sequence_length == 16 and made["encoder/span"].doc_stride == 4
    assert made["encoder/masked_lm"].masker.mask_selection_rate == 0.25
    assert all(p.tokenizer is tok for p in made.values())


# -- one path --------------------------------------------------------------

# Modules that may call a tokenizer's methods, and why.
ALLOWED = {
    "kerasllm/data/tokenizers.py": "the tokenizers themselves (training, `unknown_characters`)",
    # The client of an exported model (or of a run, through the same serving
    # module) calls the module's `tokenize` / `detokenize` signatures, which
    # run the preprocessor inside the graph; its own `tokenize`/`detokenize`
    # methods wrap those signatures.
    "kerasllm/export/client.py": "calls an export's tokenize/detokenize signatures, not a tokenizer",
}
METHODS = {"tokenize", "detokenize", "tokenize_with_offsets"}


def _tokenizer_calls(path: Path) -> list:
    """Lines of `path` that call `.tokenize(`, `.detokenize(` or
    `tokenize_with_offsets(` (calls in code, not in docstrings)."""
    import ast

    def called(node):
        f = node.func
        return (isinstance(f, ast.Attribute) and f.attr in METHODS) or (
            isinstance(f, ast.Name) and f.id == "tokenize_with_offsets")

    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and called(node)]


def test_no_module_but_the_preprocessors_tokenizes():
    root = Path(__file__).resolve().parents[1]
    files = [p for folder in ("kerasllm", "cli", "bench") for p in sorted((root / folder).rglob("*.py"))]
    own = [p for p in files if p.relative_to(root).as_posix().startswith("kerasllm/data/preprocessors/")]
    offenders = [f"{p.relative_to(root)}:{line}" for p in files
                 if p not in own and p.relative_to(root).as_posix() not in ALLOWED for line in _tokenizer_calls(p)]
    assert offenders == []
    # The scan sees calls: the preprocessors make them, and so do the exceptions.
    assert sum(len(_tokenizer_calls(p)) for p in own) >= 8
    assert all(_tokenizer_calls(root / path) for path in ALLOWED)
