"""Provenance: what produced an output (versions, settings, inputs' fingerprints, models, statistics), stored
in a Parquet file's key-value metadata or a JSON Lines file's sidecar, and read back."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from negmine.errors import InputError
from negmine.inputs.beir import beir_files as beir_files
from negmine.inputs.columns import read_schema
from negmine.inputs.formats import first_line
from negmine.output.files import output_format
from negmine.output.jsonl import SIDECAR, sidecar_path
from negmine.storage.files import PathLike, atomic_target, fingerprint
from negmine.version import __version__


def provenance(config: Any, files: dict[str, str], stats: Any, embedder: Any = None,
               reranker: Optional[dict[str, Any]] = None, relative_margin: Optional[float] = None,
               beir: Optional[dict[str, str]] = None, bm25_tokenizer: Optional[str] = None) -> dict[str, Any]:
    """What produced an output: negmine's and its libraries' versions, the config (what it produces, not how it
    was run: batch size and resumption are left out), the inputs' fingerprints (and the BEIR folder and split they
    came from, if so), the models, and the statistics. ``bm25_tokenizer`` (what BM25 read with) is recorded when it
    is not ``words``, which outputs before the BM25 tokenizers all read with."""

    libs: dict[str, str] = {}
    for lib in ("bm25s", "pyarrow", "numpy", "faiss-cpu", "faiss-gpu", "sentence-transformers", "torch"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:  # an optional one (faiss-gpu, say) is not installed
            pass
    out = {
        "negmine_version": __version__,
        "libraries": libs,
        "config": config.to_dict(provenance=True),
        "resolved": {"relative_margin": relative_margin, **(
            {"bm25_tokenizer": bm25_tokenizer} if bm25_tokenizer not in (None, "words") else {})},
        "inputs": {role: {"path": path, "fingerprint": fingerprint(path)} for role, path in files.items()},
        "models": {"embedder": embedder, "reranker": reranker},
        "stats": {k: v for k, v in stats.to_dict().items() if k not in UNRECORDED_STATS
                  and not (k in ("dense_search", "blind_rules", "train_batches", "llm_judge") and not v)},
    }
    if beir is not None:
        out["beir"] = dict(beir)
    return out


#: Statistics kept out of the provenance: the cache's hits (and so the requests sent to endpoints) depend on what
#: earlier runs left there, not on the inputs; the BM25 evidence counts are read through ``blind_rules`` (recorded
#: only when a rule could not see).
UNRECORDED_STATS = ("texts_encoded", "texts_cached", "bm25_seen", "bm25_blind", "endpoint_usage")

METADATA_KEY = b"negmine"


def write_parquet(table: pa.Table, path: PathLike, metadata: Optional[dict[str, Any]] = None) -> None:
    """Write ``table`` atomically: to a temporary file beside ``path``, then rename it into place.

    ``metadata`` is stored as JSON under the file's ``negmine`` key-value entry.
    """
    target = Path(path)
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=str).encode("utf-8")
        table = table.replace_schema_metadata(meta)
    with atomic_target(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The provenance negmine stored with an output it wrote: a Parquet file's ``negmine`` key-value entry, or a
    JSON Lines file's sidecar ``OUT.provenance.json`` (the sidecar's own path works too)."""
    p = Path(path)
    side = p if p.name.endswith(SIDECAR) else sidecar_path(p) if output_format(p) in ("jsonl", "jsonl.gz") else None
    if side is None:
        read_schema(path, "negmine output", None)
        meta = pq.read_metadata(path).metadata or {}
        if METADATA_KEY not in meta:
            raise InputError(f"{path}: no negmine metadata; was it written by negmine mine?")
        return json.loads(meta[METADATA_KEY])
    if not p.exists():
        raise InputError(f"negmine output file not found: {p}")
    if not side.is_file():
        raise InputError(f"{p}: no provenance file {side.name} beside it; negmine mine writes one with every JSON "
                         "Lines file (but none for stdout)")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: not a readable provenance file ({first_line(exc)})") from exc
    if not isinstance(data, dict) or "config" not in data:
        raise InputError(f"{side}: no negmine provenance; was it written by negmine mine?")
    return data
