"""Exceptions raised by the library. The CLI maps them to exit codes; the library never exits."""

from __future__ import annotations


class NegmineError(Exception):
    """Base class of every error negmine raises on purpose.

    The message is one line that names the file, column, row or value at fault and says how to fix it.
    """

    exit_code = 1


class InputError(NegmineError):
    """The data is wrong: a missing or unreadable file, a missing column, a bad row. Exit code 1."""

    exit_code = 1


class ConfigError(NegmineError):
    """The options are wrong or contradict each other. Exit code 2, like any usage error."""

    exit_code = 2
