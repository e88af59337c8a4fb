"""Decoder-only Transformer language model built from keras-hub layers.

`GPTBackbone` is a `keras_hub.models.Backbone` (token + learned position
embeddings, pre-norm `TransformerDecoder` blocks without cross-attention, a
final layer norm). `GPTCausalLM` is a `keras_hub.models.CausalLM`, so
`generate()` runs keras-hub's samplers with a key/value cache: each new token
costs one decoder step, not a pass over the whole sequence.

Example:
    backbone = GPTBackbone(vocabulary_size=65, num_layers=2, num_heads=2,
                           hidden_dim=64, intermediate_dim=256, max_sequence_length=128)
    lm = GPTCausalLM(backbone)
    logits = lm(token_ids)            # (batch, seq, vocab)
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from kerasllm.compat import attention_scale, decoder_sublayers
from kerasllm.models import decoding


def _init(stddev: float = 0.02):
    return keras.initializers.RandomNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="kerasllm")
class GPTBackbone(keras_hub.models.Backbone):
    """Token ids (batch, seq) -> final hidden states (batch, seq, hidden_dim).

    Args:
        vocabulary_size: number of token ids (the tokenizer's
            `vocabulary_size`).
        num_layers: number of `TransformerDecoder` blocks.
        num_heads: attention heads per block; must divide `hidden_dim`.
        hidden_dim: width of the embeddings and of each block's output.
        intermediate_dim: width of each block's feed-forward layer.
        dropout: dropout rate of the embeddings and the blocks.
        max_sequence_length: the most positions the learned position
            embedding covers (the model's context).
        tie_embeddings: whether the output projection is the token
            embedding, transposed (`GPTCausalLM`), or a matrix of its own.
        dtype: a Keras dtype policy name, or None for the global policy;
            the token embedding and output projection stay float32.

    Example:
        backbone = GPTBackbone(vocabulary_size=65, num_layers=2, num_heads=2, hidden_dim=64,
                               intermediate_dim=256, max_sequence_length=128)
        hidden = backbone(tf.zeros([1, 16], tf.int32))  # shape (1, 16, 64)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.0,
        max_sequence_length=256,
        tie_embeddings=True,
        dtype=None,
        **kwargs,
    ):
        # The output projection stays in float32 under mixed precision: logits
        # rounded to bfloat16 visibly shift the loss, and the matmul is small.
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            tie_weights=tie_embeddings,
            embeddings_initializer=_init(0.02),
            dtype="float32",
            name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_sequence_length,
            initializer=_init(0.02),
            dtype=dtype,
            name="position_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            keras_hub.layers.TransformerDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=dropout,
                activation="gelu",
                layer_norm_epsilon=1e-5,
                kernel_initializer=_init(0.02),
                normalize_first=True,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.layer_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="layer_norm")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = self.embed(token_ids, start_index=0)
        for layer in self.transformer_layers:
            x = layer(x)
        outputs = self.layer_norm(x)
        super().__init__(inputs=token_ids, outputs=outputs, dtype=dtype, **kwargs)

        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.tie_embeddings = tie_embeddings

    def embed(self, token_ids, start_index=0):
        """Token plus position embeddings (then dropout) of `token_ids` at
        positions `start_index`.. (the cached decoding step's input).

        Args:
            token_ids: int[batch, t].
            start_index: position of the first token (int or scalar tensor).

        Example:
            x = backbone.embed(tf.zeros([1, 1], tf.int32), start_index=5)  # (1, 1, hidden_dim)
        """
        tokens = self.token_embedding(token_ids)
        positions = self.position_embedding(tokens, start_index=start_index)
        return self.embeddings_dropout(self.embeddings_add((tokens, positions)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "max_sequence_length": self.max_sequence_length,
                "tie_embeddings": self.tie_embeddings,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kerasllm")
class GPTCausalLM(keras_hub.models.CausalLM):
    """Token ids -> next-token logits (float32), with cached decoding:
    `generate` (keras-hub's, with `self.sampler`) and `generate_step`
    (inside an exported graph) cost one decoder step per new token.

    Args:
        backbone: a `GPTBackbone`.
        preprocessor: unused by kerasllm (tokenizing happens outside the
            model); None.

    Example:
        lm = GPTCausalLM(GPTBackbone(vocabulary_size=65, num_layers=2, num_heads=2, hidden_dim=64,
                                     intermediate_dim=256, max_sequence_length=128))
        logits = lm(tf.zeros([1, 16], tf.int32))  # shape (1, 16, 65), float32
        lm.sampler = keras_hub.samplers.GreedySampler()
        out = lm.generate({"token_ids": tf.constant([[1, 5, 0, 0]]),
                           "padding_mask": tf.constant([[True, True, False, False]])},
                          stop_token_ids=None)
        out["token_ids"]  # the prompt, then two generated ids
    """

    # keras-hub's `CausalLM.from_preset` finds the task class of a preset's
    # backbone by this attribute (`export --format keras-hub`).
    backbone_cls = GPTBackbone

    def __init__(self, backbone, preprocessor=None, **kwargs):
        self.backbone = backbone
        self.preprocessor = preprocessor
        inputs = backbone.input
        logits = backbone.token_embedding(backbone(inputs), reverse=True)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """One decoding pass over `token_ids` at positions starting at
        `cache_update_index`.

        `cache` holds, per layer, a float32 (keys, values) pair: keys shaped
        (batch, num_heads, head_dim, max_length), values (batch, num_heads,
        max_length, head_dim) (see `_decoder_step`). Each pair is updated in
        place and never stacked or split: keras-hub's TransformerDecoder cache
        (keys and values stacked per layer) copies the whole cache several
        times per generated token, so a token's cost grew much faster with
        the text (bench/generate_speed.py, docs/benchmarks.md). The
        arithmetic is the decoder's own: its sublayers' weights, the same
        causal attention.

        Args:
            token_ids: int[batch, t], the tokens at positions
                `cache_update_index`..`cache_update_index + t - 1`.
            cache: one (keys, values) pair per layer, as above.
            cache_update_index: position of the first of `token_ids`.

        Returns:
            (logits float32[batch, t, vocabulary], hidden [batch, t,
            hidden_dim], the updated cache).

        Example:
            logits, hidden, cache = lm.call_with_cache(next_ids, cache, position)
        """
        x = self.backbone.embed(token_ids, start_index=cache_update_index)
        next_cache = []
        for layer, (keys, values) in zip(self.backbone.transformer_layers, cache):
            x, keys, values = _decoder_step(layer, x, keys, values, cache_update_index)
            next_cache.append((keys, values))
        hidden = self.backbone.layer_norm(x)
        logits = self.backbone.token_embedding(hidden, reverse=True)
        return logits, hidden, tuple(next_cache)

    def _build_cache(self, token_ids, length=None):
        """Runs `token_ids` through the model into a cache of `length`
        positions (default: as many as the tokens)."""
        b = self.backbone
        batch = ops.shape(token_ids)[0]
        length = ops.shape(token_ids)[1] if length is None else length
        head_dim = b.hidden_dim // b.num_heads
        keys, values = [batch, b.num_heads, head_dim, length], [batch, b.num_heads, length, head_dim]
        empty = tuple((ops.zeros(keys, "float32"), ops.zeros(values, "float32"))  # float32: see `_decoder_step`
                      for _ in range(b.num_layers))
        _, hidden, cache = self.call_with_cache(token_ids, empty, 0)
        return hidden, cache

    @decoding.no_autograph
    def generate_step(self, inputs, stop_token_ids=None):
        """Fills `token_ids` after each prompt (marked by `padding_mask`).

        When the batch length is unknown at trace time (an exported
        signature; XLA, which needs static shapes, never traces that way),
        the cache starts at the shortest prompt plus `CACHE_CHUNK` positions
        and grows by `CACHE_CHUNK` when full, so each token's attention
        reads about the filled part of the cache, not the whole batch
        length. Otherwise the cache spans the whole batch length.

        Args:
            inputs: {"token_ids": int32[batch, length], "padding_mask":
                bool[batch, length]} with each prompt's tokens marked, the
                rest free to fill.
            stop_token_ids: ids that end a row (None: fill every position).

        Returns:
            {"token_ids", "padding_mask"}: the filled ids, and true up to and
            including each row's first stop token.

        Example:
            lm.sampler = RequestSampler(temperature, top_k, top_p, seed)  # inside an exported graph
            out = lm.generate_step(batch.inputs(), stop_token_ids=(tokenizer.eot_id,))
        """
        token_ids = inputs["token_ids"]
        total = ops.shape(token_ids)[1]
        grows = token_ids.shape[1] is None and CACHE_CHUNK > 0
        if grows:
            start = decoding.first_free_index(inputs["padding_mask"])
            hidden, cache = self._build_cache(token_ids[:, :start], ops.minimum(total, start + CACHE_CHUNK))
            # Only keras-hub's contrastive sampler reads these, one position at a time.
            hidden = ops.pad(hidden, [[0, 0], [0, total - start], [0, 0]])
        else:
            hidden, cache = self._build_cache(token_ids)

        def next_token(prompt, cache, index):
            position = index - 1
            if grows:
                cache = _room_for(cache, position, total)
            current = ops.slice(prompt, [0, position], [ops.shape(prompt)[0], 1])
            logits, hidden, cache = self.call_with_cache(current, cache, position)
            return ops.squeeze(logits, axis=1), ops.squeeze(hidden, axis=1), cache

        return decoding.sample(self, inputs, cache, next_token, stop_token_ids, hidden)


CACHE_CHUNK = 32  # positions a growing cache gains at a time (see `GPTCausalLM.generate_step`)


def _room_for(cache, position, total):
    """`cache` with room at `position`: grown by `CACHE_CHUNK` zero positions
    (at most up to `total`) when it ends at `position`, otherwise as it is."""
    length = cache_length(cache[0])

    def grown():
        extra = ops.minimum(CACHE_CHUNK, total - length)
        return tuple((ops.pad(keys, [[0, 0], [0, 0], [0, 0], [0, extra]]),
                      ops.pad(values, [[0, 0], [0, 0], [0, extra], [0, 0]])) for keys, values in cache)

    return ops.cond(position >= length, grown, lambda: cache)


def cache_length(pair):
    """Positions a layer's (keys, values) cache holds.

    Args:
        pair: one layer's (keys, values), as `GPTCausalLM.call_with_cache`
            keeps them.

    Example:
        keys, values = tf.zeros([1, 2, 16, 8]), tf.zeros([1, 2, 8, 16])  # 2 heads of 16, 8 positions
        cache_length((keys, values))  # 8
    """
    return ops.shape(pair[1])[2]


def _decoder_step(layer, x, keys, values, index):
    """A pre-norm keras_hub TransformerDecoder (no cross-attention) applied to
    new tokens `x` (batch, t, hidden) at positions index.., reading and
    extending `keys` (batch, heads, head_dim, max_length) and `values`
    (batch, heads, max_length, head_dim).

    Head-major caches let both attention products run as batched matmuls
    straight on the cache; Keras' attention (batch, length, heads, dim)
    would transpose the whole cache twice per token.

    Both products run in float32 on a float32 cache, also under
    mixed_bfloat16 (the projections are cast, exactly), and keys are stored
    transposed so that query x keys is a plain matmul. oneDNN's bfloat16
    matrix-vector products on this CPU, and its transposed-operand form,
    cost more per cached position, so with a bfloat16 (.., length, head_dim)
    key cache long generations cost more per token than with this layout
    (bench/generate_speed.py, docs/benchmarks.md). Otherwise the
    arithmetic follows `keras.ops.dot_product_attention`: float32 logits,
    scaled, masked, float32 softmax. Dropout is off, as in any inference
    call.
    """
    parts = decoder_sublayers(layer)
    attention = parts.self_attention
    residual = x
    h = parts.self_attention_norm(x)

    def heads(dense, order):
        return ops.cast(ops.transpose(dense(h), order), "float32")

    query = heads(attention.query_dense, (0, 2, 1, 3))
    keys = ops.slice_update(keys, [0, 0, 0, index], heads(attention.key_dense, (0, 2, 3, 1)))
    values = ops.slice_update(values, [0, 0, index, 0], heads(attention.value_dense, (0, 2, 1, 3)))
    logits = ops.einsum("bhtd,bhds->bhts", query, keys) * ops.cast(attention_scale(attention), "float32")
    # Query i (position index + i) sees keys at positions <= index + i.
    positions = ops.arange(cache_length((keys, values)))
    visible = positions[None, :] <= (index + ops.arange(ops.shape(x)[1]))[:, None]
    logits = ops.where(visible[None, None], logits, _LARGE_NEGATIVE)
    probs = ops.softmax(logits, axis=-1)
    out = ops.cast(ops.transpose(ops.einsum("bhts,bhsd->bhtd", probs, values), (0, 2, 1, 3)), x.dtype)
    x = attention.output_dense(out) + residual
    residual = x
    # As rows (batch x new tokens, hidden): on a 3-D input of unknown batch
    # size, as in an export, each Dense works out its shapes at run time
    # (Tensordot's gathers, products and concatenations); as rows a token
    # takes fewer ops (docs/benchmarks.md).
    h = ops.reshape(parts.feedforward_norm(x), (-1, ops.shape(x)[-1]))
    h = parts.feedforward_output(parts.feedforward_intermediate(h))
    return ops.reshape(h, ops.shape(x)) + residual, keys, values


_LARGE_NEGATIVE = -0.7 * 3.4028235e38  # what Keras masks float32 logits with
