"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/SPLIT.tsv`` (each optionally gzipped)."""

from __future__ import annotations

from pathlib import Path

from negmine.errors import InputError
from negmine.inputs.formats import PathLike


def beir_files(folder: PathLike, split: str = "train") -> dict[str, Path]:
    """The corpus, queries and qrels of a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` (each or ``.jsonl.gz``)
    and ``qrels/SPLIT.tsv`` (or ``.tsv.gz``).

    Raises:
        InputError: The folder or one of its files is missing (the message lists the splits there are).
    """
    root = Path(folder)
    layout = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv"
    if not root.exists():
        raise InputError(f"--beir {root}: no such folder")
    if not root.is_dir():
        raise InputError(f"--beir {root}: not a folder; {layout}")
    files: dict[str, Path] = {}
    for role, name in (("corpus", "corpus.jsonl"), ("queries", "queries.jsonl")):
        found = next((root / n for n in (name, name + ".gz") if (root / n).is_file()), None)
        if found is None:
            raise InputError(f"--beir {root}: no {name} (or {name}.gz); {layout}")
        files[role] = found
    qrels = root / "qrels"
    found = next((qrels / n for n in (f"{split}.tsv", f"{split}.tsv.gz") if (qrels / n).is_file()), None)
    if found is None:
        splits = sorted({p.name.split(".")[0] for p in qrels.glob("*.tsv*")}) if qrels.is_dir() else []
        there = f"the splits there are: {', '.join(splits)}" if splits else "it holds no qrels/*.tsv"
        raise InputError(f"--beir {root}: no qrels/{split}.tsv (--split {split}); {there}")
    files["qrels"] = found
    return files
