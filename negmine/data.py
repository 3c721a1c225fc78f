"""Domain types: a corpus, a query set and relevance judgments, ids and texts held in memory.

Ids keep the type they had in the input (string or integer) for the output; lookups go through their string
form, so qrels with integer ids match a corpus with the same ids as strings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, TypeVar

from negmine.errors import InputError

T = TypeVar("T", bound="TextCollection")


@dataclass
class TextCollection:
    """Ids and texts, in input order. ``source`` names where they came from, for error messages."""

    ids: list[Any]
    texts: list[str]
    source: str = "<memory>"
    #: The texts without a joined title, when a title was joined (pairs are matched against both).
    bodies: Optional[list[str]] = field(default=None, repr=False)
    keys: list[str] = field(init=False, repr=False)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.texts):
            raise InputError(f"{self.source}: {len(self.ids)} ids but {len(self.texts)} texts")
        self.keys = [str(i) for i in self.ids]
        self.index = {}
        for row, key in enumerate(self.keys):
            first = self.index.setdefault(key, row)
            if first != row:
                raise InputError(f"{self.source}: row {row}: duplicate id {key!r} (first seen at row {first})")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def from_texts(cls: type[T], texts: Iterable[str], prefix: str, source: str = "<memory>") -> T:
        """A collection whose ids are derived from the texts (``prefix`` + 16 hex digits of their SHA-1)."""
        unique = list(dict.fromkeys(texts))
        return cls([text_id(prefix, t) for t in unique], unique, source)


class Corpus(TextCollection):
    """The documents negatives are drawn from."""


class Queries(TextCollection):
    """The queries (anchors) to mine negatives for."""


@dataclass
class Qrels:
    """Relevance judgments as parallel lists; rows with a score <= 0 are judged but not positives."""

    query_ids: list[Any]
    doc_ids: list[Any]
    scores: list[float]
    source: str = "<memory>"


@dataclass
class Positives:
    """The positives of each query, as corpus indices, after matching qrels to queries and corpus.

    Attributes:
        by_query: For query ``i``, the corpus indices of its positives in qrels order.
        nonpositive_rows: Qrels rows with a score <= 0.
        unknown_query_rows: Qrels rows naming a query that is not in the query set.
        unknown_doc_rows: Qrels rows naming a document that is not in the corpus.
        unknown_examples: A few of the unknown ids, for the warning.
    """

    by_query: list[list[int]]
    nonpositive_rows: int = 0
    unknown_query_rows: int = 0
    unknown_doc_rows: int = 0
    unknown_examples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.by_query)


def text_id(prefix: str, text: str) -> str:
    """A stable id derived from a text."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def match_positives(qrels: Qrels, queries: Queries, corpus: Corpus, strict: bool = False) -> Positives:
    """Map qrels rows to corpus indices per query.

    Raises:
        InputError: with ``strict``, on the first row naming an unknown query or document; and when no query
            has a positive at all.
    """
    by_query: list[list[int]] = [[] for _ in range(len(queries))]
    seen: list[set[int]] = [set() for _ in range(len(queries))]
    result = Positives(by_query)
    for row, (qid, did, score) in enumerate(zip(qrels.query_ids, qrels.doc_ids, qrels.scores)):
        if score is None or score <= 0:
            result.nonpositive_rows += 1
            continue
        q = queries.index.get(str(qid))
        d = corpus.index.get(str(did))
        if q is None or d is None:
            what, value, where = ("query", qid, queries.source) if q is None else ("document", did, corpus.source)
            if strict:
                raise InputError(
                    f"{qrels.source}: row {row}: {what} id {str(value)!r} is not in {where} "
                    "(drop --strict to skip such rows with a warning)"
                )
            if q is None:
                result.unknown_query_rows += 1
            else:
                result.unknown_doc_rows += 1
            if len(result.unknown_examples) < 3:
                result.unknown_examples.append(f"{what} {str(value)!r} (row {row})")
            continue
        if d not in seen[q]:
            seen[q].add(d)
            by_query[q].append(d)
    if result.count == 0:
        raise InputError(_nothing_matched(qrels, queries, corpus))
    return result


def _nothing_matched(qrels: Qrels, queries: Queries, corpus: Corpus) -> str:
    """Why no qrels row gave a positive: every score <= 0, or ids whose type or form differ from the inputs'."""
    rows = [i for i, s in enumerate(qrels.scores) if s is not None and s > 0]
    if not rows:
        return (f"{qrels.source}: every row has a score <= 0, so no document is a positive and there is nothing to "
                "mine (check --qrels-score-column)")

    def show(value: Any) -> str:
        return f"{value!r} ({type(value).__name__})"

    r = rows[0]
    return (f"{qrels.source}: no row names a known query and document with a score > 0, so there is nothing to "
            f"mine: the ids differ in type or form, e.g. row {r} names query {show(qrels.query_ids[r])} and document "
            f"{show(qrels.doc_ids[r])}, while the query ids look like {show(queries.ids[0])} and the corpus ids "
            f"like {show(corpus.ids[0])} (ids match by their text: 12 matches '12', not '012' or 'doc12')")


def pairs_to_inputs(
    anchors: Sequence[str], positives: Sequence[str], source: str, corpus: Corpus | None = None
) -> tuple[Queries, Corpus, Qrels]:
    """Turn (anchor, positive) text pairs into queries, a corpus and qrels.

    Ids are derived from the texts. Without ``corpus``, the corpus is the set of distinct positives; with one,
    a positive whose text equals a document's text (with or without its title) is that document, and other
    positives are added to it.
    """
    queries = Queries.from_texts(anchors, "q_", source)
    if corpus is None:
        corpus = Corpus.from_texts(positives, "d_", source)
        doc_key = {t: corpus.ids[i] for i, t in enumerate(corpus.texts)}
    else:
        doc_key = {}
        for texts in (corpus.texts, corpus.bodies or []):
            for i, t in enumerate(texts):
                doc_key.setdefault(t, corpus.ids[i])
        extra = [p for p in dict.fromkeys(positives) if p not in doc_key]
        if extra:
            ids = list(corpus.ids)
            if any(not isinstance(i, str) for i in ids):
                ids = [str(i) for i in ids]
            extra_ids = [text_id("d_", p) for p in extra]
            corpus = Corpus(ids + extra_ids, corpus.texts + extra, corpus.source)
            doc_key = {t: str(k) for t, k in doc_key.items()}
            doc_key.update(zip(extra, extra_ids))
    qrels = Qrels(
        [text_id("q_", a) for a in anchors], [doc_key[p] for p in positives], [1.0] * len(anchors), source
    )
    return queries, corpus, qrels
