"""Batches that teach: NGAME-style composition of training rows into batches of B.

With MultipleNegativesRankingLoss every other row of a batch is a negative for each anchor, so the batch holds
most of the negatives an anchor sees. Random batches make those easy, and nothing stops a batch from holding a
document that is a known positive of another row's query: an in-batch false negative. ``compose_batches``:

- **hard**: rows whose anchors are near in the bi-encoder's space share a batch. A two-level spherical k-means
  over the anchors' vectors (about sqrt(n / B) coarse clusters, then about B rows per fine cluster inside each;
  seeded, vectors compared in chunks, so memory grows with n, not n x clusters) orders the rows, and batches are
  filled along that order;
- **clean**: a row joins a batch only if none of its documents (positive and mined negatives) is a known positive
  of another row's query there, none of its own known positives is among the other rows' documents, no other row
  has the same query (one's positive would be the other's false negative) and no other row has the same positive
  (compared by ``positive_keys``: normalised texts, when given); with the positives' vectors, the
  positive-proximity rule guards the in-batch pairs as it guards mined negatives (a row whose positive is nearer
  another row's positive than that row's query is stays out of its batch; with the negatives' vectors, the other
  rows' mined negatives too). A row that conflicts waits and joins the first later batch where it fits; the
  composition counts the rows moved and why; rows that fit no full batch under every rule go, last, where the
  proximity rule finds the fewest near documents (``relaxed``);
- every batch has exactly B rows, but for the last ones when the rows left cannot be placed together (``short``);
- the order of the batches is shuffled by the seed, each batch staying whole; everything is deterministic for a
  seed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Collection, Hashable, Iterator, Mapping, Optional, Sequence

import numpy as np

from negmine.errors import ConfigError

#: Rows compared with the centroids at once.
CHUNK = 65_536
#: Rounds of k-means at each level.
ROUNDS = 8
#: How many waiting rows (in batches' worth) a new batch looks at before it takes the next rows in order.
LOOK_BACK = 4
#: How many open batches a waiting row tries once the rows in order have run out (``_first_fit``), and a row that
#: fits no full batch compares (``_least_near``): bounded, so that the time stays linear in the rows.
OPEN_LOOK = 64


@dataclass
class Composition:
    """Rows in batch order: ``order[i]`` is the row at position i, ``batch[i]`` its batch (0, 1, ... in order)."""

    order: np.ndarray
    batch: np.ndarray
    batch_size: int
    moved: int = 0  # rows that joined a later batch than their neighbours' (a conflict)
    conflicts: Counter = field(default_factory=Counter)  # why rows waited: known_positive, same_query, same_positive,
    # positive_proximity
    relaxed: int = 0  # rows that fitted no full batch under every rule, placed without positive proximity

    @property
    def batches(self) -> int:
        return int(self.batch[-1]) + 1 if len(self.batch) else 0

    @property
    def short(self) -> int:
        """Batches of fewer than ``batch_size`` rows."""
        return int((np.bincount(self.batch) < self.batch_size).sum()) if len(self.batch) else 0

    def batch_of_rows(self) -> np.ndarray:
        """Each row's batch, by the row's own index."""
        out = np.empty(len(self.order), dtype=np.int64)
        out[self.order] = self.batch
        return out


def normalise(text: str) -> str:
    """The text compared for "the same positive": lower case, runs of white space as one space, trimmed."""
    return re.sub(r"\s+", " ", text).strip().lower()


def compose_batches(
    vectors: np.ndarray, queries: Sequence[Hashable], positives: Sequence[Hashable],
    negatives: Sequence[Sequence[Hashable]], known: Mapping[Any, Collection[Any]], batch_size: int,
    seed: int = 0, positive_keys: Optional[Sequence[Hashable]] = None, clean: bool = True, hard: bool = True,
    positive_vectors: Optional[np.ndarray] = None, proximity: Optional[float] = 0.02,
    negative_vectors: Optional[np.ndarray] = None,
    document_rows: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> Composition:
    """Compose training rows into batches of ``batch_size`` (see the module's docstring).

    Args:
        vectors: One vector per row, of its anchor (the query) in the bi-encoder's space, shape (rows, dim).
        queries: Each row's query id.
        positives: Each row's positive document id.
        negatives: Each row's mined negative document ids.
        known: query id -> its known positive document ids (the qrels).
        batch_size: B, the trainer's batch size.
        seed: Seeds the k-means and the order of the batches.
        positive_keys: Each row's positive compared for "the same positive" (default: ``positives``); give
            ``normalise(text)`` to compare texts.
        clean: Keep in-batch false negatives out (the rules above); False only groups.
        hard: Group near rows; False keeps the rows' order shuffled by the seed (random batches, still clean).
        positive_vectors: Each row's positive in the same space as ``vectors``; with ``proximity``, the
            positive-proximity rule guards the in-batch pairs too: rows a and b do not share a batch when b's
            positive is nearer a's positive than a's query is, cos(p_b, p_a) > cos(q_a, p_a) + ``proximity`` (or
            the other way round): b's positive would be a likely false negative of a's.
        proximity: That rule's margin (None: off).
        negative_vectors: Each row's mined negatives, shape (rows, negatives, dim) (zero vectors pad a row with
            fewer): the rule then also keeps a row out of a batch where another row's mined negative is nearer its
            positive than its query is (or the other way round).
        document_rows: Instead of one vector per row's positive and negative: ``positive_vectors`` holds each
            distinct document once, and this gives each row's positive's index into it (rows,) and its negatives'
            (rows, negatives; -1 pads a row with fewer); memory then follows the distinct documents.
    """
    n = len(queries)
    if batch_size < 1:
        raise ConfigError(f"compose_batches: batch_size must be at least 1; got {batch_size}")
    if not (len(positives) == len(negatives) == n) or (hard and len(vectors) != n):
        raise ValueError("compose_batches: one query, positive, negatives list and vector per row")
    rng = np.random.default_rng(seed)
    use_near = clean and positive_vectors is not None and proximity is not None
    anchors = _units(np.asarray(vectors, dtype=np.float32)) if hard or use_near else None
    along = _grouped_order(anchors, batch_size, rng) if anchors is not None and hard else rng.permutation(n)
    keys = positive_keys if positive_keys is not None else positives
    rows = [_RowDocs(queries[i], positives[i], keys[i], frozenset(negatives[i]) | {positives[i]},
                     frozenset(known.get(queries[i], ())) | {positives[i]}) for i in range(n)]
    near = None
    if use_near and anchors is not None and proximity is not None:
        near = _proximity(anchors, positive_vectors, negative_vectors, document_rows, proximity)
    batches, moved, why = _fill(rows, along.tolist(), batch_size, clean, near, rng)
    rest = [i for b in batches if len(b) < batch_size for i in b]
    relaxed = 0
    if near is not None and len(rest) > batch_size:  # rows that fit no full batch: the fewest proximity hits
        batches = [b for b in batches if len(b) == batch_size] + _least_near(rows, rest, batch_size, near)
        relaxed = len(rest)
    shuffled = [batches[i] for i in _batch_order(batches, batch_size, rng)]
    order = np.fromiter((r for b in shuffled for r in b), dtype=np.int64, count=n)
    batch = np.repeat(np.arange(len(shuffled), dtype=np.int64), [len(b) for b in shuffled])
    return Composition(order, batch, batch_size, moved, why, relaxed)


@dataclass(frozen=True)
class _RowDocs:
    query: Hashable
    positive: Hashable
    key: Hashable
    docs: frozenset  # its positive and negatives
    known: frozenset  # its query's known positives, its own positive included


def _proximity(anchors: np.ndarray, positive_vectors: Any, negative_vectors: Optional[np.ndarray],
               document_rows: Optional[tuple[np.ndarray, np.ndarray]], margin: float) -> "_Proximity":
    """The proximity rule's documents: distinct documents and each row's indices into them."""
    docs = _units(np.asarray(positive_vectors, dtype=np.float32))
    n = len(anchors)
    negs: Optional[np.ndarray] = None
    if document_rows is not None:
        pos, negs = np.asarray(document_rows[0], np.int64), np.asarray(document_rows[1], np.int64).reshape(n, -1)
    else:
        pos = np.arange(n, dtype=np.int64)
        if negative_vectors is not None:
            extra = _units(np.asarray(negative_vectors, dtype=np.float32))
            negs = len(docs) + np.arange(extra.shape[0] * extra.shape[1], dtype=np.int64).reshape(extra.shape[:2])
            docs = np.concatenate([docs, extra.reshape(-1, docs.shape[1])])
    bar = np.einsum("ij,ij->i", anchors, docs[pos]) + margin
    return _Proximity(docs, pos, bar, negs if negs is not None and negs.shape[1] else None)


@dataclass(frozen=True)
class _Proximity:
    """The positive-proximity rule over in-batch pairs: unit document vectors, each row's positive and negatives
    in them (-1 pads), and each row's bar cos(q, p) + margin."""

    docs: np.ndarray
    pos: np.ndarray
    bar: np.ndarray
    negs: Optional[np.ndarray] = None

    def near(self, i: int, batch: "_Batch") -> bool:
        return any(found.any() for found in self._found(i, batch))  # stops at the first kind that finds one

    def hits(self, i: int, batch: "_Batch") -> int:
        """How many documents of the batch are nearer i's positive than i's query is, and of i's the other way."""
        return sum(int(found.sum()) for found in self._found(i, batch))

    def negatives_of(self, i: int) -> np.ndarray:
        if self.negs is None:
            return np.empty((0, self.docs.shape[1]), np.float32)
        return self.docs[self.negs[i][self.negs[i] >= 0]]

    def _found(self, i: int, batch: "_Batch") -> Iterator[np.ndarray]:
        """Masks of the near documents, positives first, then (lazily) the mined negatives."""
        k = len(batch.rows)
        if not k:
            return
        mine = self.docs[self.pos[i]]
        theirs, bars = batch.positives[:k], batch.bars[:k]
        sims = theirs @ mine
        yield sims > self.bar[i]
        yield sims > bars
        if self.negs is not None:
            yield batch.negatives[:batch.n_negatives] @ mine > self.bar[i]  # theirs near my positive
            yield self.negatives_of(i) @ theirs.T > bars  # (negatives, rows): mine near theirs


class _Batch:
    """A batch being filled: its rows, what the clean rules compare, and its rows' vectors for the proximity rule."""

    def __init__(self, size: int, near: Optional[_Proximity]) -> None:
        self.rows: list[int] = []
        self.queries: set = set()
        self.keys: set = set()
        self.docs: set = set()
        self.known: set = set()
        self.near = near
        dim = near.docs.shape[1] if near is not None else 0
        width = near.negs.shape[1] if near is not None and near.negs is not None else 0
        self.positives = np.empty((size if near is not None else 0, dim), np.float32)
        self.bars = np.empty(len(self.positives), np.float32)
        self.negatives = np.empty((len(self.positives) * width, dim), np.float32)
        self.n_negatives = 0

    def conflict(self, i: int, row: _RowDocs, proximity: bool = True) -> Optional[str]:
        if row.query in self.queries:
            return "same_query"
        if row.key in self.keys:
            return "same_positive"
        if not row.docs.isdisjoint(self.known) or not row.known.isdisjoint(self.docs):
            return "known_positive"
        if proximity and self.near is not None and self.near.near(i, self):
            return "positive_proximity"
        return None

    def add(self, i: int, row: _RowDocs) -> None:
        if self.near is not None:
            k = len(self.rows)
            self.positives[k] = self.near.docs[self.near.pos[i]]
            self.bars[k] = self.near.bar[i]
            negs = self.near.negatives_of(i)
            self.negatives[self.n_negatives:self.n_negatives + len(negs)] = negs
            self.n_negatives += len(negs)
        self.rows.append(i)
        self.queries.add(row.query)
        self.keys.add(row.key)
        self.docs |= row.docs
        self.known |= row.known


def _fill(rows: list[_RowDocs], along: list[int], size: int, clean: bool, near: Optional[_Proximity],
          rng: np.random.Generator) -> tuple[list[list[int]], int, Counter]:
    """Batches of ``size`` filled along ``along``; a row in conflict waits for a later batch it fits: each new
    batch looks at the waiting rows first; once ``along`` has run out, the waiting rows fill the open batches
    (``_first_fit``), in an order shuffled by the seed."""
    batches: list[list[int]] = []
    waiting: deque[int] = deque()
    why: Counter = Counter()  # each moved row's first reason
    moved: set[int] = set()
    stream = iter(along)
    current = _Batch(size, near)

    def place(batch: _Batch, i: int) -> bool:
        reason = batch.conflict(i, rows[i]) if clean else None
        if reason is None:
            batch.add(i, rows[i])
            return True
        if i not in moved:
            moved.add(i)
            why[reason] += 1
        return False

    exhausted = False
    while not exhausted:
        for _ in range(min(len(waiting), LOOK_BACK * size)):  # the rows that waited go first
            if len(current.rows) == size:
                break
            i = waiting.popleft()
            if not place(current, i):
                waiting.append(i)
        while len(current.rows) < size:
            after = next(stream, None)
            if after is None:
                exhausted = True
                break
            if not place(current, after):
                waiting.append(after)
        if len(current.rows) == size:
            batches.append(current.rows)
            current = _Batch(size, near)
    pending = list(waiting)
    spread = [pending[j] for j in rng.permutation(len(pending))]  # near rows, waiting side by side, spread out
    batches += _first_fit(rows, spread, current, size, clean)
    return batches, len(moved), why


def _first_fit(rows: list[_RowDocs], waiting: Collection[int], current: "_Batch", size: int,
               clean: bool) -> list[list[int]]:
    """The rows still waiting once the rows in order have run out, each into the first of the open batches (at
    most ``OPEN_LOOK``, the oldest first) where it fits; a row that fits none opens a batch, closing the oldest
    when ``OPEN_LOOK`` are open (a short batch: its rows are placed again by ``_least_near``). Linear in the rows."""
    done: list[list[int]] = []
    open_: deque[_Batch] = deque([current] if current.rows else [])
    for i in waiting:
        for b in open_:
            if not clean or b.conflict(i, rows[i]) is None:
                b.add(i, rows[i])
                if len(b.rows) == size:
                    done.append(b.rows)
                    open_.remove(b)
                break
        else:
            if len(open_) == OPEN_LOOK:
                done.append(open_.popleft().rows)
            fresh = _Batch(size, current.near)
            fresh.add(i, rows[i])
            open_.append(fresh)
    return done + [b.rows for b in open_ if b.rows]


def _least_near(rows: list[_RowDocs], rest: list[int], size: int, near: _Proximity) -> list[list[int]]:
    """The rows that fitted no full batch under every rule, in as few batches as they fill: each row, in order,
    joins the open batch (of the first ``OPEN_LOOK`` open ones) where the other rules allow it and the proximity
    rule finds the fewest near documents (a new batch when none allows it)."""
    batches = [_Batch(size, near) for _ in range(-(-len(rest) // size))]
    open_ = list(batches)
    for i in rest:
        best, fewest = None, None
        for b in open_[:OPEN_LOOK]:
            if b.conflict(i, rows[i], proximity=False) is None:
                hits = near.hits(i, b)
                if fewest is None or hits < fewest:
                    best, fewest = b, hits
                    if hits == 0:
                        break
        if best is None:
            best = _Batch(size, near)
            batches.append(best)
            open_.append(best)
        best.add(i, rows[i])
        if len(best.rows) == size:
            open_.remove(best)
    return [b.rows for b in batches if b.rows]


def _batch_order(batches: list[list[int]], size: int, rng: np.random.Generator) -> list[int]:
    """The full batches in an order shuffled by the seed, then the short ones (a trainer drops or pads the last)."""
    full = [i for i, b in enumerate(batches) if len(b) == size]
    short = [i for i, b in enumerate(batches) if len(b) != size]
    return [full[j] for j in rng.permutation(len(full))] + short


def _grouped_order(units: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The rows ordered so that near ones are next to each other: coarse clusters, fine clusters inside them."""
    n = len(units)
    groups = max(1, n // size)
    coarse = _kmeans(units, max(1, round(math.sqrt(groups))), rng)
    order: list[np.ndarray] = []
    for c in range(int(coarse.max()) + 1 if n else 0):
        members = np.flatnonzero(coarse == c)
        if not len(members):
            continue
        fine = _kmeans(units[members], max(1, len(members) // size), rng)
        order.append(members[np.argsort(fine, kind="stable")])
    return np.concatenate(order) if order else np.arange(0)


def _units(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _kmeans(units: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Spherical k-means labels of unit vectors (seeded start on distinct rows, ``ROUNDS`` rounds)."""
    n = len(units)
    if k <= 1 or n <= k:
        return np.zeros(n, dtype=np.int64) if k <= 1 else np.arange(n, dtype=np.int64)
    centroids = units[rng.choice(n, size=k, replace=False)].copy()
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(ROUNDS):
        for start in range(0, n, CHUNK):
            labels[start:start + CHUNK] = np.argmax(units[start:start + CHUNK] @ centroids.T, axis=1)
        order = np.argsort(labels, kind="stable")
        present, starts = np.unique(labels[order], return_index=True)
        sums = np.zeros_like(centroids)
        sums[present] = np.add.reduceat(units[order], starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0
        centroids[filled] = sums[filled] / norms[filled]
    return labels


def in_batch_false_negatives(
    queries: Sequence[Hashable], positives: Sequence[Hashable], negatives: Sequence[Sequence[Hashable]],
    batch: Sequence[int], relevant: Mapping[Any, Collection[Any]],
) -> int:
    """How many (row, document of another row in its batch) pairs put a document judged relevant to the row's query
    (``relevant``: fuller judgments) among its in-batch negatives, the other rows' positives and mined negatives
    (a repeat of the row's own positive included); each document counted once per row."""
    members: dict[int, list[int]] = {}
    for i, b in enumerate(batch):
        members.setdefault(int(b), []).append(i)
    count = 0
    for rows in members.values():
        for i in rows:
            rel = relevant.get(queries[i], ())
            if not rel:
                continue
            others = {d for j in rows if j != i for d in (positives[j], *negatives[j])}
            count += sum(1 for d in others if d in rel)
    return count


def in_batch_similarity(anchors: np.ndarray, positives: np.ndarray, batch: Any) -> float:
    """How hard a composition's in-batch negatives are: the mean cosine of each row's anchor with the positives of
    the other rows of its batch (rows in their own order; ``batch[i]`` is row i's batch)."""
    a, p = _units(np.asarray(anchors, np.float32)), _units(np.asarray(positives, np.float32))
    of = np.asarray(batch, dtype=np.int64)
    order = np.argsort(of, kind="stable")
    bounds = np.flatnonzero(np.diff(of[order])) + 1
    total, pairs = 0.0, 0
    for rows in np.split(order, bounds):
        if len(rows) < 2:
            continue
        sims = a[rows] @ p[rows].T
        total += float(sims.sum() - np.trace(sims))
        pairs += len(rows) * (len(rows) - 1)
    return total / pairs if pairs else float("nan")


def random_batches(rows: int, batch_size: int, seed: int) -> np.ndarray:
    """Each row's batch in random batches of ``batch_size`` (seeded): the baseline a composition is measured by."""
    batch = np.empty(rows, dtype=np.int64)
    batch[np.random.default_rng(seed).permutation(rows)] = np.arange(rows) // batch_size
    return batch
