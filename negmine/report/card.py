"""A Hugging Face dataset card (``README.md``) for a negmine output, written beside it.

The card is what the Hub shows and reads: a YAML header (features of the layout's columns, the data file as the
``train`` split, tags and task categories), then what was mined: the inputs and their fingerprints, the models,
the settings (as a config file that reruns the mining), and the report's figures. Everything comes from the
output file and its provenance, so ``write_dataset_card("negatives.parquet")`` works on any negmine output, Parquet
or JSON Lines (whose features are described as ``datasets`` reads them: int64 and float64).

Safe-overwrite rule: the card carries a marker line (``<!-- negmine dataset card ... -->``). negmine replaces a
``README.md`` that has it, refuses one that has not (someone else's README), and never writes over an input file.
Delete the marker line to keep an edited card from being replaced.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from negmine.errors import ConfigError
from negmine.inputs.formats import open_json
from negmine.output.files import output_format
from negmine.output.provenance import read_metadata
from negmine.report.page import load_report, report_rows
from negmine.settings.files import INPUT_ROLES, config_from_metadata, config_to_toml
from negmine.storage.files import atomic_write_text

PathLike = Union[str, Path]

CARD_NAME = "README.md"

MARKER = "<!-- negmine dataset card"

#: What each column of a layout holds.
COLUMN_DOCS = {
    "anchor": "the query text",
    "positive": "the text of a relevant document",
    "negative": "the text of a mined hard negative",
    "query_id": "id of the query",
    "positive_id": "id of the positive document",
    "negative_id": "id of the negative document",
    "negative_ids": "ids of the negatives, in column order",
    "docs": "the positive's text, then the negatives' texts",
    "labels": "1 for the positive, 0 for each negative",
    "doc_ids": "ids of `docs`",
    "positive_score": "score of the positive (reranker or retriever)",
    "negative_score": "score of the negative",
    "scores": "scores of the positive, then of the negatives",
    "label": "1 for a positive, 0 for a negative",
    "doc_id": "id of the document in `positive`",
    "score": "score of the document (reranker or retriever)",
    "query": "the query text",
    "pos": "the texts of the query's positives",
    "neg": "the texts of the query's mined hard negatives",
    "pos_scores": "scores of `pos` (reranker or retriever)",
    "neg_scores": "scores of `neg`",
    "prompt": "the instruction FlagEmbedding puts before the query",
    "pos_ids": "ids of `pos`",
    "neg_ids": "ids of `neg`",
}

#: Columns whose meaning depends on the layout.
LAYOUT_COLUMN_DOCS = {
    ("labeled-pair", "positive"): "a document's text: a positive (label 1) or a mined hard negative (label 0)",
}

#: Hub size categories, by upper bound of rows.
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def card_path(output: PathLike) -> Path:
    """Where the card of an output goes: ``README.md`` in the output's folder."""
    return Path(output).parent / CARD_NAME


def written_by_negmine(path: PathLike) -> bool:
    """Whether ``path`` is a dataset card negmine wrote (it carries the marker line)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return MARKER in fh.read(1 << 16)
    except OSError:
        return False


def check_card_path(output: PathLike, inputs: Iterable[Optional[PathLike]] = ()) -> Path:
    """The card's path for ``output``, after checking that it may be written.

    Raises:
        ConfigError: The card's path is one of ``inputs``, a folder, or a ``README.md`` negmine did not write.
    """
    path = card_path(output)
    for given in inputs:
        if given is None:
            continue
        inp = Path(given)
        if path.resolve() == inp.resolve() or (path.exists() and inp.exists() and os.path.samefile(path, inp)):
            raise ConfigError(f"--dataset-card: {path} is an input file; negmine never overwrites its inputs: "
                              "write the output to another folder")
    if path.is_dir():
        raise ConfigError(f"--dataset-card: {path} is a directory; write the output to another folder")
    if path.exists() and not written_by_negmine(path):
        raise ConfigError(f"--dataset-card: {path} exists and negmine did not write it; move it away or write the "
                          "output to another folder")
    return path


def write_dataset_card(output: PathLike, metadata: Optional[dict[str, Any]] = None,
                       inputs: Sequence[Optional[PathLike]] = ()) -> Path:
    """Write the dataset card of ``output`` (a negmine output file) beside it, atomically.

    Args:
        output: The file negmine mine wrote (Parquet or JSON Lines).
        metadata: Its provenance (default: read from the file).
        inputs: More paths the card must not overwrite (the inputs the provenance records are always checked).

    Returns:
        The card's path (``README.md`` in the output's folder).

    Raises:
        ConfigError: The card may not be written there (see ``check_card_path``).
        InputError: ``output`` is no negmine output.
    """

    meta = metadata if metadata is not None else read_metadata(output)
    recorded = [info.get("path") for info in (meta.get("inputs") or {}).values()]
    path = check_card_path(output, [*recorded, *inputs])
    atomic_write_text(path, dataset_card(output, meta))
    return path


def dataset_card(output: PathLike, metadata: Optional[dict[str, Any]] = None) -> str:
    """The text of the dataset card of ``output`` (Parquet or JSON Lines)."""

    out = Path(output)
    meta = metadata if metadata is not None else read_metadata(out)
    jsonl = output_format(out) in ("jsonl", "jsonl.gz")
    schema, rows, sizes = _json_lines_info(out) if jsonl else _parquet_info(out)
    config = meta.get("config") or {}
    fmt = str(config.get("output_format", "triplet"))
    version = meta.get("negmine_version", "?")

    lines = ["---", *_yaml_header(out.name, schema, rows, fmt, sizes), "---",
             f"{MARKER}: written by negmine {version} (negmine mine --dataset-card). negmine replaces this file "
             "when it writes a card here again; delete this line to keep your edits. -->", "",
             f"# Hard negatives: {out.name}", "",
             f"Hard negatives mined by negmine {version} for training retrieval "
             f"models (embedders, rerankers): {rows:,} rows in the `{fmt}` layout.", "",
             "## Columns", "", "| column | type | holds |", "| --- | --- | --- |"]
    for field in schema:
        lines.append(f"| `{field.name}` | {_feature(field.type)[1]} | {_column_doc(field.name, fmt)} |")
    lines += ["", "## Use", "", "```python", "from datasets import load_dataset", "",
              f'train = load_dataset("{"json" if jsonl else "parquet"}", data_files="{out.name}", split="train")',
              "```", ""]
    if fmt == "flagembedding":
        where = "" if out.name.endswith(".jsonl") else " as a .jsonl file (FlagEmbedding reads .json and .jsonl)"
        lines += ["The rows are FlagEmbedding's training data (`query`, `pos`, `neg`): give the file to its "
                  f"`--train_data`{where}.", ""]
    elif fmt == "labeled-pair" and "query_id" not in schema.names:
        lines += ["The columns are what a sentence-transformers CrossEncoder trainer takes as they are, e.g. with "
                  "`BinaryCrossEntropyLoss`.", ""]
    elif fmt != "labeled-list" and "query_id" not in schema.names:
        lines += ["The columns are the texts a sentence-transformers trainer takes as they are, e.g. with "
                  "`MultipleNegativesRankingLoss`.", ""]

    lines += ["## Inputs", "", "| input | path | fingerprint |", "| --- | --- | --- |"]
    inputs = meta.get("inputs") or {}
    for role in sorted(inputs, key=lambda r: (INPUT_ROLES + (r,)).index(r)):  # one order, in memory or read back
        item = inputs[role]
        lines.append(f"| {role} | `{item.get('path')}` | `{item.get('fingerprint')}` |")
    if not inputs:
        lines.append("| (given in memory) | | |")

    lines += ["", "## Models", ""]
    models = meta.get("models") or {}
    for role in ("embedder", "reranker"):
        record = models.get(role)
        lines.append(f"- {role}: " + (f"`{json.dumps(record, sort_keys=True)}`" if record else "none"))

    settings = config_to_toml(config_from_metadata(meta, str(out)),
                              header=[f"negmine mine --config settings.toml -o {out.name} reruns this"])
    lines += ["", "## Settings", "", "The options of the run, as a config file:", "", "```toml",
              settings.rstrip("\n"), "```", "", "## Statistics", "", "| | |", "| --- | --- |"]
    for label, value in report_rows(load_report(out)):
        lines.append(f"| {label} | {value.replace('|', '/')} |")
    libraries = meta.get("libraries") or {}
    if libraries:
        lines += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items())) + "."]
    return "\n".join(lines) + "\n"


def _parquet_info(out: Path) -> tuple[Any, int, tuple[int, int]]:
    """(schema, rows, (the data's uncompressed bytes, the file's size)) of a Parquet output."""
    import pyarrow.parquet as pq

    info = pq.ParquetFile(out)
    sizes = (sum(info.metadata.row_group(i).total_byte_size for i in range(info.metadata.num_row_groups)),
             out.stat().st_size)
    return info.schema_arrow, info.metadata.num_rows, sizes


def _json_lines_info(out: Path) -> tuple[Any, int, tuple[int, int]]:
    """(schema, rows, (the JSON text's bytes, the file's size)) of a JSON Lines output, read as the Hub's
    ``datasets`` reads it (pyarrow.json: integers as int64, floats as float64)."""
    import pyarrow as pa


    opener: Any = gzip.open if out.name.endswith(".gz") else open
    size = rows = 0
    with opener(out, "rb") as fh:
        for line in fh:
            size += len(line)
            rows += bool(line.strip())
    if rows == 0:
        return pa.schema([]), 0, (0, out.stat().st_size)
    with pa.input_stream(str(out), compression="gzip" if out.name.endswith(".gz") else None) as stream:
        schema = open_json(stream, None).schema
    return schema, rows, (size, out.stat().st_size)


def _yaml_header(name: str, schema: Any, rows: int, fmt: str, sizes: tuple[int, int]) -> list[str]:
    """The card's metadata; ``sizes``: the data's uncompressed bytes and the file's size."""
    ranking = fmt in ("labeled-list", "labeled-pair")
    tasks = ["sentence-similarity", "text-retrieval"] + (["text-ranking"] if ranking else [])
    size = next((label for bound, label in _SIZES if rows < bound), "n>1B")
    lines = ["tags:", *(f"- {t}" for t in ("negmine", "hard-negatives", "sentence-transformers", fmt)),
             "task_categories:", *(f"- {t}" for t in tasks),
             "size_categories:", f"- {size}",
             "configs:", "- config_name: default", "  data_files:", "  - split: train", f"    path: {_yaml_str(name)}",
             "dataset_info:", "  features:"]
    for field in schema:
        kind, dtype = _feature(field.type)
        lines += [f"  - name: {_yaml_str(field.name)}", f"    {kind}: {dtype}"]
    lines += ["  splits:", "  - name: train", f"    num_bytes: {sizes[0]}", f"    num_examples: {rows}",
              f"  download_size: {sizes[1]}", f"  dataset_size: {sizes[0]}"]
    return lines


def _feature(arrow_type: Any) -> tuple[str, str]:
    """(``dtype`` or ``sequence``, the value type) of a column, as the Hub's ``dataset_info`` names them."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return "sequence", _dtype(arrow_type.value_type)
    return "dtype", _dtype(arrow_type)


def _dtype(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_floating(arrow_type):
        return f"float{arrow_type.bit_width}"  # arrow calls them halffloat, float and double
    return str(arrow_type)  # int8 .. int64, uint8 .. uint64: the Hub's names too


def _column_doc(name: str, fmt: str = "") -> str:
    if name.startswith("negative_") and name[9:].isdigit():
        return f"the text of hard negative {name[9:]}"
    return LAYOUT_COLUMN_DOCS.get((fmt, name)) or COLUMN_DOCS.get(name, "")


def _yaml_str(text: str) -> str:
    """A YAML scalar: plain when safe, else double-quoted (JSON's quoting is valid YAML)."""
    safe = text and all(c.isalnum() or c in "._-/" for c in text) and text[0] not in "-."
    return text if safe else json.dumps(text)
