"""Answers of endpoints kept on disk, content-addressed, so that a rerun or a resumed run sends nothing twice:
each model (by its identity) has a folder ``endpoints/<digest>/`` under the cache, holding ``answers.jsonl``, one
``{"key": ..., "value": ...}`` line per answer, appended and flushed as each request returns (a killed run loses
at most the requests in flight; a line cut short by the kill is skipped when read). A key is the SHA-256 of what
was asked (the texts, the prompt), so an answer is found again whatever the run that asks."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Optional

from negmine.errors import storage_error


def key_of(*parts: str) -> str:
    """The content address of a question: SHA-256 over its parts, each length-prefixed."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class AnswerStore:
    """The answers of one model; ``None`` folder: kept in memory only (a read-only cache, or none)."""

    def __init__(self, folder: Optional[Path], identity: str) -> None:
        self.answers: dict[str, Any] = {}
        self.path: Optional[Path] = None
        self._lock = threading.Lock()
        if folder is None:
            return
        where = Path(folder) / "endpoints" / key_of(identity)[:32]
        self.path = where / "answers.jsonl"
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                        self.answers[record["key"]] = record["value"]
                    except (ValueError, KeyError, TypeError):  # a line cut short by a kill
                        continue
        else:
            try:
                where.mkdir(parents=True, exist_ok=True)
                (where / "identity.json").write_text(identity, encoding="utf-8")
            except OSError:  # a read-only cache: answers are kept in memory only
                self.path = None

    def get(self, key: str) -> Any:
        return self.answers.get(key)

    def put(self, key: str, value: Any) -> None:
        """Keep an answer, on disk at once."""
        line = json.dumps({"key": key, "value": value}, separators=(",", ":")) + "\n"
        with self._lock:
            self.answers[key] = value
            if self.path is None:
                return
            try:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise storage_error(self.path, exc) from exc
