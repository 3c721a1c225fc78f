"""BM25 retrieval at corpus scale: bm25s's tokenizer rules and scoring functions, an index built in bounded memory,
stored as memory-mapped ``.npy`` files and searched on all cores.

The index is a term-major sparse matrix of precomputed BM25 term scores (CSC over documents x terms, as bm25s
stores it): for term ``t``, ``indices[indptr[t]:indptr[t + 1]]`` are the documents containing it (ascending) and
``data[...]`` their score for it. A query's score of a document is the float32 sum, in query-token order, of the
document's scores for the query's tokens (plus, for BM25L and BM25+, the query's non-occurrence constant): the sum
bm25s computes, so scores equal bm25s's in-memory index bit for bit.

Building takes two passes over the texts in chunks of ``BUILD_CHUNK`` documents:

1. tokenise each chunk into term ids (the vocabulary grows as new stems appear), reduce it to term-major
   (term, document, term frequency) triples written to temporary ``.npy`` files, and add up the document
   frequencies and lengths;
2. compute idf (and the non-occurrence array) with bm25s's own functions, then score each chunk's triples and
   write them to their place in ``data`` / ``indices``, which are memory maps of the final files.

Memory stays proportional to a chunk and to the vocabulary, never to the corpus. See docs/scale.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError
from negmine.progress import Progress
from negmine.retrieve.base import Hits
from negmine.retrieve.bm25_build import INDEX_FORMAT, _Params, build_index
from negmine.retrieve.bm25_search import PostingsIndex
from negmine.retrieve.bm25_tokenizers import (
    ModelAnalyzer,
    NgramAnalyzer,
    canonical,
    load_model_tokenizer,
)
from negmine.retrieve.bm25_tokens import Analyzer, make_tokenizer
from negmine.settings.config import ngram_length
from negmine.storage.cache import cached_dir, text_hashes

#: Queries tokenised at a time before they are scored on the threads.
QUERY_CHUNK = 1024

#: Queries one thread scores per task.
QUERY_TASK = 16

#: Texts hashed at a time for the cache key.
HASH_BLOCK = 65536


class BM25Retriever:
    """A BM25 index over a corpus (bm25s's tokenizer and scores), built in bounded memory, memory-mapped and
    searched exactly on all cores.

    A document that shares no term with a query is never a candidate for it.

    Args:
        k1: Term-frequency saturation.
        b: Length normalisation.
        method: BM25 variant, as bm25s names them (lucene, robertson, atire, bm25l, bm25+).
        stemmer: Snowball stemmer language, or ``"none"``.
        stopwords: Stopword list (bm25s's names), or ``"none"``.
        threads: Threads that score queries (default: the CPUs this process may use).
        tokenizer: ``words``, ``ngrams:N`` or ``model`` (``negmine.retrieve.bm25_tokenizers``; ``auto`` is
            decided over a corpus by ``negmine.retrieve.build.make_bm25``).
        model: With ``tokenizer="model"``: the embedding model whose tokenizer BM25 reads (default: the embedded
            one).
    """

    name = "bm25"

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, method: str = "lucene", stemmer: str = "english",
        stopwords: str = "en", threads: Optional[int] = None, tokenizer: str = "words", model: Optional[str] = None,
    ) -> None:
        from bm25s.scoring import _select_idf_scorer

        try:
            _select_idf_scorer(method)
        except ValueError as exc:
            raise ConfigError(f"--bm25-method: unknown variant {method!r}; use lucene, robertson, atire, bm25l or "
                              "bm25+") from exc
        self.tokenizer = make_tokenizer(stemmer, stopwords)
        self.tokenizer_spec = canonical(tokenizer)
        self.analyzer = _analyzer(self.tokenizer, self.tokenizer_spec, model)
        self.params = _Params(k1, b, method)
        self.settings = {"k1": k1, "b": b, "method": method, "stemmer": stemmer, "stopwords": stopwords,
                         "bm25s": _version("bm25s"), "format": INDEX_FORMAT}
        if self.tokenizer_spec != "words":  # the indexes of words keep the key they had before tokenizers
            self.settings["tokenizer"] = (self.analyzer.identity() if isinstance(self.analyzer, ModelAnalyzer)
                                          else self.tokenizer_spec)
        self.threads = max(1, threads or _cpus())
        self.unspaced_share = 0.0  # what --bm25-tokenizer auto read of the corpus (make_bm25)
        self.n_docs = 0
        self._index: Optional[PostingsIndex] = None
        self._build_into: Optional[Path] = None
        self._local = threading.local()

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Texts as lists of tokens (what the index sees)."""
        return [self.analyzer.tokens(t) for t in texts]

    def cache_key(self, texts: Sequence[str]) -> str:
        """What the index of ``texts`` with these settings is stored under."""
        h = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode("utf-8"))
        for start in range(0, len(texts), HASH_BLOCK):  # digest_of(settings, text_hashes(texts)), block by block
            h.update(text_hashes(texts[start : start + HASH_BLOCK]).tobytes())
        return h.hexdigest()[:32]

    def is_cached(self, texts: Sequence[str], cache_dir: Path) -> bool:
        """Whether ``cache_dir`` holds the index of ``texts`` with these settings."""
        return (Path(cache_dir) / "bm25" / self.cache_key(texts) / "manifest.json").is_file()

    def describe(self) -> str:
        """The settings, as a person reads them."""
        return describe_settings(self.settings)

    def index(self, texts: Sequence[str], progress: Optional[Progress] = None,
              cache_dir: Optional[Path] = None) -> "BM25Retriever":
        """Build the index over ``texts`` (read by ``len`` and slices only); with ``cache_dir``, reuse (or store)
        the one built for the same texts and settings. The index is memory-mapped from its files."""
        progress = progress or Progress()
        self.n_docs = len(texts)
        if cache_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="negmine-bm25-"))
            try:
                self._build_into = tmp
                self._build(texts, progress)
                self._open(tmp)
            finally:  # the memory maps keep the files' contents
                shutil.rmtree(tmp, ignore_errors=True)
            return self
        built_now = False

        def build(folder: Path) -> None:
            nonlocal built_now
            self._build_into = folder
            self._build(texts, progress)
            built_now = True

        folder = cached_dir(Path(cache_dir), "bm25", self.cache_key(texts), build, {"settings": self.settings},
                            what=f"BM25 index of this corpus with these settings ({self.describe()})")
        if built_now:
            self._open(folder)
        else:
            with progress.stage("BM25: loading cached index"):
                self._open(folder)
        return self

    def _build(self, texts: Sequence[str], progress: Progress) -> None:
        assert self._build_into is not None
        build_index(texts, self._build_into, self.params, self.analyzer, progress)

    def _open(self, folder: Path) -> None:
        self._index = PostingsIndex(folder)
        self.n_docs = self._index.n_docs

    @property
    def _idx(self) -> PostingsIndex:
        if self._index is None:
            raise RuntimeError("BM25Retriever: call index() first")
        return self._index

    def term_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's indexed term ids, in order (repeats kept, tokens outside the vocabulary dropped)."""
        return self._ids_of_tokens([self.analyzer.tokens(t) for t in texts])

    def _ids_of_tokens(self, token_lists: Sequence[Sequence[str]]) -> list[np.ndarray]:
        distinct = list(dict.fromkeys(chain.from_iterable(token_lists)))
        found = self._idx.vocab.lookup(distinct)
        of = dict(zip(distinct, found.tolist()))
        out = []
        for tokens in token_lists:
            ids = np.fromiter((of[t] for t in tokens), dtype=np.int64, count=len(tokens))
            out.append(ids[ids >= 0])
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 scores of one query against every document (an ``n_docs``-long vector: for small corpora; use
        ``pair_scores`` for a few documents)."""
        return self._idx.scores(self.term_ids([query])[0])

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """BM25 scores of given documents (corpus indices) for each query."""
        return self.pair_scores_ids(self.term_ids(queries), docs)

    def pair_scores_ids(self, term_ids: Sequence[np.ndarray], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``pair_scores`` for queries given as term ids (``term_ids``): per query, a binary search of each
        document in each term's postings, O(terms x documents x log(postings)); no corpus-sized vector."""
        return [self._idx.pair_scores(np.asarray(ids, dtype=np.int64), np.asarray(d, dtype=np.int64))
                for ids, d in zip(term_ids, docs)]

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> Hits:
        """The top ``k`` documents of each query that share at least one term with it (ties to the lower index)."""
        progress = progress or Progress()
        hits = Hits.empty(len(queries), k)
        with progress.stage("BM25: retrieving", total=len(queries)) as advance, self._pool() as pool:
            for start in range(0, len(queries), QUERY_CHUNK):
                chunk = list(queries[start : start + QUERY_CHUNK])
                self._search_ids(self.term_ids(chunk), k, hits, start, pool)
                advance(len(chunk))
        return hits

    def search_tokens(self, queries: Sequence[Sequence[str]], k: int) -> Hits:
        """``search`` for queries already tokenized (by ``tokenize``)."""
        hits = Hits.empty(len(queries), k)
        with self._pool() as pool:
            for start in range(0, len(queries), QUERY_CHUNK):
                chunk = queries[start : start + QUERY_CHUNK]
                self._search_ids(self._ids_of_tokens(chunk), k, hits, start, pool)
        return hits

    def search_ids(self, term_ids: Sequence[np.ndarray], k: int) -> Hits:
        """``search`` for queries given as term ids (``term_ids``)."""
        hits = Hits.empty(len(term_ids), k)
        with self._pool() as pool:
            self._search_ids([np.asarray(i, dtype=np.int64) for i in term_ids], k, hits, 0, pool)
        return hits

    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.threads, thread_name_prefix="negmine-bm25")

    def _search_ids(self, ids: list[np.ndarray], k: int, hits: Hits, offset: int, pool: ThreadPoolExecutor) -> None:
        """Fill rows ``offset ..`` of ``hits``: tasks of ``QUERY_TASK`` queries on the threads, each query scored
        alone (its result does not depend on the other queries, nor on the batching)."""
        index = self._idx

        def run(first: int) -> None:
            local = self._local
            if getattr(local, "acc", None) is None or local.acc.size != index.n_docs:
                local.acc = np.zeros(index.n_docs, dtype=np.float32)
                local.mask = np.zeros(index.n_docs, dtype=bool)
            for row in range(first, min(first + QUERY_TASK, len(ids))):
                idx, val = index.top(ids[row], k, local.acc, local.mask)
                hits.indices[offset + row, : idx.size] = idx
                hits.scores[offset + row, : idx.size] = val

        for _ in pool.map(run, range(0, len(ids), QUERY_TASK)):
            pass


def _analyzer(tokenizer: Any, spec: str, model: Optional[str]) -> Analyzer:
    """The analyzer of a tokenizer spec (``words``, ``ngrams:N``, ``model``)."""
    if spec == "auto":
        raise ValueError("--bm25-tokenizer auto is decided over a corpus: negmine.retrieve.build.make_bm25")
    if spec == "model":
        return ModelAnalyzer(load_model_tokenizer(model))
    n = ngram_length(spec)
    return Analyzer(tokenizer) if n is None else NgramAnalyzer(tokenizer, n)


def describe_settings(settings: dict) -> str:
    return " ".join(f"{k}={settings[k]}" for k in ("method", "k1", "b", "stemmer", "stopwords", "tokenizer")
                    if k in settings)


def cached_settings(cache_dir: Path) -> list[str]:
    """The settings of every BM25 index stored in ``cache_dir``, described."""
    out = []
    for manifest in sorted((Path(cache_dir) / "bm25").glob("*/manifest.json")):
        try:
            out.append(describe_settings(json.loads(manifest.read_text(encoding="utf-8"))["settings"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _version(package: str) -> str:
    return version(package)
