"""The reference LSTM language model: embedding -> LSTM encoder -> LSTM
decoder -> Dense, the design this project grew from (`configs/seed-lstm.yaml`).

It is a `keras_hub.models.CausalLM` like the GPT, so the same trainer,
samplers and `generate()` serve it; its decoding cache is the two LSTMs'
(h, c) states, so each new token costs one recurrent step.

Example:
    lm = LSTMCausalLM(vocabulary_size=65, embedding_dim=64, units=128)
    logits = lm(token_ids)   # (batch, seq, vocab)
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from kerasllm.models import decoding


@keras.saving.register_keras_serializable(package="kerasllm")
class LSTMCausalLM(keras_hub.models.CausalLM):
    """Two stacked LSTMs: token ids (batch, seq) -> next-token logits
    (float32), with cached decoding: both LSTMs' (h, c) states are the
    cache, so each new token is one step of each cell.

    Args:
        vocabulary_size: number of token ids.
        embedding_dim: width of the token embedding.
        units: width of each LSTM.
        dropout: dropout rate of the LSTMs' inputs.
        dtype: a Keras dtype policy name, or None for the global policy;
            the logits layer stays float32.

    Example:
        lm = LSTMCausalLM(vocabulary_size=65, embedding_dim=32, units=64)
        logits = lm(tf.zeros([1, 16], tf.int32))  # shape (1, 16, 65)
    """

    def __init__(self, vocabulary_size, embedding_dim, units, dropout=0.0, dtype=None, **kwargs):
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, dtype=dtype, name="embedding")
        self.encoder = keras.layers.LSTM(
            units, return_sequences=True, dropout=dropout, dtype=dtype, name="lstm_encoder"
        )
        self.decoder = keras.layers.LSTM(
            units, return_sequences=True, dropout=dropout, dtype=dtype, name="lstm_decoder"
        )
        self.head = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        logits = self.head(self.decoder(self.encoder(self.embedding(token_ids))))
        super().__init__(inputs=token_ids, outputs=logits, dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.dropout = dropout
        self.preprocessor = None

    def get_config(self):
        return {
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "dropout": self.dropout,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _step(self, token_ids, cache):
        """One token per row; `cache` is (batch, 2 layers, 2 [h, c], units)."""
        x = self.embedding(token_ids)
        states = []
        for i, lstm in enumerate((self.encoder, self.decoder)):
            x, (h, c) = lstm.cell(x, [cache[:, i, 0], cache[:, i, 1]])
            states.append(ops.stack([h, c], axis=1))
        return self.head(x), x, ops.stack(states, axis=1)

    @decoding.no_autograph
    def generate_step(self, inputs, stop_token_ids=None):
        """Fills `token_ids` after each prompt (marked by `padding_mask`),
        feeding the prompt through both cells once, then one step per token.

        Args:
            inputs: {"token_ids": int32[batch, length], "padding_mask":
                bool[batch, length]}.
            stop_token_ids: ids that end a row (None: fill every position).

        Returns:
            {"token_ids", "padding_mask"}, as `GPTCausalLM.generate_step`.

        Example:
            lm.sampler = keras_hub.samplers.GreedySampler()
            out = lm.generate_step({"token_ids": tf.constant([[1, 5, 0, 0]]),
                                    "padding_mask": tf.constant([[True, True, False, False]])})
        """
        token_ids = inputs["token_ids"]
        index = decoding.first_free_index(inputs["padding_mask"])
        cache = ops.zeros([ops.shape(token_ids)[0], 2, 2, self.units], dtype=self.compute_dtype)
        # Feed the prompt up to (not including) position index-1; the first
        # sampler step feeds that token and predicts the next one.
        cache = ops.fori_loop(0, index - 1, lambda i, c: self._step(token_ids[:, i], c)[2], cache)

        def next_token(prompt, cache, index):
            return self._step(prompt[:, index - 1], cache)

        return decoding.sample(self, inputs, cache, next_token, stop_token_ids)
