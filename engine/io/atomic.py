"""Atomic writes: a file is filled under a hidden temporary name beside it, then os.replace moves it into place,
so a crash never leaves a partial file where a good one stood."""
from __future__ import annotations

import os
from pathlib import Path


def atomic_path(path: Path) -> Path:
    """The hidden temporary sibling a writer fills before os.replace moves it over `path`: named by this process, so
    two processes writing one folder never fill the same file (the suffix is kept, so writers that pick a format by
    extension still do). The same path gives the same name within one process."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (its folder must exist)."""
    tmp = atomic_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)
