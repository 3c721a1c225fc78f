"""Render the CLI reference (docs/cli.md) from the commands themselves, so that it always matches ``--help``.

``python -m negmine.clidoc > docs/cli.md`` (``make docs``) rewrites it; a test fails when it is out of date.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from negmine.cli import app

HEADER = """# CLI reference

Generated from the commands' own `--help` by `make docs` (`python -m negmine.clidoc > docs/cli.md`);
a test fails when this page and the commands disagree.

Exit codes: 0 success; 1 bad input data, a folder that cannot be written (read-only, full), or a run that would
write no negative (see `--allow-empty`); 2 bad usage, options or models; 130 interrupted (Ctrl-C); 143 terminated
(SIGTERM). Every error is one line on stderr, `negmine: error: ...`, naming the file, column, row or path; a failed
or interrupted run leaves no output and no temporary file. Stdout carries only the output path.

Progress goes to stderr: a bar per stage on a terminal; elsewhere (CI logs, `2> log`) a plain line per stage at
most every 10 seconds with done/total, rate and time left. `-q` silences both (warnings and errors still show).
"""


def _option_row(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    if record is None:  # pragma: no cover - hidden options
        return ""
    flags, help_text = record
    escaped = help_text.replace("|", "\\|")
    return f"| `{flags}` | {escaped} |"


def render() -> str:
    """The markdown reference of every command."""
    root = typer.main.get_command(app)
    lines = [HEADER]
    root_ctx = root.make_context("negmine", [], resilient_parsing=True)
    lines.append("## negmine\n")
    lines.append(f"```\n{root.get_usage(root_ctx)}\n```\n")
    lines.append(inspect.cleandoc(root.help or "") + "\n")
    lines.append("| option | description |\n| --- | --- |")
    lines.extend(r for p in root.get_params(root_ctx) if (r := _option_row(p, root_ctx)))
    for name in sorted(root.commands):  # type: ignore[attr-defined]
        cmd = root.commands[name]  # type: ignore[attr-defined]
        ctx = cmd.make_context(name, [], parent=root_ctx, resilient_parsing=True)
        lines.append(f"\n## negmine {name}\n")
        lines.append(f"```\n{cmd.get_usage(ctx)}\n```\n")
        lines.append(inspect.cleandoc(cmd.help or "") + "\n")
        lines.append("| option | description |\n| --- | --- |")
        lines.extend(r for p in cmd.get_params(ctx) if (r := _option_row(p, ctx)))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
