"""The ``negmine`` command: parse options into a MineConfig, call the library, render the result.

Stdout carries data (the output path, or the JSON Lines rows of ``-o -``); progress, summaries, warnings and errors
go to stderr. Importing this package loads neither numpy, pyarrow nor torch, so that ``--help`` answers at once;
commands import the library when they run.

Modules: ``app`` (the command tree and the entry point), ``base`` (what every command shares), ``options`` (every
option's help, declared once), ``values`` (options as the library takes them), and the commands: ``mine`` (mine,
index), ``tune`` (refilter, sweep, evaluate, report), ``config``, ``cache``; ``doc`` renders docs/cli.md.
"""

from negmine.cli.app import app, main

__all__ = ["app", "main"]
