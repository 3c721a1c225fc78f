"""negmine.card: the Hugging Face dataset card (README.md) written beside an output with ``--dataset-card``."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml  # type: ignore[import-untyped]
from helpers import assert_cli_error, error_line, mine_args

import negmine
from negmine.errors import ConfigError
from negmine.report.card import MARKER, check_card_path, dataset_card, write_dataset_card, written_by_negmine
from negmine.report.page import load_report, report_rows
from negmine.settings.config import MineConfig
from negmine.settings.files import RUN_OPTIONS, parse_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Cli = Callable[..., Any]


def front_matter(text: str) -> dict[str, Any]:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


def mine_with_card(cli: Cli, paths: dict[str, Path], out: Path, *extra: Any, scoring: bool = False) -> Any:
    result = cli(*mine_args(paths, out, "--dataset-card", *extra, scoring=scoring))
    assert result.exit_code == 0, result.stderr
    return result


@pytest.mark.parametrize(("fmt", "columns"), [("triplet", "all"), ("n-tuple", "training"),
                                              ("labeled-list", "all")])
def test_card_describes_the_output(cli: Cli, tiny: dict[str, Path], out_dir: Path, fmt: str, columns: str) -> None:
    out = out_dir / "negatives.parquet"
    result = mine_with_card(cli, tiny, out, "--output-format", fmt, "--columns", columns, "-n", "3",
                            "--output-scores", "--relative-margin", "0.15",
                            scoring=True)  # dense retrieval, the false-negative rules on, the judge scoring
    assert result.stdout == f"{out}\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["README.md", "negatives.parquet"]  # no temporary file
    assert "dataset card" in result.stderr  # a line of the summary
    text = (out_dir / "README.md").read_text(encoding="utf-8")
    schema = pq.read_schema(out)
    meta = front_matter(text)
    assert meta["tags"][:2] == ["negmine", "hard-negatives"] and fmt in meta["tags"]
    assert {"sentence-similarity", "text-retrieval"} <= set(meta["task_categories"])
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train",
                                                                          "path": "negatives.parquet"}]}]
    features = meta["dataset_info"]["features"]
    assert [f["name"] for f in features] == schema.names
    for f, field in zip(features, schema):
        kind = "sequence" if str(field.type).startswith("list") else "dtype"
        assert set(f) == {"name", kind}
    assert meta["dataset_info"]["splits"][0]["num_examples"] == pq.read_metadata(out).num_rows > 0
    body = text.split("\n---\n", 1)[1]
    assert body.startswith(MARKER)
    metadata = negmine.read_metadata(out)
    for role, item in metadata["inputs"].items():
        assert f"| {role} | `{item['path']}` | `{item['fingerprint']}` |" in body
    assert metadata["models"]["embedder"] and metadata["models"]["reranker"]
    for role in ("embedder", "reranker"):
        assert f"- {role}: `{json.dumps(metadata['models'][role], sort_keys=True)}`" in body
    for label, value in report_rows(load_report(out)):
        assert f"| {label} | {value} |" in body
    settings = body.split("```toml\n", 1)[1].split("```", 1)[0]
    assert f"# negmine mine --config settings.toml -o {out.name} reruns this" in settings
    parsed = parse_config(settings)  # unset names are comments: the same settings
    assert MineConfig(**{k: v for k, v in parsed.items() if k not in RUN_OPTIONS}) == MineConfig(**metadata["config"])
    assert {k: v for k, v in parsed.items() if k in RUN_OPTIONS} == {
        role: item["path"] for role, item in metadata["inputs"].items()}
    assert tomllib.loads(settings)["columns"] == columns
    assert dataset_card(out) == text  # the card is a function of the output file


def test_the_hub_libraries_read_the_card(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    """huggingface_hub parses the card's metadata; datasets loads the folder by it (features, split)."""
    hub = pytest.importorskip("huggingface_hub")
    datasets = pytest.importorskip("datasets")
    out = out_dir / "negatives.parquet"
    mine_with_card(cli, tiny, out, "--output-format", "labeled-list", "--output-scores", "-q")
    card = hub.DatasetCard((out_dir / "README.md").read_text(encoding="utf-8"))
    assert card.data.to_dict()["configs"][0]["data_files"][0]["path"] == "negatives.parquet"
    ds = datasets.load_dataset(str(out_dir), split="train")
    table = pq.read_table(out)
    assert ds.column_names == table.column_names and ds.num_rows == table.num_rows
    assert ds.features["docs"].feature.dtype == "string" and ds.features["scores"].feature.dtype == "float32"


def test_a_readme_negmine_did_not_write_is_refused_before_any_work(cli: Cli, tiny: dict[str, Path],
                                                                   out_dir: Path) -> None:
    readme = out_dir / "README.md"
    readme.write_text("# My dataset\n\nHand-written.\n")
    out = out_dir / "negatives.parquet"
    line = assert_cli_error(cli(*mine_args(tiny, out, "--dataset-card")), 2,
                            [f"--dataset-card: {readme} exists and negmine did not write it"], out, empty_dir=False)
    assert "move it away or write the output to another folder" in line
    assert readme.read_text() == "# My dataset\n\nHand-written.\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["README.md"]


def test_a_card_negmine_wrote_is_replaced(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    mine_with_card(cli, tiny, out_dir / "a.parquet", "-q")
    assert "path: a.parquet" in (out_dir / "README.md").read_text()
    mine_with_card(cli, tiny, out_dir / "b.parquet", "-q", "-n", "2")
    text = (out_dir / "README.md").read_text()
    assert "path: b.parquet" in text and "a.parquet" not in text
    # an edited card whose marker line was deleted is the user's now
    (out_dir / "README.md").write_text(text.replace(MARKER, "<!-- mine"))
    assert not written_by_negmine(out_dir / "README.md")
    result = cli(*mine_args(tiny, out_dir / "c.parquet", "--dataset-card"))
    assert result.exit_code == 2 and "negmine did not write it" in error_line(result)
    assert not (out_dir / "c.parquet").exists()


def test_a_card_never_overwrites_an_input(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    corpus = out_dir / "README.md"  # a Parquet corpus that happens to be named README.md
    shutil.copy(tiny["corpus"], corpus)
    out = out_dir / "negatives.parquet"
    result = cli(*mine_args({**tiny, "corpus": corpus}, out, "--dataset-card"))
    assert result.exit_code == 2
    assert error_line(result) == (f"negmine: error: --dataset-card: {corpus} is an input file; negmine never "
                                  "overwrites its inputs: write the output to another folder")
    assert corpus.read_bytes() == tiny["corpus"].read_bytes() and not out.exists()


def test_a_readme_folder_is_refused(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    (out_dir / "README.md").mkdir()
    out = out_dir / "negatives.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--dataset-card")), 2, ["README.md is a directory"], out,
                     empty_dir=False)


def test_without_the_flag_no_card(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    assert cli(*mine_args(tiny, out_dir / "a.parquet", "-q")).exit_code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.parquet"]


def test_library_writes_a_card_for_any_output(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "neg.parquet"
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, retriever="bm25", relative_margin=None,
                 max_positive_similarity=None, positive_proximity=None)
    path = write_dataset_card(out)
    assert path == tmp_path / "README.md" and written_by_negmine(path)
    assert "- name: negative_id" in path.read_text() and "reranker: none" in path.read_text()
    assert check_card_path(out) == path  # its own card may be replaced
    with pytest.raises(ConfigError, match="is an input file"):
        check_card_path(out, [path])
    with pytest.raises(negmine.InputError, match="no negmine metadata"):
        write_dataset_card(tiny["corpus"])
