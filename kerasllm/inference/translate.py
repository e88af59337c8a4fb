"""Translating sentences: strings in, strings out.

`translation_inputs` and `decode_translations` are pure TensorFlow, shared by
in-process translation (`translate`, keras-hub's `generate` with cached
decoding) and the exported translator, whose graph runs the same code. The
decoder starts from the end-of-text id and runs greedy decoding or
`BeamSearch` until end-of-text or `max_length` tokens.

Example:
    translate(model, src_tok, tgt_tok, ["Where is the station?"], max_length=64, beams=4, length_penalty=0.6)
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.inference.sampling import make_sampler, use_sampler


def translation_inputs(source_tokenizer, target_tokenizer, texts, max_length) -> dict:
    """The translator's input dict: sources cut and padded to `max_length`
    ids (one width, so a traced decoder is reused), and a decoder prompt of
    end-of-text then `max_length - 1` free positions."""
    ids = source_tokenizer.tokenize(texts)[:, :max_length]
    batch = tf.shape(texts)[0]
    free = tf.fill([batch, max_length - 1], tf.constant(target_tokenizer.pad_id, tf.int32))
    dense = ids.to_tensor(default_value=source_tokenizer.pad_id)
    dense = tf.pad(dense, [[0, 0], [0, max_length - tf.shape(dense)[1]]], constant_values=source_tokenizer.pad_id)
    return {
        "encoder_token_ids": tf.ensure_shape(dense, [None, max_length if isinstance(max_length, int) else None]),
        "encoder_padding_mask": tf.sequence_mask(ids.row_lengths(), max_length),
        "decoder_token_ids": tf.concat([tf.fill([batch, 1], tf.constant(target_tokenizer.eot_id, tf.int32)), free], 1),
        "decoder_padding_mask": tf.concat([tf.ones([batch, 1], tf.bool), tf.zeros([batch, max_length - 1], tf.bool)], 1),
    }


def decode_translations(target_tokenizer, token_ids, keep):
    """Text of the generated ids that `keep` marks, without the start token."""
    return target_tokenizer.detokenize(tf.ragged.boolean_mask(token_ids[:, 1:], keep[:, 1:]))


_inputs = tf.function(translation_inputs, reduce_retracing=True, autograph=False)
_decode = tf.function(decode_translations, reduce_retracing=True, autograph=False)


def translation_ids(model, source_tokenizer, target_tokenizer, sentences: list[str], max_length: int = 64,
                    beams: int = 1, length_penalty: float = 0.6) -> dict:
    """What `translate` decodes: `decoder_token_ids` (the start token, then
    the output ids) and `decoder_padding_mask` (true up to and including
    each row's end-of-text), as the model's `generate` returns them.

    Example:
        out = translation_ids(model, src_tok, tgt_tok, ["I like tea."], max_length=40)
        out["decoder_token_ids"][0][out["decoder_padding_mask"][0]][1:]  # the output ids, end-of-text last
    """
    inputs = _inputs(source_tokenizer, target_tokenizer, tf.constant(sentences, tf.string), max_length)
    use_sampler(model, (beams, float(length_penalty) if beams > 1 else 0.0),
                lambda: make_sampler(temperature=0.0, beams=beams, length_penalty=length_penalty))
    return model.generate(inputs, stop_token_ids=(target_tokenizer.eot_id,))


def translate(model, source_tokenizer, target_tokenizer, sentences: list[str], max_length: int = 64,
              beams: int = 1, length_penalty: float = 0.6) -> list[str]:
    """Greedy (beams=1) or beam-search translations of `sentences`."""
    out = translation_ids(model, source_tokenizer, target_tokenizer, sentences, max_length, beams, length_penalty)
    texts = _decode(target_tokenizer, tf.convert_to_tensor(out["decoder_token_ids"]),
                    tf.convert_to_tensor(out["decoder_padding_mask"]))
    return [t.decode("utf-8", errors="replace") for t in texts.numpy()]
