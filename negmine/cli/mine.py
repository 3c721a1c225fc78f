"""``negmine mine`` and ``negmine index``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from negmine.cli.base import given, print_table, reporting, source
from negmine.cli.options import CONTEXT, parameters, takes
from negmine.cli.values import config_options, mine_config
from negmine.errors import ConfigError

#: The options of ``negmine mine``, in the order its --help shows them.
MINE_OPTIONS = (
    "output", "config", "corpus", "queries", "qrels", "pairs", "beir", "split", "cache_dir", "index_dir",
    "corpus_embeddings", "query_embeddings", "strict", "corpus_id_column", "corpus_text_column",
    "corpus_title_column", "query_id_column", "query_text_column", "qrels_query_column", "qrels_doc_column",
    "qrels_score_column", "pairs_anchor_column", "pairs_positive_column", "retriever", "fusion", "rrf_k",
    "range_min", "range_max", "num_negatives", "sampling_strategy", "simans_a", "simans_b", "seed", "bm25_k1",
    "bm25_b", "bm25_method", "bm25_stemmer", "bm25_stopwords", "bm25_tokenizer", "model", "query_prompt",
    "corpus_prompt",
    "query_prompt_name", "corpus_prompt_name", "batch_size", "max_seq_length", "device", "precision", "faiss_index",
    "endpoint_concurrency", "endpoint_retries", "endpoint_timeout", "endpoint_max_requests", "endpoint_api_key_env",
    "reranker", "reranker_batch_size", "reranker_max_length", "absolute_margin", "relative_margin", "max_score",
    "min_score", "margin_reference", "max_positive_similarity", "positive_proximity", "lexical_overlap",
    "agreement", "cross_query", "percentile_margin", "percentile_floor", "percentile_cap", "score_all",
    "promote_false_negatives", "llm_judge", "llm_confirm", "llm_judge_prompt", "candidates_output",
    "false_negatives_output", "difficulty_bands", "output_format", "output_scores", "prompt", "columns",
    "train_batch_size", "dataset_card", "query_batch_size", "resume", "engine", "ray_address", "workers",
    "gpus_per_worker", "allow_empty", "quiet", "verbose",
)

#: The options of ``negmine index``: those that shape the indexes.
INDEX_OPTIONS = (
    "corpus", "index_dir", "config", "corpus_id_column", "corpus_text_column", "corpus_title_column", "retriever",
    "bm25_k1", "bm25_b", "bm25_method", "bm25_stemmer", "bm25_stopwords", "bm25_tokenizer", "model", "corpus_prompt",
    "corpus_prompt_name", "batch_size", "max_seq_length", "device", "precision", "faiss_index",
    "endpoint_concurrency", "endpoint_retries", "endpoint_timeout", "endpoint_max_requests", "endpoint_api_key_env",
    "engine",
    "ray_address", "workers", "gpus_per_worker", "quiet", "verbose",
)


@takes([CONTEXT], parameters(MINE_OPTIONS, required=["output"]))
def mine(ctx: typer.Context, **options: Any) -> None:
    """Mine hard negatives for each query and write them as a training table.

    \b
    Examples:
      negmine mine --corpus corpus.parquet --queries queries.parquet --qrels qrels.parquet \\
          -o negatives.parquet
      negmine mine --pairs pairs.parquet --columns training -o train.parquet
      negmine mine --beir scifact/ --split train --output-format flagembedding -o train.jsonl
      negmine mine --config negmine.toml -n 10 -o negatives.parquet   # flags override the file

    Prints the output path on stdout (with -o -, the JSON Lines rows instead); progress and a summary go to
    stderr.
    """
    from negmine.run.api import mine as run_mine

    o = options
    output: Path = o["output"]
    corpus, queries, qrels, pairs, beir, split = inputs_over_file(ctx, o)
    inputs: tuple[Optional[Path], ...] = (corpus, queries, qrels, pairs, o["corpus_embeddings"],
                                          o["query_embeddings"])
    to_stdout = str(output) == "-"
    settings = config_options(o)
    with reporting(o["quiet"], o["verbose"]) as progress:
        config = mine_config(ctx, settings)
        if o["dataset_card"]:
            from negmine.report.card import check_card_path, write_dataset_card

            if to_stdout:
                raise ConfigError("--dataset-card describes an output file: give --output a path, not -")
            if beir is not None and not any((corpus, queries, qrels, pairs)):
                from negmine.inputs.beir import beir_files

                inputs += tuple(beir_files(beir, split or "train").values())
            check_card_path(output, inputs)  # before the work, not after it
        result = run_mine(corpus, queries, qrels, pairs=pairs, beir=beir, split=split, output=output, config=config,
                          progress=progress, cache_dir=o["cache_dir"], index_dir=o["index_dir"],
                          corpus_embeddings=o["corpus_embeddings"], query_embeddings=o["query_embeddings"],
                          candidates_output=o["candidates_output"],
                          false_negatives_output=o["false_negatives_output"], explicit=given(ctx, settings))
        card = write_dataset_card(output, result.metadata, inputs) if o["dataset_card"] else None
    if not o["quiet"]:
        from negmine.report.summary import summary_rows

        rows = summary_rows(result.stats, config.num_negatives)
        if card is not None:
            rows.append(("dataset card", str(card)))
        print_table("negmine mine", rows, result.seconds if o["verbose"] else {},
                    Path("stdout") if to_stdout else result.output)
    if not to_stdout:  # with -o -, stdout holds the rows alone
        typer.echo(str(output))


def inputs_over_file(ctx: Any, options: dict[str, Any]) -> tuple[Any, ...]:
    """The inputs of a run (corpus, queries, qrels, pairs, beir, split), where the command line names inputs of
    one kind (a BEIR folder, or files) and the --config file the other: the command line's replace the file's, as
    any flag overrides the file."""
    files = {n: options[n] for n in ("corpus", "queries", "qrels", "pairs")}
    folder = {n: options[n] for n in ("beir", "split")}
    if any(source(ctx, n) == "COMMANDLINE" for n in folder):
        files = {n: None if source(ctx, n) == "DEFAULT_MAP" else v for n, v in files.items()}
    elif any(source(ctx, n) == "COMMANDLINE" for n in files):
        folder = {n: None if source(ctx, n) == "DEFAULT_MAP" else v for n, v in folder.items()}
    return files["corpus"], files["queries"], files["qrels"], files["pairs"], folder["beir"], folder["split"]


@takes([CONTEXT], parameters(INDEX_OPTIONS, required=["corpus", "index_dir"], help={
    "index_dir": "Directory to build the indexes in (created if missing)."}))
def index(ctx: typer.Context, **options: Any) -> None:
    """Build the BM25 and dense indexes of a corpus into a directory, for 'negmine mine --index-dir'.

    \b
    Example:
      negmine index --corpus corpus.parquet --index-dir idx/ && negmine mine --index-dir idx/ ...

    Re-running it after the corpus changed encodes only the documents whose text changed. Use the same retriever,
    model and BM25 settings as the later 'mine' runs: one --config file can serve both (index skips the options
    only mine takes). Prints the index directory on stdout.
    """
    from negmine.run.api import build_index

    o = options
    with reporting(o["quiet"], o["verbose"]) as progress:
        result = build_index(o["corpus"], o["index_dir"], config=mine_config(ctx, config_options(o)),
                             progress=progress)
    if not o["quiet"]:
        rows = [("documents", f"{result.documents:,}"),
                ("texts encoded / from cache", f"{result.texts_encoded:,} / {result.texts_cached:,}"),
                ("size", f"{result.bytes / 2**20:,.1f} MiB")]
        print_table("negmine index", rows, result.seconds if o["verbose"] else {}, Path(o["index_dir"]))
    typer.echo(str(o["index_dir"]))
