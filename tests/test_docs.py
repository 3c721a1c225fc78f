"""The documentation stays in sync with the commands."""

from __future__ import annotations

import typer
from helpers import ROOT

from negmine.cli import app
from negmine.clidoc import render


def test_cli_reference_is_up_to_date() -> None:
    """docs/cli.md is exactly what `make docs` generates from the commands' --help."""
    assert (ROOT / "docs" / "cli.md").read_text() == render(), "docs/cli.md is stale: run `make docs`"


def test_every_command_and_option_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text().replace("\\|", "|")
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        assert f"## negmine {name}" in text
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"{opt}" in text, f"{name} {opt} is not in docs/cli.md"
            if param.help:
                assert param.help.split(";")[0][:40] in text


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    for doc in ("docs/cli.md", "docs/python-api.md", "docs/formats.md", "docs/mining.md"):
        assert (ROOT / doc).is_file() and doc in readme
