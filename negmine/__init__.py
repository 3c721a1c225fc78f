"""negmine: mine hard negatives for training retrieval models.

Python use mirrors the CLI::

    import negmine
    result = negmine.mine("corpus.parquet", "queries.parquet", "qrels.parquet", output="negatives.parquet",
                          num_negatives=5)
    result.table, result.stats
"""

from __future__ import annotations

__version__ = "0.1.0"

from negmine.config import MineConfig
from negmine.data import Corpus, Qrels, Queries
from negmine.errors import ConfigError, EmptyResultError, InputError, NegmineError, StorageError
from negmine.io import read_corpus, read_metadata, read_pairs, read_qrels, read_queries
from negmine.mine import IndexResult, MineResult, build_index, mine
from negmine.progress import Progress
from negmine.report import MineStats

__all__ = [
    "__version__",
    "ConfigError",
    "Corpus",
    "EmptyResultError",
    "IndexResult",
    "InputError",
    "MineConfig",
    "MineResult",
    "MineStats",
    "NegmineError",
    "Progress",
    "Qrels",
    "Queries",
    "StorageError",
    "build_index",
    "mine",
    "read_corpus",
    "read_metadata",
    "read_pairs",
    "read_qrels",
    "read_queries",
]
