"""Output: the training layouts (sentence-transformers', FlagEmbedding's), the candidates file's schema,
the false-negatives file, provenance, and the sinks (Parquet in fixed row groups, JSON Lines, stdout)."""
