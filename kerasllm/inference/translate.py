"""Translating sentences: strings in, strings out.

Sources become the decoder's inputs and generated ids become text through
the `TranslationPreprocessor` (`generate_preprocess`,
`generate_postprocess`), pure TensorFlow shared by in-process translation
(`translate`, keras-hub's `generate` with cached decoding) and the exported
translator, whose graph runs the same code. The decoder starts from the
end-of-text id and runs greedy decoding or `BeamSearch` until end-of-text or
`max_length` tokens.

Example:
    translate(model, src_tok, tgt_tok, ["Where is the station?"], max_length=64, beams=4, length_penalty=0.6)
"""

from __future__ import annotations

import functools

import tensorflow as tf

from kerasllm.data.preprocessors.translation import TranslationPreprocessor
from kerasllm.inference.sampling import make_sampler, use_sampler


# Traced once per pair of tokenizers (a tf.function keys its traces on its
# Python arguments): the preprocessor is made inside, from the tokenizers.
@functools.partial(tf.function, reduce_retracing=True, autograph=False)
def _inputs(source_tokenizer, target_tokenizer, texts, max_length):
    return TranslationPreprocessor(source_tokenizer, target_tokenizer).generate_preprocess(texts, max_length)


@functools.partial(tf.function, reduce_retracing=True, autograph=False)
def _decode(source_tokenizer, target_tokenizer, token_ids, keep):
    return TranslationPreprocessor(source_tokenizer, target_tokenizer).generate_postprocess(token_ids, keep)


# The same, for a run's own preprocessor (a task that frames its ids its own
# way, e.g. `BartTranslationPreprocessor`), traced once per preprocessor.
@functools.partial(tf.function, reduce_retracing=True, autograph=False)
def _preprocessor_inputs(preprocessor, texts, max_length):
    return preprocessor.generate_preprocess(texts, max_length)


@functools.partial(tf.function, reduce_retracing=True, autograph=False)
def _preprocessor_decode(preprocessor, token_ids, keep):
    return preprocessor.generate_postprocess(token_ids, keep)


def translation_ids(model, source_tokenizer, target_tokenizer, sentences: list[str], max_length: int = 64,
                    beams: int = 1, length_penalty: float = 0.6, preprocessor=None) -> dict:
    """What `translate` decodes: `decoder_token_ids` (the start token, then
    the output ids) and `decoder_padding_mask` (true up to and including
    each row's end-of-text), as the model's `generate` returns them. Args
    as `translate`'s.

    Example:
        out = translation_ids(model, src_tok, tgt_tok, ["I like tea."], max_length=40)
        out["decoder_token_ids"][0][out["decoder_padding_mask"][0]][1:]  # the output ids, end-of-text last
    """
    texts = tf.constant(sentences, tf.string)
    if preprocessor is not None:
        inputs = _preprocessor_inputs(preprocessor, texts, max_length)
    else:
        inputs = _inputs(source_tokenizer, target_tokenizer, texts, max_length)
    use_sampler(model, (beams, float(length_penalty) if beams > 1 else 0.0),
                lambda: make_sampler(temperature=0.0, beams=beams, length_penalty=length_penalty))
    return model.generate(inputs, stop_token_ids=(target_tokenizer.eot_id,))


def translate(model, source_tokenizer, target_tokenizer, sentences: list[str], max_length: int = 64,
              beams: int = 1, length_penalty: float = 0.6, preprocessor=None) -> list[str]:
    """Greedy (beams=1) or beam-search translations of `sentences`.

    Args:
        model: a `Seq2SeqTranslator` (or keras-hub's `BartSeq2SeqLM`).
        source_tokenizer, target_tokenizer: the run's tokenizers; text goes
            through their `TranslationPreprocessor`.
        sentences: the sources.
        max_length: sources are cut to it, and translations stop at it
            (target tokens + 1).
        beams: 1 for greedy decoding, else the beam width.
        length_penalty: GNMT's alpha for beam search.
        preprocessor: the run's preprocessor (`LoadedRun.preprocessor`);
            None: the `TranslationPreprocessor` of the two tokenizers.

    Example:
        translate(lm.model, lm.tokenizer, lm.target_tokenizer, ["I like tea."], max_length=lm.config.model.seq_len)
    """
    out = translation_ids(model, source_tokenizer, target_tokenizer, sentences, max_length, beams, length_penalty,
                          preprocessor)
    token_ids, keep = tf.convert_to_tensor(out["decoder_token_ids"]), tf.convert_to_tensor(out["decoder_padding_mask"])
    if preprocessor is not None:
        texts = _preprocessor_decode(preprocessor, token_ids, keep)
    else:
        texts = _decode(source_tokenizer, target_tokenizer, token_ids, keep)
    return [t.decode("utf-8", errors="replace") for t in texts.numpy()]
