"""Options' values as the library takes them: a ``MineConfig`` of a command's options, the options a refilter was
given, a sweep's lists; an invalid value from the --config file is reported with the file's name."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Optional, Union

from negmine.cli.base import source
from negmine.cli.options import CONFIG_FILE, NUMBERS
from negmine.errors import ConfigError
from negmine.rules.base import flag
from negmine.settings.config import MineConfig
from negmine.settings.files import option_kinds

#: The options that are settings of a run (``MineConfig`` fields); the others name files or steer the command.
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(MineConfig))


def config_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings among a command's options."""
    return {k: v for k, v in values.items() if k in CONFIG_FIELDS}


def optional_float(value: str, name: str) -> Union[float, str, None]:
    """An optional number as typed: a number, ``none`` (or ``off``, empty), or ``auto`` for --relative-margin."""
    if value.strip().lower() in ("none", "off", ""):
        return None
    if name == "relative_margin" and value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        choices = "a number, 'none' or 'auto'" if name == "relative_margin" else "a number or 'none'"
        raise ConfigError(f"{flag(name)} takes {choices}, got {value!r}") from None


def mine_config(ctx: Any, options: Mapping[str, Any]) -> MineConfig:
    """The MineConfig of a command's settings; an invalid value that came from the --config file is reported
    with the file's name."""
    options = dict(options)
    try:
        for name in NUMBERS:
            if name in options:
                options[name] = optional_float(options[name], name)
        return MineConfig(**options)
    except ConfigError as exc:
        where = ctx.meta.get(CONFIG_FILE)
        named = set(re.findall(r"--[a-z0-9-]+", str(exc)))
        if where and any(flag(n) in named and source(ctx, n) == "DEFAULT_MAP" for n in options):
            raise ConfigError(f"{where}: {exc}") from None
        raise


def refilter_options(ctx: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a refilter given on purpose (on the command line or in --config), as MineConfig takes
    them; the others stay as mined."""
    options = {}
    for name, value in config_options(values).items():
        if source(ctx, name) not in ("COMMANDLINE", "ENVIRONMENT", "DEFAULT_MAP"):
            continue
        options[name] = optional_float(value, name) if name in NUMBERS else value
    return options


def list_of(name: str, text: Optional[str]) -> Optional[list[Any]]:
    """A swept option's comma-separated values, as MineConfig takes them."""
    if text is None:
        return None
    kind = option_kinds()[name]
    out: list[Any] = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            if name in NUMBERS:
                out.append(optional_float(part, name))
            elif kind == "bool":
                if part.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                    raise ValueError(part)
                out.append(part.lower() in ("true", "yes", "on", "1"))
            elif kind in ("int", "optional int"):
                out.append(int(part))
            elif kind in ("float", "optional float"):
                out.append(float(part))
            else:
                out.append(part)
        except ValueError:
            raise ConfigError(f"{flag(name)}: {part!r} is not a value of it (a comma-separated list)") from None
    return out
