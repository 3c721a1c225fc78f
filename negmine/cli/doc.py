"""Render the CLI reference (docs/cli.md) from the commands themselves, so that it always matches ``--help``.

``python -m negmine.cli.doc > docs/cli.md`` (``make docs``) rewrites it; a test fails when it is out of date.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from negmine.cli.app import app
from negmine.cli.base import option_groups

HEADER = """# CLI reference

Generated from the commands' own `--help` by `make docs` (`python -m negmine.cli.doc > docs/cli.md`);
a test fails when this page and the commands disagree.

Exit codes: 0 success; 1 bad input data, a folder that cannot be written (read-only, full), or a run that would
write no negative (see `--allow-empty`); 2 bad usage, options or models; 130 interrupted (Ctrl-C); 141 the reader of
`-o -` stopped reading before the end (`negmine mine -o - | head`), as a shell reports SIGPIPE; 143 terminated
(SIGTERM). Every error is one line on stderr, `negmine: error: ...`, naming the file, column, row or path (usage
errors too, with the command whose `--help` to read); a failed or interrupted run leaves no output and no temporary
file. Stdout carries only the output path.

Progress goes to stderr: a bar per stage on a terminal; elsewhere (CI logs, `2> log`) a plain line per stage at
most every 10 seconds with done/total, rate and time left. `-q` silences both (warnings and errors still show).
"""


def _row(record: tuple[str, str]) -> str:
    flags, help_text = record
    escaped = help_text.replace("|", "\\|")
    return f"| `{flags}` | {escaped} |"


def _help_text(text: str) -> str:
    """A command's help as markdown: a paragraph marked ``\\b`` (kept as written by --help: examples) becomes its
    title line and a code block of its indented lines."""
    out = []
    for para in inspect.cleandoc(text).partition("\f")[0].split("\n\n"):
        lines = para.split("\n")
        if lines[0].strip() != "\b":
            out.append(para)
            continue
        body = lines[1:]
        title = [body.pop(0)] if body and not body[0].startswith(" ") else []
        code = inspect.cleandoc("\n".join(body))
        out.append("\n\n".join([*title, f"```\n{code}\n```"]))
    return "\n\n".join(out) + "\n"


def _command(path: str, cmd: Any, ctx: Any) -> list[str]:
    """The section of one command: usage, help, and a table of options per group."""
    lines = [f"\n## {path}\n", f"```\n{cmd.get_usage(ctx)}\n```\n", _help_text(cmd.help or "")]
    groups = option_groups(cmd, ctx)
    if len(groups) > 1 and [r[0] for r in groups[-1][1]] == ["--help"]:
        groups = groups[:-1]  # every command has --help; the page says it once, for negmine itself
    for title, records in groups:
        lines.append(f"### {title}\n" if len(groups) > 1 or title != "Options" else "")
        lines.append("| option | description |\n| --- | --- |")
        lines.extend(_row(r) for r in records)
        lines.append("")
    for name in getattr(cmd, "commands", {}):  # a group: its commands, in the order they were added
        sub = cmd.commands[name]
        lines.extend(_command(f"{path} {name}", sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True)))
    return lines


def render() -> str:
    """The markdown reference of every command."""
    root = typer.main.get_command(app)
    root_ctx = root.make_context("negmine", [], resilient_parsing=True)
    lines = [HEADER, *_command("negmine", root, root_ctx)]
    return "\n".join(lines).replace("\n\n\n", "\n\n").rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
