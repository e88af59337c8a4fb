"""Translating sentences in-process with a `Seq2SeqTranslator`.

The decoder starts from the end-of-text id and runs keras-hub's greedy or
beam sampler (cached decoding) until end-of-text or `max_length` tokens.

Example:
    translate(model, src_tok, tgt_tok, ["Where is the station?"], max_length=64, beams=4)
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.inference.sampling import make_sampler


@tf.function(reduce_retracing=True)
def _encode_sources(tokenizer, texts, max_length):
    """Always `max_length` wide, so the decoding function is traced once."""
    ids = tokenizer._tokenize(texts)[:, :max_length]
    dense = ids.to_tensor(default_value=tokenizer.pad_id, shape=[None, max_length])
    return dense, tf.sequence_mask(ids.row_lengths(), max_length)


@tf.function(reduce_retracing=True)
def _decode_targets(tokenizer, token_ids, keep):
    return tokenizer._detokenize(tf.ragged.boolean_mask(token_ids[:, 1:], keep[:, 1:]))


def translate(model, source_tokenizer, target_tokenizer, sentences: list[str], max_length: int = 64,
              beams: int = 1) -> list[str]:
    """Greedy (beams=1) or beam-search translations of `sentences`."""
    source, source_mask = _encode_sources(source_tokenizer, tf.constant(sentences, tf.string), max_length)
    batch = len(sentences)
    prompt = tf.concat([tf.fill([batch, 1], target_tokenizer.eot_id),
                        tf.fill([batch, max_length - 1], target_tokenizer.pad_id)], axis=1)
    prompt_mask = tf.concat([tf.ones([batch, 1], tf.bool), tf.zeros([batch, max_length - 1], tf.bool)], axis=1)
    # Reuse the traced decoding function while nobody changed the sampler.
    if getattr(model, "_kerasllm_decoding", None) != (beams, id(model.sampler)) or model.generate_function is None:
        model.sampler = make_sampler(temperature=0.0, beams=beams)
        model.generate_function = None  # the sampler is part of the traced function
        model._kerasllm_decoding = (beams, id(model.sampler))
    out = model.generate(
        {"encoder_token_ids": source, "encoder_padding_mask": source_mask,
         "decoder_token_ids": prompt, "decoder_padding_mask": prompt_mask},
        stop_token_ids=(target_tokenizer.eot_id,),
    )
    texts = _decode_targets(target_tokenizer, tf.convert_to_tensor(out["decoder_token_ids"]),
                            tf.convert_to_tensor(out["decoder_padding_mask"]))
    return [t.decode("utf-8", errors="replace") for t in texts.numpy()]
