"""BM25 retrieval with bm25s: tokenize, index, retrieve, returning plain arrays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from negmine.cache import cached_dir, digest_of, text_hashes
from negmine.errors import ConfigError
from negmine.progress import Progress
from negmine.retrieve import Hits, topk

QUERY_CHUNK = 256


def make_tokenizer(stemmer: str = "english", stopwords: str = "en"):  # type: ignore[no-untyped-def]
    """A bm25s tokenizer: lower-cased words of 2+ characters, stopwords removed, Snowball-stemmed."""
    from bm25s.tokenization import Tokenizer

    stem = None
    if stemmer != "none":
        import Stemmer

        try:
            stem = Stemmer.Stemmer(stemmer)
        except KeyError as exc:
            langs = ", ".join(sorted(Stemmer.algorithms()))
            raise ConfigError(f"--bm25-stemmer: unknown language {stemmer!r}; use one of: none, {langs}") from exc
    try:
        return Tokenizer(stopwords=[] if stopwords == "none" else stopwords, stemmer=stem)
    except ValueError as exc:
        raise ConfigError(
            f"--bm25-stopwords: unknown stopword list {stopwords!r}; use en, de, fr, es, ... or none"
        ) from exc


class BM25Retriever:
    """A BM25 index over a corpus (bm25s), searched exactly.

    A document that shares no term with a query is never a candidate for it.
    """

    name = "bm25"

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, method: str = "lucene", stemmer: str = "english",
        stopwords: str = "en",
    ) -> None:
        import bm25s

        self.tokenizer = make_tokenizer(stemmer, stopwords)
        self.model = bm25s.BM25(k1=k1, b=b, method=method)
        self.settings = {"k1": k1, "b": b, "method": method, "stemmer": stemmer, "stopwords": stopwords,
                         "bm25s": _version("bm25s")}
        self.n_docs = 0
        self._mask: Optional[np.ndarray] = None
        self.lucene = method == "lucene"

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Texts as lists of tokens (what the index sees)."""
        tokens = self.tokenizer.tokenize(list(texts), return_as="string", show_progress=False, update_vocab=True)
        return [[t for t in doc if t] for doc in tokens]

    def cache_key(self, texts: Sequence[str]) -> str:
        """What the index of ``texts`` with these settings is stored under."""
        return digest_of(json.dumps(self.settings, sort_keys=True), text_hashes(texts).tobytes())[:32]

    def is_cached(self, texts: Sequence[str], cache_dir: Path) -> bool:
        """Whether ``cache_dir`` holds the index of ``texts`` with these settings."""
        return (Path(cache_dir) / "bm25" / self.cache_key(texts) / "manifest.json").is_file()

    def describe(self) -> str:
        """The settings, as a person reads them."""
        return describe_settings(self.settings)

    def index(self, texts: Sequence[str], progress: Optional[Progress] = None,
              cache_dir: Optional[Path] = None) -> "BM25Retriever":
        """Build the index over ``texts``; with ``cache_dir``, reuse (or store) the one built for the same texts
        and settings."""
        import bm25s

        progress = progress or Progress()
        self.n_docs = len(texts)
        if cache_dir is None:
            self._build(texts, progress)
            return self
        key = self.cache_key(texts)

        built_now = False

        def build(folder: Path) -> None:
            nonlocal built_now
            self._build(texts, progress)
            self.model.save(str(folder), show_progress=False)
            built_now = True

        folder = cached_dir(Path(cache_dir), "bm25", key, build, {"settings": self.settings})
        if not built_now:
            with progress.stage("BM25: loading cached index"):
                self.model = bm25s.BM25.load(str(folder), show_progress=False)
        return self

    def _build(self, texts: Sequence[str], progress: Progress) -> None:
        with progress.stage("BM25: tokenizing corpus", total=len(texts)) as advance:
            tokens = self.tokenize(texts)
            advance(len(texts))
        with progress.stage("BM25: indexing", total=None):
            self.model.index(tokens, show_progress=False, create_empty_token=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 scores of one query against every document."""
        ids = self.model.get_tokens_ids(self.tokenize([query])[0])
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)

    def matching(self, token_ids: Sequence[int]) -> np.ndarray:
        """Indices (ascending) of the documents that contain at least one of the (indexed) query tokens."""
        indices, indptr = self.model.scores["indices"], self.model.scores["indptr"]
        postings = [indices[indptr[t] : indptr[t + 1]] for t in set(token_ids)]
        total = sum(p.size for p in postings)
        if total * 8 < self.n_docs:  # few postings: sorting them beats scanning a corpus-sized mask
            return np.unique(np.concatenate(postings)).astype(np.int64) if postings else np.empty(0, np.int64)
        if self._mask is None or self._mask.size != self.n_docs:
            self._mask = np.zeros(self.n_docs, dtype=bool)
        for p in postings:
            self._mask[p] = True
        found = np.flatnonzero(self._mask)
        self._mask[found] = False
        return found

    def pair_scores(self, queries: Sequence[str], docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """BM25 scores of given documents (corpus indices) for each query."""
        return [self.scores(q)[np.asarray(d, dtype=np.int64)] for q, d in zip(queries, docs)]

    def search(self, queries: Sequence[str], k: int, progress: Optional[Progress] = None) -> Hits:
        """The top ``k`` documents of each query that share at least one term with it."""
        progress = progress or Progress()
        hits = Hits.empty(len(queries), k)
        with progress.stage("BM25: retrieving", total=len(queries)) as advance:
            for start in range(0, len(queries), QUERY_CHUNK):
                chunk = queries[start : start + QUERY_CHUNK]
                found = self.search_tokens(self.tokenize(chunk), k)
                hits.indices[start : start + len(chunk)] = found.indices
                hits.scores[start : start + len(chunk)] = found.scores
                advance(len(chunk))
        return hits

    def search_tokens(self, queries: Sequence[Sequence[str]], k: int) -> Hits:
        """``search`` for queries already tokenized (by ``tokenize``)."""
        hits = Hits.empty(len(queries), k)
        for row, tokens in enumerate(queries):
            ids = self.model.get_tokens_ids(list(tokens))
            if not ids:
                continue
            scores = np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)
            # ascending, so ties still go to the lower index; Lucene's idf is > 0, so there a document shares
            # a term exactly when it scores above 0 (a vectorised test instead of walking the postings)
            matching = np.flatnonzero(scores > 0) if self.lucene else self.matching(ids)
            idx, val = topk(scores[matching], k)
            hits.indices[row, : idx.size] = matching[idx]
            hits.scores[row, : idx.size] = val
        return hits


def describe_settings(settings: dict) -> str:
    return " ".join(f"{k}={settings[k]}" for k in ("method", "k1", "b", "stemmer", "stopwords") if k in settings)


def cached_settings(cache_dir: Path) -> list[str]:
    """The settings of every BM25 index stored in ``cache_dir``, described."""
    out = []
    for manifest in sorted((Path(cache_dir) / "bm25").glob("*/manifest.json")):
        try:
            out.append(describe_settings(json.loads(manifest.read_text(encoding="utf-8"))["settings"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
