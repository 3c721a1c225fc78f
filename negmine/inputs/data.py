"""Domain types: a corpus, a query set and relevance judgments, held as Arrow arrays (memory-mapped when they come
from negmine's input cache, so that a corpus of millions of documents costs no private memory).

Ids keep the type they had in the input (string or integer) for the output; lookups go through their string
form, so qrels with integer ids match a corpus with the same ids as strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar, Union, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negmine.errors import InputError
from negmine.inputs.formats import row_label

T = TypeVar("T", bound="TextCollection")

ArrayLike = Union[pa.Array, pa.ChunkedArray]

#: Items converted to Python objects at a time when a whole ArrowSequence is iterated.
ITER_CHUNK = 8192


def _chunked(values: Any, type: Optional[pa.DataType] = None) -> pa.ChunkedArray:
    if isinstance(values, pa.ChunkedArray):
        return values
    if isinstance(values, pa.Array):
        return pa.chunked_array([values])
    if isinstance(values, ArrowSequence):
        return values.array
    return pa.chunked_array([pa.array(list(values), type=type)], type=type)


def take_rows(array: ArrayLike, rows: Union[Sequence[int], np.ndarray]) -> pa.Array:
    """The values at ``rows`` as one array, taken chunk by chunk: Arrow's take on a chunked array concatenates the
    chunks first, which overflows a ``string`` array's 32-bit offsets once the texts pass 2 GiB (MS MARCO)."""
    array = _chunked(array)
    idx = np.asarray(rows, dtype=np.int64)
    chunks = array.chunks
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= len(array)):
        raise IndexError(f"row {int(idx.min()) if idx.min() < 0 else int(idx.max())} out of {len(array)}")
    if len(chunks) == 1:
        return chunks[0].take(pa.array(idx))
    if idx.size == 0 or not chunks:
        return pa.array([], type=array.type)
    starts = np.cumsum([0] + [len(c) for c in chunks])
    which = np.searchsorted(starts, idx, side="right") - 1
    order = np.argsort(which, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(which[order])) + 1)
    taken = pa.concat_arrays([chunks[int(which[g[0]])].take(pa.array(idx[g] - starts[which[g[0]]])) for g in groups])
    back = np.empty(idx.size, dtype=np.int64)
    back[order] = np.arange(idx.size)
    return taken.take(pa.array(back))


class ArrowSequence(SequenceABC):
    """A read-only sequence of Python values over an Arrow array (possibly memory-mapped): items are converted
    only when asked for, a slice or ``take`` at a time."""

    def __init__(self, array: ArrayLike) -> None:
        self.array = _chunked(array)

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, i: int) -> Any: ...

    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...

    def __getitem__(self, i: Union[int, slice]) -> Any:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step))
            return self.array.slice(start, max(0, stop - start)).to_pylist()
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self.array[int(i)].as_py()

    def take(self, indices: Union[Sequence[int], np.ndarray]) -> list[Any]:
        """The values at ``indices``, as a list."""
        return take_rows(self.array, indices).to_pylist()

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, len(self), ITER_CHUNK):
            yield from self[start : start + ITER_CHUNK]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ArrowSequence):
            return self.array.equals(other.array)
        if isinstance(other, SequenceABC) and not isinstance(other, str):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(v) for v in self[:3])
        return f"ArrowSequence([{head}{', ...' if len(self) > 3 else ''}], len={len(self)})"


def string_keys(array: ArrayLike) -> pa.ChunkedArray:
    """Ids in their string form (what lookups compare)."""
    chunked = _chunked(array)
    if pa.types.is_string(chunked.type):
        return chunked
    return pc.cast(chunked, pa.string())


def first_duplicate(keys: pa.ChunkedArray) -> Optional[tuple[int, int]]:
    """(row, the row it repeats) of the first row, in input order, whose key appeared before; ``None`` if none."""
    if len(keys) == 0 or pc.count_distinct(keys).as_py() == len(keys):
        return None
    order = np.asarray(pc.sort_indices(keys))  # stable: equal keys keep their input order
    ordered = keys.take(pa.array(order))
    same = np.asarray(pc.equal(ordered.slice(1), ordered.slice(0, len(keys) - 1)).to_numpy(zero_copy_only=False),
                      dtype=bool)
    positions = np.flatnonzero(same) + 1  # sorted positions of rows whose key the previous row has
    p = int(positions[np.argmin(order[positions])])
    while p > 0 and same[p - 1]:  # back to the start of the run: the key's first row
        p -= 1
    return int(order[positions[np.argmin(order[positions])]]), int(order[p])


class TextCollection:
    """Ids and texts, in input order, as Arrow arrays. ``source`` names where they came from, for error messages.

    Args:
        ids: Ids (strings or integers): a list, or an Arrow array.
        texts: Texts, likewise.
        source: Where they came from, for messages.
        bodies: The texts without a joined title, when a title was joined (pairs are matched against both).
        where: How messages name a row (``row N``; a text file's reader names its line, ``line N``).
    """

    def __init__(self, ids: Any, texts: Any, source: str = "<memory>", bodies: Any = None,
                 where: Callable[[int], str] = row_label) -> None:
        try:
            id_array = _chunked(ids)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):  # a mix of ints and strings: strings
            id_array = _chunked([str(i) for i in ids], pa.string())
        self.source = source
        self.where = where
        self.id_array = id_array
        self.text_array = _chunked(texts, pa.string())
        self.body_array = _chunked(bodies, pa.string()) if bodies is not None else None
        if len(self.id_array) != len(self.text_array):
            raise InputError(f"{source}: {len(self.id_array)} ids but {len(self.text_array)} texts")
        self._keys: Optional[pa.ChunkedArray] = None
        duplicate = first_duplicate(self.key_array)
        if duplicate is not None:
            row, first = duplicate
            raise InputError(f"{source}: {where(row)}: duplicate id {self.key_array[row].as_py()!r} "
                             f"(first seen at {where(first)})")

    def __len__(self) -> int:
        return len(self.text_array)

    @property
    def ids(self) -> ArrowSequence:
        return ArrowSequence(self.id_array)

    @property
    def texts(self) -> ArrowSequence:
        return ArrowSequence(self.text_array)

    @property
    def bodies(self) -> Optional[ArrowSequence]:
        return ArrowSequence(self.body_array) if self.body_array is not None else None

    @property
    def key_array(self) -> pa.ChunkedArray:
        """The ids in their string form."""
        if self._keys is None:
            self._keys = string_keys(self.id_array)
        return self._keys

    @property
    def keys(self) -> list[str]:
        """The ids' string forms, as a list (small collections; ``rows_of`` is the way to look up many)."""
        return self.key_array.to_pylist()

    @property
    def index(self) -> dict[str, int]:
        """String id -> row (small collections; ``rows_of`` is the way to look up many)."""
        return {k: r for r, k in enumerate(self.keys)}

    def rows_of(self, ids: Any) -> np.ndarray:
        """The row of each id (matched by string form), -1 where the collection has no such id."""
        wanted = string_keys(_chunked(ids))
        rows = pc.fill_null(pc.index_in(wanted, value_set=self.key_array.combine_chunks()), -1)
        return np.asarray(rows.to_numpy(zero_copy_only=False), dtype=np.int64)

    @classmethod
    def from_texts(cls: type[T], texts: Iterable[str], prefix: str, source: str = "<memory>") -> T:
        """A collection whose ids are derived from the texts (``prefix`` + 16 hex digits of their SHA-1)."""
        unique = list(dict.fromkeys(texts))
        return cls([text_id(prefix, t) for t in unique], unique, source)


class Corpus(TextCollection):
    """The documents negatives are drawn from."""


class Queries(TextCollection):
    """The queries (anchors) to mine negatives for."""


class Qrels:
    """Relevance judgments as parallel arrays; rows with a score <= 0 are judged but not positives. ``where`` names
    a row in messages (``row N``, or a text file's ``line N``)."""

    def __init__(self, query_ids: Any, doc_ids: Any, scores: Any, source: str = "<memory>",
                 where: Callable[[int], str] = row_label) -> None:
        self.query_id_array = _chunked(query_ids)
        self.doc_id_array = _chunked(doc_ids)
        self.score_array = np.asarray(scores.to_numpy(zero_copy_only=False) if isinstance(
            scores, (pa.Array, pa.ChunkedArray)) else list(scores), dtype=np.float64)
        self.source = source
        self.where = where

    def __len__(self) -> int:
        return len(self.score_array)

    @property
    def query_ids(self) -> ArrowSequence:
        return ArrowSequence(self.query_id_array)

    @property
    def doc_ids(self) -> ArrowSequence:
        return ArrowSequence(self.doc_id_array)

    @property
    def scores(self) -> list[float]:
        return self.score_array.tolist()


@dataclass
class Positives:
    """The positives of each query, as corpus rows, after matching qrels to queries and corpus: compressed rows
    (``docs[indptr[q] : indptr[q + 1]]`` are query ``q``'s, in qrels order).

    Attributes:
        indptr: ``(n_queries + 1,)`` offsets into ``docs``.
        docs: Corpus rows of the positives.
        nonpositive_rows: Qrels rows with a score <= 0.
        unknown_query_rows: Qrels rows naming a query that is not in the query set.
        unknown_doc_rows: Qrels rows naming a document that is not in the corpus.
        unknown_examples: A few of the unknown ids, for the warning.
    """

    indptr: np.ndarray
    docs: np.ndarray
    nonpositive_rows: int = 0
    unknown_query_rows: int = 0
    unknown_doc_rows: int = 0
    unknown_examples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return int(self.docs.size)

    def of(self, q: int) -> np.ndarray:
        """Query ``q``'s positives (corpus rows)."""
        return self.docs[self.indptr[q] : self.indptr[q + 1]]

    def counts(self) -> np.ndarray:
        """The number of positives of each query."""
        return np.diff(self.indptr)

    @property
    def by_query(self) -> list[list[int]]:
        """Every query's positives as lists (small runs and tests)."""
        return [self.of(q).tolist() for q in range(len(self.indptr) - 1)]

    def without(self, queries: Sequence[int]) -> "Positives":
        """A copy in which ``queries`` have no positives (they will not be mined)."""
        keep = np.ones(self.docs.size, dtype=bool)
        for q in queries:
            keep[self.indptr[q] : self.indptr[q + 1]] = False
        counts = self.counts()
        counts[np.asarray(queries, dtype=np.int64)] = 0
        return Positives(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), self.docs[keep],
                         self.nonpositive_rows, self.unknown_query_rows, self.unknown_doc_rows,
                         self.unknown_examples)


def text_id(prefix: str, text: str) -> str:
    """A stable id derived from a text."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def match_positives(qrels: Qrels, queries: Queries, corpus: Corpus, strict: bool = False) -> Positives:
    """Map qrels rows to corpus rows per query (qrels order; a document named twice for a query counts once).

    Raises:
        InputError: with ``strict``, on the first row naming an unknown query or document; and when no query
            has a positive at all.
    """
    scores = qrels.score_array
    positive = ~np.isnan(scores) & (scores > 0)
    q_rows = np.full(len(qrels), -1, dtype=np.int64)
    d_rows = np.full(len(qrels), -1, dtype=np.int64)
    where = np.flatnonzero(positive)
    if where.size:
        take = pa.array(where)
        q_rows[where] = queries.rows_of(qrels.query_id_array.take(take))
        d_rows[where] = corpus.rows_of(qrels.doc_id_array.take(take))
    unknown_q = positive & (q_rows < 0)
    unknown_d = positive & (q_rows >= 0) & (d_rows < 0)
    result = Positives(np.zeros(len(queries) + 1, dtype=np.int64), np.empty(0, dtype=np.int64),
                       nonpositive_rows=int((~positive).sum()), unknown_query_rows=int(unknown_q.sum()),
                       unknown_doc_rows=int(unknown_d.sum()))
    bad = np.flatnonzero(unknown_q | unknown_d)
    for row in bad[:3]:
        if unknown_q[row]:
            what, value, source = "query", qrels.query_id_array[int(row)].as_py(), queries.source
        else:
            what, value, source = "document", qrels.doc_id_array[int(row)].as_py(), corpus.source
        if strict:
            raise InputError(f"{qrels.source}: {qrels.where(int(row))}: {what} id {str(value)!r} is not in {source} "
                             "(drop --strict to skip such rows with a warning)")
        result.unknown_examples.append(f"{what} {str(value)!r} ({qrels.where(int(row))})")
    valid = np.flatnonzero(positive & (q_rows >= 0) & (d_rows >= 0))
    pairs = q_rows[valid] * max(len(corpus), 1) + d_rows[valid]
    _, first = np.unique(pairs, return_index=True)  # each (query, document) once: its first qrels row
    kept = valid[np.sort(first)]
    order = kept[np.argsort(q_rows[kept], kind="stable")]  # by query, qrels order within
    result.docs = d_rows[order]
    result.indptr = np.concatenate([[0], np.cumsum(np.bincount(q_rows[order], minlength=len(queries)))]).astype(
        np.int64)
    if result.count == 0:
        raise InputError(_nothing_matched(qrels, queries, corpus))
    return result


def _nothing_matched(qrels: Qrels, queries: Queries, corpus: Corpus) -> str:
    """Why no qrels row gave a positive: every score <= 0, or ids whose type or form differ from the inputs'."""
    rows = np.flatnonzero(qrels.score_array > 0)
    if not rows.size:
        return (f"{qrels.source}: every row has a score <= 0, so no document is a positive and there is nothing to "
                "mine (check --qrels-score-column)")

    def show(value: Any) -> str:
        return f"{value!r} ({type(value).__name__})"

    r = int(rows[0])
    return (f"{qrels.source}: no row names a known query and document with a score > 0, so there is nothing to "
            f"mine: the ids differ in type or form, e.g. {qrels.where(r)} names query {show(qrels.query_ids[r])} "
            f"and document {show(qrels.doc_ids[r])}, while the query ids look like {show(queries.ids[0])} and the "
            f"corpus ids like {show(corpus.ids[0])} (ids match by their text: 12 matches '12', not '012' or 'doc12')")


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
        doc_key = dict(zip(corpus.texts, corpus.ids))
    else:
        doc_key = {}
        ids = list(corpus.ids)
        for texts in (corpus.texts, corpus.bodies):
            for i, t in enumerate(texts or []):
                doc_key.setdefault(t, ids[i])
        extra = [p for p in dict.fromkeys(positives) if p not in doc_key]
        if extra:
            ids = list(corpus.ids)
            if any(not isinstance(i, str) for i in ids):
                ids = [str(i) for i in ids]
            extra_ids = [text_id("d_", p) for p in extra]
            corpus = Corpus(ids + extra_ids, list(corpus.texts) + extra, corpus.source)
            doc_key = {t: str(k) for t, k in doc_key.items()}
            doc_key.update(zip(extra, extra_ids))
    qrels = Qrels(
        [text_id("q_", a) for a in anchors], [doc_key[p] for p in positives], [1.0] * len(anchors), source
    )
    return queries, corpus, qrels
