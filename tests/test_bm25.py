"""negmine.bm25: tokenizer options, search semantics, and parity with rank-bm25."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from negmine.errors import ConfigError
from negmine.retrieve import bm25, bm25_build, bm25_search, bm25_tokens
from negmine.retrieve.bm25 import BM25Retriever
from negmine.retrieve.bm25_tokens import make_tokenizer
from negmine.settings.config import BM25_METHODS

rank_bm25 = pytest.importorskip("rank_bm25")


def setconst(monkeypatch: pytest.MonkeyPatch, name: str, value: object) -> None:
    """Set a BM25 module constant (or function) in every module of the BM25 retriever that holds it."""
    found = [m for m in (bm25, bm25_build, bm25_search, bm25_tokens) if hasattr(m, name)]
    assert found, name
    for m in found:
        monkeypatch.setattr(m, name, value)

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


# --- the on-disk engine: parity with bm25s, chunked builds, memory maps, the cache -----------------------------------

bm25s = pytest.importorskip("bm25s")


def _zipf_corpus(n_docs: int, n_queries: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """Documents and queries of made-up words drawn from a Zipf distribution: frequent terms, rare terms, repeats,
    empty documents; few enough words that many scores tie."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnop"))
    words = sorted({"".join(rng.choice(letters, size=rng.integers(2, 8))) for _ in range(1500)})
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words, size=rng.integers(lo, hi + 1), p=p))

    docs = [text(0, 40) for _ in range(n_docs)]
    docs[5] = docs[9] = docs[11]  # equal documents: equal scores, ties to the lower index
    return docs, [text(1, 8) for _ in range(n_queries)] + ["the and of", "zzzzzzzzz"]


@pytest.fixture(scope="module")
def zipf() -> tuple[list[str], list[str]]:
    return _zipf_corpus(3000, 120)


def _bm25s_model(method: str, tokens: list[list[str]]):  # type: ignore[no-untyped-def]
    model = bm25s.BM25(method=method)
    model.index(tokens, show_progress=False, create_empty_token=False)
    return model


def _sharing_topk(scores: np.ndarray, docs_tokens: list[set], query_tokens: list[str], k: int) -> list[int]:
    """The reference ranking: documents sharing a query term, by score, ties to the lower index."""
    q = set(query_tokens)
    matching = np.array([i for i, d in enumerate(docs_tokens) if d & q], dtype=np.int64)
    if matching.size == 0:
        return []
    order = np.lexsort((matching, -scores[matching]))
    return matching[order[:k]].tolist()


@pytest.mark.parametrize("method", BM25_METHODS)
def test_scores_and_rankings_equal_bm25s_in_memory_index(zipf, method: str) -> None:  # type: ignore[no-untyped-def]
    docs, queries = zipf
    r = BM25Retriever(method=method).index(docs)
    tokens = r.tokenize(docs)
    model = _bm25s_model(method, tokens)
    sets = [set(t) for t in tokens]
    hits = r.search(queries, 20)
    for i, q in enumerate(queries):
        ids = model.get_tokens_ids(r.tokenize([q])[0])
        ref = np.asarray(model.get_scores_from_ids(ids), dtype=np.float32) if ids else np.zeros(len(docs), np.float32)
        np.testing.assert_allclose(r.scores(q), ref, rtol=1e-6, atol=0)
        expected = _sharing_topk(ref, sets, r.tokenize([q])[0], 20)
        got = hits.indices[i][hits.indices[i] >= 0].tolist()
        assert got == expected, (method, q)
        np.testing.assert_allclose(hits.scores[i, : len(got)], ref[got], rtol=1e-6, atol=0)


def test_tokens_equal_bm25s_tokenizer() -> None:
    texts = ["The Running dogs aren't RUNNING; café naïve 42 a b cc", "", "   ", "Über die Häuser, 2024-01-01!",
             "x", "stopwords: the of and is was", "résumé résumés Running runs ran"]
    for stemmer, stopwords in (("english", "en"), ("none", "en"), ("english", "none"), ("german", "de")):
        ours = BM25Retriever(stemmer=stemmer, stopwords=stopwords).tokenize(texts)
        theirs = make_tokenizer(stemmer, stopwords).tokenize(texts, return_as="string", show_progress=False,
                                                             update_vocab=True)
        assert ours == [[t for t in doc if t] for doc in theirs], (stemmer, stopwords)


def _files(folder) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_chunked_build_equals_one_chunk_build_byte_for_byte(zipf, tmp_path, method: str) -> None:  # type: ignore[no-untyped-def]

    docs = zipf[0][:700]
    r = BM25Retriever(method=method)
    bm25_build.build_index(docs, tmp_path / "one", r.params, r.analyzer, chunk=len(docs))
    r = BM25Retriever(method=method)
    bm25_build.build_index(docs, tmp_path / "many", r.params, r.analyzer, chunk=7)
    one, many = _files(tmp_path / "one"), _files(tmp_path / "many")
    assert "data.npy" in one and "vocab.hashes.npy" in one and not (tmp_path / "many" / "build.tmp").exists()
    assert one == many


def test_chunked_build_with_tiny_blocks_searches_the_same(zipf, monkeypatch) -> None:  # type: ignore[no-untyped-def]

    docs, queries = zipf
    ref = BM25Retriever().index(docs[:800]).search(queries, 10)
    setconst(monkeypatch, "BUILD_CHUNK", 50)
    setconst(monkeypatch, "TOKENIZE_BATCH", 3)
    setconst(monkeypatch, "SCORE_BLOCK", 11)
    setconst(monkeypatch, "WORD_CACHE", 5)
    hits = BM25Retriever().index(docs[:800]).search(queries, 10)
    assert np.array_equal(hits.indices, ref.indices) and np.array_equal(hits.scores, ref.scores)


class _SlicesOnly:
    """A lazy sequence that answers ``len`` and slices only (like an Arrow-backed column)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.biggest = 0

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if not isinstance(i, slice):
            raise AssertionError("read one text at a time")
        out = self.texts[i]
        self.biggest = max(self.biggest, len(out))
        return out

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("iterated")


def test_index_reads_texts_by_slices_only(zipf, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]

    docs, queries = zipf
    setconst(monkeypatch, "BUILD_CHUNK", 256)
    setconst(monkeypatch, "HASH_BLOCK", 100)
    lazy = _SlicesOnly(docs)
    r = BM25Retriever().index(lazy, cache_dir=tmp_path)
    assert lazy.biggest <= 256
    assert r.is_cached(lazy, tmp_path)
    ref = BM25Retriever().index(docs)
    assert np.array_equal(r.search(queries, 5).indices, ref.search(queries, 5).indices)


def test_loaded_index_is_memory_mapped(zipf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = BM25Retriever().index(zipf[0], cache_dir=tmp_path)
    again = BM25Retriever().index(zipf[0], cache_dir=tmp_path)
    for retriever in (r, again, BM25Retriever().index(zipf[0])):  # without a cache: mapped from removed files
        idx = retriever._idx
        for arr in (idx.indptr, idx.indices, idx.data, idx.vocab.hashes, idx.vocab.order, idx.vocab.blob):
            assert _mapped(arr)
        assert not _mapped(np.zeros(3))
    assert not r._idx.data.flags.writeable


def _mapped(arr: np.ndarray) -> bool:
    """Whether the array's memory is a memory map (``np.memmap``, or a view whose base chain reaches an mmap)."""
    import mmap

    while arr is not None:
        if isinstance(arr, (np.memmap, mmap.mmap)):
            return True
        arr = getattr(arr, "base", None)
    return False


def test_search_results_do_not_depend_on_batching(zipf, monkeypatch) -> None:  # type: ignore[no-untyped-def]

    docs, queries = zipf
    r = BM25Retriever(method="bm25l", threads=1).index(docs)
    ref = r.search(queries, 15)
    one_by_one = [r.search([q], 15) for q in queries]
    assert np.array_equal(np.concatenate([h.indices for h in one_by_one]), ref.indices)
    assert np.concatenate([h.scores for h in one_by_one]).tobytes() == ref.scores.tobytes()
    setconst(monkeypatch, "QUERY_CHUNK", 7)
    setconst(monkeypatch, "QUERY_TASK", 2)
    r.threads = 4
    order = np.random.default_rng(0).permutation(len(queries))
    shuffled = r.search([queries[i] for i in order], 15)
    assert shuffled.indices.tobytes() == ref.indices[order].tobytes()
    assert shuffled.scores.tobytes() == ref.scores[order].tobytes()
    tokens = r.search_tokens(r.tokenize(queries), 15)
    assert tokens.indices.tobytes() == ref.indices.tobytes() and tokens.scores.tobytes() == ref.scores.tobytes()


@pytest.mark.parametrize("method", BM25_METHODS)
def test_pair_scores_equal_the_full_scores(zipf, method: str) -> None:  # type: ignore[no-untyped-def]
    docs, queries = zipf
    r = BM25Retriever(method=method).index(docs)
    rng = np.random.default_rng(1)
    picks = [rng.choice(len(docs), size=30) for _ in queries]
    pairs = r.pair_scores_ids(r.term_ids(queries), picks)
    for q, d, got in zip(queries, picks, pairs):
        assert got.dtype == np.float32 and got.tobytes() == r.scores(q)[d].tobytes()
    # a document's own text as the query
    assert r.pair_scores([docs[3]], [[3, 4, 0]])[0].tobytes() == r.scores(docs[3])[[3, 4, 0]].tobytes()


def test_evidence_scorer_uses_pair_scores(zipf, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from negmine.rules.evidence import bm25_scorer

    docs, queries = zipf
    r = BM25Retriever().index(docs)
    expected = [r.scores(q)[[1, 2, 3, 500]] for q in queries[:5]]
    monkeypatch.setattr(BM25Retriever, "scores", lambda self, q: pytest.fail("built a corpus-sized vector"))
    score = bm25_scorer(r, queries)
    for i in range(5):
        assert score(i, np.array([1, 2, 3, 500])).tobytes() == expected[i].tobytes()


def test_vocabulary_lookup_survives_hash_collisions(zipf, monkeypatch) -> None:  # type: ignore[no-untyped-def]

    docs, queries = zipf
    ref = BM25Retriever().index(docs[:300]).search(queries, 10)
    # every token hashes to one of two values: lookups must confirm the token itself
    setconst(monkeypatch, "_token_hashes",
             lambda tokens: np.array([len(t) % 2 for t in tokens], dtype=np.uint64))
    hits = BM25Retriever().index(docs[:300]).search(queries, 10)
    assert np.array_equal(hits.indices, ref.indices)


def test_empty_corpus_and_unknown_terms(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = BM25Retriever().index([], cache_dir=tmp_path)
    assert r.n_docs == 0 and r.search(["apple"], 3).indices.tolist() == [[-1, -1, -1]]
    assert r.scores("apple").size == 0
    r = BM25Retriever(method="bm25+").index(["", "the of", "apple"])
    assert r.search(["apple", "pear", ""], 2).indices.tolist() == [[2, -1], [-1, -1], [-1, -1]]
    assert r.pair_scores(["pear"], [[0, 2]])[0].tolist() == [0.0, 0.0]


def test_corrupt_cached_index_is_rebuilt(zipf, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    docs, queries = zipf
    ref = BM25Retriever().index(docs, cache_dir=tmp_path).search(queries, 10)
    (folder,) = (tmp_path / "bm25").iterdir()
    data = folder / "data.npy"
    raw = bytearray(data.read_bytes())
    raw[-5] ^= 0xFF
    data.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="negmine"):
        hits = BM25Retriever().index(docs, cache_dir=tmp_path).search(queries, 10)
    assert any("corrupt" in rec.getMessage() for rec in caplog.records)
    assert np.array_equal(hits.indices, ref.indices) and np.array_equal(hits.scores, ref.scores)


def test_index_of_the_old_bm25s_layout_is_never_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """negmine 0.1 stored bm25s's own files under a key without the format: a new build, under a new key."""
    import json

    from negmine.storage.cache import cached_dir, digest_of, text_hashes

    docs = DOCS
    r = BM25Retriever()
    old_settings = {k: v for k, v in r.settings.items() if k != "format"}
    old_key = digest_of(json.dumps(old_settings, sort_keys=True), text_hashes(docs).tobytes())[:32]
    model = _bm25s_model("lucene", r.tokenize(docs))
    cached_dir(tmp_path, "bm25", old_key, lambda f: model.save(str(f), show_progress=False),
               {"settings": old_settings})
    assert r.cache_key(docs) != old_key and not r.is_cached(docs, tmp_path)
    r.index(docs, cache_dir=tmp_path)
    assert r.is_cached(docs, tmp_path)
    assert sorted(p.name for p in (tmp_path / "bm25").iterdir()) == sorted([old_key, r.cache_key(docs)])
    assert r.search(["apple"], 3).indices.tolist() == [[2, 0, -1]]


def test_cache_key_is_the_digest_of_settings_and_text_hashes(zipf) -> None:  # type: ignore[no-untyped-def]
    import json

    from negmine.storage.cache import digest_of, text_hashes

    r = BM25Retriever()
    docs = zipf[0]
    assert r.cache_key(docs) == digest_of(json.dumps(r.settings, sort_keys=True), text_hashes(docs).tobytes())[:32]


@pytest.mark.parametrize("method", BM25_METHODS)
@pytest.mark.parametrize("k", [1, 3, 10, 60])
def test_pruned_search_equals_exhaustive_search(zipf, monkeypatch, method: str, k: int) -> None:  # type: ignore[no-untyped-def]
    """Skipping the documents that cannot reach the top k changes nothing, ties included (byte for byte)."""

    setconst(monkeypatch, "PRUNE_MIN_POSTINGS", 0)
    docs, queries = zipf
    rng = np.random.default_rng(2)
    words = sorted({w for q in queries for w in q.split()})
    more = [" ".join(rng.choice(words, size=rng.integers(2, 12))) for _ in range(150)]
    more += [docs[11] + " " + docs[40], docs[7] * 2]  # long queries, repeated terms
    queries = queries + more
    r = BM25Retriever(method=method, threads=1).index(docs)
    pruned = r.search(queries, k)
    calls = []
    real = bm25_search.PostingsIndex._top_pruned

    def counting(self, *args):  # type: ignore[no-untyped-def]
        out = real(self, *args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(bm25_search.PostingsIndex, "_top_pruned", counting)
    r.search(queries, k)
    assert sum(calls) > len(queries) // 3  # pruning ran on many queries (the others had no term to skip)
    r._idx.prune = False
    full = r.search(queries, k)
    assert pruned.indices.tobytes() == full.indices.tobytes()
    assert pruned.scores.tobytes() == full.scores.tobytes()


@pytest.mark.parametrize("method", ["lucene", "robertson", "bm25+"])
def test_pruned_search_keeps_ties_at_the_kth_score(monkeypatch, method: str) -> None:  # type: ignore[no-untyped-def]

    setconst(monkeypatch, "PRUNE_MIN_POSTINGS", 0)
    rng = np.random.default_rng(5)
    docs = ["alpha beta"] * 300 + ["alpha"] * 200 + ["beta gamma"] * 50 + ["delta alpha beta"] * 30
    docs += [" ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "zeta"], size=3)) for _ in range(400)]
    docs = [docs[i] for i in rng.permutation(len(docs))]
    queries = ["alpha beta", "alpha beta gamma delta", "gamma delta", "omega alpha", "zeta zeta alpha"]
    r = BM25Retriever(method=method, stemmer="none", threads=1).index(docs)
    for k in (1, 10, 100, 400, 2000):
        pruned = r.search(queries, k)
        r._idx.prune = False
        full = r.search(queries, k)
        r._idx.prune = True
        assert pruned.indices.tobytes() == full.indices.tobytes(), k
        assert pruned.scores.tobytes() == full.scores.tobytes(), k


@pytest.mark.parametrize("method", ["lucene", "bm25l"])
def test_search_in_small_blocks_and_capped_pruning_changes_nothing(zipf, monkeypatch, method: str) -> None:  # type: ignore[no-untyped-def]

    docs, queries = zipf
    r = BM25Retriever(method=method, threads=1).index(docs)
    ref = r.search(queries, 25)
    r._idx.prune = False
    assert r.search(queries, 25).indices.tobytes() == ref.indices.tobytes()
    setconst(monkeypatch, "SCAN_BLOCK", 64)  # candidates ranked 64 documents at a time
    blocked = r.search(queries, 25)
    assert blocked.indices.tobytes() == ref.indices.tobytes() and blocked.scores.tobytes() == ref.scores.tobytes()
    r._idx.prune = True
    setconst(monkeypatch, "PRUNE_MIN_POSTINGS", 0)
    setconst(monkeypatch, "PRUNE_MAX_CANDIDATES", 60)  # most queries fall back to the exhaustive search
    capped = r.search(queries, 25)
    assert capped.indices.tobytes() == ref.indices.tobytes() and capped.scores.tobytes() == ref.scores.tobytes()
