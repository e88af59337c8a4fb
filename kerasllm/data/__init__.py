"""Data: sources -> cleaning -> tokenizers -> pipelines (and shards for `prepare`)."""
