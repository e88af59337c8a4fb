"""Encoder-decoder Transformer for translation, from keras-hub layers.

`Seq2SeqBackbone` embeds source and target ids (token + learned position
embeddings), runs pre-norm `TransformerEncoder` blocks over the source and
`TransformerDecoder` blocks (masked self-attention, cross-attention,
feed-forward) over the target, honouring both padding masks.
`Seq2SeqTranslator` is a `keras_hub.models.Seq2SeqLM`: next-token logits in
float32 (the output projection is the target embedding, transposed), and
cached decoding for keras-hub's samplers: the encoder runs once, each new
target token costs one decoder step, and cross-attention keys/values are
computed once.

With `shared_embeddings` (one vocabulary for both languages) encoder, decoder
and output share one embedding matrix.

Example:
    backbone = Seq2SeqBackbone(source_vocabulary_size=900, target_vocabulary_size=900, num_layers=2,
                               num_heads=4, hidden_dim=128, intermediate_dim=512, max_sequence_length=64)
    model = Seq2SeqTranslator(backbone)
    logits = model({"encoder_token_ids": s, "encoder_padding_mask": sm,
                    "decoder_token_ids": d, "decoder_padding_mask": dm})
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from kerasllm.models import decoding


def _init():
    return keras.initializers.RandomNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="kerasllm")
class Seq2SeqBackbone(keras_hub.models.Backbone):
    """Four-tensor input dict -> decoder hidden states (batch, target, hidden).

    Args:
        source_vocabulary_size: number of source token ids.
        target_vocabulary_size: number of target token ids.
        num_layers: encoder blocks, and as many decoder blocks.
        num_heads: attention heads per block; must divide `hidden_dim`.
        hidden_dim: width of the embeddings and of each block's output.
        intermediate_dim: width of each block's feed-forward layer.
        dropout: dropout rate of the embeddings and the blocks.
        max_sequence_length: the most positions on either side.
        shared_embeddings: one embedding matrix for source, target and
            output (needs equal vocabulary sizes).
        dtype: a Keras dtype policy name, or None for the global policy.

    Example:
        backbone = Seq2SeqBackbone(source_vocabulary_size=900, target_vocabulary_size=900, num_layers=2,
                                   num_heads=4, hidden_dim=128, intermediate_dim=512, max_sequence_length=64)
        ids, mask = tf.ones([2, 10], tf.int32), tf.ones([2, 10], tf.bool)
        hidden = backbone({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                           "decoder_token_ids": ids, "decoder_padding_mask": mask})  # (2, 10, 128)
    """

    def __init__(self, source_vocabulary_size, target_vocabulary_size, num_layers, num_heads, hidden_dim,
                 intermediate_dim, dropout=0.0, max_sequence_length=128, shared_embeddings=False, dtype=None,
                 **kwargs):
        if shared_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError("shared_embeddings needs one vocabulary for both sides")

        def embedding(size, name):
            return keras_hub.layers.ReversibleEmbedding(
                input_dim=size, output_dim=hidden_dim, tie_weights=True, embeddings_initializer=_init(),
                dtype="float32", name=name,
            )

        def positions(name):
            return keras_hub.layers.PositionEmbedding(
                sequence_length=max_sequence_length, initializer=_init(), dtype=dtype, name=name
            )

        self.decoder_token_embedding = embedding(target_vocabulary_size, "decoder_token_embedding")
        self.encoder_token_embedding = (
            self.decoder_token_embedding if shared_embeddings
            else embedding(source_vocabulary_size, "encoder_token_embedding")
        )
        self.encoder_position_embedding = positions("encoder_position_embedding")
        self.decoder_position_embedding = positions("decoder_position_embedding")
        self.encoder_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="encoder_embeddings_dropout")
        self.decoder_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="decoder_embeddings_dropout")
        common = dict(intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout, activation="gelu",
                      layer_norm_epsilon=1e-5, kernel_initializer=_init(), normalize_first=True, dtype=dtype)
        self.encoder_layers = [keras_hub.layers.TransformerEncoder(name=f"encoder_layer_{i}", **common)
                               for i in range(num_layers)]
        self.decoder_layers = [keras_hub.layers.TransformerDecoder(name=f"decoder_layer_{i}", **common)
                               for i in range(num_layers)]
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="encoder_norm")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="decoder_norm")

        inputs = {
            "encoder_token_ids": keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids"),
            "encoder_padding_mask": keras.Input(shape=(None,), dtype="bool", name="encoder_padding_mask"),
            "decoder_token_ids": keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids"),
            "decoder_padding_mask": keras.Input(shape=(None,), dtype="bool", name="decoder_padding_mask"),
        }
        encoded = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        x = self.embed_target(inputs["decoder_token_ids"], 0)
        for layer in self.decoder_layers:
            x = layer(x, encoded, decoder_padding_mask=inputs["decoder_padding_mask"],
                      encoder_padding_mask=inputs["encoder_padding_mask"])
        super().__init__(inputs=inputs, outputs=self.decoder_norm(x), dtype=dtype, **kwargs)

        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.shared_embeddings = shared_embeddings

    def encode(self, token_ids, padding_mask):
        """The encoder's output for source ids: embeddings, encoder blocks,
        final layer norm.

        Args:
            token_ids: int[batch, source length].
            padding_mask: bool[batch, source length], true on real tokens.

        Example:
            encoded = backbone.encode(ids, mask)  # (batch, source length, hidden_dim)
        """
        tokens = self.encoder_token_embedding(token_ids)
        x = self.encoder_dropout(tokens + self.encoder_position_embedding(tokens))
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask)
        return self.encoder_norm(x)

    def embed_target(self, token_ids, start_index):
        """Target token plus position embeddings at positions `start_index`..

        Args:
            token_ids: int[batch, t].
            start_index: position of the first token.

        Example:
            x = backbone.embed_target(tf.ones([2, 1], tf.int32), start_index=3)  # (2, 1, hidden_dim)
        """
        tokens = self.decoder_token_embedding(token_ids)
        return self.decoder_dropout(tokens + self.decoder_position_embedding(tokens, start_index=start_index))

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in (
            "source_vocabulary_size", "target_vocabulary_size", "num_layers", "num_heads", "hidden_dim",
            "intermediate_dim", "dropout", "max_sequence_length", "shared_embeddings")})
        return config


@keras.saving.register_keras_serializable(package="kerasllm")
class Seq2SeqTranslator(keras_hub.models.Seq2SeqLM):
    """Inputs dict -> target next-token logits (float32), with cached decoding.

    `generate` (keras-hub's, with `self.sampler`, e.g. `BeamSearch`) and
    `generate_step` (inside an exported graph) fill `decoder_token_ids` after
    each row's prompt; `kerasllm.data.preprocessors.TranslationPreprocessor`
    builds the inputs from strings (`generate_preprocess`).

    Args:
        backbone: a `Seq2SeqBackbone`.
        preprocessor: unused by kerasllm (tokenizing happens outside the
            model); None.

    Example:
        model = Seq2SeqTranslator(backbone)
        logits = model({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                        "decoder_token_ids": ids, "decoder_padding_mask": mask})  # (2, 10, 900)
        translate(model, source_tokenizer, target_tokenizer, ["Where is the station?"], beams=4)
    """

    backbone_cls = Seq2SeqBackbone  # how keras-hub's `Seq2SeqLM.from_preset` finds this class

    def __init__(self, backbone, preprocessor=None, **kwargs):
        self.backbone = backbone
        self.preprocessor = preprocessor
        inputs = backbone.input
        logits = backbone.decoder_token_embedding(backbone(inputs), reverse=True)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

    def call_decoder_with_cache(self, encoded, encoder_padding_mask, token_ids, self_cache, cross_cache, index,
                                fill_cross_cache=False):
        """Decoder pass over `token_ids` at positions from `index`. Caches are
        (batch, layers, 2, length, heads, head_dim); the cross-attention one
        is filled once (`fill_cross_cache`) and then only read.

        Args:
            encoded: the encoder's output (`Seq2SeqBackbone.encode`).
            encoder_padding_mask: bool[batch, source length].
            token_ids: int[batch, t], the target tokens at `index`...
            self_cache: the decoder self-attention cache.
            cross_cache: the cross-attention cache.
            index: position of the first of `token_ids`.
            fill_cross_cache: compute the cross-attention keys and values
                (the first call) instead of reading them.

        Returns:
            (logits float32[batch, t, target vocabulary], hidden, self_cache,
            cross_cache).

        Example:
            logits, hidden, self_cache, cross_cache = model.call_decoder_with_cache(
                encoded, source_mask, next_ids, self_cache, cross_cache, position)
        """
        b = self.backbone
        x = b.embed_target(token_ids, index)
        next_self, next_cross = [], []
        for i, layer in enumerate(b.decoder_layers):
            x, layer_self, layer_cross = layer(
                x, encoded, encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=self_cache[:, i, ...], self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[:, i, ...],
                cross_attention_cache_update_index=0 if fill_cross_cache else None,
            )
            next_self.append(layer_self)
            next_cross.append(layer_cross)
        hidden = b.decoder_norm(x)
        logits = b.decoder_token_embedding(hidden, reverse=True)
        cross = ops.stack(next_cross, axis=1) if fill_cross_cache else cross_cache
        return logits, hidden, ops.stack(next_self, axis=1), cross

    @decoding.no_autograph
    def generate_step(self, inputs, stop_token_ids=None):
        """Fills `decoder_token_ids` after each row's prompt (its
        `decoder_padding_mask`), translating `encoder_token_ids`.

        Args:
            inputs: the four-tensor dict `TranslationPreprocessor.generate_preprocess` builds.
            stop_token_ids: ids that end a row (None: fill every position).

        Returns:
            {"decoder_token_ids", "decoder_padding_mask"}: the filled ids,
            and true up to and including each row's first stop token.

        Example:
            model.sampler = BeamSearch(num_beams=4, length_penalty=0.6)
            inputs = TranslationPreprocessor(src_tok, tgt_tok).generate_preprocess(sources, 64)
            out = model.generate_step(inputs, stop_token_ids=(tgt_tok.eot_id,))
        """
        b = self.backbone
        source, source_mask = inputs["encoder_token_ids"], inputs["encoder_padding_mask"]
        prompt, prompt_mask = inputs["decoder_token_ids"], inputs["decoder_padding_mask"]
        encoded = b.encode(source, source_mask)
        batch, head_dim = ops.shape(prompt)[0], b.hidden_dim // b.num_heads
        self_cache = ops.zeros([batch, b.num_layers, 2, ops.shape(prompt)[1], b.num_heads, head_dim], self.compute_dtype)
        cross_cache = ops.zeros([batch, b.num_layers, 2, ops.shape(source)[1], b.num_heads, head_dim], self.compute_dtype)
        _, hidden, self_cache, cross_cache = self.call_decoder_with_cache(
            encoded, source_mask, prompt, self_cache, cross_cache, 0, fill_cross_cache=True
        )

        def next_token(prompt, cache, index):
            # The encoder side rides in the cache so beam search repeats it per beam.
            self_cache, encoded, source_mask, cross_cache = cache
            current = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
            logits, hidden, self_cache, _ = self.call_decoder_with_cache(
                encoded, source_mask, current, self_cache, cross_cache, index - 1
            )
            return ops.squeeze(logits, 1), ops.squeeze(hidden, 1), (self_cache, encoded, source_mask, cross_cache)

        token_ids = self.sampler(
            next=next_token, prompt=prompt, cache=(self_cache, encoded, source_mask, cross_cache),
            index=decoding.first_free_index(prompt_mask), mask=prompt_mask, stop_token_ids=stop_token_ids,
            hidden_states=hidden, model=self,
        )
        return {
            "decoder_token_ids": token_ids,
            "decoder_padding_mask": decoding.mask_after_stop(token_ids, prompt_mask, stop_token_ids),
        }
