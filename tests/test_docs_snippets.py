"""Every Python snippet of the README and of docs/ runs as written: the blocks of a page in order, in one namespace,
in a folder holding the files they name (the bundled example as ``corpus.parquet`` and so on). Embedding uses the
fake encoder, as in every other test; the README's training snippet trains the tiny BERT bi-encoder the tests build
in place of all-MiniLM-L6-v2 (the only change made to a snippet: the model hub is not reachable here)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, TINY, tiny_bert

import negmine

PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(["README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])


def snippets(page: str) -> list[tuple[int, str]]:
    """(line, code) of each ```python block of a page."""
    text = (ROOT / page).read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in PYTHON.finditer(text)]


@pytest.fixture(scope="module")
def tiny_bi_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("docs-model"))[1]


def test_the_pages_have_snippets() -> None:
    found = {page: len(snippets(page)) for page in PAGES}
    assert found["README.md"] >= 2 and found["docs/python-api.md"] >= 5 and found["docs/formats.md"] >= 1, found


@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)])
def test_python_snippets_run_as_written(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        tiny_bi_encoder: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("corpus", "queries", "qrels", "pairs"):
        shutil.copy(TINY / f"{name}.parquet", work / f"{name}.parquet")
    shutil.copy(TINY / "qrels.parquet", work / "full-qrels.parquet")
    (work / "negmine.toml").write_text('corpus = "corpus.parquet"\nqueries = "queries.parquet"\n'
                                       'qrels = "qrels.parquet"\nnum-negatives = 5\n')
    monkeypatch.chdir(work)
    if page == "README.md":  # what the shell command before its training snippet writes
        (work / "train").mkdir()
        negmine.mine("corpus.parquet", "queries.parquet", "qrels.parquet", columns="training",
                     output="train/negatives.parquet")
    namespace: dict = {"__name__": "__snippet__"}
    for line, code in snippets(page):
        code = code.replace('"all-MiniLM-L6-v2"', repr(str(tiny_bi_encoder)))
        try:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own code
        except Exception as exc:  # noqa: BLE001 - name the snippet that failed
            pytest.fail(f"{page}, the snippet at line {line} failed: {type(exc).__name__}: {exc}")
