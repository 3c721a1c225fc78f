"""BM25's analysis of a text into tokens (lower case, words, stopwords, Snowball stems; each word analysed
once per process), and the vocabulary of an index: its tokens' digests, sorted, memory-mapped."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError

#: Surface words whose stem (or term id) is remembered; the cache is emptied when it grows past this.
WORD_CACHE = 1 << 18


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


class Analyzer:
    """The rules of a bm25s ``Tokenizer`` (lower-case, its splitter, its stopwords, its stemmer), applied with
    bounded memory: the tokenizer remembers every word it has seen (three dicts), this remembers at most
    ``WORD_CACHE`` words. It yields the tokens bm25s's ``tokenize(..., return_as="string")`` yields, without its
    empty token."""

    def __init__(self, tokenizer: Any) -> None:
        self.lower: bool = tokenizer.lower
        self.split: Callable[[str], list[str]] = tokenizer.splitter
        self.stopwords = frozenset(tokenizer.stopwords or ())
        self.stemmer: Optional[Callable[[str], str]] = tokenizer.stemmer
        self._stems: dict[str, str] = {}

    def words(self, text: str) -> list[str]:
        """The words of ``text`` before stopwords and stemming."""
        return self.split(text.lower() if self.lower else text)

    def stem(self, word: str) -> str:
        """The token of one word: its stem, or ``""`` for a stopword."""
        if word in self.stopwords:
            return ""
        return self.stemmer(word) if self.stemmer is not None else word

    def tokens(self, text: str) -> list[str]:
        """The tokens of one text, in order."""
        cache = self._stems
        out = []
        for w in self.words(text):
            s = cache.get(w)
            if s is None:
                if len(cache) >= WORD_CACHE:
                    cache.clear()
                s = cache[w] = self.stem(w)
            if s:
                out.append(s)
        return out


class _TermIds:
    """Texts to term ids while a corpus is indexed: the vocabulary grows in order of first appearance."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.ids: dict[str, int] = {}  # token -> term id
        self.tokens: list[str] = []  # term id -> token
        self._words: dict[str, int] = {}  # surface word -> term id, -1 for none (bounded cache)

    def _learn(self, word: str) -> int:
        token = self.analyzer.stem(word)
        if not token:
            tid = -1
        else:
            tid = self.ids.setdefault(token, len(self.tokens))
            if tid == len(self.tokens):
                self.tokens.append(token)
        self._words[word] = tid
        return tid

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(term ids of all texts, concatenated, int32; each text's token count, int64)."""
        if len(self._words) > WORD_CACHE:
            self._words.clear()
        words = [self.analyzer.words(t) for t in texts]
        flat = list(chain.from_iterable(words))
        ids = np.fromiter(map(self._words.get, flat, repeat(-2)), dtype=np.int64, count=len(flat))
        for j in np.flatnonzero(ids == -2).tolist():
            w = flat[j]
            known = self._words.get(w)
            ids[j] = known if known is not None else self._learn(w)
        keep = ids >= 0
        doc = np.repeat(np.arange(len(words)), [len(w) for w in words])
        lengths = np.bincount(doc[keep], minlength=len(words)).astype(np.int64)
        return ids[keep].astype(np.int32), lengths


def _token_hashes(tokens: Sequence[str]) -> np.ndarray:
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little") for t in tokens),
        dtype=np.uint64, count=len(tokens))


def _load(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped (a plain ndarray view of the map: slicing a ``np.memmap``
    costs microseconds of Python per slice)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _unique_sorted(parts: list[np.ndarray]) -> np.ndarray:
    """The distinct values of ``parts``, ascending (by sorting: numpy's hash-based ``unique`` is slower here)."""
    a = np.concatenate(parts).astype(np.int64)
    a.sort()
    if a.size:
        a = a[np.concatenate([[True], a[1:] != a[:-1]])]
    return a


@dataclass
class Vocabulary:
    """Token -> term id, stored as files and memory-mapped (no dict in memory).

    Attributes:
        hashes: 64-bit BLAKE2b of each token, ascending.
        order: The term id of each entry of ``hashes``.
        offsets: ``blob[offsets[t]:offsets[t + 1]]`` is term ``t``'s token (UTF-8), to confirm a hash match.
        blob: The tokens, concatenated in term-id order.
    """

    hashes: np.ndarray
    order: np.ndarray
    offsets: np.ndarray
    blob: np.ndarray

    FILES = ("vocab.hashes.npy", "vocab.order.npy", "vocab.offsets.npy", "vocab.blob.npy")

    @staticmethod
    def write(folder: Path, tokens: Sequence[str]) -> None:
        encoded = [t.encode("utf-8") for t in tokens]
        hashes = _token_hashes(tokens)
        order = np.argsort(hashes, kind="stable")
        offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays: list[np.ndarray] = [hashes[order], order.astype(np.int32), offsets, blob]
        for name, arr in zip(Vocabulary.FILES, arrays):
            np.save(folder / name, arr)

    @classmethod
    def load(cls, folder: Path) -> "Vocabulary":
        return cls(*(_load(folder / name) for name in cls.FILES))

    def __len__(self) -> int:
        return int(self.order.size)

    def lookup(self, tokens: Sequence[str]) -> np.ndarray:
        """The term id of each token (-1 where it is not in the vocabulary)."""
        out = np.full(len(tokens), -1, dtype=np.int64)
        if not len(tokens) or not len(self):
            return out
        h = _token_hashes(tokens)
        pos = np.searchsorted(self.hashes, h)
        for j in np.flatnonzero(pos < self.hashes.size).tolist():
            p, want = int(pos[j]), tokens[j].encode("utf-8")
            while p < self.hashes.size and self.hashes[p] == h[j]:
                t = int(self.order[p])
                if self.blob[self.offsets[t] : self.offsets[t + 1]].tobytes() == want:
                    out[j] = t
                    break
                p += 1
        return out
