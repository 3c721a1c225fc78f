"""negmine.write: the output table of each format, from a hand-made Selection."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from negmine.inputs.data import Corpus, Queries
from negmine.output.layouts import build_table, by_query, negatives_in, select_columns, training_columns, written
from negmine.sampling.selection import Selection

QUERIES = Queries(["qa", "qb"], ["query a", "query b"])
CORPUS = Corpus(["d0", "d1", "d2", "d3", "d4"], ["doc 0", "doc 1", "doc 2", "doc 3", "doc 4"])


def _selection() -> Selection:
    # query 0 has positives d1 (negatives d3, d0) and d2 (negatives d3, d0); query 1 has positive d4 with one
    # negative only (short)
    return Selection(
        query=np.array([0, 0, 1]),
        positive=np.array([1, 2, 4]),
        positive_score=np.array([9.0, 8.0, 7.0], dtype=np.float32),
        negatives=[np.array([3, 0]), np.array([3, 0]), np.array([2])],
        negative_scores=[np.array([5.0, 4.0], np.float32), np.array([5.0, 4.0], np.float32),
                         np.array([3.0], np.float32)],
        negative_positions=[np.array([1, 2]), np.array([1, 2]), np.array([0])],
    )


def test_triplet() -> None:
    t = build_table(_selection(), QUERIES, CORPUS, "triplet", 2)
    assert t.column_names == ["anchor", "positive", "negative", "query_id", "positive_id", "negative_id"]
    assert t.to_pylist() == [
        {"anchor": "query a", "positive": "doc 1", "negative": "doc 3", "query_id": "qa", "positive_id": "d1",
         "negative_id": "d3"},
        {"anchor": "query a", "positive": "doc 1", "negative": "doc 0", "query_id": "qa", "positive_id": "d1",
         "negative_id": "d0"},
        {"anchor": "query a", "positive": "doc 2", "negative": "doc 3", "query_id": "qa", "positive_id": "d2",
         "negative_id": "d3"},
        {"anchor": "query a", "positive": "doc 2", "negative": "doc 0", "query_id": "qa", "positive_id": "d2",
         "negative_id": "d0"},
        {"anchor": "query b", "positive": "doc 4", "negative": "doc 2", "query_id": "qb", "positive_id": "d4",
         "negative_id": "d2"},
    ]
    assert negatives_in(t, "triplet") == 5


def test_triplet_scores() -> None:
    t = build_table(_selection(), QUERIES, CORPUS, "triplet", 2, output_scores=True)
    assert t.column_names[-2:] == ["positive_score", "negative_score"]
    assert t.column("positive_score").to_pylist() == [9.0, 9.0, 8.0, 8.0, 7.0]
    assert t.column("negative_score").to_pylist() == [5.0, 4.0, 5.0, 4.0, 3.0]
    assert t.schema.field("negative_score").type == pa.float32()


def test_n_tuple_leaves_out_short_pairs() -> None:
    t = build_table(_selection(), QUERIES, CORPUS, "n-tuple", 2, output_scores=True)
    assert t.column_names == ["anchor", "positive", "negative_1", "negative_2", "query_id", "positive_id",
                              "negative_ids", "scores"]
    assert t.to_pylist() == [
        {"anchor": "query a", "positive": "doc 1", "negative_1": "doc 3", "negative_2": "doc 0", "query_id": "qa",
         "positive_id": "d1", "negative_ids": ["d3", "d0"], "scores": [9.0, 5.0, 4.0]},
        {"anchor": "query a", "positive": "doc 2", "negative_1": "doc 3", "negative_2": "doc 0", "query_id": "qa",
         "positive_id": "d2", "negative_ids": ["d3", "d0"], "scores": [8.0, 5.0, 4.0]},
    ]
    assert negatives_in(t, "n-tuple") == 4


def test_n_tuple_without_full_rows() -> None:
    t = build_table(_selection(), QUERIES, CORPUS, "n-tuple", 3, output_scores=True)
    assert t.num_rows == 0
    assert t.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3", "query_id",
                              "positive_id", "negative_ids", "scores"]
    assert negatives_in(t, "n-tuple") == 0


def test_labeled_list() -> None:
    t = build_table(_selection(), QUERIES, CORPUS, "labeled-list", 2, output_scores=True)
    assert t.column_names == ["anchor", "docs", "labels", "query_id", "doc_ids", "scores"]
    assert t.to_pylist() == [
        {"anchor": "query a", "docs": ["doc 1", "doc 3", "doc 0"], "labels": [1, 0, 0], "query_id": "qa",
         "doc_ids": ["d1", "d3", "d0"], "scores": [9.0, 5.0, 4.0]},
        {"anchor": "query a", "docs": ["doc 2", "doc 3", "doc 0"], "labels": [1, 0, 0], "query_id": "qa",
         "doc_ids": ["d2", "d3", "d0"], "scores": [8.0, 5.0, 4.0]},
        {"anchor": "query b", "docs": ["doc 4", "doc 2"], "labels": [1, 0], "query_id": "qb",
         "doc_ids": ["d4", "d2"], "scores": [7.0, 3.0]},
    ]
    assert negatives_in(t, "labeled-list") == 5


def test_labeled_list_leaves_out_pairs_without_negatives() -> None:
    sel = _selection()
    sel.negatives[2] = np.array([], dtype=np.int64)
    sel.negative_scores[2] = np.array([], dtype=np.float32)
    sel.negative_positions[2] = np.array([], dtype=np.int64)
    t = build_table(sel, QUERIES, CORPUS, "labeled-list", 2)
    assert t.column_names == ["anchor", "docs", "labels", "query_id", "doc_ids"]
    assert t.column("query_id").to_pylist() == ["qa", "qa"]
    tt = build_table(sel, QUERIES, CORPUS, "triplet", 2)
    assert tt.num_rows == 4


def test_integer_ids_keep_their_type() -> None:
    queries = Queries([10, 20], ["query a", "query b"])
    corpus = Corpus([100, 101, 102, 103, 104], CORPUS.texts)
    for fmt, cols in (("triplet", ["query_id", "positive_id", "negative_id"]),
                      ("n-tuple", ["query_id", "positive_id"]), ("labeled-list", ["query_id"])):
        t = build_table(_selection(), queries, corpus, fmt, 2)
        for c in cols:
            assert t.schema.field(c).type == pa.int64(), (fmt, c)
    t = build_table(_selection(), queries, corpus, "n-tuple", 2)
    assert t.schema.field("negative_ids").type == pa.list_(pa.int64())
    assert t.column("negative_ids").to_pylist() == [[103, 100], [103, 100]]
    t = build_table(_selection(), queries, corpus, "labeled-list", 2)
    assert t.schema.field("doc_ids").type == pa.list_(pa.int64())
    assert t.schema.field("labels").type == pa.list_(pa.int8())


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-list"])
def test_empty_selection(fmt: str) -> None:
    sel = Selection(np.array([], np.int64), np.array([], np.int64), np.array([], np.float32), [], [], [])
    t = build_table(sel, QUERIES, CORPUS, fmt, 2)
    assert t.num_rows == 0
    assert t.column_names[0] == "anchor"


# --- select_columns: what a trainer consumes -----------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "expected"), [
    ("triplet", ["anchor", "positive", "negative"]),
    ("n-tuple", ["anchor", "positive", "negative_1", "negative_2"]),
    ("labeled-list", ["anchor", "docs", "labels"]),
])
def test_training_columns_keep_only_what_a_trainer_consumes(fmt: str, expected: list[str]) -> None:
    full = build_table(_selection(), QUERIES, CORPUS, fmt, 2, output_scores=True)
    training = select_columns(full, fmt, "training")
    assert training.column_names == expected
    assert training.num_rows == full.num_rows
    for name in expected:  # the same values, in the same order
        assert training.column(name).equals(full.column(name))
    assert negatives_in(training, fmt) == negatives_in(full, fmt)
    assert select_columns(full, fmt, "all") is full


def test_training_columns_of_many_negatives() -> None:
    sel = _selection()
    sel.negatives = [np.array([3, 0, 2]), np.array([3, 0, 1]), np.array([2, 0, 1])]
    sel.negative_scores = [np.zeros(3, np.float32)] * 3
    t = build_table(sel, QUERIES, CORPUS, "n-tuple", 3)
    assert select_columns(t, "n-tuple", "training").column_names == ["anchor", "positive", "negative_1",
                                                                      "negative_2", "negative_3"]
    assert training_columns("n-tuple", ["anchor", "positive", "negative_10", "negative_ids"]) == [
        "anchor", "positive", "negative_10"]


# --- labeled-pair and flagembedding: a query's positives and the union of its negatives --------------------------

def test_labeled_pair() -> None:
    """sentence-transformers' labeled-pair columns: anchor, positive (any document's text), label."""
    t = build_table(_selection(), QUERIES, CORPUS, "labeled-pair", 2, output_scores=True)
    assert t.column_names == ["anchor", "positive", "label", "query_id", "doc_id", "score"]
    assert t.to_pylist() == [
        {"anchor": "query a", "positive": "doc 1", "label": 1, "query_id": "qa", "doc_id": "d1", "score": 9.0},
        {"anchor": "query a", "positive": "doc 2", "label": 1, "query_id": "qa", "doc_id": "d2", "score": 8.0},
        {"anchor": "query a", "positive": "doc 3", "label": 0, "query_id": "qa", "doc_id": "d3", "score": 5.0},
        {"anchor": "query a", "positive": "doc 0", "label": 0, "query_id": "qa", "doc_id": "d0", "score": 4.0},
        {"anchor": "query b", "positive": "doc 4", "label": 1, "query_id": "qb", "doc_id": "d4", "score": 7.0},
        {"anchor": "query b", "positive": "doc 2", "label": 0, "query_id": "qb", "doc_id": "d2", "score": 3.0},
    ]
    assert t.schema.field("label").type == pa.int8() and t.schema.field("score").type == pa.float32()
    assert negatives_in(t, "labeled-pair") == 3
    assert select_columns(t, "labeled-pair", "training").column_names == ["anchor", "positive", "label"]


def test_flagembedding() -> None:
    t = build_table(_selection(), QUERIES, CORPUS, "flagembedding", 2, output_scores=True, prompt="Represent: ")
    assert t.column_names == ["query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "query_id", "pos_ids",
                              "neg_ids"]
    assert t.to_pylist() == [
        {"query": "query a", "pos": ["doc 1", "doc 2"], "neg": ["doc 3", "doc 0"], "pos_scores": [9.0, 8.0],
         "neg_scores": [5.0, 4.0], "prompt": "Represent: ", "query_id": "qa", "pos_ids": ["d1", "d2"],
         "neg_ids": ["d3", "d0"]},
        {"query": "query b", "pos": ["doc 4"], "neg": ["doc 2"], "pos_scores": [7.0], "neg_scores": [3.0],
         "prompt": "Represent: ", "query_id": "qb", "pos_ids": ["d4"], "neg_ids": ["d2"]},
    ]
    assert negatives_in(t, "flagembedding") == 3
    training = select_columns(t, "flagembedding", "training")
    assert training.column_names == ["query", "pos", "neg", "pos_scores", "neg_scores", "prompt"]
    plain = build_table(_selection(), QUERIES, CORPUS, "flagembedding", 2)
    assert plain.column_names == ["query", "pos", "neg", "query_id", "pos_ids", "neg_ids"]
    assert select_columns(plain, "flagembedding", "training").column_names == ["query", "pos", "neg"]


def test_a_querys_negatives_are_the_union_of_its_pairs_in_first_seen_order() -> None:
    """With random sampling the pairs of a query have different negatives: each is written once, first seen
    first, with its own score."""
    sel = _selection()
    sel.negatives[1] = np.array([0, 2, 3])
    sel.negative_scores[1] = np.array([4.0, 6.0, 5.0], np.float32)
    sel.negative_positions[1] = np.array([2, 0, 1])
    groups = by_query(sel)
    assert [(g.query, g.positives.tolist(), g.negatives.tolist(), g.negative_scores.tolist()) for g in groups] == [
        (0, [1, 2], [3, 0, 2], [5.0, 4.0, 6.0]), (1, [4], [2], [3.0])]
    t = build_table(sel, QUERIES, CORPUS, "flagembedding", 2)
    assert t.column("neg_ids").to_pylist() == [["d3", "d0", "d2"], ["d2"]]
    t = build_table(sel, QUERIES, CORPUS, "labeled-pair", 2)
    assert t.column("doc_id").to_pylist() == ["d1", "d2", "d3", "d0", "d2", "d4", "d2"]
    assert t.column("label").to_pylist() == [1, 1, 0, 0, 0, 1, 0]


def test_queries_without_negatives_are_left_out() -> None:
    sel = _selection()
    sel.negatives[2] = np.array([], dtype=np.int64)
    sel.negative_scores[2] = np.array([], dtype=np.float32)
    sel.negative_positions[2] = np.array([], dtype=np.int64)
    for fmt in ("flagembedding", "labeled-pair"):
        t = build_table(sel, QUERIES, CORPUS, fmt, 2)
        assert set(t.column("query_id").to_pylist()) == {"qa"}, fmt


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_written_counts_what_the_table_holds(fmt: str, n: int) -> None:
    sel = _selection()
    if fmt == "n-tuple":  # as mining does: a pair short of N negatives has none
        for i, negs in enumerate(sel.negatives):
            if len(negs) != n:
                sel.negatives[i] = negs[:0]
                sel.negative_scores[i] = sel.negative_scores[i][:0]
    t = build_table(sel, QUERIES, CORPUS, fmt, n)
    assert written(sel, fmt, n) == (t.num_rows, negatives_in(t, fmt))


def test_grouped_layouts_keep_integer_ids() -> None:
    queries = Queries([10, 20], ["query a", "query b"])
    corpus = Corpus([100, 101, 102, 103, 104], CORPUS.texts)
    t = build_table(_selection(), queries, corpus, "flagembedding", 2)
    assert t.schema.field("query_id").type == pa.int64() and t.schema.field("pos_ids").type == pa.list_(pa.int64())
    assert t.column("neg_ids").to_pylist() == [[103, 100], [102]]
    t = build_table(_selection(), queries, corpus, "labeled-pair", 2)
    assert t.schema.field("doc_id").type == pa.int64()


@pytest.mark.parametrize(("fmt", "columns"), [
    ("labeled-pair", ["anchor", "positive", "label", "query_id", "doc_id", "score"]),
    ("flagembedding", ["query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "query_id", "pos_ids",
                       "neg_ids"]),
])
def test_empty_grouped_layouts_have_their_columns(fmt: str, columns: list[str]) -> None:
    sel = Selection(np.array([], np.int64), np.array([], np.int64), np.array([], np.float32), [], [], [])
    t = build_table(sel, QUERIES, CORPUS, fmt, 2, output_scores=True, prompt="p")
    assert t.num_rows == 0 and t.column_names == columns
    assert negatives_in(t, fmt) == 0
