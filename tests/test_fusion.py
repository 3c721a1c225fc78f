"""Fusion of candidate lists: reciprocal rank fusion and min-max score fusion, worked out by hand; and the hybrid
retriever over BM25 and dense (fake encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest
from fakes import FakeEncoder
from helpers import SMALL_TEXTS

from negmine.progress import Progress
from negmine.retrieve.base import Hits
from negmine.retrieve.bm25 import BM25Retriever
from negmine.retrieve.dense import DenseRetriever
from negmine.retrieve.fusion import FusedHits, HybridRetriever, fuse

NEG = -np.inf


def hits(indices: list[list[int]], scores: list[list[float]]) -> Hits:
    return Hits(np.array(indices, dtype=np.int64), np.array(scores, dtype=np.float32))


# Query 0: BM25 finds docs 3, 1, 0 (then nothing); dense ranks 1, 4, 3, 2.
# Query 1: BM25 finds nothing; dense ranks 2, 0, 1, 4.
BM25 = hits([[3, 1, 0, -1], [-1, -1, -1, -1]], [[9, 5, 1, NEG], [NEG, NEG, NEG, NEG]])
DENSE = hits([[1, 4, 3, 2], [2, 0, 1, 4]], [[8, 6, 4, 0], [0.5, 0.25, 0.0, -0.5]])


def rrf(*ranks: int, k: int = 60) -> float:
    return sum(1.0 / (k + r) for r in ranks)


def test_rrf_by_hand() -> None:
    out = fuse({"bm25": BM25, "dense": DENSE}, "rrf", 60)
    assert isinstance(out, FusedHits)
    assert out.indices.shape == (2, 8) and out.scores.shape == (2, 8)
    # doc 1: bm25 rank 2, dense rank 1; doc 3: bm25 1, dense 3; doc 4: dense 2; doc 0: bm25 3; doc 2: dense 4
    expected = {1: rrf(2, 1), 3: rrf(1, 3), 4: rrf(2), 0: rrf(3), 2: rrf(4)}
    assert out.indices[0].tolist() == [1, 3, 4, 0, 2, -1, -1, -1]
    np.testing.assert_allclose(out.scores[0, :5], [expected[d] for d in (1, 3, 4, 0, 2)], rtol=1e-6)
    assert np.isneginf(out.scores[0, 5:]).all()
    # 0-based rank in each list, -1 where that retriever did not find the document
    assert out.source_ranks["bm25"][0].tolist() == [1, 0, -1, 2, -1, -1, -1, -1]
    assert out.source_ranks["dense"][0].tolist() == [0, 2, 1, -1, 3, -1, -1, -1]
    # query 1: dense alone
    assert out.indices[1].tolist() == [2, 0, 1, 4, -1, -1, -1, -1]
    np.testing.assert_allclose(out.scores[1, :4], [rrf(1), rrf(2), rrf(3), rrf(4)], rtol=1e-6)
    assert (out.source_ranks["bm25"][1] == -1).all()
    assert out.source_ranks["dense"][1].tolist() == [0, 1, 2, 3, -1, -1, -1, -1]


def test_rrf_k_changes_scores_and_order() -> None:
    a = hits([[0, 1, 2, 3]], [[4, 3, 2, 1]])
    b = hits([[3, 9, 8, 7]], [[4, 3, 2, 1]])
    # k=0: doc 3 (ranks 4 and 1) 1/4 + 1; doc 0: 1; docs 1 and 9 (rank 2 in one list) tie at 1/2
    out0 = fuse({"a": a, "b": b}, "rrf", 0)
    assert out0.indices[0, :4].tolist() == [3, 0, 1, 9]
    np.testing.assert_allclose(out0.scores[0, :4], [1 + 1 / 4, 1.0, 1 / 2, 1 / 2], rtol=1e-6)
    out1000 = fuse({"a": a, "b": b}, "rrf", 1000)
    np.testing.assert_allclose(out1000.scores[0, 0], 1 / 1001 + 1 / 1004, rtol=1e-6)
    assert out1000.indices[0, 0] == 3


def test_rrf_ties_go_to_the_lower_index() -> None:
    a = hits([[7, 2]], [[2, 1]])
    b = hits([[2, 7]], [[2, 1]])
    out = fuse({"a": a, "b": b})
    assert out.indices[0].tolist() == [2, 7, -1, -1]
    assert out.scores[0, 0] == out.scores[0, 1]
    c = hits([[9, 5, 6]], [[3, 2, 1]])
    d = hits([[6, 5, 9]], [[3, 2, 1]])
    # 6 and 9 tie at 1/61 + 1/63, just above 5 at 2/62
    assert fuse({"c": c, "d": d}).indices[0, :3].tolist() == [6, 9, 5]


def test_score_fusion_by_hand() -> None:
    out = fuse({"bm25": BM25, "dense": DENSE}, "score")
    # bm25 9, 5, 1 -> 1, .5, 0; dense 8, 6, 4, 0 -> 1, .75, .5, 0
    # doc 1: .5 + 1; doc 3: 1 + .5 (tie: lower index first); doc 4: .75; doc 0: 0 (bm25); doc 2: 0 (dense)
    assert out.indices[0].tolist() == [1, 3, 4, 0, 2, -1, -1, -1]
    np.testing.assert_allclose(out.scores[0, :5], [1.5, 1.5, 0.75, 0, 0])
    assert out.source_ranks["bm25"][0, :5].tolist() == [1, 0, -1, 2, -1]
    assert out.source_ranks["dense"][0, :5].tolist() == [0, 2, 1, -1, 3]
    # query 1, dense only: .5, .25, 0, -.5 -> 1, .75, .5, 0
    assert out.indices[1, :4].tolist() == [2, 0, 1, 4]
    np.testing.assert_allclose(out.scores[1, :4], [1, 0.75, 0.5, 0])


def test_score_fusion_ignores_scale_and_handles_constant_lists() -> None:
    a = hits([[0, 1, 2]], [[300, 200, 100]])
    b = hits([[2, 1, 0]], [[0.75, 0.5, 0.25]])
    out = fuse({"a": a, "b": b}, "score")
    np.testing.assert_allclose(out.scores[0, :3], [1, 1, 1])  # every doc sums to 1: order by index
    assert out.indices[0, :3].tolist() == [0, 1, 2]
    same = hits([[4, 5]], [[2, 2]])
    out = fuse({"s": same}, "score")
    np.testing.assert_allclose(out.scores[0], [1, 1])  # all equal: each counts fully
    assert out.indices[0].tolist() == [4, 5]


def test_fuse_single_list_is_that_list() -> None:
    out = fuse({"dense": DENSE}, "rrf")
    assert np.array_equal(out.indices, DENSE.indices)
    assert np.array_equal(out.source_ranks["dense"], np.tile(np.arange(4), (2, 1)))


class Fixed:
    """A retriever returning fixed hits; records what it was asked."""

    def __init__(self, name: str, result: Hits, pair: float) -> None:
        self.name = name
        self.result = result
        self.pair = pair
        self.asked: list[tuple[list[str], int]] = []

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> Hits:
        self.asked.append((list(queries), k))
        return self.result

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return [np.full(len(d), self.pair, dtype=np.float32) for d in docs]


@pytest.mark.parametrize("method, k", [("rrf", 60), ("rrf", 5), ("score", 60)])
def test_hybrid_searches_both_and_fuses(method: str, k: int) -> None:
    b, d = Fixed("bm25", BM25, 1.0), Fixed("dense", DENSE, 2.0)
    h = HybridRetriever({"bm25": b, "dense": d}, method, k)
    out = h.search(["q0", "q1"], 4)
    assert b.asked == [(["q0", "q1"], 4)] and d.asked == [(["q0", "q1"], 4)]
    expected = fuse({"bm25": BM25, "dense": DENSE}, method, k)
    assert np.array_equal(out.indices, expected.indices)
    np.testing.assert_array_equal(out.scores, expected.scores)
    # pairs are scored by the dense member
    assert [s.tolist() for s in h.pair_scores(["q0", "q1"], [[1, 2], [3]])] == [[2.0, 2.0], [2.0]]
    assert HybridRetriever({"bm25": b, "dense": d}, scorer="bm25").pair_scores(["q"], [[1]])[0].tolist() == [1.0]


CORPUS = SMALL_TEXTS
QUERIES = ["why do cats purr", "how long to walk a dog", "fish water", "parrots"]


def test_hybrid_over_bm25_and_dense(tmp_path: Path) -> None:
    bm25 = BM25Retriever().index(CORPUS)
    dense = DenseRetriever(FakeEncoder(), tmp_path, device="cpu").index(CORPUS)
    k = 6
    b_hits = bm25.search(QUERIES, k)
    d_hits = dense.search(QUERIES, k)
    h = HybridRetriever({"bm25": bm25, "dense": dense}, "rrf", 60)
    out = h.search(QUERIES, k)
    assert out.indices.shape == (len(QUERIES), 2 * k)
    for q in range(len(QUERIES)):
        row = out.indices[q]
        found = row[row >= 0]
        union = set(b_hits.indices[q][b_hits.indices[q] >= 0]) | set(d_hits.indices[q])
        assert set(found.tolist()) == union and len(found) == len(union)  # the union, no duplicates
        for name, src in (("bm25", b_hits), ("dense", d_hits)):
            for doc, r in zip(found, out.source_ranks[name][q][: len(found)]):
                if r >= 0:
                    assert src.indices[q, r] == doc
                else:
                    assert doc not in src.indices[q]
        assert (np.diff(out.scores[q][: len(found)]) <= 0).all()
    # pair scores are the dense cosines
    s = h.pair_scores(QUERIES, [[0, 1], [4]])
    np.testing.assert_allclose(s[0], dense.pair_scores(QUERIES, [[0, 1]])[0])
