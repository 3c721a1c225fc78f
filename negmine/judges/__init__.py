"""Judges: who scores (query, document) pairs for the rules and the sampler: the retrieval bi-encoder's cosine,
another bi-encoder, a cross-encoder; the cosines of candidates to the positives; and values computed ahead, looked
up (a candidates file read back, or a batch scored ahead of sampling)."""
