"""negmine.config: defaults, validation messages, replace() and to_dict()."""

from __future__ import annotations

import dataclasses

import pytest

from negmine.errors import ConfigError, InputError, NegmineError
from negmine.settings.config import BM25_METHODS, COLUMN_SETS, OUTPUT_FORMATS, SAMPLING_STRATEGIES, MineConfig, flag


def test_defaults() -> None:
    c = MineConfig()
    assert (c.retriever, c.bm25_k1, c.bm25_b, c.bm25_method) == ("dense", 1.5, 0.75, "lucene")
    assert (c.bm25_stemmer, c.bm25_stopwords) == ("english", "en")
    assert (c.range_min, c.range_max, c.num_negatives) == (0, 200, 5)
    assert (c.sampling_strategy, c.seed, c.output_format) == ("top", 42, "triplet")
    assert c.output_scores is False and c.strict is False and c.columns == "all"
    column_fields = [f.name for f in dataclasses.fields(c) if f.name.endswith("_column")]
    assert len(column_fields) == 10
    assert all(getattr(c, name) is None for name in column_fields)


def test_flag_names() -> None:
    assert flag("range_max") == "--range-max"
    assert flag("bm25_k1") == "--bm25-k1"
    assert flag("corpus_title_column") == "--corpus-title-column"


def test_exit_codes_of_error_classes() -> None:
    assert ConfigError.exit_code == 2
    assert InputError.exit_code == 1
    assert issubclass(ConfigError, NegmineError) and issubclass(InputError, NegmineError)


@pytest.mark.parametrize(
    ("field", "value", "choices"),
    [
        ("retriever", "tfidf", ("bm25",)),
        ("bm25_method", "okapi", BM25_METHODS),
        ("sampling_strategy", "bottom", SAMPLING_STRATEGIES),
        ("output_format", "quadruplet", OUTPUT_FORMATS),
        ("columns", "ids", COLUMN_SETS),
    ],
)
def test_bad_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        MineConfig(**{field: value})
    msg = str(info.value)
    assert msg.startswith(flag(field) + " must be one of ")
    assert repr(value) in msg
    for choice in choices:
        assert choice in msg


@pytest.mark.parametrize("method", BM25_METHODS)
def test_every_bm25_method_is_accepted(method: str) -> None:
    assert MineConfig(bm25_method=method).bm25_method == method


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"bm25_k1": -0.1}, ["--bm25-k1 must be >= 0", "-0.1"]),
        ({"bm25_b": 1.5}, ["--bm25-b must be between 0 and 1", "1.5"]),
        ({"bm25_b": -0.01}, ["--bm25-b must be between 0 and 1", "-0.01"]),
        ({"num_negatives": 0}, ["--num-negatives must be at least 1, got 0"]),
        ({"range_min": -1}, ["--range-min must be >= 0, got -1"]),
        ({"range_min": 5, "range_max": 5}, ["--range-max (5) must be greater than --range-min (5)"]),
        (
            {"range_min": 10, "range_max": 12, "num_negatives": 3},
            ["--num-negatives 3 is more than the rank window", "--range-min 10 .. --range-max 12 holds (2)",
             "raise --range-max or lower --num-negatives"],
        ),
    ],
)
def test_invalid_values(changes: dict, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        MineConfig(**changes)
    for needle in needles:
        assert needle in str(info.value)


def test_boundaries_are_accepted() -> None:
    c = MineConfig(bm25_k1=0, bm25_b=0, range_min=3, range_max=8, num_negatives=5)
    assert c.range_max - c.range_min == c.num_negatives
    assert MineConfig(bm25_b=1).bm25_b == 1


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MineConfig().num_negatives = 3  # type: ignore[misc]


def test_replace_returns_a_validated_copy() -> None:
    base = MineConfig(num_negatives=3)
    new = base.replace(seed=7, output_format="n-tuple")
    assert (new.seed, new.output_format, new.num_negatives) == (7, "n-tuple", 3)
    assert (base.seed, base.output_format) == (42, "triplet")
    with pytest.raises(ConfigError, match="--num-negatives must be at least 1"):
        base.replace(num_negatives=0)


def test_replace_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError) as info:
        MineConfig().replace(num_negativs=3, zeta=1)
    assert str(info.value) == "unknown option(s): num_negativs, zeta"


def test_to_dict_has_every_field() -> None:
    c = MineConfig(num_negatives=7, corpus_title_column="")
    d = c.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(MineConfig)}
    assert d["num_negatives"] == 7 and d["corpus_title_column"] == ""
    assert MineConfig(**d) == c
