"""Retrieval: each retriever behind one small interface (``search(queries, k) -> Hits``, ``pair_scores``):
BM25 (an on-disk index of its own), dense (an encoder, the embedding cache and faiss: exact, or an on-disk
IVF index), and their fusion; the encoders (sentence-transformers models) the dense retriever and the rules use."""
