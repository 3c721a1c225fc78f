"""negmine.configfile and the CLI's use of it: ``--config FILE``, ``negmine config show``, ``negmine config from``.

A config file holds options under their flag names without dashes; flags win over the file, the file over the
defaults; a wrong key or value is a one-line usage error (exit 2) naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from helpers import NO_SCORING, ROOT, assert_cli_error, error_line, mine_args, read_table, strip_meta

import negmine
from negmine.cli import app
from negmine.errors import ConfigError
from negmine.settings.config import MineConfig
from negmine.settings.files import (
    config_from_metadata,
    config_to_toml,
    key,
    load_config_file,
    option_kinds,
    parse_config,
    toml_string,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Cli = Callable[..., Any]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


# --- reading ---------------------------------------------------------------------------------------------------------

def test_load_returns_fields_with_config_types(tmp_path: Path) -> None:
    path = write(tmp_path / "negmine.toml", """
corpus = "data/corpus.parquet"
retriever = "bm25"
num-negatives = 5
bm25-k1 = 1              # an integer where a float is taken
relative-margin = "none"
absolute-margin = 0.1
max-score = "auto"       # only relative-margin takes auto
""")
    with pytest.raises(ConfigError, match="option 'max-score' takes a number or \"none\"; got \"auto\""):
        load_config_file(path)
    path.write_text(path.read_text().replace('max-score = "auto"', 'max-seq-length = "none"\noutput-scores = true'))
    values = load_config_file(path)
    assert values == {"corpus": "data/corpus.parquet", "retriever": "bm25", "num_negatives": 5, "bm25_k1": 1.0,
                      "relative_margin": None, "absolute_margin": 0.1, "max_seq_length": None,
                      "output_scores": True}
    assert isinstance(values["bm25_k1"], float)
    assert MineConfig(**{k: v for k, v in values.items() if k != "corpus"}).num_negatives == 5


@pytest.mark.parametrize("value", ["0.1", '"none"', '"auto"', '"None"', "1"])
def test_relative_margin_spellings(value: str) -> None:
    parsed = parse_config(f"relative-margin = {value}")["relative_margin"]
    assert parsed == {"0.1": 0.1, '"none"': None, '"auto"': "auto", '"None"': None, "1": 1.0}[value]


def test_unknown_key_suggests_the_closest_option() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("num-negative = 5", "negmine.toml")
    assert str(info.value) == "negmine.toml: unknown option 'num-negative'; did you mean 'num-negatives'?"
    with pytest.raises(ConfigError, match="unknown option 'num_negatives'; did you mean 'num-negatives'"):
        parse_config("num_negatives = 5")  # one spelling: the flag's
    with pytest.raises(ConfigError, match="unknown option 'zzz'; the options are the command's flags without"):
        parse_config("zzz = 1")
    with pytest.raises(ConfigError, match="unknown option 'config'"):
        parse_config('config = "other.toml"')
    with pytest.raises(ConfigError, match="unknown option 'mine'"):  # one flat table: no sections
        parse_config("[mine]\nseed = 1")


@pytest.mark.parametrize(("text", "message"), [
    ('num-negatives = "five"', "option 'num-negatives' takes an integer; got \"five\""),
    ("num-negatives = 2.5", "option 'num-negatives' takes an integer; got 2.5"),
    ("num-negatives = true", "option 'num-negatives' takes an integer; got true"),
    ("bm25-k1 = false", "option 'bm25-k1' takes a number; got false"),
    ('output-scores = "yes"', "option 'output-scores' takes true or false; got \"yes\""),
    ("retriever = 3", "option 'retriever' takes a string; got 3"),
    ('corpus = ""', "option 'corpus' takes a path (a string); got \"\""),
    ('relative-margin = "lots"', "option 'relative-margin' takes a number, \"none\" or \"auto\"; got \"lots\""),
    ("seed = [1, 2]", "option 'seed' takes an integer; got an array"),
    ("seed = {value = 1}", "option 'seed' takes an integer; got a table"),
    ("max-seq-length = 1979-05-27", "option 'max-seq-length' takes an integer or \"none\"; got 1979-05-27"),
])
def test_values_of_the_wrong_type_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.toml")
    assert str(info.value).startswith("f.toml: ") and message in str(info.value), str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.toml: no such config file"):
        load_config_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config_file(tmp_path)
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: .*line 1"):
        load_config_file(write(tmp_path / "bad.toml", "num-negatives = \n"))


def test_allowed_and_ignored() -> None:
    text = 'corpus = "c.parquet"\nnum-negatives = 3\nbm25-k1 = 1.2'
    assert parse_config(text, allowed={"corpus", "bm25_k1"}, ignored=option_kinds()) == {
        "corpus": "c.parquet", "bm25_k1": 1.2}
    with pytest.raises(ConfigError, match="unknown option 'num-negatives'"):
        parse_config(text, allowed={"corpus", "bm25_k1"})
    with pytest.raises(ConfigError, match="unknown option 'num-negativs'"):  # a typo is not an ignored option
        parse_config("num-negativs = 3", allowed={"corpus"}, ignored=option_kinds())


def test_every_option_of_the_commands_is_a_config_key() -> None:
    kinds = option_kinds()
    mine_options = {p.name for p in command("mine").params} - {"config"}
    assert mine_options == set(kinds)
    assert {p.name for p in command("index").params} - {"config", "index_dir"} <= set(kinds)
    assert set(kinds) >= {f.name for f in dataclasses.fields(MineConfig)}


# --- writing ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "plain", "", 'say "hi"', "back\\slash", "line\nbreak\ttab\r", "nul\x00 bell\x07 del\x7f esc\x1b",
    "unicode: é ü 中文 🙂", "\\u0041 is not A", "'single' and \"\"\" triple",
])
def test_toml_strings_round_trip(text: str) -> None:
    assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


def test_config_round_trips_through_toml() -> None:
    config = MineConfig(retriever="dense", num_negatives=7, range_min=3, bm25_k1=1.2345678901234567, seed=0,
                        relative_margin=0.1, absolute_margin=None, max_score=float("inf"), min_score=-1e-7,
                        max_seq_length=128, query_prompt='query: "x"\\\n', corpus_title_column="",
                        output_format="labeled-list", columns="training", output_scores=True)
    text = config_to_toml(config.to_dict(), header=["a header"])
    assert text.startswith("# a header\n")
    assert "# model: not set" in text and 'absolute-margin = "none"' in text and "max-score = inf" in text
    assert MineConfig(**parse_config(text)) == config
    auto = config_to_toml(MineConfig().to_dict())
    assert 'relative-margin = "auto"' in auto and MineConfig(**parse_config(auto)) == MineConfig()


def test_config_from_metadata_keeps_inputs_and_known_fields(caplog: pytest.LogCaptureFixture) -> None:
    meta = {"negmine_version": "9.9", "config": {**MineConfig(seed=3).to_dict(), "warp_drive": True},
            "inputs": {"corpus": {"path": "c.parquet", "fingerprint": "sha256:0"},
                       "qrels": {"path": "r.parquet", "fingerprint": "sha256:1"}}}
    values = config_from_metadata(meta, "old.parquet")
    assert list(values)[:2] == ["corpus", "qrels"] and values["seed"] == 3 and "warp_drive" not in values
    assert "old.parquet: left out warp-drive: not options of this negmine (the file was written by negmine 9.9)" \
        in caplog.text
    with pytest.raises(ConfigError, match="x.parquet: its metadata holds no config"):
        config_from_metadata({"inputs": {}}, "x.parquet")


# --- the CLI: --config -----------------------------------------------------------------------------------------------

def test_config_file_gives_the_same_file_as_the_flags(cli: Cli, small: dict[str, Path], out_dir: Path,
                                                      tmp_path: Path) -> None:
    flags = mine_args(small, out_dir / "flags.parquet", "--output-format", "n-tuple", "-n", "3", "--range-max",
                      "8", "--bm25-k1", "1.2", "--output-scores", "-q")
    assert cli(*flags).exit_code == 0
    config = write(tmp_path / "negmine.toml", f"""
corpus = "{small['corpus']}"
queries = "{small['queries']}"
qrels = "{small['qrels']}"
retriever = "bm25"
relative-margin = "none"
max-positive-similarity = "none"
positive-proximity = "none"
lexical-overlap = "none"
agreement = false
cross-query = "none"
output-format = "n-tuple"
num-negatives = 3
range-max = 8
bm25-k1 = 1.2
output-scores = true
quiet = true
""")
    result = cli("mine", "--config", config, "-o", out_dir / "file.parquet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{out_dir / 'file.parquet'}\n" and result.stderr == ""
    assert (out_dir / "file.parquet").read_bytes() == (out_dir / "flags.parquet").read_bytes()
    assert read_table(out_dir / "file.parquet").column_names[:5] == ["anchor", "positive", "negative_1",
                                                                     "negative_2", "negative_3"]


def test_flags_override_the_file_and_the_file_overrides_defaults(cli: Cli, small: dict[str, Path], out_dir: Path,
                                                                 tmp_path: Path) -> None:
    config = write(tmp_path / "negmine.toml", 'num-negatives = 3\nretriever = "dense"\nrange-max = 9\n'
                                              f'output = "{out_dir / "from-file.parquet"}"\n')
    out = out_dir / "o.parquet"
    result = cli("mine", "--config", config, *mine_args(small, out, "-n", "2", "-q")[1:])  # --retriever bm25
    assert result.exit_code == 0, result.stderr
    assert not (out_dir / "from-file.parquet").exists()  # -o wins over the file's output
    meta = negmine.read_metadata(out)
    assert (meta["config"]["num_negatives"], meta["config"]["retriever"]) == (2, "bm25")
    assert meta["config"]["range_max"] == 9  # from the file
    assert meta["config"]["bm25_b"] == MineConfig().bm25_b  # the default


def test_the_file_may_hold_the_output_and_the_flags_come_after(cli: Cli, small: dict[str, Path], out_dir: Path,
                                                               tmp_path: Path) -> None:
    out = out_dir / "o.parquet"
    config = write(tmp_path / "negmine.toml", f'output = "{out}"\ncorpus = "{small["corpus"]}"\n'
                                              f'queries = "{small["queries"]}"\nqrels = "{small["qrels"]}"\n')
    result = cli("mine", *NO_SCORING, "-n", "2", "--config", config, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{out}\n" and negmine.read_metadata(out)["config"]["num_negatives"] == 2


@pytest.mark.parametrize(("text", "needle"), [
    ("num-negative = 5\n", "unknown option 'num-negative'; did you mean 'num-negatives'?"),
    ('num-negatives = "five"\n', "option 'num-negatives' takes an integer; got \"five\""),
    ("num-negatives = 0\n", "--num-negatives must be at least 1, got 0"),
    ('sampling-strategy = "bottom"\n', "--sampling-strategy must be one of top, random, simans; got 'bottom'"),
    ("range-min = 300\n", "--range-max (200) must be greater than --range-min (300)"),
    ("bm25-b = 2\n", "--bm25-b must be between 0 and 1, got 2.0"),
    ('relative-margin = "-0.5"\n', "option 'relative-margin' takes a number, \"none\" or \"auto\""),
    ("num-negatives = \n", "not valid TOML"),
])
def test_bad_config_files_are_usage_errors(cli: Cli, small: dict[str, Path], out_dir: Path, tmp_path: Path,
                                           text: str, needle: str) -> None:
    config = write(tmp_path / "negmine.toml", text)
    out = out_dir / "o.parquet"
    line = assert_cli_error(cli(*mine_args(small, out, "--config", config)), 2, [needle], out)
    assert line.startswith(f"negmine: error: {config}: ")


def test_unknown_key_error_is_the_documented_line(cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    config = write(tmp_path / "negmine.toml", "num-negative = 5\n")
    result = cli("mine", "--config", config, "-o", out_dir / "o.parquet")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"negmine: error: {config}: unknown option 'num-negative'; did you mean 'num-negatives'?\n"


def test_a_bad_flag_value_is_not_blamed_on_the_file(cli: Cli, small: dict[str, Path], out_dir: Path,
                                                    tmp_path: Path) -> None:
    config = write(tmp_path / "negmine.toml", "seed = 3\n")
    out = out_dir / "o.parquet"
    line = assert_cli_error(cli(*mine_args(small, out, "--config", config, "-n", "0")), 2,
                            ["--num-negatives must be at least 1, got 0"], out)
    assert str(config) not in line


def test_missing_config_file(cli: Cli, small: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    out = out_dir / "o.parquet"
    assert_cli_error(cli(*mine_args(small, out, "--config", tmp_path / "nope.toml")), 2,
                     [f"{tmp_path / 'nope.toml'}: no such config file"], out)


def test_options_set_in_the_file_count_for_the_no_effect_warnings(cli: Cli, small: dict[str, Path], out_dir: Path,
                                                                   tmp_path: Path) -> None:
    config = write(tmp_path / "negmine.toml", 'seed = 7\nfusion = "score"\nrrf-k = 60\n')
    result = cli(*mine_args(small, out_dir / "a.parquet", "--config", config, "-q"))
    assert result.exit_code == 0, result.stderr
    assert "negmine: warning: --seed has no effect with --sampling-strategy top" in result.stderr
    assert "--fusion has no effect with --retriever bm25" in result.stderr
    assert "--rrf-k" not in result.stderr  # set to its default: a full config (config show) warns about nothing
    on_line = cli(*mine_args(small, out_dir / "b.parquet", "--config", config, "--rrf-k", "60", "-q"))
    assert "--rrf-k has no effect with --retriever bm25" in on_line.stderr


def test_index_takes_the_same_file(cli: Cli, tiny: dict[str, Path], tmp_path: Path, out_dir: Path) -> None:
    idx = tmp_path / "idx"
    config = write(tmp_path / "negmine.toml", f'corpus = "{tiny["corpus"]}"\nindex-dir = "{idx}"\n'
                                              'retriever = "bm25"\nbm25-k1 = 0.9\nnum-negatives = 3\n'
                                              f'output = "{out_dir / "o.parquet"}"\nquiet = true\n')
    result = cli("index", "--config", config)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{idx}\n"
    mined = cli("mine", "--config", config, "--queries", tiny["queries"], "--qrels", tiny["qrels"], *NO_SCORING)
    assert mined.exit_code == 0 and mined.stderr == ""  # the index holds these BM25 settings: no gap warning
    bad = cli("index", "--config", write(tmp_path / "bad.toml", "bm25-k2 = 1\n"), "--corpus", tiny["corpus"],
              "--index-dir", idx)
    assert bad.exit_code == 2
    assert error_line(bad).endswith("unknown option 'bm25-k2'; did you mean 'bm25-k1'?")


# --- the CLI: config show --------------------------------------------------------------------------------------------

def test_config_show_prints_every_option_resolved(cli: Cli, tmp_path: Path) -> None:
    config = write(tmp_path / "negmine.toml", 'num-negatives = 3\nretriever = "dense"\nrelative-margin = 0.1\n'
                                              'corpus = "c.parquet"\nquery-prompt = "query: "\n')
    result = cli("config", "show", "--config", config, "--retriever", "bm25", "--max-score", "none",
                 "--min-score", "0.5")
    assert result.exit_code == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["num-negatives"] == 3 and shown["retriever"] == "bm25" and shown["relative-margin"] == 0.1
    assert shown["max-score"] == "none" and shown["min-score"] == 0.5 and shown["corpus"] == "c.parquet"
    assert shown["query-prompt"] == "query: " and shown["seed"] == 42 and shown["columns"] == "all"
    commented = {line[2:].split(":")[0] for line in result.stdout.splitlines() if line.endswith(": not set")}
    assert {"output", "model", "corpus-id-column", "reranker", "candidates-output"} <= commented
    every = {key(p.name) for p in command("mine").params} - {"config"}
    assert set(shown) | commented == every
    assert f"# negmine mine settings, from {config} and the command line" in result.stdout
    assert "# Dense retrieval\n" in result.stdout and "# False-negative filters\n" in result.stdout


def test_config_show_reads_back_to_the_same_settings(cli: Cli, tmp_path: Path) -> None:
    first = cli("config", "show", "-n", "4", "--sampling-strategy", "random", "--seed", "9", "--query-prompt",
                'say "hi"\\', "--bm25-k1", "1.1", "--relative-margin", "none", "--pairs", "p.parquet")
    assert first.exit_code == 0, first.stderr
    again = cli("config", "show", "--config", write(tmp_path / "shown.toml", first.stdout))
    assert again.exit_code == 0 and again.stderr == "", again.stderr
    assert tomllib.loads(again.stdout) == tomllib.loads(first.stdout)


def test_config_show_warns_and_checks(cli: Cli) -> None:
    result = cli("config", "show", "--seed", "3")
    assert result.exit_code == 0
    assert result.stderr == "negmine: warning: --seed has no effect with --sampling-strategy top\n"
    bad = cli("config", "show", "--range-min", "5", "--range-max", "5")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert error_line(bad) == "negmine: error: --range-max (5) must be greater than --range-min (5)"
    usage = cli("config", "show", "--bogus")
    assert usage.exit_code == 2 and "No such option: --bogus" in usage.stderr
    assert "negmine config show" in usage.stderr


# --- the CLI: config from --------------------------------------------------------------------------------------------

def test_config_from_reruns_byte_for_byte(cli: Cli, tiny: dict[str, Path], out_dir: Path, tmp_path: Path) -> None:
    """Non-default settings of every kind, the score rules on (fake encoder), a prompt that needs escaping."""
    old = out_dir / "old.parquet"
    result = cli("mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
                 "-o", old, "-n", "3", "--range-min", "1", "--sampling-strategy", "random", "--seed", "11",
                 "--relative-margin", "0.07", "--max-positive-similarity", "0.9", "--query-prompt",
                 'q: "\\" \t', "--bm25-k1", "1.3", "--output-format", "n-tuple", "--output-scores", "-q")
    assert result.exit_code == 0, result.stderr
    shown = cli("config", "from", old)
    assert shown.exit_code == 0 and shown.stderr == "", shown.stderr
    assert shown.stdout.startswith(f"# negmine mine settings of {old} (negmine {negmine.__version__})\n")
    fingerprint = negmine.read_metadata(old)["inputs"]["corpus"]["fingerprint"]
    assert f"# corpus fingerprint when mined: {fingerprint}" in shown.stdout
    settings = tomllib.loads(shown.stdout)
    assert settings["corpus"] == str(tiny["corpus"]) and "output" not in settings
    assert settings["query-prompt"] == 'q: "\\" \t'
    new = out_dir / "new.parquet"
    rerun = cli("mine", "--config", write(tmp_path / "old.toml", shown.stdout), "-o", new)
    assert rerun.exit_code == 0, rerun.stderr
    assert "warning" not in rerun.stderr
    assert new.read_bytes() == old.read_bytes()


def test_config_from_in_a_shell_process_substitution(tiny: dict[str, Path], tmp_path: Path) -> None:
    """The documented command, in a real shell: ``negmine mine --config <(negmine config from old) -o new``."""
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    fake = f"{sys.executable} {ROOT / 'tests' / 'fake_cli.py'}"
    first = subprocess.run([sys.executable, str(ROOT / "tests" / "fake_cli.py"), *map(str, mine_args(
        tiny, old, "-n", "2", "--output-format", "labeled-list", "-q"))], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    script = f"{fake} mine --config <({fake} config from {old}) -o {new} -q"
    rerun = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout == f"{new}\n"
    assert new.read_bytes() == old.read_bytes()
    assert pq.read_table(new).column_names[:3] == ["anchor", "docs", "labels"]


def test_config_from_needs_a_negmine_output(cli: Cli, tiny: dict[str, Path]) -> None:
    result = cli("config", "from", tiny["corpus"])
    assert result.exit_code == 1 and result.stdout == ""
    assert error_line(result) == f"negmine: error: {tiny['corpus']}: no negmine metadata; was it written by " \
                                 "negmine mine?"


def test_config_from_an_output_of_python_inputs(tiny: dict[str, Path], tmp_path: Path, cli: Cli) -> None:
    """Inputs given in memory have no path: the config has none either (give them as flags on the rerun)."""
    corpus = negmine.read_corpus(tiny["corpus"])
    out = tmp_path / "o.parquet"
    negmine.mine(corpus, tiny["queries"], tiny["qrels"], output=out, retriever="bm25", relative_margin=None,
                 max_positive_similarity=None, positive_proximity=None)
    settings = tomllib.loads(cli("config", "from", out).stdout)
    assert "corpus" not in settings and settings["queries"] == str(tiny["queries"])
    rerun = cli("mine", "--config", write(tmp_path / "c.toml", cli("config", "from", out).stdout), "--corpus",
                tiny["corpus"], "-o", tmp_path / "again.parquet", "-q")
    assert rerun.exit_code == 0, rerun.stderr
    assert strip_meta(read_table(tmp_path / "again.parquet")).equals(strip_meta(read_table(out)))
