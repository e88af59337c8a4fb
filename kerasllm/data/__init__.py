"""Data: sources -> cleaning (pii; near_duplicates and document_filter
remove documents before the split) -> tokenizers -> pipelines; corpus (language
models), paired_text and pair_corpus (translation), squad and qa_data
(question answering); shards (the TFRecord format) and prepare (the
`kerasllm prepare` command that writes it); report (`kerasllm data-report`)."""
