"""The documentation stays in sync with the commands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from helpers import ROOT

from negmine.cli import app
from negmine.cli.doc import render


def test_cli_reference_is_up_to_date() -> None:
    """docs/cli.md is exactly what `make docs` generates from the commands' --help."""
    assert (ROOT / "docs" / "cli.md").read_text() == render(), "docs/cli.md is stale: run `make docs`"


def _commands(cmd: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every command under ``cmd`` (groups and their commands), with its path: ``negmine config show``."""
    for name, sub in getattr(cmd, "commands", {}).items():
        yield f"{path} {name}", sub
        yield from _commands(sub, f"{path} {name}")


def test_every_command_and_option_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text().replace("\\|", "|")
    root = typer.main.get_command(app)
    commands = dict(_commands(root, "negmine"))
    assert {"negmine mine", "negmine index", "negmine report", "negmine config show", "negmine config from"} <= \
        set(commands)
    for path, cmd in commands.items():
        section = text.split(f"\n## {path}\n", 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"{opt}" in section, f"{path} {opt} is not in its section of docs/cli.md"
            if param.help:
                assert param.help.split(";")[0][:40] in section


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    for doc in ("docs/cli.md", "docs/python-api.md", "docs/formats.md", "docs/mining.md"):
        assert (ROOT / doc).is_file() and doc in readme


def test_cli_reference_groups_the_options() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    mine = text.split("\n## negmine mine\n", 1)[1].split("\n## ", 1)[0]
    titles = [line[4:] for line in mine.splitlines() if line.startswith("### ")]
    assert titles == ["Inputs", "Input columns (detected from the usual names when not given)", "Mining", "BM25",
                      "Dense retrieval", "False-negative filters", "Output"]
    bm25 = mine.split("### BM25\n", 1)[1].split("### ", 1)[0]
    assert "`--bm25-k1 <float>`" in bm25 and "--model" not in bm25
    assert "```\nnegmine mine --corpus corpus.parquet" in mine  # the example, as a code block


def test_the_rules_table_names_every_rule_and_option() -> None:
    """docs/mining.md's table of rules has a row for each rule of the registry, with its options' flags, and the
    architecture page names every package of the layers contract."""
    from negmine.rules.registry import RULES

    text = (ROOT / "docs" / "mining.md").read_text()
    table = text.split("| rule (status) |", 1)[1].split("\n\n", 1)[0]
    rows = {line.split("|")[1]: line for line in table.splitlines()[2:]}
    for rule in RULES:
        row = next((r for first, r in rows.items() if f"`{rule.name}`" in first), None)
        if rule.name == "rank_window":  # the rank window is the mining options' own (--range-min, --range-max)
            assert row is None and "--range-max" in text
            continue
        assert row is not None, f"docs/mining.md has no row for the rule {rule.name}"
        for option in rule.options:
            assert "--" + option.name.replace("_", "-") in row, f"{rule.name}: {option.name} is not in its row"
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    contract = (ROOT / "pyproject.toml").read_text().split("layers = [", 1)[1].split("]", 1)[0]
    for layer in contract.replace("|", ",").replace('"', "").split(","):
        if layer.strip():
            assert layer.strip() in architecture, f"docs/architecture.md does not name {layer.strip()}"
