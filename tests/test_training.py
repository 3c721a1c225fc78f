"""``--columns training`` output trains as it is: the README's snippet, a sentence-transformers trainer and
MultipleNegativesRankingLoss, for two steps of a tiny BERT bi-encoder built here (no download)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import mine_args, strip_meta, tiny_bert

import negmine

Cli = Callable[..., Any]
ID_WARNING = "look like ID columns"


@pytest.fixture(scope="module")
def bi_encoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sentence-transformers bi-encoder folder: a one-layer BERT of width 16 over the tiny corpus's words."""
    pytest.importorskip("datasets")
    pytest.importorskip("accelerate")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs faster on one thread than on a crowded few
    _, bi = tiny_bert(tmp_path_factory.mktemp("train-model"))
    yield bi
    torch.set_num_threads(threads)


def train(model_path: Path, parquet: Path, run_dir: Path, steps: int) -> tuple[Any, Any, float]:
    """Train as the README shows, for ``steps`` steps; returns the dataset, the trainer's state, and how far the
    weights moved."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    try:
        from sentence_transformers.sentence_transformer import losses  # sentence-transformers >= 6
    except ImportError:  # pragma: no cover
        from sentence_transformers import losses  # type: ignore[no-redef,attr-defined]

    train_dataset = Dataset.from_parquet(str(parquet))  # the README's line
    model = SentenceTransformer(str(model_path), device="cpu")
    before = [p.detach().clone() for p in model.parameters()]
    args = SentenceTransformerTrainingArguments(
        output_dir=str(run_dir), max_steps=steps, per_device_train_batch_size=8, learning_rate=1e-2,
        save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True, dataloader_num_workers=0,
        disable_tqdm=True, seed=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset,
                                         loss=losses.MultipleNegativesRankingLoss(model))
    trainer.train()
    moved = sum(float((p.detach() - b).abs().sum()) for p, b in zip(model.parameters(), before))
    return train_dataset, trainer.state, moved


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple"])
def test_training_columns_train_as_they_are(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                            bi_encoder: Path, caplog: pytest.LogCaptureFixture, fmt: str) -> None:
    out = out_dir / "train.parquet"
    result = cli(*mine_args(tiny, out, "--columns", "training", "--output-format", fmt, "-n", "2", "-q"))
    assert result.exit_code == 0, result.stderr
    with caplog.at_level(logging.WARNING):
        dataset, state, moved = train(bi_encoder, out, tmp_path / "run", steps=2)
    expected = ["anchor", "positive", "negative"] if fmt == "triplet" else ["anchor", "positive", "negative_1",
                                                                          "negative_2"]
    assert dataset.column_names == expected
    assert state.global_step == 2 and moved > 0
    assert not [r for r in caplog.records if ID_WARNING in r.getMessage()]


def test_all_columns_would_train_on_ids(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                        bi_encoder: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The control: the default columns hold ids, which the trainer would tokenize as text (and warns about)."""
    out = out_dir / "all.parquet"
    assert cli(*mine_args(tiny, out, "-n", "2", "-q")).exit_code == 0
    with caplog.at_level(logging.WARNING):
        train(bi_encoder, out, tmp_path / "run", steps=1)
    warned = [r.getMessage() for r in caplog.records if ID_WARNING in r.getMessage()]
    assert warned and "query_id" in warned[0]


# --- --columns on the command line ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "expected"), [
    ("triplet", ["anchor", "positive", "negative"]),
    ("n-tuple", ["anchor", "positive", "negative_1", "negative_2", "negative_3"]),
    ("labeled-list", ["anchor", "docs", "labels"]),
])
def test_columns_training_on_the_command_line(cli: Cli, tiny: dict[str, Path], out_dir: Path, fmt: str,
                                              expected: list[str]) -> None:
    import pyarrow.parquet as pq

    full, training = out_dir / "full.parquet", out_dir / "training.parquet"
    assert cli(*mine_args(tiny, full, "--output-format", fmt, "-n", "3", "-q")).exit_code == 0
    result = cli(*mine_args(tiny, training, "--output-format", fmt, "-n", "3", "--columns", "training", "-q"))
    assert result.exit_code == 0 and result.stderr == "", result.stderr
    table = pq.read_table(training)
    assert table.column_names == expected
    assert strip_meta(table).equals(strip_meta(pq.read_table(full, columns=expected)))
    meta = negmine.read_metadata(training)
    assert meta["config"]["columns"] == "training"
    assert meta["stats"]["negatives_written"] == negmine.read_metadata(full)["stats"]["negatives_written"]


def test_columns_training_drops_scores_with_a_warning(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    import pyarrow.parquet as pq

    out = out_dir / "o.parquet"
    result = cli(*mine_args(tiny, out, "--columns", "training", "--output-scores", "-q"))
    assert result.exit_code == 0
    assert result.stderr == ("negmine: warning: --output-scores has no effect with --columns training (no score "
                             "columns)\n")
    assert pq.read_table(out).column_names == ["anchor", "positive", "negative"]


def test_unknown_column_set(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    from helpers import assert_cli_error

    out = out_dir / "o.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--columns", "ids")), 2,
                     ["--columns must be one of all, training; got 'ids'"], out)
