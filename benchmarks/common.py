"""Shared loading for the benchmarks: a dataset from ../shared/datasets, as negmine reads it."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import negmine

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def load(name: str, split: str) -> tuple[negmine.Corpus, negmine.Queries, negmine.Qrels, Path]:
    data = DATASETS / name
    return (negmine.read_corpus(data / "corpus.parquet"), negmine.read_queries(data / "queries.parquet"),
            negmine.read_qrels(data / "qrels" / f"{split}.parquet"), data)


@contextmanager
def timed(label: str, times: dict[str, float]) -> Iterator[None]:
    t = time.perf_counter()
    yield
    times[label] = time.perf_counter() - t
    print(f"  {label}: {times[label]:.1f} s", flush=True)
