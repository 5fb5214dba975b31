"""Atomic writes: a file is filled under a hidden temporary name beside it, then os.replace moves it into place,
so a crash never leaves a partial file where a good one stood."""
from __future__ import annotations

import os
from pathlib import Path


def atomic_path(path: Path) -> Path:
    """The hidden temporary sibling a writer fills before os.replace moves it over `path`: named by this process, so
    two processes writing one folder never fill the same file (the suffix is kept, so writers that pick a format by
    extension still do). The same path gives the same name within one process. What writers of `path` that were
    killed left behind is removed on the way."""
    _remove_stale(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")


def _remove_stale(path: Path) -> None:
    """Delete temporary siblings of `path` named by processes that no longer run (a writer killed mid-file)."""
    prefix, suffix = f".{path.name}.", f".partial{path.suffix}"
    try:
        siblings = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return  # no folder yet: nothing was left there
    for sibling in siblings:
        pid = sibling.name[len(prefix):-len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            sibling.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (its folder must exist)."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (its folder must exist)."""
    tmp = atomic_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
