"""Data: sources -> cleaning -> tokenizers -> pipelines; corpus (language
models), paired_text and pair_corpus (translation), squad and qa_data
(question answering); shards (the TFRecord format) and prepare (the
`kerasllm prepare` command that writes it)."""
