"""``negmine cache info`` and ``negmine cache prune``."""

from __future__ import annotations

import json as json_module
import time
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from negmine.cli.base import print_table, reporting
from negmine.cli.options import INPUTS, MINING, OUTPUT, Quiet

CacheDir = Annotated[Optional[Path], typer.Option(help="The cache folder (or an index folder) [default: "
                                                  "$NEGMINE_CACHE_DIR or ~/.cache/negmine].", rich_help_panel=INPUTS)]


def _cache_root(cache_dir: Optional[Path]) -> tuple[Path, str]:
    from negmine.storage.cache import cache_option, resolve_cache_dir

    return resolve_cache_dir(cache_dir, None), cache_option(cache_dir, None)


def _age(seconds: Optional[float], now: float) -> str:
    if seconds is None:
        return "-"
    age = max(0.0, now - seconds)
    if age >= 86400:
        return f"{age / 86400:.1f} days ago"
    return f"{age / 3600:.1f} hours ago" if age >= 3600 else f"{age / 60:.0f} minutes ago"


def cache_info(
    cache_dir: CacheDir = None,
    json: Annotated[bool, typer.Option("--json", help="Print it as JSON.", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Show what the cache folder holds: per part (inputs, embeddings, bm25, vectors, faiss, runs) the entries, their
    size, and when the oldest and the newest were last used.

    \b
    Example:
      negmine cache info --cache-dir /data/negmine-cache
    """
    from negmine.storage.housekeeping import info

    with reporting(True, False):
        root, option = _cache_root(cache_dir)
        found = info(root, option)
    if json:
        typer.echo(json_module.dumps(found.to_dict(), indent=2))
        return
    now = time.time()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"negmine cache {root}", title_justify="left")
    for column in ("part", "entries", "MiB", "oldest use", "newest use"):
        table.add_column(column, justify="right" if column in ("entries", "MiB") else "left")
    for name, part in found.parts.items():
        table.add_row(name, f"{part.entries:,}", f"{part.bytes / 2**20:,.1f}", _age(part.oldest, now),
                      _age(part.newest, now))
    table.add_row("all", "", f"{found.bytes / 2**20:,.1f}", "", "")
    Console(highlight=False).print(table)


def cache_prune(
    cache_dir: CacheDir = None,
    older_than: Annotated[str, typer.Option(help="Remove the entries last used longer ago than this: 7d, 12h, 30m, "
                                            "2w (a bare number is days); 0 removes every entry.",
                                            rich_help_panel=MINING)] = "0",
    part: Annotated[Optional[list[str]], typer.Option(help="Only this part: inputs, embeddings, bm25, vectors, faiss "
                                                      "or runs (repeat it for several) [default: all].",
                                                      rich_help_panel=MINING)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed, remove nothing.",
                                          rich_help_panel=OUTPUT)] = False,
    quiet: Quiet = False,
) -> None:
    """Remove cache entries not used for a while: input copies, indexes, embeddings of a model, and the batches of
    runs that never completed. Prints each removed entry's path on stdout; an embeddings entry a running process
    reads from is left (and counted). Prune while no run uses the cache.

    \b
    Examples:
      negmine cache prune --older-than 7d
      negmine cache prune --part runs --dry-run
    """
    from negmine.storage.housekeeping import parse_age, prune

    with reporting(quiet, False):
        root, option = _cache_root(cache_dir)
        result = prune(root, parse_age(older_than), part, dry_run, option)
    for entry in result.removed:
        typer.echo(str(entry.path))
    if not quiet:
        verb = "would remove" if dry_run else "removed"
        rows = [(f"{verb}", f"{len(result.removed):,} entries, {result.bytes / 2**20:,.1f} MiB")]
        if result.busy:
            rows.append(("left (in use)", f"{len(result.busy):,} entries"))
        print_table(f"negmine cache prune {root}", rows)
