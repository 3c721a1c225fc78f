"""negmine.retrieve: Hits and the shared exact top-k."""

from __future__ import annotations

import numpy as np

from negmine.retrieve.base import Hits, topk


def test_topk_orders_best_first() -> None:
    idx, val = topk(np.array([0.1, 0.9, 0.5, 0.7], dtype=np.float32), 3)
    assert idx.tolist() == [1, 3, 2]
    assert val.tolist() == np.array([0.9, 0.7, 0.5], dtype=np.float32).tolist()
    assert idx.dtype == np.int64


def test_topk_ties_go_to_the_lower_index_when_k_covers_all() -> None:
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 1.0, 3.0], dtype=np.float32)
    assert topk(scores, 7)[0].tolist() == [1, 2, 4, 6, 3, 0, 5]
    assert topk(scores, 100)[0].tolist() == [1, 2, 4, 6, 3, 0, 5]


def test_topk_ties_inside_the_selection_are_in_index_order() -> None:
    # whatever tied elements argpartition keeps, they come out in index order
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=500).astype(np.float32)
    for k in (1, 10, 123, 499):
        idx, val = topk(scores, k)
        assert val.tolist() == sorted(scores.tolist(), reverse=True)[:k]
        for v in np.unique(val):
            same = idx[val == v]
            assert same.tolist() == sorted(same.tolist())


def test_topk_ties_at_the_cut_go_to_the_lower_index() -> None:
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 1.0, 3.0], dtype=np.float32)
    assert topk(scores, 3)[0].tolist() == [1, 2, 4]
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=500).astype(np.float32)
    for k in (1, 10, 123, 499):
        expected = np.lexsort((np.arange(500), -scores))[:k]
        assert topk(scores, k)[0].tolist() == expected.tolist()


def test_topk_k_larger_than_n_and_zero() -> None:
    idx, val = topk(np.array([2.0, 5.0]), 10)
    assert idx.tolist() == [1, 0] and val.tolist() == [5.0, 2.0]
    idx, val = topk(np.array([2.0, 5.0]), 0)
    assert idx.size == 0 and val.size == 0


def test_hits_empty() -> None:
    h = Hits.empty(2, 3)
    assert h.indices.shape == (2, 3) and (h.indices == -1).all() and h.indices.dtype == np.int64
    assert np.isneginf(h.scores).all() and h.scores.dtype == np.float32
