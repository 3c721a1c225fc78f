"""negmine: mine hard negatives for training retrieval models.

Python use mirrors the CLI::

    import negmine
    result = negmine.mine("corpus.parquet", "queries.parquet", "qrels.parquet", output="negatives.parquet",
                          num_negatives=5)
    result.table, result.stats

The public names are imported on first use (PEP 562), so that ``import negmine`` (and ``negmine --help``) does not
load numpy and pyarrow until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from negmine.version import __version__

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and IDEs (the same table)
    from negmine.errors import BrokenPipe, ConfigError, EmptyResultError, InputError, NegmineError, StorageError
    from negmine.inputs.data import Corpus, Qrels, Queries
    from negmine.inputs.read import read_corpus, read_pairs, read_qrels, read_queries
    from negmine.output.provenance import read_metadata
    from negmine.progress import Progress
    from negmine.report.audit import Evaluation, evaluate
    from negmine.report.stats import MineStats
    from negmine.run.api import IndexResult, build_index, mine, refilter
    from negmine.run.outputs import MineResult
    from negmine.run.sweep import SweepResult, sweep
    from negmine.settings.config import MineConfig

#: The public names, by the module that defines them.
PUBLIC = {
    "negmine.errors": ("BrokenPipe", "ConfigError", "EmptyResultError", "InputError", "NegmineError", "StorageError"),
    "negmine.inputs.data": ("Corpus", "Qrels", "Queries"),
    "negmine.inputs.read": ("read_corpus", "read_pairs", "read_qrels", "read_queries"),
    "negmine.output.provenance": ("read_metadata",),
    "negmine.progress": ("Progress",),
    "negmine.report.audit": ("Evaluation", "evaluate"),
    "negmine.report.stats": ("MineStats",),
    "negmine.run.api": ("IndexResult", "build_index", "mine", "refilter"),
    "negmine.run.outputs": ("MineResult",),
    "negmine.run.sweep": ("SweepResult", "sweep"),
    "negmine.settings.config": ("MineConfig",),
}
_LAZY = {name: module for module, names in PUBLIC.items() for name in names}
__all__ = [  # the names of PUBLIC (a test checks they agree)
    "__version__",
    "BrokenPipe",
    "build_index",
    "ConfigError",
    "Corpus",
    "EmptyResultError",
    "evaluate",
    "Evaluation",
    "IndexResult",
    "InputError",
    "mine",
    "MineConfig",
    "MineResult",
    "MineStats",
    "NegmineError",
    "Progress",
    "Qrels",
    "Queries",
    "read_corpus",
    "read_metadata",
    "read_pairs",
    "read_qrels",
    "read_queries",
    "refilter",
    "StorageError",
    "sweep",
    "SweepResult",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'negmine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
