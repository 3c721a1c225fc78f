"""What a new user tripped over (issue 17), one test per item: bytes that are not UTF-8, stale run state and the
cache's bound, indexes that hold what a later mine needs, BEIR config files, the messages, a run with no model,
and half precision. The cases that need real processes, folders and mounts (a closed pipe, read-only and full
file systems) are in test_faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import NO_SCORING, NO_SCORING_OPTIONS, TINY, error_line, mine_args

import negmine

Cli = Callable[..., Any]


def jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def beir_tiny(tmp_path: Path) -> Path:
    """examples/tiny as a BEIR folder."""
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    for role in ("corpus", "queries"):
        rows = pq.read_table(TINY / f"{role}.parquet").to_pylist()
        jsonl(folder / f"{role}.jsonl", [json.dumps({"_id": r["_id"], "text": r["text"]}).encode() for r in rows])
    qrels = pq.read_table(TINY / "qrels.parquet").to_pylist()
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{r['query-id']}\t{r['corpus-id']}\t{r['score']}\n" for r in qrels))
    return folder


# --- 1, 2. bytes that are not UTF-8 in JSON Lines ------------------------------------------------------------------

@pytest.mark.parametrize(("role", "line", "column", "what"), [
    ("corpus", b'{"_id": "d2", "text": "caf\xe9 au lait"}', "text", "not UTF-8 text"),
    ("corpus", b'{"_id": "d\xff2", "text": "coffee"}', "_id", "id is not UTF-8 text"),
    ("corpus", b'{"_id": "d2", "title": "\xfe", "text": "coffee"}', "title", "title is not UTF-8 text"),
    ("queries", b'{"_id": "q2", "text": "tea \xc3"}', "text", "not UTF-8 text"),
])
def test_bytes_that_are_not_utf8_are_named_by_line(cli: Cli, tmp_path: Path, out_dir: Path, role: str, line: bytes,
                                                   column: str, what: str) -> None:
    corpus = jsonl(tmp_path / "corpus.jsonl", [b'{"_id": "d1", "text": "coffee beans"}',
                                               line if role == "corpus" else b'{"_id": "d2", "text": "green tea"}',
                                               b'{"_id": "d3", "text": "milk"}'])
    queries = jsonl(tmp_path / "queries.jsonl", [b'{"_id": "q1", "text": "coffee"}',
                                                 line if role == "queries" else b'{"_id": "q2", "text": "tea"}'])
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    cache = tmp_path / "cache"
    args = ["mine", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "-o", out_dir / "o.parquet", "-n",
            "1", "--cache-dir", cache, *NO_SCORING]
    first = cli(*args)
    path = corpus if role == "corpus" else queries
    assert first.exit_code == 1
    assert error_line(first) == f"negmine: error: {path}: column {column!r} line 2: {what}"
    copies = [json.loads(m.read_text())["path"] for m in cache.glob("inputs/*/manifest.json")]
    assert str(path) not in copies  # no copy of the bad file is kept
    assert cli(*args).stderr == first.stderr  # the rerun says the same, not something worse
    assert list(out_dir.iterdir()) == []


# --- 4. stale run state, and the cache's bound -------------------------------------------------------------------

def test_a_run_that_failed_does_not_resume(tiny: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    everything = {**NO_SCORING_OPTIONS, "min_score": 1e9, "retriever": "bm25", "query_batch_size": 4}
    with pytest.raises(negmine.EmptyResultError):
        negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "a.parquet", cache_dir=cache,
                     **everything)
    assert not list(cache.glob("runs/*/*"))  # a refused run leaves no batch behind
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "a.parquet",
                          cache_dir=cache, **{**everything, "allow_empty": True})
    assert not any("resuming" in w for w in result.warnings)
    assert not list(cache.glob("runs/*"))


def test_cache_info_and_prune(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert cli(*mine_args(tiny, out_dir / "a.parquet", "--cache-dir", cache, scoring=True)).exit_code == 0
    abandoned = cache / "runs" / "0123abcd"
    abandoned.mkdir(parents=True)
    (abandoned / "batch-0000000.npz").write_bytes(b"x" * 1000)
    info = cli("cache", "info", "--cache-dir", cache, "--json")
    assert info.exit_code == 0, info.stderr
    parts = json.loads(info.stdout)["parts"]
    assert {name: parts[name]["entries"] for name in parts} == {"inputs": 2, "embeddings": 1, "bm25": 1,
                                                               "vectors": 1, "faiss": 0, "runs": 1}
    assert parts["runs"]["bytes"] == 1000 and all(p["bytes"] > 0 for n, p in parts.items() if p["entries"])
    table = cli("cache", "info", "--cache-dir", cache)
    assert "embeddings" in table.stdout and "runs" in table.stdout

    old = 30 * 86400
    os.utime(abandoned / "batch-0000000.npz", (os.path.getmtime(abandoned) - old,) * 2)
    dry = cli("cache", "prune", "--cache-dir", cache, "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.split() == [str(abandoned)] and abandoned.exists()
    pruned = cli("cache", "prune", "--cache-dir", cache, "--older-than", "7d", "-q")
    assert pruned.stdout.split() == [str(abandoned)] and not abandoned.exists()
    assert (cache / "bm25").exists() and any((cache / "embeddings").iterdir())  # used now: kept

    again = cli(*mine_args(tiny, out_dir / "b.parquet", "--cache-dir", cache, scoring=True))  # the cache still works
    assert again.exit_code == 0 and (out_dir / "a.parquet").read_bytes() == (out_dir / "b.parquet").read_bytes()
    everything = cli("cache", "prune", "--cache-dir", cache, "--part", "embeddings", "-q")
    assert len(everything.stdout.split()) == 1 and not any((cache / "embeddings").iterdir())
    bad = cli("cache", "prune", "--cache-dir", cache, "--older-than", "soon")
    assert bad.exit_code == 2 and "--older-than 'soon': give an age such as 7d" in error_line(bad)


def test_an_entry_in_use_records_its_use(tiny: dict[str, Path], tmp_path: Path) -> None:
    from negmine.storage.housekeeping import entries, prune

    cache = tmp_path / "cache"
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], cache_dir=cache, **NO_SCORING_OPTIONS)
    long_ago = 1_000_000_000.0
    for entry in entries(cache):
        os.utime(entry.path / "manifest.json", (long_ago, long_ago))
    negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], cache_dir=cache, **NO_SCORING_OPTIONS)
    assert all(e.last_used > long_ago for e in entries(cache))  # the second run touched what it read
    assert prune(cache, older_than=86400).removed == []


# --- 6. an index holds what the later mine needs -------------------------------------------------------------------

def test_a_bm25_index_stores_the_embeddings_the_rules_read(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = tmp_path / "idx"
    built = cli("index", "--corpus", tiny["corpus"], "--index-dir", idx, "--retriever", "bm25", "-q")
    assert built.exit_code == 0, built.stderr
    from fakes import FakeEncoder

    encoders: list[FakeEncoder] = []

    def make(config: Any, model: Any = None) -> FakeEncoder:
        encoders.append(FakeEncoder(name=model or config.model or "fake"))
        return encoders[-1]

    import importlib

    monkeypatch.setattr(importlib.import_module("negmine.retrieve.build"), "make_encoder", make)
    mined = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"], "-o",
                out_dir / "a.parquet", "--index-dir", idx, "--retriever", "bm25", "-q")
    assert mined.exit_code == 0 and mined.stderr == ""  # no gap announced
    documents = set(negmine.read_corpus(tiny["corpus"]).texts)
    assert not [t for e in encoders for t in e.encoded if t in documents]  # no document encoded again


# --- 8. a BEIR folder in config files --------------------------------------------------------------------------------

def test_config_from_a_beir_run_and_beir_over_a_config_file(cli: Cli, beir_tiny: Path, tiny: dict[str, Path],
                                                              out_dir: Path, tmp_path: Path) -> None:
    first = cli("mine", "--beir", beir_tiny, "-o", out_dir / "a.parquet", *NO_SCORING, "-q")
    assert first.exit_code == 0, first.stderr
    config = cli("config", "from", out_dir / "a.parquet").stdout
    assert f'beir = "{beir_tiny}"' in config and 'split = "train"' in config and "\ncorpus =" not in config
    (tmp_path / "beir.toml").write_text(config)
    again = cli("mine", "--config", tmp_path / "beir.toml", "-o", out_dir / "b.parquet", "-q")
    assert again.exit_code == 0, again.stderr
    assert (out_dir / "a.parquet").read_bytes() == (out_dir / "b.parquet").read_bytes()

    files = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"], "-o",
                out_dir / "c.parquet", *NO_SCORING, "-q")
    assert files.exit_code == 0
    (tmp_path / "files.toml").write_text(cli("config", "from", out_dir / "c.parquet").stdout)
    over = cli("mine", "--config", tmp_path / "files.toml", "--beir", beir_tiny, "-o", out_dir / "d.parquet", "-q")
    assert over.exit_code == 0, over.stderr  # the flag replaces the file's inputs
    assert negmine.read_metadata(out_dir / "d.parquet")["beir"] == {"folder": str(beir_tiny), "split": "train"}
    back = cli("mine", "--config", tmp_path / "beir.toml", "--corpus", tiny["corpus"], "--queries",
               tiny["queries"], "--qrels", tiny["qrels"], "-o", out_dir / "e.parquet", "-q")
    assert back.exit_code == 0, back.stderr
    assert "beir" not in negmine.read_metadata(out_dir / "e.parquet")
    assert (out_dir / "c.parquet").read_bytes() == (out_dir / "e.parquet").read_bytes()


# --- 9. messages -----------------------------------------------------------------------------------------------------

def test_evaluate_recognises_a_candidates_file(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    cand = out_dir / "cand.parquet"
    assert cli(*mine_args(tiny, out_dir / "a.parquet", "--candidates-output", cand)).exit_code == 0
    result = cli("evaluate", cand, "--qrels", tiny["qrels"])
    assert result.exit_code == 1
    assert error_line(result) == (f"negmine: error: {cand}: a candidates file (written by --candidates-output), not "
                                  f"an output; give the output as the argument and this file with --candidates {cand}")


def test_the_cache_variable_is_named_when_it_is_wrong(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv("NEGMINE_CACHE_DIR", str(a_file))
    result = cli(*mine_args(tiny, out_dir / "a.parquet"))
    assert result.exit_code == 2
    assert error_line(result) == f"negmine: error: {a_file}: $NEGMINE_CACHE_DIR is a file, not a folder; give a folder"


@pytest.mark.parametrize("option", ["--index-dir", "--cache-dir"])
def test_a_file_for_a_cache_folder_exits_2_either_way(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                      tmp_path: Path, option: str) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    result = cli(*mine_args(tiny, out_dir / "a.parquet", option, a_file))
    assert result.exit_code == 2 and "is a file, not a folder" in error_line(result)


def test_a_failed_index_leaves_no_folder(cli: Cli, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.parquet"
    corpus.write_bytes(b"PAR1 this is not parquet")
    idx = tmp_path / "idx"
    result = cli("index", "--corpus", corpus, "--index-dir", idx)
    assert result.exit_code == 1 and "not a readable Parquet file" in error_line(result)
    assert not idx.exists()


@pytest.mark.parametrize(("args", "needle", "where"), [
    (["mine", "--corpus", "c.parquet"], "Missing option '--output' / '-o'", "negmine mine"),
    (["mine", "-o", "x.parquet", "-n", "many"], "Invalid value for '--num-negatives' / '-n'", "negmine mine"),
    (["mine-all"], "No such command 'mine-all'", "negmine"),
    (["cache", "info", "--bogus"], "No such option: --bogus", "negmine cache info"),
])
def test_usage_errors_read_as_every_other_error(cli: Cli, args: list[str], needle: str, where: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    line = error_line(result)
    assert needle in line and line.endswith(f"; see '{where} --help'")


def test_the_summary_counts_texts_once_and_lists_rules_in_order(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                                 tmp_path: Path) -> None:
    args = mine_args(tiny, out_dir / "a.parquet", "--cache-dir", tmp_path / "cache", "--retriever", "bm25",
                     "--query-batch-size", "4", scoring=True)
    fresh = cli(*args)
    assert fresh.exit_code == 0, fresh.stderr
    texts = next(line for line in fresh.stderr.splitlines() if "texts encoded / from cache" in line)
    encoded, cached = (int(x.replace(",", "")) for x in texts.split("│")[2].split("/"))
    assert cached == 0 and encoded > 0  # a fresh cache: nothing came from it
    warm = cli(*args)
    texts = next(line for line in warm.stderr.splitlines() if "texts encoded / from cache" in line)
    assert [int(x.replace(",", "")) for x in texts.split("│")[2].split("/")] == [0, encoded]

    from negmine.report.stats import MineStats
    from negmine.report.summary import summary_rows
    from negmine.rules.registry import REASONS

    stats = MineStats(dropped={"positive_proximity": 3, "agreement": 1, "positive": 4, "lexical_overlap": 2})
    rules = [label[len("dropped: "):].replace(" ", "_") for label, _ in summary_rows(stats, 5)
             if label.startswith("dropped: ")]
    assert rules == sorted(rules, key=REASONS.index)
    assert not any(label.startswith("texts encoded") for label, _ in summary_rows(stats, 5))  # none looked up


# --- 10. a run with no model -----------------------------------------------------------------------------------------

def test_model_none_loads_no_model(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "neg.parquet"
    code = (
        "import sys\n"
        "from negmine.cli import main\n"
        f"sys.argv = ['negmine', 'mine', '--corpus', {str(tiny['corpus'])!r}, '--queries', "
        f"{str(tiny['queries'])!r}, '--qrels', {str(tiny['qrels'])!r}, '-o', {str(out)!r}, '--model', 'none', "
        "'--retriever', 'bm25', '-q']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NEGMINE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    meta = negmine.read_metadata(out)
    assert meta["models"]["embedder"] is None and meta["config"]["positive_proximity"] is None
    assert meta["stats"]["dropped"]["lexical_overlap"] > 0  # the rules that need no model still ran


def test_model_none_refuses_what_needs_a_model(tiny: dict[str, Path]) -> None:
    with pytest.raises(negmine.ConfigError, match="--model none: --retriever dense retrieves with the bi-encoder"):
        negmine.MineConfig(model="none")
    with pytest.raises(negmine.ConfigError, match="--model none: --relative-margin reads a judge's scores"):
        negmine.MineConfig(model="none", retriever="bm25", relative_margin=0.05)
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], model="none", retriever="bm25",
                          positive_proximity=0.1)
    assert result.warnings == ["--positive-proximity has no effect with --model none (it reads the bi-encoder's "
                               "cosines)"]


# --- 11. half precision ----------------------------------------------------------------------------------------------

@pytest.mark.real_model
def test_bf16_encodes_deterministically_near_fp32() -> None:
    from negmine.retrieve.encoders import SentenceTransformerEncoder

    texts = [t for t in negmine.read_corpus(TINY / "corpus.parquet").texts][:24]
    fp32 = SentenceTransformerEncoder(device="cpu", precision="fp32")
    bf16 = SentenceTransformerEncoder(device="cpu", precision="bf16")
    a, b = fp32.encode(texts, "document"), bf16.encode(texts, "document")
    assert np.array_equal(b, SentenceTransformerEncoder(device="cpu", precision="bf16").encode(texts, "document"))
    cos_a, cos_b = a @ a.T, b @ b.T
    assert 0 < np.abs(cos_a - cos_b).max() < 0.03  # measured 0.01 here (docs/mining.md)
    assert "precision" not in json.loads(fp32.identity("document"))  # fp32 caches stay as they were
    assert json.loads(bf16.identity("document"))["precision"] == "bf16"
    assert json.loads(SentenceTransformerEncoder(device="cpu").identity("document")).get("precision") is None


def test_precision_is_checked_and_recorded(tiny: dict[str, Path]) -> None:
    with pytest.raises(negmine.ConfigError, match="--precision must be one of auto, fp32, fp16, bf16; got 'fp8'"):
        negmine.MineConfig(precision="fp8")
    result = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], precision="bf16", **NO_SCORING_OPTIONS)
    assert result.metadata["config"]["precision"] == "bf16"
