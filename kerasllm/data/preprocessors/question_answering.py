"""The extractive question-answering preprocessor: questions and contexts
-> encoder windows with character offsets, and spans -> answers.

The graph ops it is built from (WordPiece with offsets, windows, labels,
span search) are `qa_features`'; this class holds a run's settings and is
what training, evaluation, `kerasllm qa` and the exported model call, so
they all read text the same way.

Example:
    preprocessor = QuestionAnsweringPreprocessor.for_model(tokenizer, config.model)
    windows = preprocessor.windows(tf.constant(["Who wrote Hamlet?"]), tf.constant(["Hamlet is by Shakespeare."]))
    start_logits, end_logits = model(preprocessor.model_inputs(windows))
"""

from __future__ import annotations

from kerasllm.data.preprocessors import qa_features

MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")  # what the span model reads of a window


class QuestionAnsweringPreprocessor:
    """Strings <-> a span model's windows, the role of keras-hub's
    `BertTextClassifierPreprocessor` for a question and its passage
    (`[CLS] question [SEP] context [SEP]`), plus what a classifier
    preprocessor does not need: a long context read in overlapping windows,
    each token's character offsets, and answers cut out of the context.

    Args:
        tokenizer: the run's `WordPieceTokenizer` (another kind raises a
            `UserError` when text is read).
        sequence_length: tokens per window (`model.seq_len`).
        doc_stride: a longer context is read in windows starting every
            `doc_stride` tokens (`model.doc_stride`).
        max_question_tokens: questions keep their first this many tokens.
        max_answer_tokens: the longest answer, in tokens, that span search
            picks (`model.max_answer_tokens`).

    Example:
        preprocessor = QuestionAnsweringPreprocessor(tok, sequence_length=10, doc_stride=2, max_question_tokens=3)
        windows = preprocessor.windows(tf.constant(["the cat ?"]), tf.constant(["The cat sat, the cats sat"]))
        windows["token_ids"][0]     # [CLS] the cat ? [SEP] the cat sat , [SEP]
        windows["token_starts"][0]  # -1 but on context tokens: 0, 4, 8, 11 (characters)
    """

    def __init__(self, tokenizer, sequence_length: int, doc_stride: int = 128, max_question_tokens: int = 64,
                 max_answer_tokens: int = 30):
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.doc_stride = doc_stride
        self.max_question_tokens = max_question_tokens
        self.max_answer_tokens = max_answer_tokens

    @classmethod
    def for_model(cls, tokenizer, model_config) -> "QuestionAnsweringPreprocessor":
        """The preprocessor of a run: window sizes from its `ModelConfig`.

        Example:
            QuestionAnsweringPreprocessor.for_model(lm.tokenizer, lm.config.model)
        """
        m = model_config
        return cls(tokenizer, m.seq_len, m.doc_stride, m.max_question_tokens, m.max_answer_tokens)

    def windows(self, questions, contexts, whole_words: bool = False) -> dict:
        """Windows (`qa_features.make_windows`) of a batch of questions and
        contexts (string[batch] each); `whole_words` adds the word offsets
        that answering needs (`answers` widens spans to whole words)."""
        tok = self.tokenizer
        q_ids, _, _ = qa_features.tokenize_with_offsets(tok, questions)
        c_ids, c_starts, c_ends, *words = qa_features.tokenize_with_offsets(tok, contexts, with_words=whole_words)
        word_offsets = {"context_word_starts": words[0], "context_word_ends": words[1]} if words else {}
        return qa_features.make_windows(
            q_ids, c_ids, c_starts, c_ends, seq_len=self.sequence_length, doc_stride=self.doc_stride,
            max_question_tokens=self.max_question_tokens, cls_id=tok.special_id("[CLS]"),
            sep_id=tok.special_id("[SEP]"), pad_id=tok.pad_id, **word_offsets,
        )

    @staticmethod
    def model_inputs(windows: dict) -> dict:
        """What the span model reads of `windows`: token, segment ids and padding mask."""
        return {k: windows[k] for k in MODEL_INPUTS}

    def training_example(self, batch: dict):
        """A batch of examples (`question`, `context`, and the first gold
        answer's `answer_start`/`answer_end` characters) -> (inputs,
        (start_position, end_position)), one row per window."""
        w = self.windows(batch["question"], batch["context"])
        starts, ends = qa_features.window_labels(w, batch["answer_start"], batch["answer_end"])
        return self.model_inputs(w), (starts, ends)

    def answers(self, contexts, window_spans, windows: dict, num_examples) -> dict:
        """Each window's best span (`qa_features.window_best_spans`) -> per
        question: `answer` (the text cut out of its context), `score`,
        `start` and `end` (character offsets, end exclusive)."""
        score, start, end = qa_features.spans_of_examples(window_spans, windows, num_examples)
        return {"answer": qa_features.answer_text(contexts, start, end), "score": score, "start": start, "end": end}

    def best_window_spans(self, start_logits, end_logits, windows: dict):
        """The model's logits for `windows` -> each window's best valid span
        (`qa_features.window_best_spans`, at most `max_answer_tokens` long)."""
        return qa_features.window_best_spans(start_logits, end_logits, windows, self.max_answer_tokens)

