"""Training rows written in composed batches (``--train-batch-size``): the rows a run lays out are kept aside in an
Arrow file (beside the output, so memory does not follow the rows' texts) with what each row holds; once every
query batch is mined, ``negmine.batching.compose_batches`` orders them, and they go to the output in that order
with a ``batch`` column."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa

from negmine.batching.compose import Composition, compose_batches, in_batch_similarity, normalise, random_batches
from negmine.errors import storage_error
from negmine.output.layouts import row_documents
from negmine.sampling.selection import Selection
from negmine.storage.files import temp_path

#: The column that says each row's batch.
BATCH_COLUMN = "batch"


class BatchedRows:
    """Rows kept aside until they are composed: the laid-out tables in an Arrow file, and each row's query index,
    positive index and other documents (corpus indices)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.target = Path(folder) / name
        try:
            self.path = temp_path(Path(folder), f"{name}.rows.arrow")
        except OSError as exc:
            raise storage_error(self.target, exc) from exc
        self.writer: Any = None
        self.queries: list[np.ndarray] = []
        self.positives: list[np.ndarray] = []
        self.documents: list[np.ndarray] = []
        self.composition: Optional[Composition] = None
        self.similarity: dict[str, float] = {}  # mean in-batch anchor-positive cosine: composed, random

    def write(self, table: pa.Table, sel: Selection, output_format: str, num_negatives: int) -> None:
        """Keep a query batch's rows (``table``, laid out from ``sel``)."""
        q, p, docs = row_documents(sel, output_format, num_negatives)
        assert len(q) == table.num_rows
        try:
            if self.writer is None:
                self.writer = pa.ipc.new_file(str(self.path), table.schema)
            self.writer.write_table(table)
        except OSError as exc:
            self.abort()
            raise storage_error(self.target, exc) from exc
        self.queries.append(q)
        self.positives.append(p)
        self.documents.extend(docs)

    def compose(self, batch_size: int, seed: int, known: Callable[[int], Any], doc_texts: Any,
                vectors: Optional[Callable[[np.ndarray, str], np.ndarray]]) -> Composition:
        """Order the rows kept in batches of ``batch_size``.

        Args:
            batch_size: B.
            seed: Seeds the grouping and the batches' order.
            known: A query index's known positives (corpus indices).
            doc_texts: The corpus's texts, by index (a positive is compared by its normalised text).
            vectors: ``vectors(indices, "query" | "document")``: the bi-encoder's vectors of queries or documents;
                ``None`` (no bi-encoder in the run): batches are clean but not grouped, and positive proximity is
                not checked.
        """
        queries = np.concatenate(self.queries) if self.queries else np.empty(0, np.int64)
        positives = np.concatenate(self.positives) if self.positives else np.empty(0, np.int64)
        keys = [normalise(t) for t in doc_texts.take(positives)] if len(positives) else []
        known_of = {int(q): [int(d) for d in known(int(q))] for q in np.unique(queries)}
        anchors, docs, rows = None, None, None
        if vectors is not None and len(queries):
            distinct_q, q_at = np.unique(queries, return_inverse=True)
            anchors = vectors(distinct_q, "query")[q_at]
            widest = max((len(d) for d in self.documents), default=0)
            negs = np.full((len(queries), widest), -1, dtype=np.int64)
            for i, d in enumerate(self.documents):
                negs[i, :len(d)] = d
            distinct_d, d_at = np.unique(np.concatenate([positives, negs[negs >= 0]]), return_inverse=True)
            docs = vectors(distinct_d, "document")
            pos_at = d_at[:len(positives)]
            neg_at = np.full(negs.shape, -1, dtype=np.int64)
            neg_at[negs >= 0] = d_at[len(positives):]
            rows = (pos_at, neg_at)
        self.composition = compose_batches(
            anchors if anchors is not None else np.empty((len(queries), 0), np.float32), queries.tolist(),
            positives.tolist(), [d.tolist() for d in self.documents], known_of, batch_size, seed=seed,
            positive_keys=keys, hard=anchors is not None, positive_vectors=docs, document_rows=rows)
        if anchors is not None and docs is not None and rows is not None:
            own = docs[rows[0]]
            self.similarity = {
                "composed": round(in_batch_similarity(anchors, own, self.composition.batch_of_rows()), 6),
                "random": round(in_batch_similarity(anchors, own, random_batches(len(queries), batch_size, seed)), 6)}
        return self.composition

    def write_into(self, sink: Any, chunk: int) -> None:
        """Write the rows kept, in the composed order with their ``batch`` column, to ``sink``, ``chunk`` rows at a
        time (read back from the Arrow file, memory-mapped)."""
        assert self.composition is not None
        self._close()
        if not self.path.exists():  # no row was kept
            return
        order, batch = self.composition.order, self.composition.batch
        with pa.memory_map(str(self.path)) as source:
            table = pa.ipc.open_file(source).read_all()
            for start in range(0, len(order), chunk):
                part = table.take(pa.array(order[start:start + chunk]))
                sink.write(part.append_column(BATCH_COLUMN, pa.array(batch[start:start + chunk], pa.int32())))
        self.abort()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def abort(self) -> None:
        """Remove the Arrow file."""
        try:
            self._close()
        except Exception:  # noqa: BLE001 - already failing; the file goes anyway
            pass
        self.path.unlink(missing_ok=True)

    def record(self) -> dict[str, Any]:
        """What the statistics (and the provenance) record of the composition."""
        c = self.composition
        assert c is not None
        return {"batch_size": c.batch_size, "batches": c.batches, "short_batches": c.short,
                "grouped": bool(self.similarity), "rows_moved": c.moved, "moved_by": dict(sorted(c.conflicts.items())),
                "rows_relaxed": c.relaxed, "similarity": dict(self.similarity)}
