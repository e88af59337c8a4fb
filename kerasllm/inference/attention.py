"""Attention weights of a Transformer on one input: self-attention of a GPT
language model, cross-attention of a translator, per layer and head.

How: keras-hub's `TransformerDecoder` returns no attention scores, and each
block is a single node of the backbone's functional graph, so a Keras
sub-model cannot expose what happens inside it. Instead the blocks run one
after another as the backbone's graph runs them (each block's own call
gives the next block's input, so the model itself is not re-implemented),
and at each block the attention sublayer is called once more on the same
input with Keras' public `return_attention_scores=True`. Only the steps
inside a block that lead to its attention are repeated: the layer norm
(and, for cross-attention, the self-attention before it), in the order
keras-hub's decoder runs them (`kerasllm.compat`; tests/test_compat.py
checks that order against the decoder's own output). Patching the
attention layers to record their scores would touch no arithmetic, but it
would swap private attributes of a built model, which a failure halfway
would leave broken.

One sequence at a time (no padding): the masks are then the causal mask of
the decoder and none for the encoder side, exactly what the model applies
to an unpadded sequence. Dropout is off (inference calls).

Example:
    scores = self_attention(lm.model, [1, 17, 30, 4])  # (layers, heads, 4, 4), rows sum to 1
    cross = cross_attention(translator, source_ids, [eot_id] + output_ids[:-1])  # (layers, heads, out, src)
"""

from __future__ import annotations

import numpy as np
from keras import ops

from kerasllm.compat import cross_attention_sublayers, decoder_sublayers


def has_self_attention(model) -> bool:
    """Whether `model` is a Transformer language model whose self-attention
    `self_attention` reads (a `GPTCausalLM`; an LSTM has none).

    Example:
        has_self_attention(build_model(ModelConfig(kind="lstm"), 100))  # False
    """
    # `embed` is GPTBackbone's; keras-hub's pretrained backbones (GPT-2,
    # Llama 3) embed inside their own call, which this walk does not repeat.
    backbone = getattr(model, "backbone", None)
    return hasattr(backbone, "transformer_layers") and hasattr(backbone, "embed")


def _ids(token_ids) -> np.ndarray:
    ids = np.asarray(token_ids, dtype="int32").reshape(1, -1)
    if ids.shape[1] == 0:
        raise ValueError("attention of an empty sequence")
    return ids


def _causal(length: int) -> np.ndarray:
    return np.tril(np.ones((1, length, length), dtype=bool))


def _numpy(scores) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(ops.cast(scores, "float32")))[0]


def self_attention(model, token_ids) -> np.ndarray:
    """The self-attention weights of every layer and head of a GPT language
    model over one sequence.

    Args:
        model: a `GPTCausalLM`.
        token_ids: the sequence's ids (as the model reads them: the start
            token first), at most the model's context long.

    Returns:
        float32[layers, heads, length, length]: row i is how query position
        i spreads its attention over positions 0..i (each row sums to 1).

    Example:
        scores = self_attention(lm.model, [tokenizer.eot_id] + ids)
        scores[-1].mean(axis=0)  # the last layer, averaged over heads
    """
    if not has_self_attention(model):
        raise ValueError(f"{type(model).__name__} has no self-attention layers")
    ids = _ids(token_ids)
    backbone = model.backbone
    x = backbone.embed(ids, start_index=0)
    mask = _causal(ids.shape[1])
    maps = []
    for layer in backbone.transformer_layers:
        parts = decoder_sublayers(layer)
        h = parts.self_attention_norm(x)
        _, scores = parts.self_attention(query=h, value=h, attention_mask=mask, return_attention_scores=True,
                                         training=False)
        maps.append(_numpy(scores))
        x = layer(x, training=False)
    return np.stack(maps)


def cross_attention(model, source_ids, decoder_ids) -> np.ndarray:
    """The cross-attention weights of every decoder layer and head of a
    translator: how each target position reads the source.

    Args:
        model: a `Seq2SeqTranslator`.
        source_ids: the source sentence's ids (as the encoder reads them).
        decoder_ids: the decoder's input: the start (end-of-text) id, then
            the target ids before the last; row i is the attention while
            the model predicts target token i.

    Returns:
        float32[layers, heads, len(decoder_ids), len(source_ids)], each row
        summing to 1.

    Example:
        weights = cross_attention(translator, src_ids, [tgt_tok.eot_id] + out_ids[:-1])
        weights[-1].mean(axis=0).argmax(axis=1)  # the source position each output token reads most
    """
    source, target = _ids(source_ids), _ids(decoder_ids)
    backbone = model.backbone
    encoded = backbone.encode(source, np.ones(source.shape, bool))
    x = backbone.embed_target(target, 0)
    mask = _causal(target.shape[1])
    maps = []
    for layer in backbone.decoder_layers:
        parts, cross = decoder_sublayers(layer), cross_attention_sublayers(layer)
        h = parts.self_attention_norm(x)
        after_self = parts.self_attention(query=h, value=h, attention_mask=mask, training=False) + x
        _, scores = cross.cross_attention(query=cross.cross_attention_norm(after_self), value=encoded,
                                          return_attention_scores=True, training=False)
        maps.append(_numpy(scores))
        x = layer(x, encoded, training=False)
    return np.stack(maps)
