"""``negmine config show`` and ``negmine config from``: settings as TOML."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from typing_extensions import Annotated

from negmine.cli.base import Command, given, reporting
from negmine.cli.mine import mine
from negmine.cli.options import CONFIG_FILE
from negmine.cli.values import config_options, mine_config
from negmine.settings import files as configfile


def mine_command(output_required: bool = True) -> Any:
    """The click command of 'negmine mine'; one whose --output is optional for ``output_required=False``."""
    single = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
    single.command("mine", cls=Command)(mine)
    command = typer.main.get_command(single)
    if not output_required:
        for p in command.params:
            if p.name == "output":
                p.required = False
    return command


def _groups(command: Any) -> dict[str, str]:
    """Option name -> its help group, for the comments of a TOML config."""
    return {p.name: p.rich_help_panel for p in command.params if getattr(p, "rich_help_panel", None)}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def config_show(ctx: typer.Context) -> None:
    """Print the settings of a 'negmine mine' run as TOML, after the --config file and the flags: every option,
    'none' for an unset number, a comment for an unset name or path. It takes every option of 'negmine mine'
    (--output is optional here) and runs nothing; warnings about options without effect go to stderr.

    \b
    Examples:
      negmine config show --config negmine.toml -n 10
      negmine config show --retriever bm25 > negmine.toml && negmine mine --config negmine.toml -o neg.parquet
    """
    command = mine_command(output_required=False)
    sub = command.make_context("show", list(ctx.args), parent=ctx.parent)  # errors read "negmine config show"
    options = config_options(sub.params)
    with reporting(True, False):
        settings = mine_config(sub, options)
        for message in settings.ineffective(given(sub, options)):
            logging.getLogger("negmine").warning(message)
    resolved = settings.to_dict()
    values = {p.name: resolved[p.name] if p.name in resolved else _plain(sub.params.get(p.name))
              for p in command.params if p.name in sub.params and p.name != "config"}
    header = ["negmine mine settings" + (f", from {sub.meta[CONFIG_FILE]} and the command line"
                                         if CONFIG_FILE in sub.meta else ", from the command line")]
    typer.echo(configfile.config_to_toml(values, _groups(command), header), nl=False)


def config_from(
    path: Annotated[Path, typer.Argument(help="A file written by negmine mine: Parquet, or JSON Lines with its "
                                         "OUT.provenance.json.", show_default=False)],
) -> None:
    """Print as TOML the settings an output was mined with (from its provenance): the input paths as they were
    given, and every option. Rerun it, byte for byte, from the same directory:

    \b
    Example:
      negmine mine --config <(negmine config from old.parquet) -o new.parquet
    """
    from negmine.output.provenance import read_metadata
    with reporting(True, False):
        meta = read_metadata(path)
        values = configfile.config_from_metadata(meta, str(path))
    inputs = meta.get("inputs") or {}
    header = [f"negmine mine settings of {path} (negmine {meta.get('negmine_version', '?')})",
              *(f"{role} fingerprint when mined: {item.get('fingerprint')}" for role, item in inputs.items())]
    command = mine_command()
    order = {p.name: i for i, p in enumerate(command.params)}
    values = dict(sorted(values.items(), key=lambda kv: order.get(kv[0], len(order))))
    typer.echo(configfile.config_to_toml(values, _groups(command), header), nl=False)
