"""What every command shares: the click classes (usage errors as one line, help in option groups), running a
command's work (logging, progress, errors as one line and an exit code), and the tables it prints on stderr."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from negmine.errors import NegmineError, storage_error
from negmine.progress import Advance, LineProgress, Progress


class Group(TyperGroup):
    """A group of commands (negmine, negmine config). Its ``--help`` defaults to False rather than None, so that
    running a command does not have typer coerce that None through pydantic (imported for it: a tenth of a second
    on every run, --help included)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    def main(self, args: Any = None, prog_name: Optional[str] = None,  # type: ignore[override]  # varies by version
             complete_var: Optional[str] = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run as click does, but a usage error reads as every other error: one line, ``negmine: error: ...``
        (with the command whose --help to read), exit code 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        click = sys.modules[typer.BadParameter.__module__]  # click's exceptions, or those typer vendors
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a group called without a command: its help
                typer.echo(exc.format_message(), err=True)
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else "negmine"
            typer.echo(f"negmine: error: {exc.format_message().rstrip('.')}; see '{where} --help'", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            typer.echo(f"negmine: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


class Command(TyperCommand):
    """A command whose ``--help`` lists the options under their groups (``rich_help_panel``), as plain text: rich's
    help renderer would cost more import time than the rest of ``--help``."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        for title, records in option_groups(self, ctx):
            with formatter.section(title):
                formatter.write_dl(records)


def option_groups(command: Any, ctx: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(flags, help)]) of a command's parameters, in order of each group's first option: arguments
    first, options without a group ("Options": --help) last."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        title = "Arguments" if param.param_type_name == "argument" else getattr(param, "rich_help_panel", None)
        groups.setdefault(title or "Options", []).append(record)
    order = sorted(groups, key=lambda t: (t != "Arguments", t == "Options"))
    return [(title, groups[title]) for title in order]


def group(name: Optional[str], help: str) -> typer.Typer:
    """A group of commands: ``negmine`` itself (``name=None``) or ``negmine NAME``."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                       pretty_exceptions_enable=False, cls=Group)


def source(ctx: Any, name: str) -> str:
    """Where an option's value came from: COMMANDLINE, ENVIRONMENT, DEFAULT_MAP (the --config file), DEFAULT."""
    return getattr(ctx.get_parameter_source(name), "name", "")


def given(ctx: Any, names: Iterable[str]) -> list[str]:
    """The options among ``names`` that were set on purpose: on the command line, or in the --config file to a
    value other than the default (a file written by ``negmine config show`` or ``config from`` lists every
    option; its defaults are not choices to warn about)."""
    if ctx is None:
        return []
    defaults = {p.name: p.default for p in ctx.command.params}
    out = []
    for name in names:
        where = source(ctx, name)
        if where in ("COMMANDLINE", "ENVIRONMENT") or (
                where == "DEFAULT_MAP" and ctx.params.get(name) != defaults.get(name)):
            out.append(name)
    return out


class RichProgress(Progress):
    """Progress bars on stderr, one line per stage."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    @contextmanager
    def stage(self, description: str, total: Optional[int] = None) -> Iterator[Advance]:
        task = self.bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            self.bar.advance(task, n)

        yield advance
        done = next((t.completed for t in self.bar.tasks if t.id == task), 0) or 1
        self.bar.update(task, total=done, completed=done)  # a lazy stage may end before its bound


def stderr() -> Any:
    """A rich console on stderr."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: temporary files are removed on the way out."""


def on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def reporting(quiet: bool, verbose: bool) -> Iterator[Progress]:
    """Logging and progress for one command (a bar on a terminal, plain lines elsewhere). NegmineError, and any
    OSError that reaches here, becomes a one-line message and its exit code; Ctrl-C prints 'interrupted' (130)."""
    console = stderr()
    handler = _ConsoleHandler(console)
    log = logging.getLogger("negmine")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if quiet and verbose:
        log.warning("--quiet and --verbose together: no progress and no summary, but debug logs")
    try:
        if quiet:
            yield Progress()
        elif not console.is_terminal:
            yield LineProgress(lambda line: console.print(line, markup=False, soft_wrap=True, highlight=False))
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            with Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=console) as bar:
                yield RichProgress(bar)
    except NegmineError as exc:
        console.print(f"negmine: error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:  # an edge the library did not name: still one line, with the path
        where = exc.filename or "negmine"
        console.print(f"negmine: error: {storage_error(where, exc)}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        console.print("negmine: interrupted", markup=False)
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    finally:
        log.removeHandler(handler)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"negmine: {record.levelname.lower()}: {record.getMessage()}", markup=False,
                           soft_wrap=True)


def print_table(title: str, rows: list[tuple[str, str]], seconds: Optional[dict[str, float]] = None,
                output: Optional[Path] = None) -> None:
    """A two-column table on stderr: the rows, the time per stage (``--verbose``), and the output's path."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    for label, value in rows:
        table.add_row(label, value)
    for stage, secs in (seconds or {}).items():
        table.add_row(f"time: {stage}", f"{secs:.2f} s")
    if output is not None:
        table.add_row("output", str(output))
    stderr().print(table)

