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
import sys
import types
from typing import TYPE_CHECKING, Any

from negmine.version import __version__

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and IDEs
    from negmine.errors import BrokenPipe, ConfigError, EmptyResultError, InputError, NegmineError, StorageError
    from negmine.inputs.data import Corpus, Qrels, Queries
    from negmine.inputs.read import read_corpus, read_pairs, read_qrels, read_queries
    from negmine.mine import IndexResult, MineResult, build_index, mine, refilter
    from negmine.output.provenance import read_metadata
    from negmine.progress import Progress
    from negmine.report.audit import Evaluation, evaluate
    from negmine.report.stats import MineStats
    from negmine.settings.config import MineConfig
    from negmine.tuning import SweepResult, sweep

#: Public name -> the module that defines it.
_LAZY = {
    "MineConfig": "negmine.settings.config",
    "Corpus": "negmine.inputs.data", "Qrels": "negmine.inputs.data", "Queries": "negmine.inputs.data",
    "ConfigError": "negmine.errors", "EmptyResultError": "negmine.errors", "InputError": "negmine.errors",
    "NegmineError": "negmine.errors", "StorageError": "negmine.errors", "BrokenPipe": "negmine.errors",
    "read_corpus": "negmine.inputs.read", "read_pairs": "negmine.inputs.read", "read_qrels": "negmine.inputs.read",
    "read_queries": "negmine.inputs.read", "read_metadata": "negmine.output.provenance",
    "IndexResult": "negmine.mine", "MineResult": "negmine.mine", "build_index": "negmine.mine", "mine": "negmine.mine",
    "refilter": "negmine.mine", "SweepResult": "negmine.tuning", "sweep": "negmine.tuning",
    "Evaluation": "negmine.report.audit", "evaluate": "negmine.report.audit",
    "Progress": "negmine.progress",
    "MineStats": "negmine.report.stats",
}

__all__ = [
    "__version__",
    "BrokenPipe",
    "ConfigError",
    "Corpus",
    "EmptyResultError",
    "Evaluation",
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
    "SweepResult",
    "build_index",
    "evaluate",
    "mine",
    "read_corpus",
    "read_metadata",
    "read_pairs",
    "read_qrels",
    "read_queries",
    "refilter",
    "sweep",
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


class _Package(types.ModuleType):
    """``negmine.mine`` is the function, as it was when this package imported everything eagerly. Importing the
    submodule ``negmine.mine`` (the CLI does, lazily) would otherwise rebind the name to the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "mine" and isinstance(value, types.ModuleType):
            value = value.mine
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
