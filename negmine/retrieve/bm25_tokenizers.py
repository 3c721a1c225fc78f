"""What BM25 takes for a token (``--bm25-tokenizer``), for languages with spaces and without.

- ``words``: bm25s's rules (lower case, words of 2+ characters, stopwords, Snowball stems). A run of Chinese,
  Japanese or Thai is one "word" to it, so two texts in those scripts rarely share a token.
- ``ngrams:N`` (``ngrams``: N = 2): character N-grams over each run of an unspaced script (Han, Hiragana,
  Katakana, Hangul, Thai, Lao, Khmer, Myanmar; a run shorter than N is one token), the ``words`` rules elsewhere, so
  mixed and code-switched text reads both ways.
- ``model``: the embedding model's own sub-word tokenizer (WordPiece, SentencePiece, byte-level BPE): any language
  the model reads. Special tokens and tokens without a letter or digit are left out, SentencePiece's and
  byte-level BPE's word-start markers removed (WordPiece's ``##`` continuation kept: a piece inside a word is not
  the word); no stopwords, no stemming.
- ``auto``: ``ngrams:2`` when at least ``UNSPACED_SHARE`` of the letters of a sample of the corpus (up to
  ``SAMPLE_TEXTS`` texts, evenly spaced, their first ``SAMPLE_CHARS`` characters) are in unspaced scripts, else
  ``words``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Optional, Sequence

from negmine.errors import ConfigError
from negmine.retrieve.bm25_tokens import Analyzer
from negmine.retrieve.encoders import default_model_path
from negmine.settings.config import NO_MODEL, check_bm25_tokenizer, ngram_length

#: The scripts written without spaces between words (and Hangul, whose words carry their particles).
UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]+")

#: ``auto``'s rule: the share of letters in unspaced scripts from which a corpus is read with n-grams.
UNSPACED_SHARE = 0.2
SAMPLE_TEXTS = 2000
SAMPLE_CHARS = 2000


#: Markers of a word's start in SentencePiece and byte-level BPE vocabularies.
_WORD_START = "\u2581\u0120"


def canonical(spec: str) -> str:
    """``ngrams`` as ``ngrams:2``; the others as they are (checked: a ConfigError names a wrong one)."""
    check_bm25_tokenizer(spec)
    n = ngram_length(spec)
    return f"ngrams:{n}" if n is not None else spec


def unspaced_share(texts: Sequence[str]) -> float:
    """The share of the letters of a sample of ``texts`` that are in unspaced scripts."""
    n = len(texts)
    step = max(1, n // SAMPLE_TEXTS)
    unspaced = letters = 0
    for i in range(0, n, step):
        text = str(texts[i])[:SAMPLE_CHARS]
        letters += sum(1 for ch in text if ch.isalpha())
        unspaced += sum(len(run) for run in UNSPACED.findall(text))
    return unspaced / letters if letters else 0.0


def resolve(spec: str, texts: Sequence[str]) -> tuple[str, float]:
    """The tokenizer ``spec`` stands for over a corpus (``auto`` decided from a sample of ``texts``), and the
    sample's share of unspaced letters (what ``auto`` read; 0 when it read nothing)."""
    spec = canonical(spec)
    if spec != "auto":
        return spec, 0.0
    share = unspaced_share(texts)
    return ("ngrams:2" if share >= UNSPACED_SHARE else "words"), share


class NgramAnalyzer(Analyzer):
    """Character n-grams over the runs of unspaced scripts, the ``words`` rules elsewhere."""

    def __init__(self, tokenizer: Any, n: int) -> None:
        super().__init__(tokenizer)
        self.n = n

    def words(self, text: str) -> list[str]:
        out: list[str] = []
        at = 0
        n = self.n
        for run in UNSPACED.finditer(text):
            if run.start() > at:
                out.extend(super().words(text[at : run.start()]))
            s = run.group()
            out.extend([s] if len(s) <= n else [s[i : i + n] for i in range(len(s) - n + 1)])
            at = run.end()
        if at < len(text):
            out.extend(super().words(text[at:]))
        return out

    def stem(self, word: str) -> str:
        return word if UNSPACED.match(word) else super().stem(word)


class ModelAnalyzer(Analyzer):
    """The tokens of a model's own tokenizer (a ``transformers`` tokenizer)."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer
        self.special = frozenset(hf_tokenizer.all_special_tokens)
        self.lower, self.stopwords, self.stemmer = False, frozenset(), None
        self._stems: dict[str, str] = {}

    def words(self, text: str) -> list[str]:
        out = []
        for token in self.hf.tokenize(text):
            if token in self.special:
                continue
            token = token.lstrip(_WORD_START)
            if any(ch.isalnum() for ch in token):
                out.append(token)
        return out

    def stem(self, word: str) -> str:
        return word

    def identity(self) -> str:
        """What names this tokenizer in an index's settings: a digest of its vocabulary."""
        vocab = json.dumps(sorted(self.hf.get_vocab().items()), ensure_ascii=False).encode("utf-8")
        return "model:" + hashlib.sha256(vocab).hexdigest()[:16]


def load_model_tokenizer(model: Optional[str]) -> Any:
    """The ``transformers`` tokenizer of an embedding model (a name or a folder; the embedded default for None)."""
    if model == NO_MODEL:
        raise ConfigError("--bm25-tokenizer model reads the embedding model's tokenizer: give --model (not none), "
                          "or use --bm25-tokenizer ngrams")
    from transformers import AutoTokenizer

    path = model or default_model_path()
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--bm25-tokenizer model: cannot load the tokenizer of {path}: {exc}") from None
