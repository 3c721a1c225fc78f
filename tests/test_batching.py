"""Training batches that teach (negmine.batching): batches of exactly B rows (the last aside), the same for a seed,
no known positive of another row's query inside a batch, near rows together, and a sampler that keeps the
batches whole over epochs in a real (2-step) sentence-transformers training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from negmine.batching.compose import compose_batches, in_batch_false_negatives, normalise
from negmine.errors import ConfigError


def rows(n: int = 200, topics: int = 10, seed: int = 0, dim: int = 16, docs: int = 5) -> dict[str, Any]:
    """``n`` rows on ``topics`` topics. Each topic has ``docs`` relevant documents (t-0, t-1, ...: the fuller
    judgments), near the topic's direction; a row's positive is one of them (its only known positive), its query a
    noisier point of the topic, its negatives one of the topic's documents (an unlabelled positive) and one
    unrelated document."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(topics, dim))
    doc_vectors = centres[:, None, :] + 0.3 * rng.normal(size=(topics, docs, dim))
    topic = rng.integers(0, topics, size=n)
    pick = rng.integers(0, docs, size=n)
    queries = [f"q{i}" for i in range(n)]
    positives = [f"{t}-{d}" for t, d in zip(topic, pick)]
    near = rng.integers(0, docs, size=n)  # each row's unlabelled positive among its negatives
    far = rng.normal(size=(n, dim))
    return {"vectors": centres[topic] + 1.5 * rng.normal(size=(n, dim)), "queries": queries,
            "positives": positives, "positive_vectors": doc_vectors[topic, pick],
            "negatives": [[f"{t}-{d}", f"neg{i}"] for i, (t, d) in enumerate(zip(topic, near))],
            "negative_vectors": np.stack([doc_vectors[topic, near], far], axis=1),
            "known": {q: {p} for q, p in zip(queries, positives)}, "topic": topic,
            "relevant": {q: {f"{t}-{d}" for d in range(docs)} for q, t in zip(queries, topic)}}


def compose(data: dict[str, Any], size: int, **options: Any) -> Any:
    return compose_batches(data["vectors"], data["queries"], data["positives"], data["negatives"], data["known"],
                           size, **options)


def members(c: Any) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for row, b in zip(c.order.tolist(), c.batch.tolist()):
        out.setdefault(b, []).append(row)
    return [out[b] for b in sorted(out)]


def test_batches_of_exactly_b_rows_but_the_last() -> None:
    data = rows(203, topics=40, docs=1000)
    c = compose(data, 16)
    sizes = [len(m) for m in members(c)]
    assert sorted(c.order.tolist()) == list(range(203))  # every row once
    assert sizes[:-1] == [16] * (len(sizes) - 1) and 0 < sizes[-1] <= 16
    assert c.short == 1 and c.batches == len(sizes)
    assert list(c.batch) == sorted(c.batch)  # the file is in batch order


def test_the_same_seed_gives_the_same_batches_and_another_shuffles_them() -> None:
    data = rows()
    a, b, other = compose(data, 16, seed=3), compose(data, 16, seed=3), compose(data, 16, seed=4)
    assert np.array_equal(a.order, b.order) and np.array_equal(a.batch, b.batch)
    assert not np.array_equal(a.order, other.order)


def test_no_known_positive_of_another_row_inside_a_batch() -> None:
    data = rows(300, topics=20)
    for batch in members(compose(data, 8)):
        for i in batch:
            others = {d for j in batch if j != i for d in (data["positives"][j], *data["negatives"][j])}
            assert not others & data["known"][data["queries"][i]]
            assert data["positives"][i] not in {data["positives"][j] for j in batch if j != i}


def test_fewer_in_batch_false_negatives_than_random_batches() -> None:
    """Against the fuller judgments: grouping alone gathers a topic's relevant documents into its batches; the
    clean rules with positive proximity keep them out, below random batches."""
    data = rows(400, topics=20)

    def false_negatives(**options: Any) -> int:
        c = compose(data, 8, positive_vectors=data["positive_vectors"], **options)
        return in_batch_false_negatives(data["queries"], data["positives"], data["negatives"], c.batch_of_rows(),
                                        data["relevant"])

    assert compose(data, 8, positive_vectors=data["positive_vectors"]).short < 5
    grouped, grouped_only = false_negatives(), false_negatives(clean=False)
    random, random_clean = false_negatives(hard=False, clean=False), false_negatives(hard=False)
    known_only = false_negatives(proximity=None)
    assert grouped_only > random > random_clean >= 0 and grouped < random, (grouped, grouped_only, random)
    assert grouped < known_only  # positive proximity catches the unlabelled ones
    assert false_negatives(negative_vectors=data["negative_vectors"]) <= grouped


def test_rows_that_fit_no_full_batch_drop_the_proximity_rule_only() -> None:
    """Three tight topics: under positive proximity a batch holds one row per topic, so batches of 8 cannot fill;
    those rows go where the fewest are near, still under the other rules (no query twice)."""
    data = rows(48, topics=3, docs=1000)
    c = compose(data, 8, positive_vectors=data["positive_vectors"])
    assert c.relaxed > 0 and c.short <= 1
    assert [len(m) for m in members(c)][:-1] == [8] * (len(members(c)) - 1)
    for m in members(c):
        assert len({data["queries"][i] for i in m}) == len(m)


def test_another_rows_negative_near_my_positive_keeps_us_apart() -> None:
    """Row 1's mined negative d9 is (unlabelled) the same passage as row 0's positive: nearer it than row 0's query
    is. With the negatives' vectors the rule sees it and the two rows take different batches."""
    e = np.eye(4)
    vectors = np.array([e[0] + e[1], e[2], e[3], e[2] + e[3]])  # row 0's query is 0.71 from its positive
    data = {"vectors": vectors, "queries": ["a", "b", "c", "d"], "positives": ["pa", "pb", "pc", "pd"],
            "negatives": [["x"], ["d9"], ["y"], ["z"]], "known": {}}
    positives = np.array([e[0], e[2], e[3], e[2] + e[3]])
    negatives = np.array([[e[1]], [e[0]], [e[1]], [e[1]]])  # row 1's negative points where row 0's positive does
    apart = compose(data, 2, hard=False, positive_vectors=positives, negative_vectors=negatives, seed=1)
    blind = compose(data, 2, hard=False, positive_vectors=positives, seed=1)
    assert blind.batch_of_rows()[0] == blind.batch_of_rows()[1]  # the seed's order pairs them
    assert apart.batch_of_rows()[0] != apart.batch_of_rows()[1] and apart.conflicts["positive_proximity"] == 1


def test_near_rows_share_a_batch() -> None:
    data = rows(320, topics=10)
    same_topic = []
    for hard in (True, False):
        c = compose(data, 16, hard=hard, clean=False)
        share = [np.bincount(data["topic"][m]).max() / len(m) for m in members(c)]
        same_topic.append(float(np.mean(share)))
    assert same_topic[0] > 0.75 and same_topic[1] < 0.4  # 0.83 and 0.24 here


def test_rows_in_conflict_move_and_are_counted() -> None:
    data = rows(40, topics=2)
    data["queries"] = ["q0"] * 2 + data["queries"][2:]  # two rows of one query
    c = compose(data, 8)
    assert c.moved > 0 and sum(c.conflicts.values()) == c.moved
    assert set(c.conflicts) <= {"known_positive", "same_query", "same_positive", "positive_proximity"}
    batch = c.batch_of_rows()
    assert batch[0] != batch[1]


def test_positive_keys_compare_texts() -> None:
    data = rows(4, topics=1)
    data.update(positives=["a", "b", "c", "d"], negatives=[[], [], [], []],
                known={q: set() for q in data["queries"]})
    keys = [normalise(t) for t in ["The  cat", "the cat ", "dog", "bird"]]
    c = compose(data, 4, positive_keys=keys)
    batch = c.batch_of_rows()
    assert batch[0] != batch[1] and c.conflicts == {"same_positive": 1}


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        compose(rows(4), 0)


def test_the_sampler_keeps_batches_whole_over_epochs_in_a_training_run(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from datasets import Dataset
    from helpers import tiny_bert
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from negmine.batching.sampler import grouped_batch_sampler

    batch_ids = [0, 0, 1, 1, 2, 2, 3]  # batches of 2 and a short last one
    factory = grouped_batch_sampler(batch_ids)
    data = Dataset.from_dict({"anchor": [f"query {i}" for i in range(7)],
                              "positive": [f"document {i}" for i in range(7)]})
    sampler = factory(data, batch_size=2, drop_last=False, seed=5)
    seen = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        seen.append([tuple(b) for b in sampler])
    for epoch in seen:
        assert sorted(epoch) == [(0, 1), (2, 3), (4, 5), (6,)]
    assert seen[0] != seen[1] and len(sampler) == 4
    with pytest.raises(ValueError, match="over the trainer's batch size"):
        factory(data, batch_size=1, drop_last=False)

    (tmp_path / "models").mkdir()
    model = SentenceTransformer(str(tiny_bert(tmp_path / "models")[1]), device="cpu")
    args = Arguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
                     batch_sampler=factory, save_strategy="no", report_to="none", use_cpu=True, seed=5)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                         loss=MultipleNegativesRankingLoss(model))
    used = trainer.get_train_dataloader().batch_sampler
    assert type(used).__name__ == "GroupedBatchSampler"
    assert sorted(tuple(b) for b in used) == [(0, 1), (2, 3), (4, 5), (6,)]
    trainer.train()
    assert trainer.state.global_step == 2


def batch_sizes(table: Any) -> list[int]:
    batch = table.column("batch").to_pylist()
    assert batch == sorted(batch)  # the file is in batch order, each batch whole
    return [batch.count(b) for b in sorted(set(batch))]


def test_mine_writes_rows_in_composed_batches(cli: Any, tiny: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    args = ["mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
            "--output-format", "n-tuple", "-n", "2", "--train-batch-size", 6]
    first = cli(*args, "-o", tmp_path / "a.parquet")
    assert first.exit_code == 0, first.output
    assert "training batches" in first.output and "in-batch similarity" in first.output
    table = pq.read_table(tmp_path / "a.parquet")
    sizes = batch_sizes(table)
    full = [s for s in sizes if s == 6]
    assert sizes[:len(full)] == full and all(s < 6 for s in sizes[len(full):])  # short batches last
    assert sum(sizes) == table.num_rows and full  # (tiny's rows share many documents: some batches short)
    again = cli(*args, "-o", tmp_path / "b.parquet")  # the same bytes for a seed
    assert again.exit_code == 0 and (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    other = cli(*args, "--seed", 7, "-o", tmp_path / "c.parquet")
    assert pq.read_table(tmp_path / "c.parquet").column("query_id") != table.column("query_id")
    known: dict[str, set[str]] = {}
    qrels = pq.read_table(tiny["qrels"]).to_pylist()
    for r in qrels:
        known.setdefault(str(r["query-id"]), set()).add(str(r["corpus-id"]))
    rows = table.to_pylist()
    for b in set(table.column("batch").to_pylist()):
        members = [r for r in rows if r["batch"] == b]
        assert len({r["query_id"] for r in members}) == len(members)  # no query twice
        for r in members:  # no row's document is a known positive of another row's query
            for o in members:
                if o is not r:
                    assert not ({o["positive_id"], *o["negative_ids"]} & known[r["query_id"]])
    meta = __import__("negmine.output.provenance", fromlist=["read_metadata"]).read_metadata(tmp_path / "a.parquet")
    record = meta["stats"]["train_batches"]
    assert record["batch_size"] == 6 and record["grouped"] and record["batches"] == len(sizes)
    assert meta["config"]["train_batch_size"] == 6 and other.exit_code == 0


def test_batches_in_other_layouts_and_to_stdout(cli: Any, tiny: dict[str, Path], tmp_path: Path) -> None:
    import json

    import pyarrow.parquet as pq

    base = ["mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
            "--train-batch-size", 4]
    flag = cli(*base, "--output-format", "flagembedding", "--columns", "training", "-o", tmp_path / "f.jsonl")
    assert flag.exit_code == 0, flag.output
    lines = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert set(lines[0]) == {"query", "pos", "neg", "batch"}
    assert [x["batch"] for x in lines] == sorted(x["batch"] for x in lines)
    piped = cli(*base, "--output-format", "triplet", "-q", "-o", "-")
    assert piped.exit_code == 0, piped.output
    rows = [json.loads(x) for x in piped.stdout.splitlines()]
    assert rows and "batch" in rows[0]
    triplets = cli(*base, "--output-format", "triplet", "-o", tmp_path / "t.parquet")
    assert triplets.exit_code == 0
    table = pq.read_table(tmp_path / "t.parquet")
    assert sorted(table.to_pylist(), key=str) == sorted(rows, key=str)  # stdout holds the file's rows
    for b in set(table.column("batch").to_pylist()):  # a query's triplets never share a batch
        queries = [r["query_id"] for r in table.to_pylist() if r["batch"] == b]
        assert len(queries) == len(set(queries))


def test_train_batch_size_is_checked(cli: Any, tiny: dict[str, Path], tmp_path: Path) -> None:
    base = ["mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
            "-o", tmp_path / "x.parquet"]
    pairs = cli(*base, "--output-format", "labeled-pair", "--train-batch-size", 8)
    assert pairs.exit_code == 2 and "labeled-pair rows are scored one pair at a time" in pairs.output
    one = cli(*base, "--train-batch-size", 1)
    assert one.exit_code == 2 and "--train-batch-size must be at least 2" in one.output
    assert not (tmp_path / "x.parquet").exists()


def test_without_a_model_batches_are_clean_but_not_grouped(cli: Any, tiny: dict[str, Path], tmp_path: Path) -> None:
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--retriever", "bm25", "--model", "none", "--train-batch-size", 5, "-o", tmp_path / "x.parquet")
    assert result.exit_code == 0, result.output
    assert "clean but not grouped" in result.output and "not grouped (no bi-encoder)" in result.output
    assert not list(tmp_path.glob("*.arrow*")) and not list(tmp_path.glob(".*"))  # the rows kept aside are gone


def test_a_failed_run_leaves_no_rows_aside(cli: Any, tiny: dict[str, Path], tmp_path: Path) -> None:
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "--max-score", "-5", "--train-batch-size", 5, "-o", tmp_path / "x.parquet")
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []


def test_grouped_batches_reads_the_batch_column() -> None:
    pytest.importorskip("sentence_transformers")
    from datasets import Dataset

    from negmine.batching.sampler import grouped_batches

    data = Dataset.from_dict({"anchor": ["a", "b", "c"], "positive": ["x", "y", "z"], "batch": [0, 0, 1]})
    plain, factory = grouped_batches(data)
    assert plain.column_names == ["anchor", "positive"]
    assert sorted(tuple(b) for b in factory(plain, batch_size=2, drop_last=False)) == [(0, 1), (2,)]
    with pytest.raises(ValueError, match="no 'batch' column"):
        grouped_batches(plain)
