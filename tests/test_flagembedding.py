"""A BEIR folder mined into FlagEmbedding's training data: the JSON Lines rows FlagEmbedding's loader reads
(``query``, ``pos``, ``neg`` lists, aligned ``pos_scores`` / ``neg_scores``, a ``prompt``), checked against its
documented format, and fed to FlagEmbedding's own dataset class when FlagEmbedding is installed (it is no
dependency of negmine: ``pip install FlagEmbedding`` to run that test)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SMALL_CORPUS, SMALL_QRELS, SMALL_QUERIES
from helpers import NO_SCORING, write_beir

Cli = Callable[..., Any]
PROMPT = "Represent this sentence for searching relevant passages: "


@pytest.fixture
def flagembedding_jsonl(cli: Cli, tmp_path: Path, out_dir: Path) -> Path:
    """BEIR folder -> negmine mine --output-format flagembedding -> train.jsonl (scores, prompt, ids)."""
    root = write_beir(tmp_path / "beir", SMALL_CORPUS, SMALL_QUERIES, SMALL_QRELS)
    out = out_dir / "train.jsonl"
    result = cli("mine", "--beir", root, "--split", "test", "--output-format", "flagembedding", "--output-scores",
                 "--prompt", PROMPT, "-n", "3", "-o", out, *NO_SCORING)
    assert result.exit_code == 0, result.stderr
    return out


def test_the_rows_are_flagembeddings_training_format(flagembedding_jsonl: Path) -> None:
    """FlagEmbedding's documented format: {"query": str, "pos": List[str], "neg": List[str], "pos_scores":
    List[float], "neg_scores": List[float], "prompt": str} per line."""
    rows = [json.loads(line) for line in flagembedding_jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2", "q3"]  # a row per query
    texts = dict(zip(SMALL_CORPUS["_id"], SMALL_CORPUS["text"]))
    titles = dict(zip(SMALL_CORPUS["_id"], SMALL_CORPUS["title"]))
    for row in rows:
        assert list(row) == ["query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "query_id", "pos_ids",
                             "neg_ids"]
        assert isinstance(row["query"], str) and row["prompt"] == PROMPT
        for key in ("pos", "neg"):
            assert isinstance(row[key], list) and row[key] and all(isinstance(t, str) for t in row[key])
            assert len(row[f"{key}_scores"]) == len(row[key]) == len(row[f"{key}_ids"])
            assert all(isinstance(s, float) for s in row[f"{key}_scores"])
            for doc, text in zip(row[f"{key}_ids"], row[key]):
                assert text == f"{titles[doc]} {texts[doc]}"  # BEIR's title joined before the text
        assert not set(row["pos_ids"]) & set(row["neg_ids"])
    assert rows[0]["pos_ids"] == ["d1", "d2"]  # every positive of q1 in its one row
    assert 1 <= len(rows[0]["neg"]) <= 3 and rows[1]["pos_ids"] == ["d5"]  # d6 is judged 0: not a positive


def test_training_columns_are_what_flagembedding_reads(cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    root = write_beir(tmp_path / "beir", SMALL_CORPUS, SMALL_QUERIES, SMALL_QRELS)
    out = out_dir / "train.jsonl"
    result = cli("mine", "--beir", root, "--split", "test", "--output-format", "flagembedding", "--columns",
                 "training", "-n", "2", "-o", out, *NO_SCORING)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    for line in out.read_text().splitlines():
        assert list(json.loads(line)) == ["query", "pos", "neg"]


def test_prompt_without_flagembedding_warns(cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    root = write_beir(tmp_path / "beir", SMALL_CORPUS, SMALL_QUERIES, SMALL_QRELS)
    result = cli("mine", "--beir", root, "--split", "test", "--prompt", "x", "-o", out_dir / "t.parquet",
                 *NO_SCORING)
    assert result.exit_code == 0
    assert "--prompt has no effect with --output-format triplet" in result.stderr


def load_flagembedding_dataset_class() -> tuple[Any, Any]:
    """FlagEmbedding's embedder training dataset and its data arguments, imported without FlagEmbedding's package
    ``__init__`` (which imports every inference model, some of which need older transformers releases): its
    packages stand in sys.modules as empty packages over their folders."""
    spec = importlib.util.find_spec("FlagEmbedding")
    if spec is None or spec.origin is None:
        pytest.skip("FlagEmbedding is not installed (pip install FlagEmbedding to run this test)")
    root = os.path.dirname(spec.origin)
    for name, sub in (("FlagEmbedding", ""), ("FlagEmbedding.abc", "abc"),
                      ("FlagEmbedding.abc.finetune", "abc/finetune"),
                      ("FlagEmbedding.abc.finetune.embedder", "abc/finetune/embedder")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [os.path.join(root, sub)]
            sys.modules[name] = package
    from FlagEmbedding.abc.finetune.embedder.AbsArguments import AbsEmbedderDataArguments
    from FlagEmbedding.abc.finetune.embedder.AbsDataset import AbsEmbedderTrainDataset

    return AbsEmbedderTrainDataset, AbsEmbedderDataArguments


def test_flagembeddings_own_loader_reads_the_output(flagembedding_jsonl: Path, tmp_path: Path) -> None:
    """FlagEmbedding's AbsEmbedderTrainDataset loads the file (datasets' json loader), and each item is the
    prompt + query, a positive and negatives, with the teacher scores of knowledge distillation."""
    dataset_class, arguments = load_flagembedding_dataset_class()
    rows = [json.loads(line) for line in flagembedding_jsonl.read_text(encoding="utf-8").splitlines()]
    args = arguments(train_data=[str(flagembedding_jsonl)], train_group_size=3, knowledge_distillation=True,
                     query_instruction_for_retrieval="", cache_path=str(tmp_path / "hf-cache"))
    dataset = dataset_class(args, tokenizer=None)
    assert len(dataset) == len(rows)
    assert set(dataset.dataset.column_names) >= {"query", "pos", "neg", "pos_scores", "neg_scores", "prompt"}
    random.seed(0)
    for i, row in enumerate(rows):
        query, passages, teacher = dataset[i]
        assert query == PROMPT + row["query"]  # the row's prompt, in FlagEmbedding's "{}{}" instruction format
        assert passages[0] in row["pos"] and all(p in row["neg"] for p in passages[1:]) and len(passages) == 3
        scores = dict(zip(row["pos"] + row["neg"], row["pos_scores"] + row["neg_scores"]))
        assert teacher == [scores[p] for p in passages]
