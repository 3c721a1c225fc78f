"""Output paths: the format a name says, the checks made before any work (not an input, the folder writable,
a known format), and reading an output back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.json as pjson
import pyarrow.parquet as pq

from negmine.errors import ConfigError, InputError
from negmine.inputs.formats import first_line
from negmine.output.jsonl import STDOUT, sidecar_path
from negmine.storage.files import PathLike, check_writable

#: File name endings negmine writes outputs in, and the format each means.
OUTPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".jsonl.gz": "jsonl.gz"}

OUTPUT_SUFFIXES = tuple(OUTPUT_FORMATS)


def output_format(path: PathLike) -> Optional[str]:
    """What an output path is written as, by its name: ``parquet``, ``jsonl``, ``jsonl.gz``, ``stdout`` (``-``:
    JSON Lines on stdout), or ``None`` for a name negmine does not write."""
    if str(path) == STDOUT:
        return "stdout"
    name = Path(path).name.lower()
    for suffix in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return OUTPUT_FORMATS[suffix]
    return None


def check_output_path(output: PathLike, inputs: Sequence[Optional[PathLike]], option: str = "--output",
                      suffixes: Optional[tuple[str, ...]] = None, stdout: bool = False) -> Path:
    """Refuse an output path that is one of the inputs, whose folder does not exist, or whose name says no format
    negmine writes: ``.parquet``, ``.jsonl``, ``.jsonl.gz`` (a JSON Lines output's provenance sidecar,
    ``OUT.provenance.json``, is checked as well), or ``-`` for stdout where ``stdout`` allows it; ``suffixes``
    names the only file kinds allowed instead (``(".png",)``, say)."""
    kind = output_format(output) if suffixes is None else "other"
    if kind == "stdout":
        if not stdout:
            raise ConfigError(f"{option} -: only --output can go to stdout; give {option} a file path")
        return Path(STDOUT)
    out = Path(output)
    targets = [out, sidecar_path(out)] if kind in ("jsonl", "jsonl.gz") else [out]
    for target in targets:
        for given in inputs:
            if given is None or str(given) == STDOUT:
                continue
            inp = Path(given)
            same = target.resolve() == inp.resolve() or (target.exists() and inp.exists()
                                                         and os.path.samefile(target, inp))
            if same:
                raise ConfigError(
                    f"{option} {target} is an input file; negmine never overwrites its inputs: choose another path"
                )
    if out.is_dir():
        raise ConfigError(f"{option} {out} is a directory; give a file path such as {out / 'negatives.parquet'}")
    if suffixes is not None and not out.name.lower().endswith(suffixes):
        raise ConfigError(f"{option} {out}: name the file with a {' or '.join(suffixes)} extension")
    if kind is None:
        written = ".parquet, .jsonl or .jsonl.gz (the format follows the extension)"
        raise ConfigError(f"{option} {out}: the name says no format negmine writes; end it with {written}"
                          + (", or give - for JSON Lines on stdout" if stdout else ""))
    if len(targets) > 1 and targets[1].is_dir():
        raise ConfigError(f"{option} {out}: {targets[1]} (where its provenance goes) is a directory")
    if not out.parent.exists():
        raise ConfigError(f"{option} {out}: folder {out.parent} does not exist")
    check_writable(out.parent, option)
    return out


def read_output(path: PathLike, schema: Optional[pa.Schema] = None) -> pa.Table:
    """An output negmine wrote, as a table (``read_metadata`` gives its provenance): Parquet as it is; JSON Lines
    read with ``schema`` (the types of the rows written; default: as pyarrow infers them)."""
    kind = output_format(path)
    if kind == "stdout":
        raise ConfigError("the output went to stdout (-), so it cannot be read back; write it to a file")
    if kind not in ("jsonl", "jsonl.gz"):
        return pq.read_table(path)
    options = pjson.ParseOptions(explicit_schema=schema) if schema is not None else None
    with pa.input_stream(str(path), compression="gzip" if kind == "jsonl.gz" else None) as stream:
        try:
            table = pjson.read_json(stream, parse_options=options)
        except pa.ArrowInvalid as exc:
            if schema is not None and "Empty" in str(exc):
                table = schema.empty_table()
            else:
                raise InputError(f"{path}: not a readable JSON Lines file ({first_line(exc)})") from exc
    return table.select(schema.names) if schema is not None else table


def check_outputs(output: Optional[PathLike], candidates: Optional[PathLike], false_negatives: Optional[PathLike],
                  inputs: Sequence[PathLike]) -> tuple[Optional[Path], Optional[Path], Optional[Path]]:
    """The output paths, checked before any work: none is an input or another output, each folder exists, each name
    says a format negmine writes (the output may be ``-``, stdout; the candidates file is Parquet)."""
    out = check_output_path(output, inputs, stdout=True) if output is not None else None
    cand = check_output_path(candidates, inputs, "--candidates-output", (".parquet",)) \
        if candidates is not None else None
    fn = check_output_path(false_negatives, inputs, "--false-negatives-output") \
        if false_negatives is not None else None
    named = [(option, p) for option, p in (("--output", out), ("--candidates-output", cand),
                                           ("--false-negatives-output", fn)) if p is not None]
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if a.resolve() == b.resolve():
                raise ConfigError(f"{second} and {first} are the same file; give two paths")
    return out, cand, fn
