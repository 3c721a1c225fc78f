"""Helpers shared by the test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny"

#: The default retriever (dense) and the false-negative rules on by default (a cosine near-duplicate limit, the
#: positive proximity, lexical overlap with the positive, agreement of BM25 and the bi-encoder, twin queries'
#: positives) need a model.
#: The tests of BM25 retrieval, rank windows, sampling, layouts and errors use BM25 alone with those rules off:
#: the picks are BM25's own.
NO_SCORING = ("--retriever", "bm25", "--relative-margin", "none", "--max-positive-similarity", "none",
              "--positive-proximity", "none", "--lexical-overlap", "none", "--no-agreement", "--cross-query", "none")
NO_SCORING_OPTIONS: dict[str, Any] = {"retriever": "bm25", "relative_margin": None, "max_positive_similarity": None,
                                      "positive_proximity": None, "lexical_overlap": None, "agreement": False,
                                      "cross_query": None}


#: Twelve short documents on four topics, for retrieval tests that need texts but no files.
SMALL_TEXTS = [
    "cats purr when they are happy and warm", "a cat purrs and sleeps near a sunny window",
    "kittens chase string and play with cat toys", "an old cat needs a soft bed",
    "a dog needs a long walk in the park every day", "how long a puppy should walk depends on its age",
    "dogs bark at the mail carrier every morning", "a tired dog sleeps after a walk",
    "goldfish live in a bowl of fresh water", "sharks swim in the deep ocean water",
    "water the garden plants in the evening", "parrots can learn to repeat words",
]


def mine_args(paths: dict[str, Path], output: Path, *extra: Any, scoring: bool = False) -> list[Any]:
    """Arguments of ``negmine mine`` over a {corpus, queries, qrels} dict (score rules off unless ``scoring``)."""
    return ["mine", "--corpus", paths["corpus"], "--queries", paths["queries"], "--qrels", paths["qrels"],
            "--output", output, *(() if scoring else NO_SCORING), *extra]


def error_line(result: Any) -> str:
    """The single ``negmine: error: ...`` line of a failed run (asserting there is exactly one line on stderr)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line on stderr, got: {result.stderr!r}"
    assert lines[0].startswith("negmine: error: "), lines[0]
    return lines[0]


def assert_cli_error(
    result: Any, exit_code: int, needles: Sequence[str], output: Path, empty_dir: bool = True
) -> str:
    """A CLI failure: the exit code, one error line containing every needle, nothing on stdout, no output file,
    and nothing left in the output folder (``empty_dir``; else at least no temporary file)."""
    assert result.exit_code == exit_code, (result.exit_code, result.stderr, result.stdout)
    line = error_line(result)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert result.stdout == ""
    assert not output.exists()
    if empty_dir:
        assert sorted(p.name for p in output.parent.iterdir()) == []
    else:
        assert not [p for p in output.parent.iterdir() if p.name.endswith(".tmp")]
    return line


def write_as(path: Path, data: dict[str, list[Any]], blank_lines: bool = False) -> Path:
    """Write columns as the file's name says: .jsonl, .csv or .tsv (each optionally .gz), else Parquet;
    ``blank_lines`` puts an empty line after each JSON Lines row."""
    import csv
    import gzip
    import io
    import json

    from negmine.inputs import formats as sources

    fmt, gz = sources.input_format(path)
    rows = [dict(zip(data, values)) for values in zip(*data.values())]
    if fmt == sources.PARQUET:
        pq.write_table(pa.table(data), path)
        return path
    if fmt == sources.JSONL:
        text = "".join(json.dumps(r) + "\n" + ("\n" if blank_lines else "") for r in rows)
    else:
        buffer = io.StringIO()
        if fmt == sources.TSV:
            writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        else:
            writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(list(data))
        writer.writerows([[r[c] for c in data] for r in rows])
        text = buffer.getvalue()
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_beir(root: Path, corpus: dict[str, list[Any]], queries: dict[str, list[Any]], qrels: dict[str, list[Any]],
               gz: bool = False, splits: Sequence[str] = ("train", "test")) -> Path:
    """A BEIR folder in BEIR's own forms: corpus.jsonl and queries.jsonl (with a ``metadata`` object per row),
    qrels/SPLIT.tsv (each ``.gz`` with ``gz``)."""
    ext = ".gz" if gz else ""
    (root / "qrels").mkdir(parents=True)
    n_docs, n_queries = len(next(iter(corpus.values()))), len(next(iter(queries.values())))
    write_as(root / f"corpus.jsonl{ext}", dict(corpus, metadata=[{}] * n_docs))
    write_as(root / f"queries.jsonl{ext}", dict(queries, metadata=[{}] * n_queries))
    for split in splits:
        write_as(root / "qrels" / f"{split}.tsv{ext}", qrels)
    return root


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path)


def read_candidates(path: Path) -> list[dict]:
    """The candidate rows of a candidates file (without its 'qrel' rows: the known positives and their scores)."""
    return [c for c in pq.read_table(path).to_pylist() if c["status"] != "qrel"]


def strip_meta(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(None)


FORMAT_COLUMNS = {
    "triplet": ["anchor", "positive", "negative", "query_id", "positive_id", "negative_id"],
    "n-tuple": ["anchor", "positive", "negative_1", "negative_2", "negative_3", "query_id", "positive_id",
                "negative_ids"],  # with -n 3
    "labeled-list": ["anchor", "docs", "labels", "query_id", "doc_ids"],
}
SCORE_COLUMNS = {"triplet": ["positive_score", "negative_score"], "n-tuple": ["scores"], "labeled-list": ["scores"]}


def pairs_of(table: pa.Table, output_format: str) -> list[tuple[Any, Any, list[Any]]]:
    """(query_id, positive_id, [negative ids]) of every row of an output table, whatever its format."""
    rows = table.to_pylist()
    if output_format == "triplet":
        return [(r["query_id"], r["positive_id"], [r["negative_id"]]) for r in rows]
    if output_format == "n-tuple":
        return [(r["query_id"], r["positive_id"], list(r["negative_ids"])) for r in rows]
    out = []
    for r in rows:
        assert r["labels"] == [1] + [0] * (len(r["labels"]) - 1)
        out.append((r["query_id"], r["doc_ids"][0], list(r["doc_ids"][1:])))
    return out


def grouped_negatives(table: pa.Table, output_format: str) -> dict[tuple[Any, Any], list[Any]]:
    """{(query_id, positive_id): [negative ids in output order]}."""
    groups: dict[tuple[Any, Any], list[Any]] = {}
    for q, p, negs in pairs_of(table, output_format):
        groups.setdefault((q, p), []).extend(negs)
    return groups


def positives_from_qrels(qrels: pa.Table, q: str = "query-id", d: str = "corpus-id", s: str = "score") -> dict:
    """{query id: {doc ids with score > 0}} from a qrels table."""
    out: dict[Any, set] = {}
    for row in qrels.to_pylist():
        if row[s] > 0:
            out.setdefault(row[q], set()).add(row[d])
    return out


def build_tiny_cross_encoders(root: Path, texts: Sequence[str], sample: Sequence[tuple[str, str]]) -> dict[str, Path]:
    """Two tiny BERT cross-encoders built offline under ``root``: ``sigmoid`` (a plain sequence-classification
    checkpoint: predict applies a sigmoid, scores in (0, 1)) and ``logits`` (saved by sentence-transformers with an
    identity activation: raw, mostly negative, logits). ``texts`` give the vocabulary; the head is tuned on
    ``sample`` (query, document) pairs so that scores spread around a sigmoid of 0.3."""
    import re

    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast  # type: ignore[attr-defined]

    words: set[str] = set()
    for text in texts:
        words.update(re.findall(r"[a-z]+", text.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)[:400]]  # a few hundred; the rest: [UNK]
    sigmoid = root / "sigmoid"
    sigmoid.mkdir()
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"), do_lower_case=True, model_max_length=128)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1,  # type: ignore[call-arg]
                        initializer_range=0.2)
    model = BertForSequenceClassification(config).eval()
    # Spread the scores (x10) and centre the logits near -0.8, so that most are negative, the sigmoid model's
    # scores sit around 0.3, and a 5% relative margin drops some candidates but not all.
    batch = tokenizer([q for q, _ in sample], [d for _, d in sample], padding=True, truncation=True,
                      return_tensors="pt")
    with torch.no_grad():
        model.classifier.weight.mul_(10.0)
        model.classifier.bias.sub_(float(model(**batch).logits.mean()) + 0.8)
    model.save_pretrained(sigmoid)
    tokenizer.save_pretrained(sigmoid)
    logits = root / "logits"
    CrossEncoder(str(sigmoid), activation_fn=torch.nn.Identity()).save_pretrained(str(logits))
    return {"sigmoid": sigmoid, "logits": logits}


def tiny_bert(root: Path) -> tuple[Path, Path]:
    """A bare one-layer BERT of width 16 over the tiny corpus's words (``root/bare``, seeded) and a
    sentence-transformers bi-encoder over it (``root/bi``), built offline."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    import negmine

    words = sorted({w for t in negmine.read_corpus(TINY / "corpus.parquet").texts for w in t.lower().split()})[:300]
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(root / "vocab.txt"), do_lower_case=True, model_max_length=64)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    bare = root / "bare"
    BertModel(config).save_pretrained(bare)
    tokenizer.save_pretrained(bare)
    bi = root / "bi"
    SentenceTransformer(modules=[Transformer(str(bare)), Pooling(16)]).save(str(bi))
    return bare, bi


def tiny_causal_lm(root: Path) -> Path:
    """A 2-layer Llama of width 32 with random (seeded) weights and a word-level tokenizer with a chat template,
    saved to ``root/tiny-llm``, built offline."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    words = ("the a an is are was of to and in on for with it this that yes no hello world paris france capital "
             "what who where when how query document relevant answer good bad cat dog 0 1 2 3 4 5 6 7 8 9 . , ? ! "
             "abcdef").split()  # "abcdef": the probe string of generate's `stop_strings` (the request's "stop")
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.decoder = decoders.WordPiece(prefix="##")  # joins word-level tokens with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>", model_max_length=2048,
                                        additional_special_tokens=specials[4:])
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' ' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"],
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # special tokens never win: answers are visible words, never an early end
        model.lm_head.weight[: len(specials)] = 0
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id, do_sample=False, max_new_tokens=16)
    out = root / "tiny-llm"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
