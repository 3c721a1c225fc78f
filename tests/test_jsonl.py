"""JSON Lines outputs (negmine.jsonl, the Sinks): the rows the Parquet output holds, one JSON object per line, in
files (plain or gzip, provenance in OUT.provenance.json) or on stdout; names that say no format are refused."""

from __future__ import annotations

import gzip
import importlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import NO_SCORING_OPTIONS, assert_cli_error, mine_args, strip_meta

import negmine
from negmine.errors import ConfigError, InputError
from negmine.output.files import check_output_path
from negmine.output.jsonl import JsonLinesSink, json_lines, sidecar_path

Cli = Callable[..., Any]
MINE = importlib.import_module("negmine.run.engines")  # where the local engine calls mine_batch
FORMATS = ["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding"]


def lines_of(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file, floats at float32 precision (see ``same``)."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [same(json.loads(line)) for line in fh]


def same(value: Any) -> Any:
    """A value as the JSON output holds it: floats compared at float32 precision, NaN as null."""
    if isinstance(value, float):
        return None if math.isnan(value) else float(np.float32(value))
    if isinstance(value, list):
        return [same(v) for v in value]
    if isinstance(value, dict):
        return {k: same(v) for k, v in value.items()}
    return value


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return [same(r) for r in table.to_pylist()]


# --- the encoding ---------------------------------------------------------------------------------------------------

def test_json_lines_are_compact_ordered_and_exact() -> None:
    table = pa.table({
        "text": ["café \u2028 line", 'quote " and \\ and \n'],
        "id": pa.array([7, 12345678901234], pa.int64()),
        "score": pa.array([0.3, float("nan")], pa.float32()),
        "scores": pa.array([[0.1, 1.0], []], pa.list_(pa.float32())),
        "wide": pa.array([1 / 3, float("inf")], pa.float64()),
        "labels": pa.array([[1, 0], [1]], pa.list_(pa.int8())),
        "ids": [["a", "b"], []],
    })
    assert json_lines(table) == (
        '{"text":"café \\u2028 line","id":7,"score":0.3,"scores":[0.1,1.0],"wide":0.3333333333333333,'
        '"labels":[1,0],"ids":["a","b"]}\n'
        '{"text":"quote \\" and \\\\ and \\n","id":12345678901234,"score":null,"scores":[],"wide":null,'
        '"labels":[1],"ids":[]}\n')
    assert json_lines(table.slice(0, 0)) == ""
    assert json.loads(json_lines(table).splitlines()[0])["text"] == "café \u2028 line"  # one line per row


def test_gzip_bytes_depend_on_the_rows_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import negmine.output.jsonl as jsonl

    monkeypatch.setattr(jsonl, "CHUNK", 100)
    table = pa.table({"t": [f"row {i} " * (i % 7) for i in range(300)]})
    written = []
    for name, parts in (("a", [table]), ("b", [table.slice(i, 13) for i in range(0, 300, 13)])):
        sink = JsonLinesSink(tmp_path / f"{name}.jsonl.gz", compress=True)
        for part in parts:
            sink.write(part)
        sink.commit({"config": {}})
        written.append((tmp_path / f"{name}.jsonl.gz").read_bytes())
    assert written[0] == written[1]
    assert written[0][4:8] == b"\0\0\0\0"  # no timestamp
    assert gzip.decompress(written[0]).decode() == json_lines(table)


# --- outputs by extension ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parquet_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Parquet output of each layout (scores on, a prompt for flagembedding), mined once."""
    from helpers import TINY

    folder = tmp_path_factory.mktemp("parquet")
    out = {}
    for fmt in FORMATS:
        out[fmt] = folder / f"{fmt}.parquet"
        negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet", output=out[fmt],
                     cache_dir=folder / "cache", output_format=fmt, num_negatives=3, output_scores=True,
                     prompt="Represent: " if fmt == "flagembedding" else None, **NO_SCORING_OPTIONS)
    return out


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_jsonl_rows_are_the_parquet_rows(tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                         parquet_outputs: dict[str, Path], fmt: str, suffix: str) -> None:
    out = out_dir / f"neg{suffix}"
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, cache_dir=tmp_path / "cache",
                          output_format=fmt, num_negatives=3, output_scores=True,
                          prompt="Represent: " if fmt == "flagembedding" else None, **NO_SCORING_OPTIONS)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([out.name, out.name + ".provenance.json"])
    expected = pq.read_table(parquet_outputs[fmt])
    got = lines_of(out)
    assert got == rows(expected)
    assert all(list(r) == expected.column_names for r in got)  # keys in column order
    assert result.output == out and result.stats.rows_written == len(got)
    table = result.table  # read back with the types it was written from
    assert strip_meta(table).equals(strip_meta(expected)) and table.schema.metadata == expected.schema.metadata
    assert negmine.read_metadata(out) == negmine.read_metadata(parquet_outputs[fmt])


def test_the_sidecar_is_the_provenance(tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.jsonl"
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, num_negatives=2,
                          **NO_SCORING_OPTIONS)
    side = sidecar_path(out)
    assert side.name == "neg.jsonl.provenance.json"
    assert json.loads(side.read_text()) == json.loads(json.dumps(result.metadata, default=str))
    assert negmine.read_metadata(side) == negmine.read_metadata(out)
    side.unlink()
    with pytest.raises(InputError, match="no provenance file neg.jsonl.provenance.json beside it"):
        negmine.read_metadata(out)


def test_stdout_holds_only_json_lines(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                      parquet_outputs: dict[str, Path]) -> None:
    result = cli(*mine_args(tiny, "-", "--output-format", "labeled-pair", "-n", "3", "--output-scores"))
    assert result.exit_code == 0, result.stderr
    assert [same(json.loads(line)) for line in result.stdout.splitlines()] == rows(pq.read_table(
        parquet_outputs["labeled-pair"]))
    assert result.stdout.endswith("}\n")
    assert "negatives written" in result.stderr and "stdout" in result.stderr  # the summary stays on stderr
    assert list(out_dir.iterdir()) == []  # no sidecar for stdout
    assert not list(Path.cwd().glob("-*"))  # and no file named -


def test_stdout_from_python(tiny: dict[str, Path], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output="-", num_negatives=2,
                          **NO_SCORING_OPTIONS)
    out = capfdbinary.readouterr().out.decode()
    assert len(out.splitlines()) == result.stats.rows_written
    with pytest.raises(ConfigError, match="went to stdout"):
        _ = result.table


def test_a_failed_run_publishes_nothing(tiny: dict[str, Path], out_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = MINE.mine_batch, []

    def crashing(*args: Any) -> Any:
        if calls:
            raise RuntimeError("crash")
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(MINE, "mine_batch", crashing)
    for name in ("neg.jsonl", "neg.jsonl.gz"):
        calls.clear()
        with pytest.raises(RuntimeError):
            negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out_dir / name,
                         false_negatives_output=out_dir / "fn.jsonl", query_batch_size=4, resume=False,
                         **NO_SCORING_OPTIONS)
        assert list(out_dir.iterdir()) == []  # no output, no sidecar, no temporary file


def test_on_stdout_an_error_cuts_the_stream(cli: Cli, tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = MINE.mine_batch, []

    def crashing(*args: Any) -> Any:
        if len(calls) == 2:
            from negmine.errors import InputError

            raise InputError("boom")
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(MINE, "mine_batch", crashing)
    result = cli(*mine_args(tiny, "-", "--query-batch-size", "4", "--no-resume", "-n", "2"))
    assert result.exit_code == 1 and "negmine: error: boom" in result.stderr
    lines = result.stdout.splitlines()
    assert 0 < len(lines) and all(json.loads(line)["anchor"] for line in lines)  # whole lines, then nothing


@pytest.mark.parametrize("name", ["neg.csv", "neg.json", "neg.txt", "neg", "neg.parquet.gz", "neg.jsonl.bz2"])
def test_names_of_no_format_are_usage_errors(cli: Cli, tiny: dict[str, Path], out_dir: Path, name: str) -> None:
    out = out_dir / name
    assert_cli_error(cli(*mine_args(tiny, out)), 2, [
        f"--output {out}: the name says no format negmine writes; end it with .parquet, .jsonl or .jsonl.gz"], out)


def test_stdout_is_for_the_output_alone(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--false-negatives-output", "-")), 2,
                     ["--false-negatives-output -: only --output can go to stdout"], out)
    result = cli(*mine_args(tiny, "-", "--dataset-card"))
    assert result.exit_code == 2 and result.stdout == ""
    assert "--dataset-card describes an output file" in result.stderr


def test_an_input_is_never_a_sidecar(tmp_path: Path) -> None:
    side = tmp_path / "x.jsonl.provenance.json"
    side.write_text("{}")
    with pytest.raises(ConfigError, match="is an input file"):
        check_output_path(tmp_path / "x.jsonl", [side])


def test_the_false_negatives_file_follows_its_extension(tiny: dict[str, Path], out_dir: Path) -> None:
    options = {"retriever": "hybrid", "lexical_overlap": 0.05, "num_negatives": 2}
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out_dir / "n.parquet",
                 false_negatives_output=out_dir / "fn.parquet", **options)
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out_dir / "n.jsonl",
                 false_negatives_output=out_dir / "fn.jsonl.gz", **options)
    expected = rows(pq.read_table(out_dir / "fn.parquet"))
    assert expected and lines_of(out_dir / "fn.jsonl.gz") == expected
    assert negmine.read_metadata(out_dir / "fn.jsonl.gz") == negmine.read_metadata(out_dir / "fn.parquet")
    qrels = negmine.read_qrels(out_dir / "fn.jsonl.gz")  # qrels form: negmine reads it back as qrels
    assert len(qrels) == len(expected)


def test_the_candidates_file_is_parquet(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    """refilter and sweep read it back with its exact types."""
    out = out_dir / "neg.jsonl"
    for name in ("cand.jsonl", "-"):
        assert_cli_error(cli(*mine_args(tiny, out, "--candidates-output", name)), 2,
                         ["--candidates-output", "name the file with a .parquet extension"], out)


def test_report_and_config_from_read_a_jsonl_output(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = out_dir / "neg.jsonl.gz"
    result = cli(*mine_args(tiny, out, "--output-format", "flagembedding", "--prompt", "Represent: ", "-n", "2"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{out}\n"
    report = cli("report", out, "-q")
    assert report.exit_code == 0, report.stderr
    assert (out_dir / "neg.jsonl.report.png").is_file() and (out_dir / "neg.jsonl.report.html").is_file()
    shown = cli("config", "from", out)
    assert shown.exit_code == 0, shown.stderr
    assert 'output-format = "flagembedding"' in shown.stdout and 'prompt = "Represent: "' in shown.stdout
    settings = tmp_path / "settings.toml"
    settings.write_text(shown.stdout)
    again = out_dir / "again.jsonl.gz"
    result = cli("mine", "--config", settings, "-o", again, "-q")
    assert result.exit_code == 0, result.stderr
    assert again.read_bytes() == out.read_bytes()
    assert sidecar_path(again).read_bytes() == sidecar_path(out).read_bytes()


def test_a_dataset_card_for_jsonl(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    datasets = pytest.importorskip("datasets")
    import yaml  # type: ignore[import-untyped]

    out = out_dir / "neg.jsonl"
    result = cli(*mine_args(tiny, out, "--output-format", "labeled-pair", "--output-scores", "--dataset-card", "-q"))
    assert result.exit_code == 0, result.stderr
    text = (out_dir / "README.md").read_text()
    meta = yaml.safe_load(text[4:].split("\n---\n", 1)[0])
    features = {f["name"]: f.get("dtype") for f in meta["dataset_info"]["features"]}
    assert features == {"anchor": "string", "positive": "string", "label": "int64", "query_id": "string",
                        "doc_id": "string", "score": "float64"}
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "neg.jsonl"}]
    assert 'load_dataset("json", data_files="neg.jsonl", split="train")' in text
    ds = datasets.load_dataset(str(out_dir), split="train")
    assert ds.num_rows == len(lines_of(out)) == meta["dataset_info"]["splits"][0]["num_examples"]
    assert ds.column_names == list(features)


def test_the_output_of_a_python_only_run_stays_in_memory(tiny: dict[str, Path]) -> None:
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output_format="flagembedding",
                          num_negatives=2, **NO_SCORING_OPTIONS)
    assert result.output is None and result.table.column_names[:3] == ["query", "pos", "neg"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_evaluate_reads_every_layout_in_either_format(tiny: dict[str, Path], out_dir: Path,
                                                      parquet_outputs: dict[str, Path], fmt: str) -> None:
    from negmine.report.audit import _negatives, evaluate

    out = out_dir / "neg.jsonl"
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, output_format=fmt,
                          num_negatives=3, output_scores=True, prompt="Represent: " if fmt == "flagembedding" else None,
                          **NO_SCORING_OPTIONS)
    parquet, jsonl = evaluate(parquet_outputs[fmt], tiny["qrels"]), evaluate(out, tiny["qrels"])
    assert parquet.false_negatives.n == jsonl.false_negatives.n == result.stats.negatives_written
    assert parquet.false_negatives.relevant == jsonl.false_negatives.relevant == 0  # positives are no negatives
    a, b = _negatives(parquet_outputs[fmt], fmt), _negatives(out, None)  # the layout told, or recognised
    for key in ("query", "doc", "positive"):
        assert list(a[key]) == list(b[key])
    assert np.allclose(a["negative_score"], b["negative_score"], equal_nan=True)
    assert not np.isnan(a["negative_score"]).any() and not np.isnan(a["positive_score"]).any()


@pytest.mark.parametrize("fmt", ["labeled-pair", "flagembedding"])
def test_refilter_writes_the_jsonl_mine_writes(tiny: dict[str, Path], out_dir: Path, fmt: str) -> None:
    """The grouped layouts with difficulty bands and promoted false negatives, through a candidates file."""
    options = {"output_format": fmt, "num_negatives": 3, "output_scores": True, "difficulty_bands": 3,
               "promote_false_negatives": True, "sampling_strategy": "random", "range_max": 30}
    mined, cand = out_dir / "mined.jsonl.gz", out_dir / "cand.parquet"
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=mined, candidates_output=cand,
                 score_all=True, **options)
    again = out_dir / "again.jsonl.gz"
    negmine.refilter(cand, again)
    assert again.read_bytes() == mined.read_bytes()
    band = "neg_difficulty_bands" if fmt == "flagembedding" else "difficulty_band"
    rows_ = lines_of(mined)
    assert all(band in r for r in rows_)
    if fmt == "flagembedding":
        assert all(len(r[band]) == len(r["neg"]) and all(1 <= b <= 3 for b in r[band]) for r in rows_)
    else:
        assert all((r[band] == 0) == (r["label"] == 1) for r in rows_)
