"""Vectors the user gives (``--corpus-embeddings``, ``--query-embeddings``): ``.npy`` memory-mapped and
checked block by block, or Parquet with an id and a vector column; normalised when they are not unit-norm."""

from __future__ import annotations

import hashlib
import logging
import weakref
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from negmine.errors import InputError
from negmine.inputs.columns import pick_column, read_schema
from negmine.progress import Progress
from negmine.storage.cache import ReadOnlyCache, cached_dir, digest_of, new_npy

logger = logging.getLogger("negmine")

#: Rows read at a time when checking, hashing or normalising given vectors; pairs scored at a time.
CHECK_BLOCK = 1 << 15

#: Given rows whose norm is within this of 1 (or 0) are used as they are.
NORM_TOLERANCE = 1e-3

VECTORS_FORMAT = "1"

_KEYS: dict[int, tuple[Any, str]] = {}


def _remember_key(vecs: np.ndarray, key: str) -> None:
    ident = id(vecs)
    _KEYS[ident] = (weakref.ref(vecs, lambda _ref: _KEYS.pop(ident, None)), key)


def vectors_key(vecs: np.ndarray) -> str:
    """A digest of a matrix's dtype, shape and values: what an index built over it depends on. Known at no cost
    for what ``read_embeddings`` returned (it hashed the file while checking it), else hashed in blocks."""
    entry = _KEYS.get(id(vecs))
    if entry is not None and entry[0]() is vecs:
        return entry[1]
    h = hashlib.sha256(f"{vecs.dtype.str} {vecs.shape}\n".encode())
    for start in range(0, vecs.shape[0], CHECK_BLOCK):
        h.update(np.ascontiguousarray(vecs[start : start + CHECK_BLOCK]).data)
    return h.hexdigest()


def _scan(vecs: np.ndarray, path: Path, progress: Progress) -> tuple[bool, str]:
    """One pass over a memory-mapped matrix in blocks: an InputError naming the first row that holds NaN or an
    infinity; whether every row is unit-norm (or zero) within NORM_TOLERANCE; a digest of its values."""
    h = hashlib.sha256(f"{vecs.dtype.str} {vecs.shape}\n".encode())
    unit = vecs.dtype == np.float32
    with progress.stage(f"dense: checking {path.name}", total=vecs.shape[0]) as advance:
        for start in range(0, vecs.shape[0], CHECK_BLOCK):
            block = np.ascontiguousarray(vecs[start : start + CHECK_BLOCK])
            bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
            if bad.size:
                raise InputError(f"{path}: row {start + int(bad[0])}: the vector holds NaN or an infinity")
            unit = unit and _unit(block)
            h.update(block.data)
            advance(len(block))
    return unit, h.hexdigest()


def _unit(block: np.ndarray) -> bool:
    """Whether every row of a float32 block is unit-norm (or zero) within NORM_TOLERANCE."""
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    return bool(np.all((np.abs(norms - 1) < NORM_TOLERANCE) | (norms == 0)))


def _normalise_into(vecs: np.ndarray, out: np.ndarray) -> None:
    """``out = normalize(vecs)`` as float32, computed in float64 a block at a time (``out`` may be ``vecs``)."""
    for start in range(0, vecs.shape[0], CHECK_BLOCK):
        out[start : start + CHECK_BLOCK] = normalize(np.asarray(vecs[start : start + CHECK_BLOCK], dtype=np.float64))


def read_embeddings(path: Path, ids: Sequence[Any], role: str, cache_dir: Optional[Path] = None) -> np.ndarray:
    """User-supplied embeddings, L2-normalised, in the order of ``ids``.

    ``.npy``: one row per input row, in the input file's row order, memory-mapped and checked block by block. When
    every row is float32 and unit-norm (or zero) within NORM_TOLERANCE, the file itself is returned, memory-mapped;
    else a normalised float32 copy is written block by block to ``cache_dir/vectors/`` (keyed by the values) and
    returned memory-mapped (without ``cache_dir``, normalised in RAM). Parquet: an id column (``id``, ``_id`` or the
    first column) and a list-of-floats column (``embedding``, ``vector`` or ``emb``), read into RAM. A row holding
    NaN or an infinity is an error.
    """
    p = Path(path)
    option = f"--{role}-embeddings"
    if not p.exists():
        raise InputError(f"{option} file not found: {p}")
    if p.suffix == ".npy":
        return _read_npy(p, ids, role, cache_dir)
    import pyarrow as pa
    import pyarrow.parquet as pq


    schema = read_schema(p, f"{role}-embeddings")
    hint = f"{option} takes a .npy file, or a Parquet file with an id column and a vector (list of floats) column"
    idc = pick_column(schema, p, None, ("id", "_id", f"{role}_id", schema.names[0]), "id", option, hint=hint)
    vc = pick_column(schema, p, None, ("embedding", "vector", "emb", "embeddings"), "vector", option, hint=hint)
    table = pq.read_table(p, columns=[idc, vc])  # type: ignore[list-item]
    col = table.column(vc)  # type: ignore[arg-type]
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type)):
        raise InputError(f"{p}: column {vc!r} holds {col.type}; vectors must be lists of floats ({hint})")
    row_of = {str(k): r for r, k in enumerate(table.column(idc).to_pylist())}  # type: ignore[arg-type]
    vectors = col.to_pylist()
    out: Optional[np.ndarray] = None
    for i, key in enumerate(ids):
        r = row_of.get(str(key))
        if r is None:
            raise InputError(f"{p}: no vector for {role} id {str(key)!r} (column {idc!r})")
        v = vectors[r]
        if v is None:
            raise InputError(f"{p}: column {vc!r} row {r}: vector is null")
        if out is None:
            out = np.empty((len(ids), len(v)), dtype=np.float32)
        if len(v) != out.shape[1]:
            raise InputError(f"{p}: column {vc!r} row {r}: {len(v)} values, expected {out.shape[1]}")
        if any(x is None for x in v):
            raise InputError(f"{p}: column {vc!r} row {r}: the vector holds a null")
        out[i] = v
        if not np.isfinite(out[i]).all():
            raise InputError(f"{p}: column {vc!r} row {r}: the vector holds NaN or an infinity")
    assert out is not None
    if _unit(out):
        return out
    _normalise_into(out, out)
    return out


def _read_npy(p: Path, ids: Sequence[Any], role: str, cache_dir: Optional[Path],
              progress: Optional[Progress] = None) -> np.ndarray:
    progress = progress or Progress()
    try:
        vecs = np.load(p, mmap_mode="r")
    except ValueError as exc:
        raise InputError(f"{p}: not a readable .npy file ({exc})") from exc
    if vecs.ndim != 2 or vecs.shape[0] != len(ids):
        raise InputError(f"{p}: shape {vecs.shape}, expected ({len(ids)}, dim): one row per {role} row, "
                         "in the input's row order")
    if not np.issubdtype(vecs.dtype, np.floating):
        raise InputError(f"{p}: holds {vecs.dtype}; vectors must be floating-point numbers")
    unit, digest = _scan(vecs, p, progress)
    if unit and vecs.flags.c_contiguous:
        logger.debug("dense: %s: every row is unit-norm; used in place, memory-mapped", p)
        _remember_key(vecs, digest)
        return vecs
    key = digest_of("normalised", VECTORS_FORMAT, digest)
    if cache_dir is None:
        logger.debug("dense: %s: normalised in RAM (no cache folder)", p)
        out = np.empty(vecs.shape, dtype=np.float32)
        _normalise_into(vecs, out)
        _remember_key(out, key)
        return out

    def build(tmp: Path) -> None:
        mm = new_npy(tmp / "vectors.npy", vecs.shape)
        with progress.stage(f"dense: normalising {p.name}"):
            _normalise_into(vecs, mm)
        mm.flush()
        del mm

    try:
        folder = cached_dir(Path(cache_dir), "vectors", key[:32], build,
                            {"source": str(p), "rows": int(vecs.shape[0]), "normalised": True})
    except ReadOnlyCache:  # nowhere to keep a normalised copy: normalise in RAM
        return _read_npy(p, ids, role, None, progress)
    logger.debug("dense: %s: rows not unit-norm; using the normalised copy %s", p, folder)
    out = np.load(folder / "vectors.npy", mmap_mode="r")
    _remember_key(out, key)
    return out


def normalize(vecs: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms == 0, 1, norms)
