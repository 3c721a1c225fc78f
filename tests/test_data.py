"""negmine.data: collections, matching qrels to queries and corpus, pairs to inputs."""

from __future__ import annotations

import hashlib

import pytest

from negmine.errors import InputError
from negmine.inputs.data import Corpus, Qrels, Queries, TextCollection, match_positives, pairs_to_inputs, text_id


def test_collection_index_and_keys() -> None:
    c = Corpus([10, 20, 30], ["a", "b", "c"], "src")
    assert c.keys == ["10", "20", "30"]
    assert c.index == {"10": 0, "20": 1, "30": 2}
    assert len(c) == 3


def test_collection_duplicate_id() -> None:
    with pytest.raises(InputError) as info:
        Corpus(["a", "b", "c", "b"], ["1", "2", "3", "4"], "corpus.parquet: column '_id'")
    assert str(info.value) == "corpus.parquet: column '_id': row 3: duplicate id 'b' (first seen at row 1)"


def test_collection_duplicate_across_int_and_str_forms() -> None:
    # lookups go through the string form, so 1 and "1" are the same id
    with pytest.raises(InputError, match="row 1: duplicate id '1'"):
        TextCollection([1, "1"], ["x", "y"])


def test_collection_length_mismatch() -> None:
    with pytest.raises(InputError, match="2 ids but 1 texts"):
        Queries(["a", "b"], ["x"])


def test_text_id_and_from_texts() -> None:
    assert text_id("q_", "hello") == "q_" + hashlib.sha1(b"hello").hexdigest()[:16]
    q = Queries.from_texts(["b", "a", "b"], "q_")
    assert q.texts == ["b", "a"]
    assert q.ids == [text_id("q_", "b"), text_id("q_", "a")]


def _corpus() -> Corpus:
    return Corpus(["d1", "d2", "d3", "d4"], ["w", "x", "y", "z"], "c")


def _queries() -> Queries:
    return Queries(["q1", "q2", "q3"], ["a", "b", "c"], "q")


def test_match_positives() -> None:
    qrels = Qrels(
        ["q1", "q1", "q1", "q2", "q2", "q3"],
        ["d2", "d1", "d2", "d3", "d4", "d1"],
        [1.0, 2.0, 1.0, 0.0, -1.0, 1.0],
        "r",
    )
    pos = match_positives(qrels, _queries(), _corpus())
    assert pos.by_query == [[1, 0], [], [0]]  # qrels order, duplicates once, score <= 0 dropped
    assert pos.nonpositive_rows == 2
    assert pos.count == 3
    assert (pos.unknown_query_rows, pos.unknown_doc_rows, pos.unknown_examples) == (0, 0, [])


def test_match_positives_unknown_ids_are_counted() -> None:
    qrels = Qrels(["q1", "qX", "q2", "qY", "q3", "q3"], ["d1", "d1", "dX", "d2", "dZ", "d3"], [1.0] * 6, "r")
    pos = match_positives(qrels, _queries(), _corpus())
    assert pos.by_query == [[0], [], [2]]
    assert (pos.unknown_query_rows, pos.unknown_doc_rows) == (2, 2)
    assert pos.unknown_examples == ["query 'qX' (row 1)", "document 'dX' (row 2)", "query 'qY' (row 3)"]


def test_match_positives_strict() -> None:
    qrels = Qrels(["q1", "q2"], ["d1", "dX"], [1.0, 1.0], "r.parquet")
    with pytest.raises(InputError) as info:
        match_positives(qrels, _queries(), _corpus(), strict=True)
    assert str(info.value) == (
        "r.parquet: row 1: document id 'dX' is not in c (drop --strict to skip such rows with a warning)"
    )


def test_match_positives_nothing_to_mine() -> None:
    qrels = Qrels(["q1", "q2"], ["d1", "d9"], [0.0, 1.0], "r.parquet")
    with pytest.raises(InputError, match="r.parquet: no row names a known query and document with a score > 0"):
        match_positives(qrels, _queries(), _corpus())


def test_integer_qrels_ids_match_string_ids() -> None:
    corpus = Corpus(["1", "2", "3"], ["a", "b", "c"])
    queries = Queries(["7"], ["q"])
    pos = match_positives(Qrels([7], [2], [1.0]), queries, corpus)
    assert pos.by_query == [[1]]


def test_pairs_to_inputs_without_corpus() -> None:
    queries, corpus, qrels = pairs_to_inputs(["qa", "qb", "qa"], ["pa", "pb", "pc"], "pairs")
    assert queries.texts == ["qa", "qb"]
    assert corpus.texts == ["pa", "pb", "pc"]
    assert qrels.query_ids == [text_id("q_", "qa"), text_id("q_", "qb"), text_id("q_", "qa")]
    assert qrels.doc_ids == [text_id("d_", "pa"), text_id("d_", "pb"), text_id("d_", "pc")]
    pos = match_positives(qrels, queries, corpus)
    assert pos.by_query == [[0, 2], [1]]


def test_pairs_to_inputs_with_corpus() -> None:
    corpus = Corpus([1, 2], ["doc one", "doc two"], "c")
    queries, merged, qrels = pairs_to_inputs(["qa", "qb"], ["doc two", "new doc"], "pairs", corpus)
    assert merged.texts == ["doc one", "doc two", "new doc"]
    # integer ids become strings when a text-derived id has to be added
    assert merged.ids == ["1", "2", text_id("d_", "new doc")]
    assert qrels.doc_ids == ["2", text_id("d_", "new doc")]
    pos = match_positives(qrels, queries, merged)
    assert pos.by_query == [[1], [2]]


def test_pairs_to_inputs_with_corpus_covering_every_positive_keeps_ids() -> None:
    corpus = Corpus([1, 2], ["doc one", "doc two"], "c")
    _, merged, qrels = pairs_to_inputs(["qa"], ["doc one"], "pairs", corpus)
    assert merged.ids == [1, 2]
    assert qrels.doc_ids == [1]


def test_take_rows_chunk_by_chunk_equals_a_plain_take() -> None:
    """take_rows takes from each chunk on its own (a chunked take would first concatenate the chunks, which
    overflows a string array's offsets past 2 GiB of text); the values and their order are a plain take's."""
    import numpy as np
    import pyarrow as pa

    from negmine.inputs.data import ArrowSequence, take_rows

    rng = np.random.default_rng(0)
    values = [f"text {i}" for i in range(1000)]
    sizes = rng.integers(0, 60, 60)  # empty chunks included
    sizes[-1] = max(0, 1000 - int(sizes[:-1].sum()))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chunked = pa.chunked_array([pa.array(values[a:b], pa.string()) for a, b in zip(starts[:-1], starts[1:])
                                if a < 1000] or [pa.array([], pa.string())], pa.string())
    n = len(chunked)
    for _ in range(30):
        rows = rng.integers(0, n, int(rng.integers(0, 400)))
        assert take_rows(chunked, rows).to_pylist() == [values[r] for r in rows]
        assert ArrowSequence(chunked).take(rows) == [values[r] for r in rows]
    assert take_rows(chunked, []).to_pylist() == []
    with pytest.raises(IndexError):
        take_rows(chunked, [n])
