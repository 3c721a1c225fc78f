"""``python tests/fake_cli.py mine ...``: the negmine command in a real process, embedding with the FakeEncoder.

For the tests that need a real process (kill -9, signals, mount namespaces). Environment knobs:
``NEGMINE_TEST_DELAY`` (seconds per batch of two texts: a slow encoder), ``NEGMINE_TEST_COMMIT`` (commit every
batch to the cache).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import FakeEncoder, SlowEncoder  # noqa: E402

from negmine.cli import main  # noqa: E402


def make_encoder(config: Any, model: Optional[str] = None) -> FakeEncoder:
    name = model or config.model or "fake"
    delay = float(os.environ.get("NEGMINE_TEST_DELAY", "0"))
    return SlowEncoder(delay, name=name) if delay else FakeEncoder(name=name)


if __name__ == "__main__":
    importlib.import_module("negmine.retrieve.build").make_encoder = make_encoder
    if os.environ.get("NEGMINE_TEST_COMMIT"):
        cache = importlib.import_module("negmine.storage.embeddings")
        cache.COMMIT_ROWS, cache.COMMIT_SECONDS = 1, 0.0
    sys.argv[0] = "negmine"
    main()
