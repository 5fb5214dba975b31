"""Resuming: a ledger of finished steps, each keyed by a fingerprint of its inputs, settings and code version.

A step is skipped when the ledger holds its current key and all its outputs exist; keys chain (a step's key
includes the keys of the steps it reads), so changing the video, a setting or an upstream result redoes exactly the
steps downstream of it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.data.dataset import write_json_atomic

EDGE_BYTES = 1 << 20


def file_fingerprint(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """Identity of a file without reading all of it: path, size, mtime and hashes of its first and last MiB."""
    if path is None:
        return None
    path = Path(path).resolve()
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(EDGE_BYTES))
        if stat.st_size > 2 * EDGE_BYTES:
            handle.seek(-EDGE_BYTES, os.SEEK_END)
            digest.update(handle.read(EDGE_BYTES))
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_edges": digest.hexdigest()}


def step_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Ledger:
    """DATA_DIR/.preprocess/steps.json: {step: {"key", "finished" (unix time), "seconds", "info" (facts the step
    found that later steps or meta.json report)}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            self.entries = {}  # a damaged ledger only costs redoing the steps

    def done(self, step: str, key: str, outputs: Iterable[Path]) -> bool:
        entry = self.entries.get(step)
        return bool(entry) and entry.get("key") == key and all(Path(p).is_file() for p in outputs)

    def record(self, step: str, key: str, seconds: float, info: dict | None = None) -> None:
        self.entries[step] = {"key": key, "finished": time.time(), "seconds": round(seconds, 3), "info": info or {}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.entries)

    def info(self, step: str) -> dict:
        return dict(self.entries.get(step, {}).get("info", {}))
