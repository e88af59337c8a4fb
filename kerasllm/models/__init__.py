"""Models: one builder for every architecture the config can name."""

from __future__ import annotations


def build_model(config, vocabulary_size: int, dtype: str | None = None):
    """Builds the `ModelConfig`'s model for a tokenizer's vocabulary size."""
    if config.kind == "lstm":
        from kerasllm.models.lstm import LSTMCausalLM

        return LSTMCausalLM(
            vocabulary_size=vocabulary_size,
            embedding_dim=config.embedding_dim,
            units=config.hidden_dim,
            dropout=config.dropout,
            dtype=dtype,
        )
    from kerasllm.models.gpt import GPTBackbone, GPTCausalLM

    backbone = GPTBackbone(vocabulary_size=vocabulary_size, tie_embeddings=config.tie_embeddings, dtype=dtype,
                           **_transformer_sizes(config))
    return GPTCausalLM(backbone)


def _transformer_sizes(config) -> dict:
    return dict(num_layers=config.num_layers, num_heads=config.num_heads, hidden_dim=config.hidden_dim,
                intermediate_dim=config.intermediate_dim, dropout=config.dropout, max_sequence_length=config.seq_len)


def build_translator(config, source_tokenizer, target_tokenizer, dtype: str | None = None):
    """The encoder-decoder for a pair of tokenizers (one shared vocabulary
    shares one embedding matrix)."""
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
    """Longest sequence the model can attend over (None: unbounded)."""
    backbone = getattr(model, "backbone", None)
    return getattr(backbone, "max_sequence_length", None)
