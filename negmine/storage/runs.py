"""Resumable runs: every finished query batch is kept in the cache, as compact arrays, until the run completes;
the same run (same inputs, settings and models) started again after a crash or a kill continues after the last
finished batch and writes the same bytes.

A batch is one ``.npz`` file written under a temporary name and renamed into place, so a batch is there whole or
not at all; one that cannot be read is computed again.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from negmine.errors import StorageError
from negmine.storage.cache import read_only
from negmine.storage.files import atomic_target, remove_stale_temps

logger = logging.getLogger("negmine")


class RunStore:
    """The finished batches of one run, under ``root/runs/<key>``; ``root`` or ``key`` ``None`` keeps nothing.

    Args:
        root: The cache folder.
        key: What identifies the run (a digest of its inputs' fingerprints, settings and models).
    """

    def __init__(self, root: Optional[Path], key: Optional[str]) -> None:
        keep = root is not None and key is not None and not read_only(root)  # a read-only cache keeps nothing
        self.dir = Path(root) / "runs" / key if keep and root is not None and key is not None else None
        if self.dir is not None and self.dir.exists():
            remove_stale_temps(self.dir)

    def _path(self, i: int) -> Path:
        assert self.dir is not None
        return self.dir / f"batch-{i:07d}.npz"

    def finished(self) -> int:
        """How many batches a previous attempt finished (those here)."""
        return 0 if self.dir is None or not self.dir.exists() else len(list(self.dir.glob("batch-*.npz")))

    def load(self, i: int) -> Optional[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """Batch ``i``'s arrays and its JSON part, or ``None`` when it is not here (or unreadable: then removed)."""
        if self.dir is None:
            return None
        path = self._path(i)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files if k != "__json__"}
                meta = json.loads(str(data["__json__"]))
            return arrays, meta
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            logger.warning("resume: batch %d in %s is unreadable (%s); computing it again", i, self.dir, exc)
            path.unlink(missing_ok=True)
            return None

    def save(self, i: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Keep batch ``i`` (atomically). A batch that cannot be kept (the same run finished in another process
        and removed the folder, a full disk) is only a lost chance to resume: logged, not raised."""
        if self.dir is None:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with atomic_target(self._path(i)) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, __json__=np.array(json.dumps(meta, sort_keys=True)), **arrays)  # type: ignore[arg-type]
        except (OSError, StorageError) as exc:
            logger.debug("resume: could not keep batch %d in %s (%s)", i, self.dir, exc)

    def clear(self) -> None:
        """Forget the run (it completed, failed, or is started over)."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
