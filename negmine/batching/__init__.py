"""Training batches that teach: rows composed into hard, clean batches (``compose``) and a batch sampler that keeps
them whole for sentence-transformers' trainer (``sampler``)."""
