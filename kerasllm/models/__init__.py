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

    backbone = GPTBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim,
        dropout=config.dropout,
        max_sequence_length=config.seq_len,
        tie_embeddings=config.tie_embeddings,
        dtype=dtype,
    )
    return GPTCausalLM(backbone)


def max_context(model) -> int | None:
    """Longest sequence the model can attend over (None: unbounded)."""
    backbone = getattr(model, "backbone", None)
    return getattr(backbone, "max_sequence_length", None)
