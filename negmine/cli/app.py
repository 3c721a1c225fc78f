"""The ``negmine`` command and its subcommands, assembled from the modules that define them."""

from __future__ import annotations

import signal

import typer
from typing_extensions import Annotated

from negmine.cli.base import Command, group, on_sigterm
from negmine.cli.cache import cache_info, cache_prune
from negmine.cli.config import config_from, config_show
from negmine.cli.mine import index, mine
from negmine.cli.tune import evaluate, refilter, report, sweep
from negmine.version import __version__

app = group(None, "Mine hard negatives for training retrieval models (embedders, rerankers).")
app.info.name = "negmine"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"negmine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Mine hard negatives for training retrieval models (embedders, rerankers)."""


for command in (mine, refilter, sweep, evaluate, index, report):
    app.command(cls=Command)(command)

config_app = group("config", "Settings as TOML config files: show the resolved settings of a run, or those an "
                             "output was mined with.")
config_app.command("show", cls=Command, context_settings={"ignore_unknown_options": True,
                                                          "allow_extra_args": True})(config_show)
config_app.command("from", cls=Command)(config_from)
app.add_typer(config_app)

cache_app = group("cache", "The cache folder: what it holds per part and when each entry was last used, and "
                           "pruning it.")
cache_app.command("info", cls=Command)(cache_info)
cache_app.command("prune", cls=Command)(cache_prune)
app.add_typer(cache_app)


def main() -> None:
    """Entry point of the ``negmine`` console script."""
    signal.signal(signal.SIGTERM, on_sigterm)
    app(prog_name="negmine")
