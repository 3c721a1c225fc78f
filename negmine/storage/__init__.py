"""Storage: files written atomically under temporary names, fingerprints, the cache folder (read-only
or not) and its content-addressed entries, the embedding cache, the batches kept to resume a run, and the
cache's housekeeping. The lowest layer but the settings: it knows nothing of mining."""
