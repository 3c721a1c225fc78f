"""negmine.bm25: tokenizer options, search semantics, and parity with rank-bm25."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from negmine.bm25 import BM25Retriever, make_tokenizer
from negmine.config import BM25_METHODS
from negmine.errors import ConfigError

rank_bm25 = pytest.importorskip("rank_bm25")

# --- tokenizer -------------------------------------------------------------------------------------------------


def test_default_tokenizer_stems_and_drops_stopwords() -> None:
    r = BM25Retriever()
    assert r.tokenize(["The running dogs are a b cc"]) == [["run", "dog", "cc"]]


def test_tokenizer_without_stemmer_or_stopwords() -> None:
    assert BM25Retriever(stemmer="none").tokenize(["The running dogs"]) == [["running", "dogs"]]
    assert BM25Retriever(stopwords="none").tokenize(["The running dogs"]) == [["the", "run", "dog"]]
    assert BM25Retriever(stemmer="none", stopwords="none").tokenize(["The running dogs"]) == [
        ["the", "running", "dogs"]
    ]


def test_other_stemmer_language() -> None:
    german = BM25Retriever(stemmer="german", stopwords="de")
    assert german.tokenize(["die Häuser"]) == [["haus"]]


def test_unknown_stemmer() -> None:
    with pytest.raises(ConfigError) as info:
        make_tokenizer("klingon", "en")
    msg = str(info.value)
    assert msg.startswith("--bm25-stemmer: unknown language 'klingon'; use one of: none, ")
    assert "english" in msg and "german" in msg


def test_unknown_stopwords() -> None:
    with pytest.raises(ConfigError) as info:
        make_tokenizer("english", "xx")
    assert str(info.value).startswith("--bm25-stopwords: unknown stopword list 'xx'")


# --- search ------------------------------------------------------------------------------------------------------

DOCS = ["apple banana cherry", "dog elephant fox", "apple apple grape", "house igloo jungle", "kite lemon mango"]


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire"])
def test_search_returns_only_documents_sharing_a_term(method: str) -> None:
    r = BM25Retriever(method=method).index(DOCS)
    hits = r.search(["apple", "nothing matches", "fox kite"], 4)
    assert hits.indices.tolist() == [[2, 0, -1, -1], [-1, -1, -1, -1], hits.indices[2].tolist()]
    assert sorted(hits.indices[2, :2].tolist()) == [1, 4] and hits.indices[2, 2:].tolist() == [-1, -1]
    assert np.isneginf(hits.scores[0, 2:]).all() and np.isneginf(hits.scores[1]).all()
    assert (hits.scores[0, :2] > 0).all() and hits.scores[0, 0] > hits.scores[0, 1]


@pytest.mark.parametrize("method", ["bm25l", "bm25+"])
def test_search_bm25l_bm25plus_return_only_documents_sharing_a_term(method: str) -> None:
    r = BM25Retriever(method=method).index(DOCS)
    hits = r.search(["apple"], 5)
    assert hits.indices[0].tolist() == [2, 0, -1, -1, -1]


@pytest.mark.parametrize("method", BM25_METHODS)
def test_search_agrees_with_scores(method: str) -> None:
    r = BM25Retriever(method=method).index(DOCS)
    hits = r.search(["apple fox"], 5)
    full = r.scores("apple fox")
    valid = hits.indices[0] >= 0
    assert np.allclose(hits.scores[0, valid], full[hits.indices[0, valid]])
    assert list(hits.scores[0, valid]) == sorted(hits.scores[0, valid], reverse=True)
    assert r.pair_scores(["apple fox"], [[2, 1]])[0].tolist() == full[[2, 1]].tolist()


def test_search_over_more_queries_than_one_chunk() -> None:
    r = BM25Retriever().index(DOCS)
    queries = ["apple", "fox", "mango lemon", "nothing"] * 80  # 320 > QUERY_CHUNK
    hits = r.search(queries, 2)
    for i, q in enumerate(queries):
        expected = {"apple": [2, 0], "fox": [1, -1], "mango lemon": [4, -1], "nothing": [-1, -1]}[q]
        assert hits.indices[i].tolist() == expected, (i, q)


def test_scores_of_a_query_with_no_known_term() -> None:
    r = BM25Retriever().index(DOCS)
    assert r.scores("the zzz").tolist() == [0.0] * 5


def test_k1_and_b_change_scores() -> None:
    docs = ["apple apple apple pie", "apple", "banana split with apple on the side of it"]
    base = BM25Retriever().index(docs).scores("apple")
    assert (base > 0).all()
    assert not np.allclose(BM25Retriever(k1=0.5).index(docs).scores("apple"), base)
    assert not np.allclose(BM25Retriever(b=0.1).index(docs).scores("apple"), base)
    no_len = BM25Retriever(b=0.0, k1=0.0).index(docs).scores("apple")
    # k1 = 0: the term frequency part is 1 for any matching document, so all matching documents tie
    assert np.allclose(no_len, no_len[0]) and no_len[0] > 0


# --- parity with rank-bm25 ---------------------------------------------------------------------------------------

K1, B = 1.5, 0.75
WORDS = [
    "apple", "river", "mountain", "guitar", "planet", "garden", "window", "bridge", "candle", "forest", "rocket",
    "violin", "desert", "harbor", "castle", "island", "lantern", "meadow", "orchard", "pebble", "quartz", "saddle",
    "tunnel", "valley", "walnut", "yogurt", "zipper", "anchor", "basket", "cactus",
]


def _synthetic_corpus(seed: int = 3, n_docs: int = 50) -> list[str]:
    """Documents of 3-7 distinct words, some repeated (term frequencies 1-3), so lengths vary."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        words = [w for w in rng.sample(WORDS, k=rng.randint(3, 7)) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        rng.shuffle(words)
        docs.append(" ".join(words))
    return docs


def _okapi_ranking(scores: np.ndarray) -> list[int]:
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order if scores[i] > 0]


QUERIES = ["apple river", "guitar planet garden", "quartz", "castle island lantern meadow", "apple apple cactus",
           "window bridge zipper", "river desert"]


@pytest.fixture(scope="module")
def parity_setup():  # type: ignore[no-untyped-def]
    docs = _synthetic_corpus()
    retriever = BM25Retriever(k1=K1, b=B, method="robertson").index(docs)
    tokens = retriever.tokenize(docs)
    df = Counter(t for doc in tokens for t in set(doc))
    # precondition: no term occurs in half the documents or more, so both libraries' idf are positive
    assert max(df.values()) < len(docs) / 2, df.most_common(3)
    assert len(df) == len(WORDS)
    okapi = rank_bm25.BM25Okapi(tokens, k1=K1, b=B)
    return docs, retriever, okapi


@pytest.mark.parametrize("query", QUERIES)
def test_robertson_ranking_equals_rank_bm25(parity_setup, query: str) -> None:  # type: ignore[no-untyped-def]
    docs, retriever, okapi = parity_setup
    q_tokens = retriever.tokenize([query])[0]
    expected = okapi.get_scores(q_tokens)
    # precondition: no near-ties that float32 could reorder
    nz = np.sort(expected[expected > 0])
    gaps = np.diff(nz)
    assert ((gaps == 0) | (gaps > 1e-4)).all()
    hits = retriever.search([query], len(docs))
    ours = [int(i) for i in hits.indices[0] if i >= 0]
    assert len(ours) > 3
    assert ours == _okapi_ranking(expected)


@pytest.mark.parametrize("query", QUERIES)
def test_robertson_scores_equal_rank_bm25_up_to_k1_plus_1(parity_setup, query: str) -> None:  # type: ignore[no-untyped-def]
    _, retriever, okapi = parity_setup
    expected = okapi.get_scores(retriever.tokenize([query])[0])
    ours = retriever.scores(query).astype(np.float64)
    assert (expected > 0).sum() > 3
    np.testing.assert_allclose(ours * (K1 + 1), expected, rtol=1e-5, atol=1e-6)


def test_common_terms_differ_from_rank_bm25() -> None:
    """A term in more than half the documents: rank-bm25 floors its idf at epsilon * mean idf (> 0), bm25s's
    robertson clips it to 0. So the term adds nothing in negmine (and alone retrieves nothing), and a document that
    has it no longer outranks an equal one that lacks it."""
    docs = [
        "rare alpha beta",  # 0
        "rare common gamma",  # 1: same length as 0, plus the common term
        "common delta epsilon",
        "common zeta eta",
        "common theta iota",
        "kappa lambda mu",
    ]
    retriever = BM25Retriever(k1=K1, b=B, method="robertson", stemmer="none").index(docs)
    tokens = retriever.tokenize(docs)
    assert sum("common" in t for t in tokens) == 4 > len(docs) / 2
    okapi = rank_bm25.BM25Okapi(tokens, k1=K1, b=B)

    # the common term alone: rank-bm25 scores the four documents that have it above 0, negmine gives them 0
    # (they are still its candidates, in corpus order, since they share the term; the other two are not)
    ok_common = okapi.get_scores(["common"])
    assert (ok_common[[1, 2, 3, 4]] > 0).all() and ok_common[0] == ok_common[5] == 0
    assert retriever.scores("common").tolist() == [0.0] * 6
    assert retriever.search(["common"], 6).indices[0].tolist() == [1, 2, 3, 4, -1, -1]

    # together with a rare term: rankings differ
    query = "rare common"
    ok = okapi.get_scores(retriever.tokenize([query])[0])
    assert _okapi_ranking(ok) == [1, 0, 2, 3, 4]
    ours = retriever.search([query], 6).indices[0].tolist()
    # documents 0 and 1 tie (the tie goes to the lower index); 2-4 share only the common term, at score 0
    assert ours == [0, 1, 2, 3, 4, -1]
    scores = retriever.scores(query)
    assert scores[0] == scores[1] > 0
