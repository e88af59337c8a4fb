"""Models: a builder for each architecture; the tasks (`kerasllm.tasks`) pick one per model.kind."""

from __future__ import annotations


def build_gpt(config, vocabulary_size: int, dtype: str | None = None):
    """A GPT language model (`GPTCausalLM`) for a tokenizer's vocabulary size.

    Args:
        config: a `kerasllm.config.ModelConfig` (`kind: gpt`).
        vocabulary_size: the tokenizer's `vocabulary_size`.
        dtype: a Keras dtype policy name ("mixed_bfloat16"), or None for
            the global policy.

    Returns:
        An unbuilt keras-hub `CausalLM`.

    Example:
        from kerasllm.config import ModelConfig

        model = build_gpt(ModelConfig(kind="gpt", num_layers=2, hidden_dim=64,
                                      intermediate_dim=128, seq_len=64), vocabulary_size=100)
        logits = model(tf.zeros([1, 8], tf.int32))  # shape (1, 8, 100)
    """
    from kerasllm.models.gpt import GPTBackbone, GPTCausalLM

    backbone = GPTBackbone(vocabulary_size=vocabulary_size, tie_embeddings=config.tie_embeddings, dtype=dtype,
                           **_transformer_sizes(config))
    return GPTCausalLM(backbone)


def build_lstm(config, vocabulary_size: int, dtype: str | None = None):
    """An LSTM language model (`LSTMCausalLM`) for a tokenizer's vocabulary size.

    Args:
        config: a `kerasllm.config.ModelConfig` (`kind: lstm`): its
            `embedding_dim`, `hidden_dim` (the LSTM width) and `dropout`.
        vocabulary_size: the tokenizer's `vocabulary_size`.
        dtype: a Keras dtype policy name, or None for the global policy.

    Example:
        from kerasllm.config import ModelConfig

        model = build_lstm(ModelConfig(kind="lstm", hidden_dim=64), vocabulary_size=100)
    """
    from kerasllm.models.lstm import LSTMCausalLM

    return LSTMCausalLM(
        vocabulary_size=vocabulary_size,
        embedding_dim=config.embedding_dim,
        units=config.hidden_dim,
        dropout=config.dropout,
        dtype=dtype,
    )


def _transformer_sizes(config) -> dict:
    return dict(num_layers=config.num_layers, num_heads=config.num_heads, hidden_dim=config.hidden_dim,
                intermediate_dim=config.intermediate_dim, dropout=config.dropout, max_sequence_length=config.seq_len)


def build_translator(config, source_tokenizer, target_tokenizer, dtype: str | None = None):
    """The encoder-decoder for a pair of tokenizers (one shared vocabulary
    shares one embedding matrix).

    Args:
        config: a `kerasllm.config.ModelConfig` (`kind: seq2seq`); its
            `seq_len` is the longest sentence, in tokens, on either side.
        source_tokenizer: the tokenizer of the source language.
        target_tokenizer: the tokenizer of the target language; the same
            object as `source_tokenizer` for a shared vocabulary, whose
            embeddings are then tied when `config.tie_embeddings` is set.
        dtype: a Keras dtype policy name, or None for the global policy.

    Returns:
        An unbuilt `Seq2SeqTranslator`.

    Example:
        from kerasllm.config import ModelConfig
        from kerasllm.data.tokenizers import ByteTokenizer

        tok = ByteTokenizer()
        translator = build_translator(ModelConfig(kind="seq2seq", num_layers=1, hidden_dim=32,
                                                  intermediate_dim=64, seq_len=32), tok, tok)
    """
    from kerasllm.models.seq2seq import Seq2SeqBackbone, Seq2SeqTranslator

    shared = source_tokenizer is target_tokenizer
    return Seq2SeqTranslator(Seq2SeqBackbone(
        source_vocabulary_size=source_tokenizer.vocabulary_size,
        target_vocabulary_size=target_tokenizer.vocabulary_size,
        shared_embeddings=shared and config.tie_embeddings,
        dtype=dtype,
        **_transformer_sizes(config),
    ))


def max_context(model) -> int | None:
    """Longest sequence the model can attend over (None: unbounded).

    Args:
        model: a model from `build_gpt`, `build_lstm` or `build_translator`.

    Example:
        from kerasllm.config import ModelConfig

        max_context(build_lstm(ModelConfig(kind="lstm"), 100))  # None
        max_context(build_gpt(ModelConfig(kind="gpt", seq_len=64), 100))  # 64
    """
    if getattr(model, "context", None):  # a pretrained family's (kerasllm.models.hub.HubCausalLM)
        return model.context
    backbone = getattr(model, "backbone", None)
    return getattr(backbone, "max_sequence_length", None)
