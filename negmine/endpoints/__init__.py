"""Models behind HTTP endpoints (``negmine.endpoints.client``): embeddings, rerankers and LLM judges."""
