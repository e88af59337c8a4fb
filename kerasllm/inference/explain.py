"""What a model does with one input, per kind of run, as plain data:
`kerasllm explain` writes it as a picture (PNG), a page (HTML) or JSON, and
training shows it in TensorBoard at each epoch.

- Language model (`explain_language_model`): the surprisal of each token
  of a text (-log p in nats, natural log: the per-token log-probabilities
  that `kerasllm score` adds up, negated) and, for a GPT, the
  self-attention of chosen layers and heads over the text's start.
- Translator (`explain_translation`): the cross-attention of output
  tokens over source tokens (the alignment plot of the TensorFlow NMT
  tutorial) and each output token's surprisal.
- Question answering (`explain_question_answering`): the start and end
  probability of each passage token, with the answer `kerasllm qa` gives
  marked.

Each explanation chooses its own pictures (`panels()`: the per-kind choice
of what to draw lives here, not in the renderers), its JSON (`to_dict()`)
and its per-token loss table for TensorBoard (`loss_table()`).

Example:
    lm = load_run("runs/tiny")
    explanation = explain_language_model(lm, "ROMEO: What say you?")
    Path("x.png").write_bytes(explanation_bytes(explanation, "png"))
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import tensorflow as tf

from kerasllm.data.preprocessors import LanguageModelPreprocessor, TranslationPreprocessor
from kerasllm.errors import UserError
from kerasllm.inference.attention import cross_attention, has_self_attention, self_attention
from kerasllm.inference.prompts import with_start_token
from kerasllm.inference.scoring import token_log_probs
from kerasllm.pictures.panels import Heatmap, SpanProbabilities, TokenValues

START, END = "<start>", "<end>"  # how the end-of-text id is labelled as a start token and as an end
UNIT = "nats"
FORMATS = ("png", "html", "json")
_CONTEXT_TOKENS = 8  # ids before a token that `token_texts` detokenizes with it


def token_texts(tokenizer, ids) -> list:
    """The text each id adds to the ids before it, for labelling tokens.

    Detokenized one by one, subword pieces lose what joins them (a
    SentencePiece token's leading space); so each id is detokenized after
    up to 8 ids before it and its text is what it adds. Where that is not
    a clean extension (bytes of one character split over tokens), the id
    is detokenized alone. Special ids give "".

    Args:
        tokenizer: the run's tokenizer (`kerasllm.data.tokenizers`).
        ids: token ids in text order.

    Example:
        token_texts(CharTokenizer(list(" Tabeo")), [4, 8, 3, 6, 7])  # ["T", "o", " ", "b", "e"]
    """
    ids = [int(i) for i in ids]
    if not ids:
        return []
    rows = []
    for i, token in enumerate(ids):
        first = max(0, i - _CONTEXT_TOKENS)
        rows += [ids[first:i], ids[first:i + 1], [token]]
    ids_to_texts = LanguageModelPreprocessor(tokenizer).ids_to_texts  # ids -> text, whatever the tokenizer's task
    texts = [t.decode("utf-8", errors="replace")
             for t in ids_to_texts(tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)).numpy()]
    out = []
    for i in range(len(ids)):
        before, with_token, alone = texts[3 * i:3 * i + 3]
        out.append(with_token[len(before):] if with_token.startswith(before) else alone)
    return out


@dataclass
class AttentionMap:
    """One attention picture: a layer's head, or the mean of its heads.

    Args:
        layer: the layer's index (0 is the first).
        head: the head's index, or None for the mean over all heads.
        weights: [queries, keys] attention weights; each row sums to 1.
    """

    layer: int
    head: Optional[int]
    weights: np.ndarray

    def label(self) -> str:
        return f"layer {self.layer}, " + ("mean of heads" if self.head is None else f"head {self.head}")

    def name(self, prefix: str) -> str:
        return f"{prefix}_layer_{self.layer}_" + ("mean" if self.head is None else f"head_{self.head}")

    def to_dict(self) -> dict:
        return {"layer": self.layer, "head": "mean" if self.head is None else self.head,
                "weights": np.round(self.weights, 5).tolist()}


def select_attention(scores: np.ndarray, layers=None, heads=None) -> list:
    """The pictures `layers` and `heads` ask for from all the scores.

    Args:
        scores: [layers, heads, queries, keys] (`attention.self_attention`).
        layers: layer indices; None for the last layer.
        heads: head indices, one picture each; None for the mean of the
            heads (one picture per layer).

    Raises:
        UserError: an index the model does not have.

    Example:
        select_attention(scores, layers=[0], heads=None)  # [AttentionMap(0, None, scores[0].mean(0))]
    """
    num_layers, num_heads = scores.shape[:2]
    layers = [num_layers - 1] if layers is None else list(layers)
    for what, chosen, count in (("--layers", layers, num_layers), ("--heads", heads or [], num_heads)):
        wrong = [i for i in chosen if not 0 <= i < count]
        if wrong:
            raise UserError(f"{what} {wrong[0]}: the model has {count} ({what[2:]} 0 to {count - 1})")
    if heads is None:
        return [AttentionMap(layer, None, scores[layer].mean(axis=0)) for layer in layers]
    return [AttentionMap(layer, head, scores[layer, head]) for layer in layers for head in heads]


def _loss_table(tokens: list, log_probs: list) -> str:
    """Markdown: each token and its loss (TensorBoard's text dashboard)."""
    rows = [f"| {i} | `{json.dumps(t, ensure_ascii=False)[1:-1] or ' '}` | {-lp:.3f} |"
            for i, (t, lp) in enumerate(zip(tokens, log_probs))]
    total = -sum(log_probs)
    return "\n".join([f"Loss per token ({UNIT}); total {total:.3f}, mean {total / max(len(rows), 1):.3f}", "",
                      "| position | token | loss |", "| --- | --- | --- |", *rows])


@dataclass
class LanguageModelExplanation:
    """Surprisal of each token of a text, and self-attention over its start.

    `log_probs[i]` is the natural-log probability of token i given the
    start token and the tokens before it (windows of the model's context,
    as `kerasllm score` scores them); surprisal is its negation.
    """

    text: str
    tokens: list
    token_ids: list
    log_probs: list
    attention_tokens: list = field(default_factory=list)  # START, then the text's first tokens
    attention: list = field(default_factory=list)  # AttentionMap over attention_tokens
    notes: list = field(default_factory=list)
    kind = "language_model"

    @property
    def surprisal(self) -> list:
        return [-lp for lp in self.log_probs]

    def panels(self) -> list:
        total = -sum(self.log_probs)
        surprisal = TokenValues("surprisal", f"Surprisal of each token ({UNIT}; {total:.2f} in all, "
                                f"perplexity {math.exp(min(total / max(len(self.tokens), 1), 50)):.2f})",
                                self.tokens, self.surprisal, f"surprisal ({UNIT})")
        return [surprisal] + [Heatmap(a.name("attention"), f"Self-attention, {a.label()}", self.attention_tokens,
                                      self.attention_tokens, a.weights, "query (predicting the next token)", "key")
                              for a in self.attention]

    def loss_table(self) -> str:
        return _loss_table(self.tokens, self.log_probs)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "unit": UNIT, "log_prob": round(sum(self.log_probs), 5),
                "tokens": [{"text": t, "id": i, "log_prob": round(lp, 5), "surprisal": round(-lp, 5)}
                           for t, i, lp in zip(self.tokens, self.token_ids, self.log_probs)],
                "attention": {"tokens": self.attention_tokens, "maps": [a.to_dict() for a in self.attention]},
                "notes": self.notes}


def explain_language_model(lm, text: str, layers=None, heads=None) -> LanguageModelExplanation:
    """Surprisal of each token of `text` and, for a GPT, the self-attention
    of `layers` x `heads` over the start token and the text's first
    context - 1 tokens.

    Args:
        lm: a loaded run (`kerasllm.loaded_run.load_run`) or anything with
            its `model` and `tokenizer`.
        text: the text (any length: surprisal covers all of it).
        layers, heads: see `select_attention` (default: the last layer,
            the mean of its heads).

    Example:
        e = explain_language_model(load_run("runs/tiny"), "ROMEO: Hold.", layers=[0], heads=[0, 1])
        e.surprisal  # one number per token, in nats
    """
    from kerasllm.models import max_context

    tokenizer, model = lm.tokenizer, lm.model
    context = max_context(model)
    tokens = with_start_token(tokenizer, tf.constant([text]))
    log_probs, count = token_log_probs(model, tokens, tokenizer.pad_id, context)
    ids = tokens.values.numpy().tolist()
    if int(count[0]) == 0:
        raise UserError("TEXT: no tokens to explain (the text is empty)")
    explanation = LanguageModelExplanation(text, token_texts(tokenizer, ids[1:]), ids[1:],
                                           [float(v) for v in log_probs.numpy()[0, :int(count[0])]])
    if not has_self_attention(model):
        if layers is not None or heads is not None:
            explanation.notes.append("this model (an LSTM) has no attention: surprisal only")
        return explanation
    shown = ids[:context]
    explanation.attention_tokens = [START] + explanation.tokens[:len(shown) - 1]
    explanation.attention = select_attention(self_attention(model, shown), layers, heads)
    if len(ids) > len(shown):
        explanation.notes.append(f"attention over the first {len(shown) - 1} tokens (the model's context is "
                                 f"{context}, the start token included)")
    return explanation


@dataclass
class TranslationExplanation:
    """Cross-attention of each output token over the source tokens, and
    each output token's log-probability (nats) given the source and the
    output before it. `reference` marks outputs that were given (a
    reference translation, read teacher-forced) rather than translated."""

    source: str
    translation: str
    source_tokens: list
    output_tokens: list  # the predicted tokens, END last when the output ended
    log_probs: list
    cross_attention: list  # AttentionMap [output, source]
    reference: bool = False
    kind = "translation"

    def panels(self) -> list:
        what = "the reference" if self.reference else "the translation"
        maps = [Heatmap(a.name("cross_attention"), f"Cross-attention, {a.label()}: {what} (rows) reading the "
                        "source (columns)", self.output_tokens, self.source_tokens, a.weights,
                        "output token", "source token") for a in self.cross_attention]
        return maps + [TokenValues("output_surprisal", f"Surprisal of each token of {what} ({UNIT})",
                                   self.output_tokens, [-lp for lp in self.log_probs], f"surprisal ({UNIT})")]

    def loss_table(self) -> str:
        return _loss_table(self.output_tokens, self.log_probs)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "translation": self.translation,
                "reference": self.reference, "unit": UNIT, "source_tokens": self.source_tokens,
                "output_tokens": [{"text": t, "log_prob": round(lp, 5), "surprisal": round(-lp, 5)}
                                  for t, lp in zip(self.output_tokens, self.log_probs)],
                "cross_attention": [a.to_dict() for a in self.cross_attention]}


def explain_translation(lm, source: str, reference: Optional[str] = None, layers=None,
                        heads=None) -> TranslationExplanation:
    """The greedy translation of `source` (or the given `reference`) with
    the decoder's cross-attention over the source tokens.

    The output is read once more, teacher-forced (as in training): row i
    of each map is the attention while the model predicts output token i,
    the last row the end-of-text that ends it.

    Args:
        lm: a loaded translation run (`model`, `tokenizer`,
            `target_tokenizer`, `config`).
        source: the source sentence (cut to `model.seq_len` tokens, as
            `kerasllm translate` cuts it).
        reference: a target sentence to read instead of translating.
        layers, heads: decoder layers and heads (`select_attention`).

    Example:
        e = explain_translation(load_run("runs/spa-eng"), "I like tea.")
        e.cross_attention[0].weights.argmax(axis=1)  # the source token each output token reads most
    """
    from kerasllm.inference.translate import translation_ids

    model, source_tokenizer, target_tokenizer = lm.model, lm.tokenizer, lm.target_tokenizer
    seq_len, eot = lm.config.model.seq_len, target_tokenizer.eot_id
    preprocessor = TranslationPreprocessor(source_tokenizer, target_tokenizer)
    sources, _, labels = preprocessor.encode_pairs(tf.constant([source]), tf.constant([reference or ""]))
    source_ids = sources[0][:seq_len].numpy().tolist()
    if not source_ids:
        raise UserError("TEXT: nothing to translate (the sentence is empty)")
    if reference is None:
        out = translation_ids(model, source_tokenizer, target_tokenizer, [source], max_length=seq_len)
        output = np.asarray(out["decoder_token_ids"])[0][np.asarray(out["decoder_padding_mask"])[0]][1:].tolist()
    else:
        output = labels[0][:-1][:seq_len - 1].numpy().tolist() + [eot]  # the reference's ids, end-of-text last
    decoder = [eot] + output[:-1]
    inputs = {"encoder_token_ids": np.array([source_ids], "int32"),
              "encoder_padding_mask": np.ones((1, len(source_ids)), bool),
              "decoder_token_ids": np.array([decoder], "int32"), "decoder_padding_mask": np.ones((1, len(decoder)), bool)}
    log_probs = tf.nn.log_softmax(tf.cast(model(inputs, training=False), tf.float32))[0].numpy()
    scores = cross_attention(model, source_ids, decoder)
    labels = [END if i == eot else t for i, t in zip(output, token_texts(target_tokenizer, output))]
    whole = tf.constant([[eot] + output], tf.int32)  # as decoding writes it: the start token first
    translation = preprocessor.generate_postprocess(whole, tf.ones_like(whole, tf.bool)).numpy()[0].decode(
        "utf-8", errors="replace")
    return TranslationExplanation(source, translation, token_texts(source_tokenizer, source_ids), labels,
                                  [float(log_probs[i, t]) for i, t in enumerate(output)],
                                  select_attention(scores, layers, heads), reference is not None)


@dataclass
class QuestionAnsweringExplanation:
    """Start and end probabilities over the passage tokens of one window
    (the model's softmax over that window's positions; `outside` is what
    falls on [CLS] and the question), with the answer's tokens (and a gold
    answer's, where one is given) marked. `span` is None when the answer
    lies in another window than the one shown."""

    question: str
    context: str
    answer: str
    answer_offsets: tuple  # characters [start, end) in the context
    tokens: list
    token_offsets: list
    start: list
    end: list
    span: Optional[tuple]  # (first, last) index in `tokens`
    outside: tuple  # (start, end) probability on positions that are not passage tokens
    window: tuple  # (the window shown, windows in all), counted from 1
    gold: Optional[tuple] = None
    kind = "question_answering"

    def panels(self) -> list:
        where = f"; window {self.window[0]} of {self.window[1]}" if self.window[1] > 1 else ""
        return [SpanProbabilities("start_end", f"Start and end probability of each passage token (answer "
                                  f"{self.answer!r}{where})", self.tokens, self.start, self.end, self.span,
                                  self.gold)]

    def loss_table(self) -> Optional[str]:
        if self.gold is None:
            return None  # no gold answer given, or none within one window
        first, last = self.gold
        loss = -math.log(max(self.start[first], 1e-12)) - math.log(max(self.end[last], 1e-12))
        return (f"Gold answer: tokens {first}-{last} ({' '.join(self.tokens[first:last + 1])!r}); "
                f"start probability {self.start[first]:.3f}, end probability {self.end[last]:.3f}; "
                f"loss {loss:.3f} {UNIT}. Answer: {self.answer!r}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "question": self.question, "answer": self.answer,
                "start": self.answer_offsets[0], "end": self.answer_offsets[1],
                "window": self.window[0], "windows": self.window[1],
                "outside_passage": {"start": round(self.outside[0], 5), "end": round(self.outside[1], 5)},
                "tokens": [{"text": t, "start": s, "end": e, "start_probability": round(p, 5),
                            "end_probability": round(q, 5)}
                           for t, (s, e), p, q in zip(self.tokens, self.token_offsets, self.start, self.end)],
                "span": None if self.span is None else list(self.span),
                "gold": None if self.gold is None else list(self.gold)}


def _tokens_in(offsets: list, start: int, end: int) -> Optional[tuple]:
    """(first, last) index of the tokens overlapping characters [start, end)."""
    inside = [i for i, (s, e) in enumerate(offsets) if e > start and s < end]
    return (inside[0], inside[-1]) if inside and end > start else None


def _window_offsets(windows: dict, w: int) -> tuple:
    """(positions of window w's passage tokens, their character offsets)."""
    starts, ends = windows["token_starts"][w].numpy(), windows["token_ends"][w].numpy()
    positions = np.flatnonzero(starts >= 0)
    return positions, [(int(starts[p]), int(ends[p])) for p in positions]


def _shown_window(windows: dict, window_score, gold: Optional[tuple]) -> int:
    """The window whose probabilities are shown: the first that holds the
    whole gold answer, where one is given (the window training scores it
    in), else the one the answer comes from."""
    if gold is not None:
        for w in range(int(tf.shape(window_score)[0])):
            offsets = _window_offsets(windows, w)[1]
            if offsets and offsets[0][0] <= gold[0] and offsets[-1][1] >= gold[1]:
                return w
    return int(tf.argmax(window_score))


def explain_question_answering(lm, question: str, context: str,
                               gold: Optional[tuple] = None) -> QuestionAnsweringExplanation:
    """The answer `kerasllm qa` gives, with the start and end probabilities
    of the passage tokens in the window it comes from (with `gold`, the
    window that holds the gold answer).

    Args:
        lm: a loaded question-answering run (`model`, `tokenizer`, `config`).
        question: the question.
        context: the passage.
        gold: characters [start, end) of a known answer, to mark too.

    Example:
        e = explain_question_answering(load_run("runs/squad-qa"), "Who wrote Hamlet?",
                                       "Hamlet is a tragedy by William Shakespeare.")
        e.answer, e.tokens[e.start.index(max(e.start))]
    """
    from kerasllm.data.preprocessors import QuestionAnsweringPreprocessor
    from kerasllm.inference.qa import answer_graph

    if not question.strip() or not context.strip():
        raise UserError("the question and the passage (--context or --input) must not be empty")
    model, tokenizer, model_config = lm.model, lm.tokenizer, lm.config.model
    questions, contexts = tf.constant([question]), tf.constant([context])
    answer = answer_graph(model, tokenizer, model_config, questions, contexts)  # what `kerasllm qa` answers
    preprocessor = QuestionAnsweringPreprocessor.for_model(tokenizer, model_config)  # the run's own windows
    windows = preprocessor.windows(questions, contexts, whole_words=True)
    start_logits, end_logits = model(preprocessor.model_inputs(windows), training=False)
    _, window_score, _ = preprocessor.best_window_spans(start_logits, end_logits, windows)
    w = _shown_window(windows, window_score, gold)
    start_p, end_p = (tf.nn.softmax(tf.cast(x[w], tf.float32)).numpy() for x in (start_logits, end_logits))
    positions, offsets = _window_offsets(windows, w)
    a_start, a_end = int(answer["start"][0]), int(answer["end"][0])
    return QuestionAnsweringExplanation(
        question, context, answer["answer"].numpy()[0].decode("utf-8"), (a_start, a_end),
        [context[s:e] for s, e in offsets], offsets, start_p[positions].tolist(), end_p[positions].tolist(),
        _tokens_in(offsets, a_start, a_end),
        (float(1 - start_p[positions].sum()), float(1 - end_p[positions].sum())),
        (w + 1, int(tf.shape(window_score)[0])), None if gold is None else _tokens_in(offsets, *gold))


def explanation_bytes(explanation, fmt: str, title: str = "") -> bytes:
    """An explanation written as `fmt`: png (its panels, one picture), html
    (a self-contained page) or json.

    Example:
        Path("x.html").write_bytes(explanation_bytes(explanation, "html", title="runs/tiny"))
    """
    if fmt == "json":
        return (json.dumps(explanation.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
    if fmt == "png":
        from kerasllm.pictures.png import render_png

        return render_png(explanation.panels())
    if fmt == "html":
        from kerasllm.pictures.html import render_html

        return render_html(explanation.panels(), title, getattr(explanation, "notes", [])).encode("utf-8")
    raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
