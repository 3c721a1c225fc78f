"""Settings as TOML files: read a config file of ``negmine mine`` options, write settings back as TOML.

A config file holds options under their flag's name without the dashes, one flat table::

    corpus = "data/corpus.parquet"
    retriever = "bm25"
    num-negatives = 5
    relative-margin = "none"     # a number, "none" or "auto"
    output-scores = true

Optional numbers take ``"none"`` as on the command line; paths are read as given, relative to the directory the
command runs in (as flags are), not to the file. ``load_config_file`` checks every key and value and returns
``{field: value}`` in the names ``negmine.mine`` and ``MineConfig`` take (``num_negatives``).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import sys
import typing
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Optional, Sequence, Union

from negmine.errors import ConfigError
from negmine.settings.config import MineConfig

logger = logging.getLogger("negmine")

#: Kinds of option values and how a config file spells them.
STR, PATH, INT, FLOAT, BOOL = "str", "path", "int", "float", "bool"


OPT_STR, OPT_INT, OPT_FLOAT, MARGIN = "optional str", "optional int", "optional float", "margin"


_TAKES = {
    STR: "a string", OPT_STR: "a string", PATH: "a path (a string)", INT: "an integer",
    OPT_INT: 'an integer or "none"', FLOAT: "a number", OPT_FLOAT: 'a number or "none"',
    MARGIN: 'a number, "none" or "auto"', BOOL: "true or false",
}

#: Options of ``negmine mine`` that are not ``MineConfig`` fields: the files it reads and writes, and switches
#: of the command itself.
RUN_OPTIONS = {
    "output": PATH, "corpus": PATH, "queries": PATH, "qrels": PATH, "pairs": PATH, "beir": PATH, "split": STR,
    "cache_dir": PATH,
    "index_dir": PATH, "corpus_embeddings": PATH, "query_embeddings": PATH, "candidates_output": PATH,
    "false_negatives_output": PATH, "dataset_card": BOOL, "quiet": BOOL, "verbose": BOOL,
}

#: The input files an output's provenance records (``metadata["inputs"][role]["path"]``).
INPUT_ROLES = ("corpus", "queries", "qrels", "pairs", "corpus_embeddings", "query_embeddings")


def key(field: str) -> str:
    """The config-file key of a field: ``num_negatives`` -> ``num-negatives`` (the flag without its dashes)."""
    return field.replace("_", "-")


def _kind(annotation: Any) -> str:
    args = set(typing.get_args(annotation))
    optional = type(None) in args
    if {float, str} <= args:
        return MARGIN
    base = next((a for a in args if a is not type(None)), annotation) if args else annotation
    kinds = {str: (STR, OPT_STR), int: (INT, OPT_INT), float: (FLOAT, OPT_FLOAT), bool: (BOOL, BOOL)}
    if base not in kinds:  # pragma: no cover - a new field of a type this module does not know
        raise TypeError(f"MineConfig field of unknown type {annotation!r}")
    return kinds[base][optional]


def option_kinds() -> dict[str, str]:
    """Every option a config file can hold (field name -> kind): the ``MineConfig`` fields, then ``RUN_OPTIONS``."""
    hints = typing.get_type_hints(MineConfig)
    kinds = {f.name: _kind(hints[f.name]) for f in dataclasses.fields(MineConfig)}
    return {**kinds, **RUN_OPTIONS}


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli  # pragma: no cover - Python 3.10

    return tomli  # pragma: no cover


def load_config_file(
    path: Union[str, Path], allowed: Optional[Collection[str]] = None, ignored: Collection[str] = ()
) -> dict[str, Any]:
    """Read a TOML config file of options.

    Args:
        path: The file (``/dev/fd/N`` from a shell's ``<(...)`` works too).
        allowed: The field names the caller takes (default: every option of ``negmine mine``).
        ignored: Field names that are known but skipped (``negmine index`` skips the options only ``mine`` uses,
            so that one file serves both commands).

    Returns:
        ``{field: value}`` in the file's order, values as ``MineConfig`` takes them (``"none"`` -> ``None``).

    Raises:
        ConfigError: The file is missing or not TOML, a key is no option (the message suggests the closest one),
            or a value has the wrong type.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    return parse_config(raw.decode("utf-8", errors="replace"), str(path), allowed, ignored)


def parse_config(
    text: str, source: str = "<config>", allowed: Optional[Collection[str]] = None, ignored: Collection[str] = ()
) -> dict[str, Any]:
    """``load_config_file`` for TOML text; ``source`` names it in error messages."""
    toml = _toml()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    kinds = option_kinds()
    names = set(kinds) if allowed is None else set(allowed) & set(kinds)
    values: dict[str, Any] = {}
    for name, value in data.items():
        field = name.replace("-", "_")
        if field in ignored and field not in names and "_" not in name:
            continue
        if "_" in name or field not in names:
            raise ConfigError(f"{source}: unknown option {name!r}{_suggest(name, names)}")
        values[field] = _check(value, kinds[field], name, source)
    return values


def _suggest(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(key(n) for n in names), n=1)
    return f"; did you mean {close[0]!r}?" if close else "; the options are the command's flags without the dashes"


def _check(value: Any, kind: str, name: str, source: str) -> Any:
    """The value as the config takes it, or a ConfigError naming the key and what it takes."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    none = isinstance(value, str) and value.strip().lower() == "none"
    if kind in (STR, OPT_STR) and isinstance(value, str):
        return value
    if kind == PATH and isinstance(value, str) and value:
        return value
    if kind == BOOL and isinstance(value, bool):
        return value
    if kind in (INT, OPT_INT) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (FLOAT, OPT_FLOAT, MARGIN) and is_number:
        return float(value)
    if kind in (OPT_INT, OPT_FLOAT, MARGIN) and none:
        return None
    if kind == MARGIN and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    raise ConfigError(f"{source}: option {name!r} takes {_TAKES[kind]}; got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (str, bool, int, float)):
        return toml_value(value)
    return f"{value} (a {type(value).__name__})"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string: quoted, with backslash escapes for quotes, backslashes and control characters."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """A scalar as TOML: strings (and paths) quoted, ints, floats (``inf``, ``nan``; ``repr`` round-trips), bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (str, Path)):
        return toml_string(str(value))
    raise TypeError(f"not a TOML scalar: {value!r}")


def config_to_toml(
    values: Mapping[str, Any], groups: Optional[Mapping[str, str]] = None, header: Sequence[str] = (),
) -> str:
    """Settings (``{field: value}``) as a TOML config file that ``load_config_file`` reads back to the same values.

    ``None`` is written ``"none"`` for an optional number, and as a comment (``# model: not set``) for a string or
    path, which TOML cannot leave empty. ``groups`` (field -> title) puts a ``# title`` comment before each run of
    fields of one group; ``header`` lines come first, as comments.
    """
    kinds = option_kinds()
    lines = [f"# {line}" if line else "#" for line in header]
    group = None
    for field, value in values.items():
        title = (groups or {}).get(field)
        if title and title != group:
            lines.extend(["", f"# {title}"] if lines else [f"# {title}"])
            group = title
        kind = kinds.get(field)
        if value is None and kind in (OPT_INT, OPT_FLOAT, MARGIN):
            lines.append(f'{key(field)} = "none"')
        elif value is None:
            lines.append(f"# {key(field)}: not set")
        else:
            lines.append(f"{key(field)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def config_from_metadata(metadata: Mapping[str, Any], source: str = "<metadata>") -> dict[str, Any]:
    """The options of the run that wrote an output, from its provenance (``negmine.read_metadata(path)``): the
    input paths as they were given (the BEIR folder and split, for a run given one), then every ``MineConfig``
    field. Fields this version of negmine does not know
    (an output of another version) are left out, with a warning on the ``negmine`` logger."""
    inputs = metadata.get("inputs") or {}
    beir = metadata.get("beir")
    roles: tuple[str, ...] = INPUT_ROLES
    values: dict[str, Any] = {}
    if isinstance(beir, dict):  # the folder stands for the corpus, queries and qrels files
        values = {"beir": beir["folder"], "split": beir["split"]}
        roles = tuple(r for r in INPUT_ROLES if r not in ("corpus", "queries", "qrels"))
    values.update({role: inputs[role]["path"] for role in roles if role in inputs})
    config = metadata.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: its metadata holds no config; was it written by negmine mine?")
    fields = {f.name for f in dataclasses.fields(MineConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        logger.warning(f"{source}: left out {', '.join(key(u) for u in unknown)}: not options of this negmine "
                       f"(the file was written by negmine {metadata.get('negmine_version', '?')})")
    values.update({f.name: config[f.name] for f in dataclasses.fields(MineConfig) if f.name in config})
    return values
