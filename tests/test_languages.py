"""Languages without spaces: BM25 reads Chinese, Japanese and Korean with ``--bm25-tokenizer ngrams`` or
``model``, not with ``words``; ``auto`` picks the n-grams for them and words for English; the lexical-overlap rule
drops a candidate that copies its positive's sentence; and a rule that cannot see says so.

The corpora are written here, and each query's expected top document was checked by hand: it is the only
document sharing the query's words that way (熊猫 and 为食; 首都; 长城 / 一番高い; 京都, 寺院 /
부산, 해변; 김치); the other Chinese documents share words with the positives, as a real collection's
neighbours do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import write_parquet

import negmine
from negmine.errors import ConfigError
from negmine.retrieve.bm25 import BM25Retriever
from negmine.retrieve.bm25_tokenizers import UNSPACED_SHARE, resolve, unspaced_share

ZH = {
    "docs": ["北京是中国的首都，有很多历史古迹。", "熊猫主要生活在四川的竹林里，以竹子为食。",
             "长城是中国最长的城墙，吸引了大量游客。", "四川的熊猫基地吸引了很多游客。", "北京有很多外国游客。",
             "竹林里生活着很多动物。", "北京的古迹都很有名。",
             "大熊猫主要生活在四川的竹林中，以竹子为主食，非常可爱。"],
    "queries": {"熊猫以什么为食": 1, "中国的首都是哪里": 0, "长城有多长": 2},
    "copy": (1, 7),  # d7 rewrites the positive d1 of the first query: most of its wording, not its text
}
JA = {
    "docs": ["東京は人口が多い都市です。", "富士山は日本で一番高い山です。", "寿司は伝統的な料理です。",
             "京都には多くの寺院があります。", "新幹線はとても速い電車です。", "図書館で本を読みました。"],
    "queries": {"一番高い山": 1, "京都の寺院": 3},
}
KO = {
    "docs": ["서울은 큰 도시입니다", "김치는 전통 음식입니다", "부산은 아름다운 해변으로 유명합니다",
             "도서관에서 책을 읽었습니다", "기차는 아주 빠릅니다"],
    "queries": {"부산 해변": 2, "김치": 1},
}
EN = ["The cat sat on the mat.", "Dogs bark at night.", "A bird sings in the morning."]
LANGUAGES = {"zh": ZH, "ja": JA, "ko": KO}


def top(bm25: BM25Retriever, docs: list[str], queries: list[str]) -> list[int]:
    """Each query's best document (-1: none shares a token with it)."""
    hits = bm25.index(docs).search(queries, 1)
    return [int(i) for i in hits.indices[:, 0]]


def vocab_tokenizer(root: Path, texts: list[str]) -> Path:
    """A WordPiece tokenizer over the characters of ``texts`` (a multilingual model's vocabulary, in small: every
    character as a piece and as a continuation), saved where ``--model`` points."""
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    chars = sorted({ch for t in texts for ch in t.lower() if ch.isalnum()})
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars,
                                               *(f"##{c}" for c in chars)]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(root / "vocab.txt"), do_lower_case=True, strip_accents=False)  # v4 and v5
    tokenizer.save_pretrained(root)
    return root


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_ngrams_find_what_words_cannot(language: str) -> None:
    data = LANGUAGES[language]
    queries, expected = list(data["queries"]), list(data["queries"].values())
    assert top(BM25Retriever(tokenizer="ngrams:2"), data["docs"], queries) == expected
    found = top(BM25Retriever(tokenizer="words"), data["docs"], queries)
    assert all(f != e for f, e in zip(found, expected)), found  # a whole clause is one word: nothing in common


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_the_models_own_tokenizer_finds_it(language: str, tmp_path: Path) -> None:
    data = LANGUAGES[language]
    folder = vocab_tokenizer(tmp_path / "tok", data["docs"] + list(data["queries"]))
    bm25 = BM25Retriever(tokenizer="model", model=str(folder))
    assert top(bm25, data["docs"], list(data["queries"])) == list(data["queries"].values())
    assert str(bm25.settings["tokenizer"]).startswith("model:")  # the vocabulary's digest: in the cache key


def test_auto_reads_the_script_of_the_corpus() -> None:
    for data in LANGUAGES.values():
        assert resolve("auto", data["docs"])[0] == "ngrams:2"
    assert resolve("auto", EN) == ("words", 0.0)
    mixed = EN * 3 + ZH["docs"][:1]  # a few sentences of Chinese among English ones
    assert unspaced_share(mixed) < UNSPACED_SHARE and resolve("auto", mixed)[0] == "words"
    assert resolve("ngrams", EN) == ("ngrams:2", 0.0) and resolve("words", ZH["docs"])[0] == "words"


def test_ngrams_read_words_between_the_runs() -> None:
    bm25 = BM25Retriever(tokenizer="ngrams:3")
    assert bm25.tokenize(["Pandas eat bamboo in 四川省 2024"]) == [["panda", "eat", "bamboo", "四川省", "2024"]]
    assert bm25.tokenize(["大熊猫"]) == [["大熊猫"]] and BM25Retriever(tokenizer="ngrams").tokenize(["大熊猫"]) == \
        [["大熊", "熊猫"]]
    with pytest.raises(ConfigError, match="--bm25-tokenizer"):
        negmine.MineConfig(bm25_tokenizer="bigrams")


def inputs(folder: Path, data: dict[str, Any]) -> tuple[Path, Path, Path]:
    docs, queries = data["docs"], list(data["queries"])
    corpus = write_parquet(folder / "corpus.parquet", {"_id": [f"d{i}" for i in range(len(docs))], "text": docs})
    query_file = write_parquet(folder / "queries.parquet", {"_id": [f"q{i}" for i in range(len(queries))],
                                                            "text": queries})
    qrels = write_parquet(folder / "qrels.parquet", {"query-id": [f"q{i}" for i in range(len(queries))],
                                                     "corpus-id": [f"d{d}" for d in data["queries"].values()],
                                                     "score": [1] * len(queries)})
    return corpus, query_file, qrels


def mine(tmp_path: Path, data: dict[str, Any], name: str, **options: Any) -> Any:
    corpus, queries, qrels = inputs(tmp_path / "in", data)
    return negmine.mine(corpus, queries, qrels, output=tmp_path / f"{name}.parquet",
                        candidates_output=tmp_path / f"{name}.cand.parquet", num_negatives=2, range_max=7,
                        max_positive_similarity=None, positive_proximity=None, cross_query=None, allow_empty=True,
                        **options)


def statuses(path: Path, query: str) -> dict[str, str]:
    """The fate of each candidate of ``query`` in a candidates file."""
    rows = pq.read_table(path).to_pylist()
    return {r["doc_id"]: r["status"] for r in rows if r["query_id"] == query and r["status"] != "qrel"}


def test_lexical_overlap_drops_a_rewritten_copy_with_ngrams(tmp_path: Path) -> None:
    positive, copy = ZH["copy"]
    ngrams = mine(tmp_path / "ngrams", ZH, "ngrams", bm25_tokenizer="auto")
    assert statuses(tmp_path / "ngrams" / "ngrams.cand.parquet", "q0")[f"d{copy}"] == "lexical_overlap"
    assert ngrams.metadata["resolved"]["bm25_tokenizer"] == "ngrams:2"
    assert "bm25_tokenizer" not in ngrams.metadata["config"]  # auto, the default: as before tokenizers
    assert any("character 2-grams" in w for w in ngrams.warnings)
    assert not ngrams.stats.blind_rules

    words = mine(tmp_path / "words", ZH, "words", bm25_tokenizer="words")
    assert statuses(tmp_path / "words" / "words.cand.parquet", "q0")[f"d{copy}"] != "lexical_overlap"
    assert set(words.stats.blind_rules) == {"lexical_overlap", "agreement"}
    assert any(w.startswith("rules that could not see: lexical overlap, agreement (100% of the candidates share no "
                            "BM25 token with their positive)") for w in words.warnings)
    assert words.metadata["stats"]["blind_rules"] == words.stats.blind_rules  # the report reads it there
    assert words.metadata["config"]["bm25_tokenizer"] == "words"


def test_a_rule_that_cannot_see_fails_a_strict_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rules that could not see.*--strict makes this an error"):
        mine(tmp_path, ZH, "strict", bm25_tokenizer="words", strict=True)
    assert not (tmp_path / "strict.parquet").exists()


def test_english_runs_are_read_as_words_and_say_nothing(tmp_path: Path) -> None:
    data = {"docs": ["the cat sat on the mat", "dogs bark at night", "a bird sings in the morning",
                     "the cat chased a bird", "night trains are slow"],
            "queries": {"where did the cat sit": 0, "what sings in the morning": 2}}
    result = mine(tmp_path, data, "en")
    assert "bm25_tokenizer" not in result.metadata["resolved"] and "bm25_tokenizer" not in result.metadata["config"]
    assert not any("could not see" in w or "2-grams" in w for w in result.warnings)


def test_the_summary_and_the_report_name_the_blind_rules(tmp_path: Path, cli: Any) -> None:
    corpus, queries, qrels = inputs(tmp_path / "in", ZH)
    out = tmp_path / "words.parquet"
    result = cli("mine", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "-o", out, "-n", "2",
                 "--range-max", "7", "--bm25-tokenizer", "words", "--allow-empty", "--max-positive-similarity",
                 "none", "--positive-proximity", "none", "--cross-query", "none")
    assert result.exit_code == 0, result.output
    assert "rules that could not see" in result.output and "--bm25-tokenizer ngrams:2" in result.output
    from negmine.report.page import load_report, report_rows

    rows = dict(report_rows(load_report(out)))
    assert rows["rules that could not see"].startswith("lexical overlap, agreement (100% of the candidates")


def test_share_counts_letters_not_spaces_or_digits() -> None:
    assert unspaced_share(["漢字 2024 abcd"]) == pytest.approx(2 / 6)
    assert unspaced_share([]) == 0.0 and np.isclose(unspaced_share(["한국어"]), 1.0)


def test_an_index_built_with_a_tokenizer_serves_the_mine_with_it(tmp_path: Path, cli: Any) -> None:
    corpus, queries, qrels = inputs(tmp_path / "in", ZH)
    idx, out = tmp_path / "idx", tmp_path / "out.parquet"
    common = ["--retriever", "bm25", "--model", "none", "--bm25-tokenizer", "ngrams:2"]
    built = cli("index", "--corpus", corpus, "--index-dir", idx, *common)
    assert built.exit_code == 0, built.output
    mined = cli("mine", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--index-dir", idx, "-o", out,
                "-n", "2", "--range-max", "7", "--cross-query", "none", "--allow-empty", *common)
    assert mined.exit_code == 0, mined.output
    assert "lacks" not in mined.output  # the index's BM25 part was read, not built again
    other = cli("mine", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--index-dir", idx, "-o",
                tmp_path / "words.parquet", "-n", "2", "--range-max", "7", "--cross-query", "none", "--allow-empty",
                *common[:4], "--bm25-tokenizer", "words")
    assert "lacks the BM25 index" in other.output  # another tokenizer is another index


def test_the_stemmer_has_no_effect_on_model_tokens() -> None:
    config = negmine.MineConfig(bm25_tokenizer="model", bm25_stemmer="german")
    assert config.ineffective(["bm25_stemmer", "bm25_tokenizer"]) == [
        "--bm25-stemmer has no effect with --bm25-tokenizer model (its sub-word tokens are neither stemmed nor "
        "filtered)"]
